// The caching allocator's block logic: best-fit search in a size-ordered pool, splitting of the
// found block, merging of a freed block with its free neighbours, whole-segment release.
#include "kernels/cuda/caching_allocator_core.h"

#include <algorithm>
#include <cstdio>

#include "tensor/error.h"

namespace fabric::cuda {
namespace {

std::string format_bytes(size_t n) {
  const double v = static_cast<double>(n);
  char buf[64];
  if (n >= (size_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.2f GiB", v / (1 << 30));
  } else if (n >= (size_t{1} << 20)) {
    std::snprintf(buf, sizeof(buf), "%.2f MiB", v / (1 << 20));
  } else if (n >= 1024) {
    std::snprintf(buf, sizeof(buf), "%.2f KiB", v / 1024);
  } else {
    return detail::cat(n, " bytes");
  }
  return detail::cat(buf, " (", n, " bytes)");
}

// Past this a request cannot be rounded without overflow; no device has that much memory.
constexpr size_t kMaxRequest = size_t{1} << 60;

}  // namespace

size_t CachingAllocatorCore::round_size(size_t nbytes) {
  if (nbytes < kMinBlockSize) return kMinBlockSize;
  return (nbytes + kMinBlockSize - 1) / kMinBlockSize * kMinBlockSize;
}

size_t CachingAllocatorCore::segment_size(size_t rounded) {
  if (rounded <= kSmallSize) return kSmallBuffer;
  if (rounded < kMinLargeAlloc) return kLargeBuffer;
  return (rounded + kRoundLarge - 1) / kRoundLarge * kRoundLarge;
}

CachingAllocatorCore::CachingAllocatorCore(std::string name, RawMemoryOps ops)
    : name_(std::move(name)), ops_(std::move(ops)) {
  FABRIC_CHECK(ops_.alloc && ops_.free, ValueError, "CachingAllocatorCore(", name_,
               "): the raw alloc and free callbacks are required");
}

CachingAllocatorCore::~CachingAllocatorCore() {
  for (const auto& [base, size] : segments_) {
    try {
      ops_.free(base, size);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fabric: %s: freeing a segment at teardown failed: %s\n", name_.c_str(),
                   e.what());
    }
  }
  for (PendingFree& p : pending_) {
    for (void* e : p.events)
      if (ops_.destroy_event) ops_.destroy_event(e);
    delete p.block;
  }
  for (auto& [ptr, b] : active_) delete b;
  for (Block* b : small_pool_) delete b;
  for (Block* b : large_pool_) delete b;
}

void* CachingAllocatorCore::allocate(size_t nbytes) {
  FABRIC_CHECK(nbytes <= kMaxRequest, DeviceError, name_, ": cannot allocate ", nbytes,
               " bytes (more than any device holds)");
  std::lock_guard<std::mutex> lock(mu_);
  process_events();
  const size_t size = round_size(nbytes);
  const bool small = size <= kSmallSize;
  Block* b = take_free_block(pool_for(small), size);
  if (b) {
    ++stats_.num_cache_hits;
  } else {
    const size_t seg = segment_size(size);
    void* p = ops_.alloc(seg);
    if (!p) {
      // Cached blocks of the other pool, or fragments of this one, may be what the device lacks.
      release_cached();
      p = ops_.alloc(seg);
    }
    if (!p) throw_oom(nbytes, size, seg);
    b = new Block{static_cast<char*>(p), seg, small};
    segments_.emplace(b->ptr, seg);
    stats_.reserved_bytes += static_cast<int64_t>(seg);
    ++stats_.num_system_allocs;
  }
  split(b, size);
  b->allocated = true;
  active_.emplace(b->ptr, b);
  stats_.allocated_bytes += static_cast<int64_t>(b->size);
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return b->ptr;
}

void CachingAllocatorCore::deallocate(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(ptr);
  FABRIC_CHECK(it != active_.end(), ValueError, name_, ": deallocate(", ptr,
               ") of a pointer this allocator did not hand out, or freed twice");
  Block* b = it->second;
  PendingFree pf{b, {}};
  pf.events.reserve(b->stream_uses.size());
  try {
    for (void* s : b->stream_uses) pf.events.push_back(ops_.record_event(s));
  } catch (...) {
    // Without a fence on every stream that used it the block cannot be reused safely: it stays
    // allocated (and counted), and the events already recorded are not left behind.
    for (void* e : pf.events) ops_.destroy_event(e);
    throw;
  }
  active_.erase(it);
  stats_.allocated_bytes -= static_cast<int64_t>(b->size);
  if (pf.events.empty()) {
    free_block(b);
    return;
  }
  b->stream_uses.clear();
  pending_.push_back(std::move(pf));
}

void CachingAllocatorCore::record_stream(void* ptr, void* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  FABRIC_CHECK(ops_.record_event && ops_.event_done && ops_.destroy_event, ValueError, name_,
               ": record_stream needs the event callbacks");
  auto it = active_.find(ptr);
  FABRIC_CHECK(it != active_.end(), ValueError, name_, ": record_stream(", ptr,
               ") on a pointer that is not the start of a live block of this allocator");
  auto& uses = it->second->stream_uses;
  if (std::find(uses.begin(), uses.end(), stream) == uses.end()) uses.push_back(stream);
}

CachingAllocatorCore::Block* CachingAllocatorCore::take_free_block(Pool& pool, size_t size) {
  Block key{nullptr, size, false};
  auto it = pool.lower_bound(&key);  // the smallest free block of at least `size`
  if (it == pool.end()) return nullptr;
  Block* b = *it;
  pool.erase(it);
  return b;
}

void CachingAllocatorCore::split(Block* b, size_t size) {
  const size_t remaining = b->size - size;
  // Large-pool remainders of 1 MiB or less would only serve small requests, which never look
  // in the large pool: keep them attached instead of stranding them.
  const bool worth = b->small_pool ? remaining >= kMinBlockSize : remaining > kSmallSize;
  if (!worth) return;
  Block* r = new Block{b->ptr + size, remaining, b->small_pool};
  r->prev = b;
  r->next = b->next;
  if (b->next) b->next->prev = r;
  b->next = r;
  b->size = size;
  pool_for(r->small_pool).insert(r);
}

void CachingAllocatorCore::free_block(Block* b) {
  b->allocated = false;
  Pool& pool = pool_for(b->small_pool);
  if (Block* p = b->prev; p && !p->allocated) {
    pool.erase(p);
    b->ptr = p->ptr;
    b->size += p->size;
    b->prev = p->prev;
    if (b->prev) b->prev->next = b;
    delete p;
  }
  if (Block* n = b->next; n && !n->allocated) {
    pool.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (b->next) b->next->prev = b;
    delete n;
  }
  pool.insert(b);
}

void CachingAllocatorCore::process_events() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    const bool done = std::all_of(it->events.begin(), it->events.end(),
                                  [&](void* e) { return ops_.event_done(e); });
    if (!done) {
      ++it;
      continue;
    }
    for (void* e : it->events) ops_.destroy_event(e);
    free_block(it->block);
    it = pending_.erase(it);
  }
}

