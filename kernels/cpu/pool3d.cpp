// CPU 3-d pooling over contiguous (D, H, W) planes, fixed or adaptive windows (pool3d_kernels.h):
// max with positions and its backward (a scatter to them), average, and the average's backward.
// Parallel over the planes; the backward gathers (each input sums the outputs whose windows hold
// it), as the CUDA kernel does, so both add in one order. Reduced precision computes in float32.
// An average divides as torch 1.13: a fixed window's sum by the kernel volume at once, an adaptive
// window's by one dimension at a time (window_mean).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cpu/run_tasks.h"
#include "tensor/conv_kernels.h"
#include "tensor/max_pool3d_saved.h"
#include "tensor/pool3d_kernels.h"

namespace fabric::cpu {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// s over output (od, oh, ow)'s divisor: torch's avg_pool3d divides by the kernel volume
// (pool_divisor), its adaptive_avg_pool3d by the window's depth, height and width in turn
// (sum / kT / kH / kW, forward and backward), which can differ from s / (kT * kH * kW) by an ulp.
// kernels/cuda/pool3d_kernels.cu has the same function.
template <typename A>
inline A window_mean(const Pool3dDesc& d, A s, int64_t od, int64_t oh, int64_t ow) {
  if (!d.adaptive) return s / static_cast<A>(pool_divisor(d, od, oh, ow));
  const PoolSpan t = pool_window(d, 0, od), h = pool_window(d, 1, oh), w = pool_window(d, 2, ow);
  return s / static_cast<A>(t.end - t.begin) / static_cast<A>(h.end - h.begin) /
         static_cast<A>(w.end - w.begin);
}

template <typename F>
void for_planes(const Pool3dDesc& d, F&& f) {
  const int64_t in = d.in[0] * d.in[1] * d.in[2], out = d.out[0] * d.out[1] * d.out[2];
  const int64_t work = d.planes * (in + out);
  run_tasks(d.planes, work > 32768, [&](int64_t p) { f(p, in, out); });
}

template <typename T>
void max_pool(const Pool3dDesc& d, const void* xv, void* yv, int64_t* idx) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  const int64_t H = d.in[1], W = d.in[2];
  for_planes(d, [&](int64_t p, int64_t in, int64_t out) {
    const T* xp = x + p * in;
    int64_t o = p * out;
    for (int64_t od = 0; od < d.out[0]; ++od) {
      const PoolSpan sd = pool_window(d, 0, od);
      for (int64_t oh = 0; oh < d.out[1]; ++oh) {
        const PoolSpan sh = pool_window(d, 1, oh);
        for (int64_t ow = 0; ow < d.out[2]; ++ow, ++o) {
          const PoolSpan sw = pool_window(d, 2, ow);
          int64_t at = (sd.begin * H + sh.begin) * W + sw.begin;
          A best = -std::numeric_limits<A>::infinity();
          for (int64_t i = sd.begin; i < sd.end; ++i)
            for (int64_t j = sh.begin; j < sh.end; ++j)
              for (int64_t k = sw.begin; k < sw.end; ++k) {
                const int64_t pos = (i * H + j) * W + k;
                const A v = static_cast<A>(xp[pos]);
                if (v > best || v != v) {
                  best = v;
                  at = pos;
                }
              }
          if (idx) idx[o] = at;
          if (y) y[o] = xp[at];
        }
      }
    }
  });
}

// Each dy added at its window's recorded maximum. A plane's outputs point into that plane only,
// so parallel planes never write one element; overlapping windows add in output order.
template <typename T>
void max_pool_backward(const Pool3dDesc& d, const void* dyv, const int64_t* idx, void* dxv) {
  using A = acc_t<T>;
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  for_planes(d, [&](int64_t p, int64_t in, int64_t out) {
    T* dp = dx + p * in;
    const T* gp = dy + p * out;
    const int64_t* ip = idx + p * out;
    std::fill(dp, dp + in, static_cast<T>(A(0)));
    for (int64_t o = 0; o < out; ++o)
      dp[ip[o]] = static_cast<T>(static_cast<A>(dp[ip[o]]) + static_cast<A>(gp[o]));
  });
}

