// The caching CPU allocator: freed blocks go to a free list per size class and are handed out
// again for the next request of that class, so steady-state loops never reach malloc (nor fault
// in fresh pages). Size classes keep the rounding waste under 1/8 of a request.
#include "tensor/allocator.h"

#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "tensor/error.h"

namespace fabric {
namespace {

constexpr size_t kAlignment = 64;
// Blocks of at least this size start on a huge-page boundary and are offered to the kernel as
// transparent huge pages (see allocate).
constexpr size_t kHugePage = size_t{2} << 20;
// Above this no machine has the memory, and size_class's rounding would wrap past 2^64 for
// requests near it (handing out a tiny block): such requests are refused before rounding.
constexpr size_t kMaxRequest = size_t{1} << 62;

// Rounds to 8 classes per power of two above 512 bytes, 64-byte multiples below.
size_t size_class(size_t n) {
  if (n <= 512) return std::max<size_t>(64, (n + 63) & ~size_t{63});
  size_t top = size_t{1} << (63 - __builtin_clzll(n - 1));  // largest power of two < n
  size_t step = top / 8;
  return (n + step - 1) / step * step;
}

// The free lists are an array indexed by class, not a hash map: every op allocates and frees a
// few blocks, and a map lookup (hash, bucket walk) on both paths is a fixed cost on each.
// Classes 64..512 (step 64) take slots 0-7; the 8 classes in (2^p, 2^(p+1)] (p >= 9) the 8 after
// those of 2^(p-1).
size_t class_slot(size_t cls) {
  if (cls <= 512) return cls / 64 - 1;
  const int p = 63 - __builtin_clzll(cls - 1);  // cls in (2^p, 2^(p+1)]
  const size_t step = size_t{1} << (p - 3);
  return 8 + static_cast<size_t>(p - 9) * 8 + (cls / step - 9);
}
// kMaxRequest rounds to at most 2^62, whose slot is the last.
constexpr size_t kNumSlots = 8 + (61 - 9) * 8 + 8;

class CachingCpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes > kMaxRequest) [[unlikely]]
      throw Error(detail::cat("out of CPU memory allocating ", nbytes,
                              " bytes (more than any machine holds)"));
    const size_t cls = size_class(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<void*>& blocks = free_[class_slot(cls)];
      if (!blocks.empty()) {
        void* p = blocks.back();
        blocks.pop_back();
        cached_bytes_ -= static_cast<int64_t>(cls);
        ++stats_.num_cache_hits;
        note_alloc(cls);
        return p;
      }
    }
    const size_t align = cls >= kHugePage ? kHugePage : kAlignment;
    // posix_memalign: unlike aligned_alloc, no rule that the size be a multiple of the alignment.
    auto system_alloc = [&]() -> void* {
      void* q = nullptr;
      return posix_memalign(&q, align, cls) == 0 ? q : nullptr;
    };
    void* p = system_alloc();
    if (!p) {
      empty_cache();
      p = system_alloc();
    }
    // Debian's kernels back anonymous memory with huge pages only where asked (THP "madvise"):
    // a 16 MiB tensor on 4 KiB pages costs a TLB miss every 4 KiB of each stream, which took
    // single-thread elementwise and layer_norm passes 15-30 % below what huge pages give here.
    // A refusal (THP "never", an old kernel) leaves ordinary pages; nothing else changes.
    if (p && align == kHugePage) madvise(p, cls & ~(kHugePage - 1), MADV_HUGEPAGE);
    if (!p) throw Error(detail::cat("out of CPU memory allocating ", nbytes, " bytes"));
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.num_system_allocs;
    stats_.reserved_bytes += static_cast<int64_t>(cls);
    note_alloc(cls);
    return p;
  }

  void deallocate(void* p, size_t nbytes) override {
    if (!p) return;
    const size_t cls = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.allocated_bytes -= static_cast<int64_t>(cls);
    // Storage destructors land here: a bad_alloc from growing the free list (memory exhausted)
    // would escape a destructor and abort the process, so the block goes back to the system
    // instead of into the cache.
    try {
      free_[class_slot(cls)].push_back(p);
    } catch (const std::bad_alloc&) {
      std::free(p);
      stats_.reserved_bytes -= static_cast<int64_t>(cls);
      return;
    }
    cached_bytes_ += static_cast<int64_t>(cls);
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }
  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::vector<void*>& blocks : free_) {
      for (void* p : blocks) std::free(p);
      blocks.clear();
    }
    stats_.reserved_bytes -= cached_bytes_;
    cached_bytes_ = 0;
    // Blocks below glibc's mmap threshold go back to its arenas, not to the system: trimming
    // returns those pages too, as torch.cuda.empty_cache's memory becomes free for others (100k
    // freed 1 KiB tensors kept 135 MB of RSS without it).
    malloc_trim(0);
  }

 private:
  void note_alloc(size_t cls) {
    stats_.allocated_bytes += static_cast<int64_t>(cls);
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  }

  mutable std::mutex mu_;
  std::array<std::vector<void*>, kNumSlots> free_;  // by class_slot
  int64_t cached_bytes_ = 0;  // held in free_, for empty_cache's reserved_bytes
  AllocatorStats stats_;
};

}  // namespace

Allocator& cpu_allocator() {
  // Never destroyed: tensors in static objects may be freed after main returns.
  static auto* alloc = new CachingCpuAllocator();
  return *alloc;
}

}  // namespace fabric