void CachingAllocatorCore::release_cached() {
  for (Pool* pool : {&small_pool_, &large_pool_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* b = *it;
      if (b->prev || b->next) {  // part of a segment that is still partly in use
        ++it;
        continue;
      }
      ops_.free(b->ptr, b->size);
      segments_.erase(b->ptr);
      stats_.reserved_bytes -= static_cast<int64_t>(b->size);
      it = pool->erase(it);
      delete b;
    }
  }
}

void CachingAllocatorCore::throw_oom(size_t nbytes, size_t rounded, size_t seg) const {
  std::string device = ops_.describe_memory ? ops_.describe_memory() : std::string();
  throw DeviceError(detail::cat(
      name_, ": out of memory: tried to allocate ", format_bytes(nbytes),
      rounded != seg ? detail::cat(" (a new segment of ", format_bytes(seg), ")") : std::string(),
      "; ", format_bytes(static_cast<size_t>(stats_.allocated_bytes)),
      " allocated in live tensors, ", format_bytes(static_cast<size_t>(stats_.reserved_bytes)),
      " reserved by fabric's caching allocator", device.empty() ? std::string() : "; " + device,
      ". The cache was emptied and the allocation retried once; free tensors or use smaller "
      "batches"));
}

AllocatorStats CachingAllocatorCore::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocatorCore::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

void CachingAllocatorCore::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  process_events();
  release_cached();
}

size_t CachingAllocatorCore::pending_blocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

std::vector<CachingAllocatorCore::SegmentInfo> CachingAllocatorCore::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<const char*, const Block*> by_ptr;
  for (const auto& [p, b] : active_) by_ptr.emplace(b->ptr, b);
  for (const Block* b : small_pool_) by_ptr.emplace(b->ptr, b);
  for (const Block* b : large_pool_) by_ptr.emplace(b->ptr, b);
  for (const PendingFree& p : pending_) by_ptr.emplace(p.block->ptr, p.block);
  std::vector<SegmentInfo> out;
  for (const auto& [base, size] : segments_) {
    SegmentInfo s{reinterpret_cast<uintptr_t>(base), size, false, {}};
    auto it = by_ptr.find(base);
    const Block* b = it == by_ptr.end() ? nullptr : it->second;
    if (b) s.small_pool = b->small_pool;
    for (; b; b = b->next)
      s.blocks.push_back({static_cast<size_t>(b->ptr - base), b->size, b->allocated});
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace fabric::cuda
