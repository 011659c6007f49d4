// The first step of both CUDA attention backwards (the CUDA-core kernels of attention_kernels.cu
// and the tensor-core ones of attention_mma_kernels.cu): D_i = sum_c dO[i, c] O[i, c] for every row
// of the contiguous (batch, heads, L, Ev) out and grad_out, in float32.
#pragma once
#include <cstdint>

#include "kernels/cuda/reduce_util.cuh"

namespace fabric::cuda {
// Internal linkage: each including .cu gets its own copy of the kernel, so no two translation units
// register one __global__ template instantiation.
namespace {

// One warp per row, grid-stride (the row is warp-uniform, so the shuffles see full warps).
template <typename T>
__global__ void attention_row_dot_kernel(const T* out, const T* grad_out, float* d, int64_t rows,
                                         int64_t Ev) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t row = warp; row < rows; row += warps) {
    const T* o = out + row * Ev;
    const T* go = grad_out + row * Ev;
    float acc = 0.0f;
    for (int64_t c = lane; c < Ev; c += 32)
      acc = fmaf(cast_value<float>(go[c]), cast_value<float>(o[c]), acc);
#pragma unroll
    for (int m = 16; m > 0; m /= 2) acc += shfl_xor(acc, m);
    if (lane == 0) d[row] = acc;
  }
}

// Queues the kernel on `stream`: d gets `rows` floats.
template <typename T>
void launch_attention_row_dot(const T* out, const T* grad_out, float* d, int64_t rows, int64_t Ev,
                              cudaStream_t stream) {
  constexpr int kThreads = 256;  // 8 rows (warps) per block
  const int64_t blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
  attention_row_dot_kernel<T>
      <<<grid_dim(blocks < 65535 ? blocks : 65535), kThreads, 0, stream>>>(out, grad_out, d, rows,
                                                                             Ev);
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda
