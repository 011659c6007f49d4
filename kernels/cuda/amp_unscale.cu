// The fused GradScaler unscale + inf/NaN check on CUDA: one pass reads each gradient element,
// raises the caller's flag in device memory when it is not finite, and writes it back times
// inv_scale. Nothing here waits for the device.
#include <cuda_runtime.h>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/amp_kernels.h"

namespace fabric::cuda {
namespace {

// float32, bfloat16, float16 in float32 opmath; float64 in float64 with the float inverse widened
// exactly, as the CPU kernel (and PyTorch's opmath) does.
template <typename T>
struct Unscale {
  using Op = std::conditional_t<std::is_same_v<T, double>, double, float>;
  Op inv;
  bool write;
  unsigned int* found;
  __device__ void operator()(char* (&p)[1]) const {
    const Op v = static_cast<Op>(load<T>(p[0]));
    // Only non-finite elements store the flag (the same value from every writer).
    if (!isfinite(v)) *found = 1u;
    if (write) store<T>(p[0], T(v * inv));
  }
};

// Queued on the device's compute stream; nothing waits here (the op reads the flag once for all
// of a step's gradients).
template <typename T>
void unscale(const StridedLoop& loop, float inv_scale, int32_t* found) {
  if (loop.numel() == 0) return;
  DeviceGuard guard(loop_device(loop));
  using Op = typename Unscale<T>::Op;
  launch_loop<1>(loop, Unscale<T>{static_cast<Op>(inv_scale), inv_scale != 1.0f,
                                  reinterpret_cast<unsigned int*>(found)});
}

void amp_unscale_kernel(const StridedLoop& loop, float inv_scale, int32_t* found) {
  FABRIC_CHECK(loop.num_operands == 1, ValueError, "amp_unscale: expected one operand, got ",
               loop.num_operands);
  switch (loop.ops[0].dtype) {
    case DType::float32:
      return unscale<float>(loop, inv_scale, found);
    case DType::bfloat16:
      return unscale<BFloat16>(loop, inv_scale, found);
    case DType::float16:
      return unscale<Half>(loop, inv_scale, found);
    case DType::float64:
      return unscale<double>(loop, inv_scale, found);
    default:
      throw DTypeError(fabric::detail::cat(
          "amp_unscale: ", dtype_name(loop.ops[0].dtype),
          " is not supported (expected float64, float32, bfloat16 or float16)"));
  }
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(amp_unscale_stub, cuda, &cuda::amp_unscale_kernel);
}  // namespace fabric
