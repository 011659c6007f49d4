// The bias add and bias gradient of the CUDA convolution (see conv_bias.h): a grid-stride
// elementwise pass, and one block per channel folding its N*HW gradient values in a fixed order.
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/conv_bias.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/stream.h"
#include "tensor/conv_kernels.h"

namespace fabric::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
__global__ void add_bias_kernel(T* y, const T* bias, int64_t C, int64_t HW, int64_t total) {
  using A = acc_t<T>;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = (i / HW) % C;
    y[i] = static_cast<T>(static_cast<A>(y[i]) + static_cast<A>(bias[c]));
  }
}

template <typename T>
__global__ void bias_grad_kernel(const T* dy, T* db, int64_t N, int64_t C, int64_t HW) {
  using A = acc_t<T>;
  __shared__ A partial[kThreads];
  const int64_t per_channel = N * HW;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    A s = 0;
    for (int64_t e = threadIdx.x; e < per_channel; e += blockDim.x) {
      const int64_t n = e / HW, p = e - n * HW;
      s += static_cast<A>(dy[(n * C + c) * HW + p]);
    }
    partial[threadIdx.x] = s;
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w /= 2) {
      if (static_cast<int>(threadIdx.x) < w) partial[threadIdx.x] += partial[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) db[c] = static_cast<T>(partial[0]);
    __syncthreads();  // partial is refilled for the next channel
  }
}

}  // namespace

void conv_add_bias(int device, DType dtype, void* y, const void* bias, int64_t N, int64_t C,
                   int64_t HW) {
  const int64_t total = N * C * HW;
  if (total == 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const unsigned grid =
      static_cast<unsigned>(std::clamp<int64_t>((total + kThreads - 1) / kThreads, 1, 65536));
  visit_conv_dtype(dtype, "conv2d bias", [&](auto tag) {
    using T = decltype(tag);
    add_bias_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<T*>(y),
                                                      static_cast<const T*>(bias), C, HW, total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void conv_bias_grad(int device, DType dtype, const void* dy, void* db, int64_t N, int64_t C,
                    int64_t HW) {
  if (C == 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(C, 65536));
  visit_conv_dtype(dtype, "conv2d bias gradient", [&](auto tag) {
    using T = decltype(tag);
    bias_grad_kernel<T>
        <<<grid, kThreads, 0, stream>>>(static_cast<const T*>(dy), static_cast<T*>(db), N, C, HW);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace fabric::cuda
