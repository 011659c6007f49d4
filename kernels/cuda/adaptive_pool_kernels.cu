// CUDA adaptive average pooling over contiguous NCHW planes, forward and backward, with
// kernels/cpu/adaptive_pool.cpp's windows and arithmetic (row-major window sums, float32
// accumulation for 16-bit dtypes, sum / kh / kw; the backward gathers, one thread per input
// element, outputs in (oh, ow) order, dy / kh / kw, 16-bit dtypes rounding each share and each
// partial sum as torch's CPU kernel): results match the CPU bit for bit, and no atomics are needed.
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/conv_kernels.h"
#include "tensor/pool_arithmetic.h"

namespace fabric::cuda {
namespace {

using fabric::pool_arith::acc_t;
using fabric::pool_arith::round_to;

// Output i of `out` averages inputs [start, end) of `in`: floor(i*in/out), ceil((i+1)*in/out).
// With the sizes swapped they give the outputs whose windows hold input i.
__device__ __forceinline__ int64_t window_start(int64_t i, int64_t in, int64_t out) {
  return i * in / out;
}
__device__ __forceinline__ int64_t window_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

template <typename T>
__global__ void forward_kernel(Pool2dDesc d, const T* x, T* y, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.OH * d.OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, r = i - p * per_plane, oh = r / d.OW, ow = r - oh * d.OW;
    const T* xp = x + p * d.H * d.W;
    const int64_t h0 = window_start(oh, d.H, d.OH), h1 = window_end(oh, d.H, d.OH);
    const int64_t w0 = window_start(ow, d.W, d.OW), w1 = window_end(ow, d.W, d.OW);
    A s = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t c = w0; c < w1; ++c) s += static_cast<A>(xp[h * d.W + c]);
    y[i] = static_cast<T>(s / static_cast<A>(h1 - h0) / static_cast<A>(w1 - w0));
  }
}

template <typename T>
__global__ void backward_kernel(Pool2dDesc d, const T* dy, T* dx, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.H * d.W;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, pos = i - p * per_plane, h = pos / d.W, c = pos - h * d.W;
    const int64_t oh0 = window_start(h, d.OH, d.H), oh1 = window_end(h, d.OH, d.H);
    const int64_t ow0 = window_start(c, d.OW, d.W), ow1 = window_end(c, d.OW, d.W);
    const T* gp = dy + p * d.OH * d.OW;
    A acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const A kh =
          round_to<T>(static_cast<A>(window_end(oh, d.H, d.OH) - window_start(oh, d.H, d.OH)));
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const A kw =
            round_to<T>(static_cast<A>(window_end(ow, d.W, d.OW) - window_start(ow, d.W, d.OW)));
        const A share = round_to<T>(round_to<T>(static_cast<A>(gp[oh * d.OW + ow]) / kh) / kw);
        acc = round_to<T>(acc + share);
      }
    }
    dx[i] = static_cast<T>(acc);
  }
}

void adaptive_avg_pool2d_forward(const Pool2dDesc& d, const void* x, void* y) {
  const int64_t total = d.planes * d.OH * d.OW;
  if (total == 0) return;
  const int device = device_of_pointer(y);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "adaptive_avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    forward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(x),
                                                                static_cast<T*>(y), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void adaptive_avg_pool2d_backward(const Pool2dDesc& d, const void* dy, void* dx) {
  const int64_t total = d.planes * d.H * d.W;
  if (total == 0) return;
  const int device = device_of_pointer(dx);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "adaptive_avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(dy),
                                                                 static_cast<T*>(dx), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(adaptive_avg_pool2d_forward_stub, cuda, &cuda::adaptive_avg_pool2d_forward);
FABRIC_REGISTER_KERNEL(adaptive_avg_pool2d_backward_stub, cuda,
                       &cuda::adaptive_avg_pool2d_backward);
}  // namespace fabric
