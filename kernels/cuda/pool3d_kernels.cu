// CUDA 3-d pooling over contiguous (D, H, W) planes, fixed or adaptive windows (pool3d_kernels.h),
// with kernels/cpu/pool3d.cpp's windows and arithmetic: one thread per output (max with
// positions, average) or per input (the average's backward gathers the outputs whose windows hold
// it), so no atomics are needed. 16-bit dtypes accumulate in float32. Averages divide as the CPU
// (window_mean: adaptive windows one dimension at a time, as torch).
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/conv_kernels.h"
#include "tensor/max_pool3d_saved.h"
#include "tensor/pool3d_kernels.h"

namespace fabric::cuda {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// kernels/cpu/pool3d.cpp's window_mean: s over the kernel volume for fixed windows, over the
// window's depth, height and width in turn for adaptive ones (torch's sum / kT / kH / kW).
template <typename A>
__device__ __forceinline__ A window_mean(const Pool3dDesc& d, A s, int64_t od, int64_t oh,
                                         int64_t ow) {
  if (!d.adaptive) return s / static_cast<A>(pool_divisor(d, od, oh, ow));
  const PoolSpan t = pool_window(d, 0, od), h = pool_window(d, 1, oh), w = pool_window(d, 2, ow);
  return s / static_cast<A>(t.end - t.begin) / static_cast<A>(h.end - h.begin) /
         static_cast<A>(w.end - w.begin);
}

// Output i as (plane, od, oh, ow).
struct OutAt {
  int64_t p, od, oh, ow;
};
__device__ __forceinline__ OutAt out_at(const Pool3dDesc& d, int64_t i) {
  const int64_t ow = i % d.out[2], r = i / d.out[2];
  const int64_t oh = r % d.out[1], r2 = r / d.out[1];
  return {r2 / d.out[0], r2 % d.out[0], oh, ow};
}

template <typename T>
__global__ void max_kernel(Pool3dDesc d, const T* x, T* y, int64_t* idx, int64_t total) {
  using A = acc_t<T>;
  const int64_t H = d.in[1], W = d.in[2], in = d.in[0] * H * W;
  FABRIC_GRID_STRIDE(i, total) {
    const OutAt o = out_at(d, i);
    const T* xp = x + o.p * in;
    const PoolSpan sd = pool_window(d, 0, o.od), sh = pool_window(d, 1, o.oh),
                   sw = pool_window(d, 2, o.ow);
    int64_t at = (sd.begin * H + sh.begin) * W + sw.begin;
    A best = -INFINITY;
    for (int64_t a = sd.begin; a < sd.end; ++a)
      for (int64_t b = sh.begin; b < sh.end; ++b)
        for (int64_t c = sw.begin; c < sw.end; ++c) {
          const int64_t pos = (a * H + b) * W + c;
          const A v = static_cast<A>(xp[pos]);
          if (v > best || v != v) {
            best = v;
            at = pos;
          }
        }
    if (idx) idx[i] = at;
    if (y) y[i] = xp[at];
  }
}

// One thread per input: it sums the dy of the windows that hold it and chose it as their maximum
// (a gather, so overlapping windows need no atomics and add in one order).
template <typename T>
__global__ void max_backward_kernel(Pool3dDesc d, const T* dy, const int64_t* idx, T* dx,
                                    int64_t total) {
  using A = acc_t<T>;
  const int64_t OH = d.out[1], OW = d.out[2], out = d.out[0] * OH * OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t k = i % d.in[2], r = i / d.in[2];
    const int64_t j = r % d.in[1], r2 = r / d.in[1];
    const int64_t a = r2 % d.in[0], p = r2 / d.in[0];
    const int64_t pos = (a * d.in[1] + j) * d.in[2] + k;
    const PoolSpan cd = pool_cover(d, 0, a), ch = pool_cover(d, 1, j), cw = pool_cover(d, 2, k);
    const T* gp = dy + p * out;
    const int64_t* ip = idx + p * out;
    A acc = 0;
    for (int64_t od = cd.begin; od < cd.end; ++od)
      for (int64_t oh = ch.begin; oh < ch.end; ++oh)
        for (int64_t ow = cw.begin; ow < cw.end; ++ow) {
          const int64_t o = (od * OH + oh) * OW + ow;
          if (ip[o] == pos) acc += static_cast<A>(gp[o]);
        }
    dx[i] = static_cast<T>(acc);
  }
}

