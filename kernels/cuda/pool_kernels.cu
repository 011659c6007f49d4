// CUDA 2-D max/avg pooling over contiguous NCHW planes, forward and backward (and max pool's
// argmax positions), with kernels/cpu/pool.cpp's semantics and arithmetic: windows summed in
// row-major order, the first maximum (NaN wins), count_include_pad divisors, float32
// accumulation for 16-bit dtypes, whose backward rounds after every addition (and the avg share
// r(dy / r(divisor))) as torch's CPU. The backward kernels gather (one thread per input element,
// windows in (oh, ow) order) instead of scattering, so they need no atomics and add in the CPU's
// order: results match it bit for bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <limits>
#include <type_traits>

#include "kernels/cuda/caching_allocator.h"
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

// The clipped window [h0, h1) x [w0, w1) of output (oh, ow).
struct Window {
  int64_t h0, h1, w0, w1;
};
__device__ __forceinline__ Window window(const Pool2dDesc& d, int64_t oh, int64_t ow) {
  const int64_t hs = oh * d.SH - d.PH, ws = ow * d.SW - d.PW;
  return {hs > 0 ? hs : 0, hs + d.KH < d.H ? hs + d.KH : d.H, ws > 0 ? ws : 0,
          ws + d.KW < d.W ? ws + d.KW : d.W};
}

// count_include_pad: the window clipped to the padded input, not to the input.
__device__ __forceinline__ int64_t avg_divisor(const Pool2dDesc& d, int64_t oh, int64_t ow) {
  const int64_t hs = oh * d.SH - d.PH, ws = ow * d.SW - d.PW;
  const int64_t he = hs + d.KH < d.H + d.PH ? hs + d.KH : d.H + d.PH;
  const int64_t we = ws + d.KW < d.W + d.PW ? ws + d.KW : d.W + d.PW;
  return (he - hs) * (we - ws);
}

// The outputs whose windows hold input row h: [lo, hi] (empty when lo > hi).
__device__ __forceinline__ void covering(int64_t h, int64_t k, int64_t s, int64_t p, int64_t out,
                                         int64_t& lo, int64_t& hi) {
  lo = h + p - k + 1 <= 0 ? 0 : (h + p - k + s) / s;
  hi = (h + p) / s;
  if (hi > out - 1) hi = out - 1;
}

template <typename T>
__global__ void max_forward_kernel(Pool2dDesc d, const T* x, T* y, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.OH * d.OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, r = i - p * per_plane, oh = r / d.OW, ow = r - oh * d.OW;
    const T* xp = x + p * d.H * d.W;
    const Window w = window(d, oh, ow);
    A best = -std::numeric_limits<A>::infinity();
    bool nan = false;
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t c = w.w0; c < w.w1; ++c) {
        const A v = static_cast<A>(xp[h * d.W + c]);
        nan |= v != v;
        best = v > best ? v : best;
      }
    y[i] = static_cast<T>(nan ? std::numeric_limits<A>::quiet_NaN() : best);
  }
}

template <typename T>
__global__ void avg_forward_kernel(Pool2dDesc d, const T* x, T* y, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.OH * d.OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, r = i - p * per_plane, oh = r / d.OW, ow = r - oh * d.OW;
    const T* xp = x + p * d.H * d.W;
    const Window w = window(d, oh, ow);
    A s = 0;
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t c = w.w0; c < w.w1; ++c) s += static_cast<A>(xp[h * d.W + c]);
    y[i] = static_cast<T>(s / static_cast<A>(avg_divisor(d, oh, ow)));
  }
}

// Offset in its plane of each window's first maximum (NaN wins, the last of several), as the
// CPU's argmax_in.
template <typename T>
__global__ void argmax_kernel(Pool2dDesc d, const T* x, int64_t* arg, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.OH * d.OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, r = i - p * per_plane, oh = r / d.OW, ow = r - oh * d.OW;
    const T* xp = x + p * d.H * d.W;
    const Window w = window(d, oh, ow);
    A best = -std::numeric_limits<A>::infinity();
    int64_t at = -1;
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t c = w.w0; c < w.w1; ++c) {
        const A v = static_cast<A>(xp[h * d.W + c]);
        if (at < 0 || v > best || v != v) {
          best = v;
          at = h * d.W + c;
        }
      }
    arg[i] = at;
  }
}

template <typename T>
__global__ void max_backward_kernel(Pool2dDesc d, const T* dy, const int64_t* arg, T* dx,
                                    int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.H * d.W;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, pos = i - p * per_plane, h = pos / d.W, c = pos - h * d.W;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, d.KH, d.SH, d.PH, d.OH, oh0, oh1);
    covering(c, d.KW, d.SW, d.PW, d.OW, ow0, ow1);
    const int64_t base = p * d.OH * d.OW;
    A acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = base + oh * d.OW + ow;
        if (arg[o] == pos) acc = round_to<T>(acc + static_cast<A>(dy[o]));
      }
    dx[i] = static_cast<T>(acc);
  }
}

