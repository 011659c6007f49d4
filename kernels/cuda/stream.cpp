// Compute streams (one per device, created lazily), events, and pointer-to-device lookup.
#include "kernels/cuda/stream.h"

#include <array>
#include <atomic>
#include <mutex>

#include "tensor/strided_loop.h"

namespace fabric::cuda {
namespace {

std::array<std::atomic<cudaStream_t>, kMaxDevices> g_streams{};
std::mutex g_stream_mu;

}  // namespace

cudaStream_t compute_stream(int device) {
  check_device(device, "compute_stream");
  FABRIC_CHECK(device < kMaxDevices, DeviceError, "compute_stream: device ", device,
               " is past the ", kMaxDevices, " devices this backend supports");
  cudaStream_t s = g_streams[device].load(std::memory_order_acquire);
  if (s) return s;
  std::lock_guard<std::mutex> lock(g_stream_mu);
  s = g_streams[device].load(std::memory_order_relaxed);
  if (s) return s;
  DeviceGuard guard(device);
  // Never destroyed: tensors freed after main returns may still enqueue on it.
  FABRIC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamDefault));
  g_streams[device].store(s, std::memory_order_release);
  return s;
}

int device_of_pointer(const void* ptr) {
  if (device_count() == 1) return 0;
  cudaPointerAttributes attr{};
  FABRIC_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  FABRIC_CHECK(attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged, DeviceError,
               "CUDA kernel: the memory at ", ptr,
               " is not device memory (cudaPointerGetAttributes type ", static_cast<int>(attr.type),
               ")");
  return attr.device;
}

int loop_device(const StridedLoop& loop) { return device_of_pointer(loop.ops[0].data); }

Event::Event(int device, bool enable_timing) : device_(device) {
  DeviceGuard guard(device);
  FABRIC_CUDA_CHECK(
      cudaEventCreateWithFlags(&event_, enable_timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (event_) cudaEventDestroy(event_);  // legal while pending: resources go when it completes
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (event_) cudaEventDestroy(event_);
    device_ = o.device_;
    event_ = o.event_;
    o.event_ = nullptr;
  }
  return *this;
}

void Event::record(cudaStream_t stream) {
  DeviceGuard guard(device_);  // the event and the stream must be on the current device
  FABRIC_CUDA_CHECK(cudaEventRecord(event_, stream));
}

void Event::block(cudaStream_t stream) const {
  FABRIC_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0));
}

bool Event::query() const {
  const cudaError_t err = cudaEventQuery(event_);
  if (err == cudaSuccess) return true;
  if (err == cudaErrorNotReady) return false;  // an answer, not an error
  throw_cuda_error(err, "cudaEventQuery(event)", __FILE__, __LINE__);
}

void Event::synchronize() const { FABRIC_CUDA_CHECK(cudaEventSynchronize(event_)); }

float Event::elapsed_ms(const Event& end) const {
  float ms = 0;
  FABRIC_CUDA_CHECK(cudaEventElapsedTime(&ms, event_, end.event_));
  return ms;
}

}  // namespace fabric::cuda