template <typename T>
void avg_pool(const Pool3dDesc& d, const void* xv, void* yv) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  const int64_t H = d.in[1], W = d.in[2];
  for_planes(d, [&](int64_t p, int64_t in, int64_t out) {
    const T* xp = x + p * in;
    T* yp = y + p * out;
    for (int64_t od = 0; od < d.out[0]; ++od) {
      const PoolSpan sd = pool_window(d, 0, od);
      for (int64_t oh = 0; oh < d.out[1]; ++oh) {
        const PoolSpan sh = pool_window(d, 1, oh);
        for (int64_t ow = 0; ow < d.out[2]; ++ow) {
          const PoolSpan sw = pool_window(d, 2, ow);
          A s = 0;
          for (int64_t i = sd.begin; i < sd.end; ++i)
            for (int64_t j = sh.begin; j < sh.end; ++j)
              for (int64_t k = sw.begin; k < sw.end; ++k)
                s += static_cast<A>(xp[(i * H + j) * W + k]);
          *yp++ = static_cast<T>(window_mean(d, s, od, oh, ow));
        }
      }
    }
  });
}

template <typename T>
void avg_pool_backward(const Pool3dDesc& d, const void* dyv, void* dxv) {
  using A = acc_t<T>;
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  const int64_t OH = d.out[1], OW = d.out[2];
  for_planes(d, [&](int64_t p, int64_t in, int64_t out) {
    const T* gp = dy + p * out;
    T* dp = dx + p * in;
    for (int64_t i = 0; i < d.in[0]; ++i) {
      const PoolSpan cd = pool_cover(d, 0, i);
      for (int64_t j = 0; j < d.in[1]; ++j) {
        const PoolSpan ch = pool_cover(d, 1, j);
        for (int64_t k = 0; k < d.in[2]; ++k) {
          const PoolSpan cw = pool_cover(d, 2, k);
          A acc = 0;
          for (int64_t od = cd.begin; od < cd.end; ++od)
            for (int64_t oh = ch.begin; oh < ch.end; ++oh)
              for (int64_t ow = cw.begin; ow < cw.end; ++ow)
                acc += window_mean(d, static_cast<A>(gp[(od * OH + oh) * OW + ow]), od, oh, ow);
          *dp++ = static_cast<T>(acc);
        }
      }
    }
  });
}

void pool3d_max(const Pool3dDesc& d, const void* x, void* y, int64_t* idx) {
  visit_conv_dtype(d.dtype, "pool3d_max", [&](auto t) { max_pool<decltype(t)>(d, x, y, idx); });
}
void pool3d_max_backward(const Pool3dDesc& d, const void* dy, const int64_t* idx, void* dx) {
  visit_conv_dtype(d.dtype, "pool3d_max_backward",
                   [&](auto t) { max_pool_backward<decltype(t)>(d, dy, idx, dx); });
}
void pool3d_avg(const Pool3dDesc& d, const void* x, void* y) {
  visit_conv_dtype(d.dtype, "pool3d_avg", [&](auto t) { avg_pool<decltype(t)>(d, x, y); });
}
void pool3d_avg_backward(const Pool3dDesc& d, const void* dy, void* dx) {
  visit_conv_dtype(d.dtype, "pool3d_avg_backward",
                   [&](auto t) { avg_pool_backward<decltype(t)>(d, dy, dx); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(pool3d_max_stub, cpu, &cpu::pool3d_max);
FABRIC_REGISTER_KERNEL(pool3d_max_backward_stub, cpu, &cpu::pool3d_max_backward);
FABRIC_REGISTER_KERNEL(pool3d_avg_stub, cpu, &cpu::pool3d_avg);
FABRIC_REGISTER_KERNEL(pool3d_avg_backward_stub, cpu, &cpu::pool3d_avg_backward);
}  // namespace fabric