template <typename T>
__global__ void avg_backward_kernel(Pool2dDesc d, const T* dy, T* dx, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.H * d.W;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, pos = i - p * per_plane, h = pos / d.W, c = pos - h * d.W;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, d.KH, d.SH, d.PH, d.OH, oh0, oh1);
    covering(c, d.KW, d.SW, d.PW, d.OW, ow0, ow1);
    const int64_t base = p * d.OH * d.OW;
    A acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const A div = round_to<T>(static_cast<A>(avg_divisor(d, oh, ow)));
        acc = round_to<T>(acc + round_to<T>(static_cast<A>(dy[base + oh * d.OW + ow]) / div));
      }
    dx[i] = static_cast<T>(acc);
  }
}

struct Launch {
  int device;
  cudaStream_t stream;
};
Launch launch_on(const void* out) {
  const int device = device_of_pointer(out);
  return {device, compute_stream(device)};
}

void max_pool2d_forward(const Pool2dDesc& d, const void* x, void* y) {
  const int64_t total = d.planes * d.OH * d.OW;
  if (total == 0) return;
  const Launch l = launch_on(y);
  DeviceGuard guard(l.device);
  visit_conv_dtype(d.dtype, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    max_forward_kernel<T><<<grid_for(total), kThreads, 0, l.stream>>>(d, static_cast<const T*>(x),
                                                                      static_cast<T*>(y), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void avg_pool2d_forward(const Pool2dDesc& d, const void* x, void* y) {
  const int64_t total = d.planes * d.OH * d.OW;
  if (total == 0) return;
  const Launch l = launch_on(y);
  DeviceGuard guard(l.device);
  visit_conv_dtype(d.dtype, "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    avg_forward_kernel<T><<<grid_for(total), kThreads, 0, l.stream>>>(d, static_cast<const T*>(x),
                                                                      static_cast<T*>(y), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void max_pool2d_backward(const Pool2dDesc& d, const void* dy, const void* x, void* dx) {
  const int64_t outs = d.planes * d.OH * d.OW, ins = d.planes * d.H * d.W;
  if (ins == 0) return;
  const Launch l = launch_on(dx);
  DeviceGuard guard(l.device);
  // The argmax of every window, kept for the gather (freed in stream order).
  const size_t bytes = sizeof(int64_t) * static_cast<size_t>(std::max<int64_t>(outs, 1));
  Allocator& alloc = cuda_allocator(l.device);
  int64_t* arg = static_cast<int64_t*>(alloc.allocate(bytes));
  try {
    visit_conv_dtype(d.dtype, "max_pool2d_backward", [&](auto tag) {
      using T = decltype(tag);
      if (outs > 0) {
        argmax_kernel<T>
            <<<grid_for(outs), kThreads, 0, l.stream>>>(d, static_cast<const T*>(x), arg, outs);
        FABRIC_CUDA_CHECK_LAUNCH();
      }
      max_backward_kernel<T><<<grid_for(ins), kThreads, 0, l.stream>>>(
          d, static_cast<const T*>(dy), arg, static_cast<T*>(dx), ins);
      FABRIC_CUDA_CHECK_LAUNCH();
    });
  } catch (...) {
    alloc.deallocate(arg, bytes);
    throw;
  }
  alloc.deallocate(arg, bytes);
}

void max_pool2d_indices(const Pool2dDesc& d, const void* x, int64_t* indices) {
  const int64_t outs = d.planes * d.OH * d.OW;
  if (outs == 0) return;
  const Launch l = launch_on(indices);
  DeviceGuard guard(l.device);
  visit_conv_dtype(d.dtype, "max_pool2d_indices", [&](auto tag) {
    using T = decltype(tag);
    argmax_kernel<T>
        <<<grid_for(outs), kThreads, 0, l.stream>>>(d, static_cast<const T*>(x), indices, outs);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void avg_pool2d_backward(const Pool2dDesc& d, const void* dy, void* dx) {
  const int64_t ins = d.planes * d.H * d.W;
  if (ins == 0) return;
  const Launch l = launch_on(dx);
  DeviceGuard guard(l.device);
  visit_conv_dtype(d.dtype, "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    avg_backward_kernel<T><<<grid_for(ins), kThreads, 0, l.stream>>>(d, static_cast<const T*>(dy),
                                                                     static_cast<T*>(dx), ins);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(max_pool2d_forward_stub, cuda, &cuda::max_pool2d_forward);
FABRIC_REGISTER_KERNEL(avg_pool2d_forward_stub, cuda, &cuda::avg_pool2d_forward);
FABRIC_REGISTER_KERNEL(max_pool2d_backward_stub, cuda, &cuda::max_pool2d_backward);
FABRIC_REGISTER_KERNEL(avg_pool2d_backward_stub, cuda, &cuda::avg_pool2d_backward);
FABRIC_REGISTER_KERNEL(max_pool2d_indices_stub, cuda, &cuda::max_pool2d_indices);
}  // namespace fabric
