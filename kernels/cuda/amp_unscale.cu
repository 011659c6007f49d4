// The fused GradScaler unscale + inf/NaN check on CUDA: one pass reads each gradient element,
// raises the caller's flag in device memory when it is not finite, and writes it back times
// inv_scale; contiguous gradients of one dtype many to a launch (multi_tensor.cuh). Nothing here
// waits for the device.
#include <cuda_runtime.h>

#include <utility>
#include <vector>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "kernels/cuda/multi_tensor.cuh"
#include "kernels/cuda/speed_switches.h"
#include "tensor/amp_kernels.h"

namespace fabric::cuda {
namespace {

// float32, bfloat16, float16 in float32 opmath; float64 in float64 with the float inverse widened
// exactly, as the CPU kernel (and PyTorch's opmath) does.
template <typename T>
using unscale_op_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
__device__ __forceinline__ void unscale_element(T* x, unscale_op_t<T> inv, bool write,
                                                unsigned int* found) {
  const unscale_op_t<T> v = static_cast<unscale_op_t<T>>(*x);
  // Only non-finite elements store the flag (the same value from every writer).
  if (!isfinite(v)) *found = 1u;
  if (write) *x = T(v * inv);
}

template <typename T>
struct Unscale {
  using Op = unscale_op_t<T>;
  Op inv;
  bool write;
  unsigned int* found;
  __device__ void operator()(char* (&p)[1]) const {
    unscale_element(reinterpret_cast<T*>(p[0]), inv, write, found);
  }
};

// The multi-tensor form (multi_tensor.cuh): one pointer per tensor.
template <typename T>
__global__ void __launch_bounds__(kMultiThreads)
    unscale_multi_kernel(MultiTensorTable<1> t, unscale_op_t<T> inv, bool write,
                         unsigned int* found) {
  const BlockRange r = block_range(t);
  T* x = static_cast<T*>(t.ptr[0][r.slot]);
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x)
    unscale_element(x + i, inv, write, found);
}

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

template <typename T>
void unscale_multi(const std::vector<std::pair<void*, int64_t>>& tensors, float inv_scale,
                   int32_t* found) {
  std::vector<int64_t> sizes;
  sizes.reserve(tensors.size());
  const void* anchor = nullptr;
  for (const auto& [data, n] : tensors) {
    sizes.push_back(n);
    if (anchor == nullptr && n > 0) anchor = data;
  }
  if (anchor == nullptr) return;
  const int device = device_of_pointer(anchor);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const auto inv = static_cast<unscale_op_t<T>>(inv_scale);
  auto* flag = reinterpret_cast<unsigned int*>(found);
  for_each_multi_tensor_launch<1>(
      sizes, [&](int i, int) { return tensors[static_cast<size_t>(i)].first; },
      [&](const MultiTensorTable<1>& t, unsigned blocks) {
        unscale_multi_kernel<T>
            <<<blocks, kMultiThreads, 0, stream>>>(t, inv, inv_scale != 1.0f, flag);
        FABRIC_CUDA_CHECK_LAUNCH();
      });
}

// FABRIC_CUDA_MULTI_TENSOR=0: one launch per tensor, as amp_unscale_kernel.
void amp_unscale_multi_kernel(DType dt, const std::vector<std::pair<void*, int64_t>>& tensors,
                              float inv_scale, int32_t* found) {
  if (!multi_tensor_enabled())
    return amp_unscale_each(&amp_unscale_kernel, dt, tensors, inv_scale, found);
  switch (dt) {
    case DType::float32:
      return unscale_multi<float>(tensors, inv_scale, found);
    case DType::bfloat16:
      return unscale_multi<BFloat16>(tensors, inv_scale, found);
    case DType::float16:
      return unscale_multi<Half>(tensors, inv_scale, found);
    case DType::float64:
      return unscale_multi<double>(tensors, inv_scale, found);
    default:
      throw DTypeError(fabric::detail::cat(
          "amp_unscale: ", dtype_name(dt),
          " is not supported (expected float64, float32, bfloat16 or float16)"));
  }
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(amp_unscale_stub, cuda, &cuda::amp_unscale_kernel);
FABRIC_REGISTER_KERNEL(amp_unscale_multi_stub, cuda, &cuda::amp_unscale_multi_kernel);
}  // namespace fabric
