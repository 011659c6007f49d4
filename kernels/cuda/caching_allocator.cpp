// The CUDA side of the caching allocator: cudaMalloc/cudaFree and events behind
// CachingAllocatorCore, one instance per device registered for DeviceType::cuda, and the cache
// of pinned host staging buffers.
#include "kernels/cuda/caching_allocator.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdio>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/caching_allocator_core.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/stream.h"
#include "tensor/storage.h"

namespace fabric::cuda {
namespace {

bool event_finished(cudaEvent_t e) {
  const cudaError_t err = cudaEventQuery(e);
  if (err == cudaSuccess) return true;
  if (err == cudaErrorNotReady) return false;
  throw_cuda_error(err, "cudaEventQuery(event)", __FILE__, __LINE__);
}

cudaEvent_t record_new_event(int device, cudaStream_t stream) {
  DeviceGuard guard(device);
  cudaEvent_t e = nullptr;
  FABRIC_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  const cudaError_t err = cudaEventRecord(e, stream);
  if (err != cudaSuccess) {
    cudaEventDestroy(e);
    throw_cuda_error(err, "cudaEventRecord(event, stream)", __FILE__, __LINE__);
  }
  return e;
}

RawMemoryOps device_ops(int device) {
  RawMemoryOps ops;
  ops.alloc = [device](size_t n) -> void* {
    DeviceGuard guard(device);
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, n);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // out of memory is not sticky; the core retries after emptying the cache
      return nullptr;
    }
    if (err != cudaSuccess)
      throw_cuda_error(err, detail::cat("cudaMalloc(", n, " bytes)").c_str(), __FILE__, __LINE__);
    return p;
  };
  // A cached block may still be read by queued kernels (it was freed on the stream's order, not
  // the host's): wait for the device before the segment goes. (cudaFree would wait too, but only
  // by an undocumented implicit synchronization.)
  ops.free = [device](void* p, size_t) {
    DeviceGuard guard(device);
    FABRIC_CUDA_CHECK(cudaDeviceSynchronize());
    FABRIC_CUDA_CHECK(cudaFree(p));
  };
  ops.record_event = [device](void* stream) -> void* {
    return record_new_event(device, static_cast<cudaStream_t>(stream));
  };
  ops.event_done = [](void* e) { return event_finished(static_cast<cudaEvent_t>(e)); };
  ops.destroy_event = [](void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); };
  ops.describe_memory = [device]() -> std::string {
    DeviceGuard guard(device);
    size_t free_b = 0, total_b = 0;
    const cudaError_t err = cudaMemGetInfo(&free_b, &total_b);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return cuda_error_message(err, "cudaMemGetInfo");
    }
    return detail::cat("the device has ", free_b >> 20, " MiB free of ", total_b >> 20, " MiB");
  };
  return ops;
}

class CudaDeviceAllocator final : public Allocator {
 public:
  explicit CudaDeviceAllocator(int device)
      : device_(device),
        core_(detail::cat("CUDA caching allocator (cuda:", device, ")"), device_ops(device)) {}

  void* allocate(size_t nbytes) override { return core_.allocate(nbytes); }

  // Called from storage destructors, which must not throw: a failure is reported, not raised.
  void deallocate(void* ptr, size_t) override {
    try {
      core_.deallocate(ptr);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fabric: cuda:%d: freeing device memory failed: %s\n", device_,
                   e.what());
    }
  }
  AllocatorStats stats() const override { return core_.stats(); }
  void reset_peak() override { core_.reset_peak(); }
  void empty_cache() override { core_.empty_cache(); }
  void record_stream(void* ptr, cudaStream_t stream) { core_.record_stream(ptr, stream); }

 private:
  int device_;
  CachingAllocatorCore core_;
};

std::array<std::atomic<CudaDeviceAllocator*>, kMaxDevices> g_allocators{};
std::mutex g_allocators_mu;

CudaDeviceAllocator& allocator_for(int index) {
  check_device(index, detail::cat("cannot allocate on cuda:", index).c_str());
  FABRIC_CHECK(index < kMaxDevices, DeviceError, "cannot allocate on cuda:", index,
               ": this backend supports ", kMaxDevices, " devices");
  CudaDeviceAllocator* a = g_allocators[index].load(std::memory_order_acquire);
  if (a) return *a;
  std::lock_guard<std::mutex> lock(g_allocators_mu);
  a = g_allocators[index].load(std::memory_order_relaxed);
  if (!a) {
    // Never destroyed: tensors held by static objects may be freed after main returns.
    a = new CudaDeviceAllocator(index);
    g_allocators[index].store(a, std::memory_order_release);
  }
  return *a;
}

