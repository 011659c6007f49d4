// What the cuDNN users of the CUDA backend share (conv_cudnn.cpp, attention_cudnn.cpp): one
// handle per device bound to its compute stream, a checked-call helper that turns a failed status
// into a DeviceError naming the call, and workspace memory from the caching allocator. Included
// only by CUDA sources (it includes cudnn.h).
#pragma once
#include <cudnn.h>

#include <cstddef>
#include <mutex>
#include <source_location>

#include "kernels/cuda/device_scratch.h"

namespace fabric::cuda {

struct CudnnHandle {
  cudnnHandle_t h = nullptr;
  std::mutex mu;  // a handle is used by one thread at a time
};

// The handle of `device`, created on first use with its stream set to the device's compute
// stream, and never destroyed (work may be queued by tensors that outlive main). `what` names the
// caller in the errors (no such device, cudnnCreate failed).
CudnnHandle& cudnn_handle(int device, const char* what);

// A failed cuDNN call as a DeviceError naming `call`, its status and where it was made.
void cudnn_check(cudnnStatus_t st, const char* call,
                 std::source_location at = std::source_location::current());
// The status of the last cudnn_check that failed on this thread (what its DeviceError was), and
// SUCCESS from then on until another fails.
cudnnStatus_t take_last_failed_cudnn_status();
// A failure of the moment (memory short on the host or device, a launch that failed), not a
// refusal of the problem: worth asking again later rather than remembering as a decline.
bool cudnn_status_is_transient(cudnnStatus_t st);

// Workspace memory from the caching allocator, given back (in stream order) on every path out.
using CudnnWorkspace = DeviceScratch;

}  // namespace fabric::cuda
