// torch.cuda.synchronize and torch.backends.cuda.matmul.allow_tf32, device-neutral, for apps that
// time their steps or want TF32 matmuls. The CUDA backend answers through a stub; a build without
// it still compiles and links code that calls these.
#pragma once
#include "tensor/device.h"
#include "tensor/dispatch_stub.h"

namespace fabric {

// Waits until all the work queued on `device` has finished, and reports an error that work raised
// (a DeviceError on CUDA). CUDA kernels run asynchronously: a timer read after a step without this
// measures the queueing, not the work. A CPU device has nothing queued and returns at once; a
// CUDA device in a build without CUDA is a DeviceError.
void synchronize(const Device& device);

// Whether float32 GEMMs and convolutions on CUDA may run on TF32 tensor cores (10 mantissa bits
// per product, about 1e-3 relative): off by default, as torch.backends.cuda.matmul.allow_tf32.
// Process-wide; the next GEMM or convolution reads it. Returns the previous value.
bool set_allow_tf32(bool allow);
bool allow_tf32();

using DeviceSynchronizeFn = void (*)(int index);
FABRIC_DECLARE_STUB(device_synchronize_stub, DeviceSynchronizeFn);

}  // namespace fabric