template <typename T>
__global__ void avg_kernel(Pool3dDesc d, const T* x, T* y, int64_t total) {
  using A = acc_t<T>;
  const int64_t H = d.in[1], W = d.in[2], in = d.in[0] * H * W;
  FABRIC_GRID_STRIDE(i, total) {
    const OutAt o = out_at(d, i);
    const T* xp = x + o.p * in;
    const PoolSpan sd = pool_window(d, 0, o.od), sh = pool_window(d, 1, o.oh),
                   sw = pool_window(d, 2, o.ow);
    A s = 0;
    for (int64_t a = sd.begin; a < sd.end; ++a)
      for (int64_t b = sh.begin; b < sh.end; ++b)
        for (int64_t c = sw.begin; c < sw.end; ++c) s += static_cast<A>(xp[(a * H + b) * W + c]);
    y[i] = static_cast<T>(window_mean(d, s, o.od, o.oh, o.ow));
  }
}

template <typename T>
__global__ void avg_backward_kernel(Pool3dDesc d, const T* dy, T* dx, int64_t total) {
  using A = acc_t<T>;
  const int64_t OH = d.out[1], OW = d.out[2], out = d.out[0] * OH * OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t k = i % d.in[2], r = i / d.in[2];
    const int64_t j = r % d.in[1], r2 = r / d.in[1];
    const int64_t a = r2 % d.in[0], p = r2 / d.in[0];
    const PoolSpan cd = pool_cover(d, 0, a), ch = pool_cover(d, 1, j), cw = pool_cover(d, 2, k);
    const T* gp = dy + p * out;
    A acc = 0;
    for (int64_t od = cd.begin; od < cd.end; ++od)
      for (int64_t oh = ch.begin; oh < ch.end; ++oh)
        for (int64_t ow = cw.begin; ow < cw.end; ++ow)
          acc += window_mean(d, static_cast<A>(gp[(od * OH + oh) * OW + ow]), od, oh, ow);
    dx[i] = static_cast<T>(acc);
  }
}

void pool3d_max(const Pool3dDesc& d, const void* x, void* y, int64_t* idx) {
  const int64_t total = d.planes * d.out[0] * d.out[1] * d.out[2];
  if (total == 0) return;
  const int device = device_of_pointer(x);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "pool3d_max", [&](auto tag) {
    using T = decltype(tag);
    max_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(x),
                                                            static_cast<T*>(y), idx, total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void pool3d_max_backward(const Pool3dDesc& d, const void* dy, const int64_t* idx, void* dx) {
  const int64_t total = d.planes * d.in[0] * d.in[1] * d.in[2];
  if (total == 0) return;
  const int device = device_of_pointer(dx);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "pool3d_max_backward", [&](auto tag) {
    using T = decltype(tag);
    max_backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
        d, static_cast<const T*>(dy), idx, static_cast<T*>(dx), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void pool3d_avg(const Pool3dDesc& d, const void* x, void* y) {
  const int64_t total = d.planes * d.out[0] * d.out[1] * d.out[2];
  if (total == 0) return;
  const int device = device_of_pointer(y);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "pool3d_avg", [&](auto tag) {
    using T = decltype(tag);
    avg_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(x),
                                                            static_cast<T*>(y), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void pool3d_avg_backward(const Pool3dDesc& d, const void* dy, void* dx) {
  const int64_t total = d.planes * d.in[0] * d.in[1] * d.in[2];
  if (total == 0) return;
  const int device = device_of_pointer(dx);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "pool3d_avg_backward", [&](auto tag) {
    using T = decltype(tag);
    avg_backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(dy),
                                                                     static_cast<T*>(dx), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(pool3d_max_stub, cuda, &cuda::pool3d_max);
FABRIC_REGISTER_KERNEL(pool3d_max_backward_stub, cuda, &cuda::pool3d_max_backward);
FABRIC_REGISTER_KERNEL(pool3d_avg_stub, cuda, &cuda::pool3d_avg);
FABRIC_REGISTER_KERNEL(pool3d_avg_backward_stub, cuda, &cuda::pool3d_avg_backward);
}  // namespace fabric
