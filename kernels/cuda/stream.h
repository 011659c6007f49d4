// The per-device compute stream every kernel and copy of the CUDA backend runs on, an event
// wrapper, and where a loop's memory lives (which device a kernel must launch on).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_check.h"

namespace fabric {
struct StridedLoop;
}

namespace fabric::cuda {

inline constexpr int kMaxDevices = 64;

// One stream per device, created on first use and kept for the life of the process. It is a
// *blocking* stream: it orders with the legacy default stream (cudaStreamLegacy), which is what
// the NCCL process group and any plain cudaMemcpy in other code order against.
cudaStream_t compute_stream(int device);

// The device that owns `ptr` (device memory from cudaMalloc or managed memory); throws
// DeviceError for host memory. With one visible device it is 0 without asking the driver.
int device_of_pointer(const void* ptr);
// The device a kernel over `loop` runs on: the one that owns its output (operand 0).
int loop_device(const StridedLoop& loop);

// A CUDA event on one device (timing off unless asked: cheaper to record and wait on).
class Event {
 public:
  explicit Event(int device, bool enable_timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& o) noexcept : device_(o.device_), event_(o.event_) { o.event_ = nullptr; }
  Event& operator=(Event&& o) noexcept;

  void record(cudaStream_t stream);
  // Makes `stream` (of any device) wait for the work recorded so far; does not block the host.
  void block(cudaStream_t stream) const;
  bool query() const;  // true once the recorded work has finished
  void synchronize() const;
  float elapsed_ms(const Event& end) const;  // both with timing, both finished
  cudaEvent_t get() const { return event_; }
  int device() const { return device_; }

 private:
  int device_ = 0;
  cudaEvent_t event_ = nullptr;
};

}  // namespace fabric::cuda
