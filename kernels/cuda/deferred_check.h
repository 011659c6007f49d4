// The deferred range checks of each CUDA device (tensor/deferred_check.h): the device record its
// kernels report into, arming a check (the op layer's arm_range_check_stub), and reading the record
// at the points that synchronise anyway (copies to the host, synchronize).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <mutex>

#include "kernels/cuda/deferred_check_logic.h"

namespace fabric::cuda {

// What a kernel needs to check values against [0, bound) and report a failure under `site`.
struct DeviceRangeCheck {
  DeferredCheckRecord* record = nullptr;  // null: the op validated the values before the launch
  unsigned long long site = 0;
  long long bound = 0;
};

// The check of a launch on `device` for an op that armed `site` (0: it validated the values
// itself) over [0, bound).
DeviceRangeCheck device_range_check(int device, uint64_t site, int64_t bound);

uint64_t arm_range_check(int device, RangeErrorText text);

// A read of `device`'s record at a synchronisation point that waits for `stream` (its compute
// stream): the constructor queues the read behind the work queued so far (when a check was armed
// since), and finish(), called once the caller has synchronised the stream, raises the first
// failure as IndexError and clears it. One read per device at a time.
class DeferredCheckRead {
 public:
  DeferredCheckRead(int device, cudaStream_t stream);
  void finish();

 private:
  int device_;
  cudaStream_t stream_;
  std::unique_lock<std::mutex> lock_;
  DeferredCheckSites::Read read_;
};

}  // namespace fabric::cuda
