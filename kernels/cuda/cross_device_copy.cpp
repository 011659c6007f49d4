// Copies between the host and CUDA devices, and between devices, all ordered on the compute
// streams. Host-bound copies are complete when the call returns; device-bound ones are queued.
#include <algorithm>
#include <cstring>

#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/deferred_check.h"
#include "kernels/cuda/stream.h"
#include "tensor/copy_kernels.h"

namespace fabric::cuda {
namespace {

// Host -> device goes through pinned buffers of this size, two in turn, so that filling one
// overlaps the DMA of the other and the caller's memory is free as soon as we return.
constexpr size_t kStagingChunk = size_t{8} << 20;

// Returns a staging buffer to the cache on every path out, recorded on the stream that uses it.
class StagingLease {
 public:
  StagingLease(size_t nbytes, int device, cudaStream_t stream)
      : ptr_(pinned_acquire(nbytes)), device_(device), stream_(stream) {}
  ~StagingLease() {
    try {
      pinned_release(ptr_, device_, stream_);
    } catch (...) {
      // A device in an error state: the buffer stays out of the cache; the error surfaces on
      // the next checked call.
    }
  }
  StagingLease(const StagingLease&) = delete;
  StagingLease& operator=(const StagingLease&) = delete;
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  void* ptr_;
  int device_;
  cudaStream_t stream_;
};

void host_to_device(char* dst, int device, const char* src, size_t n) {
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  if (n <= kStagingChunk) {
    StagingLease buf(n, device, stream);
    std::memcpy(buf.get(), src, n);
    FABRIC_CUDA_CHECK(cudaMemcpyAsync(dst, buf.get(), n, cudaMemcpyHostToDevice, stream));
    return;
  }
  StagingLease buf0(kStagingChunk, device, stream), buf1(kStagingChunk, device, stream);
  char* bufs[2] = {buf0.get(), buf1.get()};
  Event copied[2] = {Event(device), Event(device)};
  bool in_flight[2] = {false, false};
  size_t chunk = 0;
  for (size_t off = 0; off < n; off += kStagingChunk, ++chunk) {
    const int k = static_cast<int>(chunk % 2);
    const size_t len = std::min(kStagingChunk, n - off);
    if (in_flight[k]) copied[k].synchronize();  // its previous chunk has left the buffer
    std::memcpy(bufs[k], src + off, len);
    FABRIC_CUDA_CHECK(cudaMemcpyAsync(dst + off, bufs[k], len, cudaMemcpyHostToDevice, stream));
    copied[k].record(stream);
    in_flight[k] = true;
  }
}

// Pageable destinations: cudaMemcpyAsync is synchronous for them, but only the stream sync
// also covers the kernels queued before it, so the bytes read are final. The wait also reports
// the range checks of the kernels before it (an earlier op's bad index raises here).
void device_to_host(char* dst, int device, const char* src, size_t n) {
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  FABRIC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream));
  DeferredCheckRead checks(device, stream);
  FABRIC_CUDA_CHECK(cudaStreamSynchronize(stream));
  checks.finish();
}

void device_to_device(char* dst, int dst_dev, const char* src, int src_dev, size_t n) {
  if (dst_dev == src_dev) {
    DeviceGuard guard(dst_dev);
    FABRIC_CUDA_CHECK(
        cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, compute_stream(dst_dev)));
    return;
  }
  cudaStream_t src_stream = compute_stream(src_dev), dst_stream = compute_stream(dst_dev);
  // The copy runs on the destination's stream after the source's pending writes...
  Event written(src_dev);
  written.record(src_stream);
  {
    DeviceGuard guard(dst_dev);
    written.block(dst_stream);
    FABRIC_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev, src, src_dev, n, dst_stream));
  }
  // ...and the source's later work (which may reuse the freed source block) waits for the read.
  Event read(dst_dev);
  read.record(dst_stream);
  DeviceGuard guard(src_dev);
  read.block(src_stream);
}

void cross_device_copy(void* dst, Device dst_device, const void* src, Device src_device,
                       size_t nbytes) {
  FABRIC_CHECK(dst_device.is_cuda() || src_device.is_cuda(), DeviceError, "cross-device copy from ",
               src_device, " to ", dst_device,
               ": the CUDA backend copies only to or from CUDA devices");
  if (nbytes == 0) return;
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  if (src_device.is_cpu()) {
    host_to_device(d, dst_device.index, s, nbytes);
  } else if (dst_device.is_cpu()) {
    device_to_host(d, src_device.index, s, nbytes);
  } else {
    check_device(src_device.index, "cross-device copy (source)");
    check_device(dst_device.index, "cross-device copy (destination)");
    device_to_device(d, dst_device.index, s, src_device.index, nbytes);
  }
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(cross_device_copy_stub, cuda, &cuda::cross_device_copy);
}  // namespace fabric