Allocator* get_for_registry(int index) { return &allocator_for(index); }

[[maybe_unused]] const bool g_registered = [] {
  register_device_allocator(DeviceType::cuda, &get_for_registry);
  return true;
}();

// ---- pinned host memory -----------------------------------------------------------------------

struct PinnedEntry {
  void* ptr;
  cudaEvent_t ready;  // recorded at release; the buffer is free once it has completed
};

struct PinnedState {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<PinnedEntry>> free_by_class;
  std::unordered_map<void*, size_t> live;  // ptr -> size class
  AllocatorStats stats;
};

PinnedState& pinned() {
  static auto* s = new PinnedState();  // never destroyed, like the device allocators
  return *s;
}

size_t pinned_class(size_t n) { return std::bit_ceil(std::max<size_t>(n, 4096)); }

// Frees every cached buffer whose copies have finished; returns how many bytes it released.
size_t release_finished_pinned(PinnedState& st) {
  size_t released = 0;
  for (auto& [cls, entries] : st.free_by_class) {
    for (auto it = entries.begin(); it != entries.end();) {
      if (it->ready && !event_finished(it->ready)) {
        ++it;
        continue;
      }
      if (it->ready) cudaEventDestroy(it->ready);
      FABRIC_CUDA_CHECK(cudaFreeHost(it->ptr));
      st.stats.reserved_bytes -= static_cast<int64_t>(cls);
      released += cls;
      it = entries.erase(it);
    }
  }
  return released;
}

}  // namespace

Allocator& cuda_allocator(int index) { return allocator_for(index); }

void record_stream(void* ptr, int device, cudaStream_t stream) {
  allocator_for(device).record_stream(ptr, stream);
}

void* pinned_acquire(size_t nbytes) {
  const size_t cls = pinned_class(nbytes);
  PinnedState& st = pinned();
  std::lock_guard<std::mutex> lock(st.mu);
  auto& entries = st.free_by_class[cls];
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->ready && !event_finished(it->ready)) continue;
    if (it->ready) cudaEventDestroy(it->ready);
    void* p = it->ptr;
    entries.erase(it);
    st.live.emplace(p, cls);
    ++st.stats.num_cache_hits;
    st.stats.allocated_bytes += static_cast<int64_t>(cls);
    st.stats.peak_allocated_bytes =
        std::max(st.stats.peak_allocated_bytes, st.stats.allocated_bytes);
    return p;
  }
  void* p = nullptr;
  cudaError_t err = cudaHostAlloc(&p, cls, cudaHostAllocPortable);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_finished_pinned(st);
    err = cudaHostAlloc(&p, cls, cudaHostAllocPortable);
  }
  if (err != cudaSuccess) {
    throw_cuda_error(err,
                     detail::cat("cudaHostAlloc(", cls,
                                 " bytes of pinned host memory for a copy staging buffer)")
                         .c_str(),
                     __FILE__, __LINE__);
  }
  st.live.emplace(p, cls);
  ++st.stats.num_system_allocs;
  st.stats.reserved_bytes += static_cast<int64_t>(cls);
  st.stats.allocated_bytes += static_cast<int64_t>(cls);
  st.stats.peak_allocated_bytes = std::max(st.stats.peak_allocated_bytes, st.stats.allocated_bytes);
  return p;
}

void pinned_release(void* ptr, int device, cudaStream_t stream) {
  PinnedState& st = pinned();
  std::lock_guard<std::mutex> lock(st.mu);
  auto it = st.live.find(ptr);
  FABRIC_CHECK(it != st.live.end(), ValueError, "pinned_release(", ptr,
               "): not a buffer from pinned_acquire");
  const size_t cls = it->second;
  // Without an event the buffer could be refilled while its copy is still queued; if recording
  // fails, keep it out of the cache (leaked) rather than risk that.
  cudaEvent_t ready = record_new_event(device, stream);
  st.live.erase(it);
  st.free_by_class[cls].push_back({ptr, ready});
  st.stats.allocated_bytes -= static_cast<int64_t>(cls);
}

AllocatorStats pinned_stats() {
  PinnedState& st = pinned();
  std::lock_guard<std::mutex> lock(st.mu);
  return st.stats;
}

void pinned_empty_cache() {
  PinnedState& st = pinned();
  std::lock_guard<std::mutex> lock(st.mu);
  release_finished_pinned(st);
}

}  // namespace fabric::cuda
