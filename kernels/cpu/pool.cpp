// CPU 2-D max/avg pooling, forward and backward (and max pool's argmax positions), over contiguous
// NCHW planes (parallel over the N*C planes, so the backward scatters never race). Reduced
// precision computes in float32, except that its backward rounds as torch 1.13's 16-bit scalar
// arithmetic does: to the storage type after every addition (overlapping windows add several
// terms to one input), visiting the outputs in row-major order as torch's kernels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/pool_2x2.h"
#include "kernels/cpu/pool_max_any.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/conv_kernels.h"
#include "tensor/pool_arithmetic.h"

namespace fabric::cpu {
namespace {

using fabric::pool_arith::acc_t;
using fabric::pool_arith::round_to;

template <typename T>
inline acc_t<T> load(const T* p, int64_t i) {
  return static_cast<acc_t<T>>(p[i]);
}

// The clipped window [h0, h1) x [w0, w1) of output (oh, ow).
struct Window {
  int64_t h0, h1, w0, w1;
};
inline Window window(const Pool2dDesc& d, int64_t oh, int64_t ow) {
  const int64_t hs = oh * d.SH - d.PH, ws = ow * d.SW - d.PW;
  return {std::max<int64_t>(hs, 0), std::min(hs + d.KH, d.H), std::max<int64_t>(ws, 0),
          std::min(ws + d.KW, d.W)};
}

// Divisor with count_include_pad: the window clipped to the padded input, not to the input.
inline int64_t avg_divisor(const Pool2dDesc& d, int64_t oh, int64_t ow) {
  const int64_t hs = oh * d.SH - d.PH, ws = ow * d.SW - d.PW;
  const int64_t he = std::min(hs + d.KH, d.H + d.PH), we = std::min(ws + d.KW, d.W + d.PW);
  return (he - hs) * (we - ws);
}

// Offset (in the plane) of the first maximum of a window; NaN wins, and of several NaNs the last,
// as in PyTorch (its kernels take every NaN they meet).
// Branch-free (selects, not jumps): on real data which element wins is a coin toss, and a
// mispredicted branch per element made max_pool2d's backward ~5x slower than its forward.
template <typename T>
inline int64_t argmax_in(const Pool2dDesc& d, const T* x, const Window& w) {
  if (w.h0 >= w.h1 || w.w0 >= w.w1) return -1;
  int64_t at = w.h0 * d.W + w.w0;
  acc_t<T> best = load(x, at);
  for (int64_t h = w.h0; h < w.h1; ++h) {
    const int64_t first = h == w.h0 ? w.w0 + 1 : w.w0;
    for (int64_t c = first; c < w.w1; ++c) {
      const int64_t i = h * d.W + c;
      const acc_t<T> v = load(x, i);
      const bool take = (v > best) | (v != v);
      best = take ? v : best;
      at = take ? i : at;
    }
  }
  return at;
}

template <typename F>
void for_planes(const Pool2dDesc& d, F&& f) {
  const int64_t work = d.planes * d.OH * d.OW * d.KH * d.KW;
  run_tasks(d.planes, work > 32768, f);
}

// The 2x2/stride-2 kernels (pool_2x2.h, float32 and narrower types) over every plane, when they
// take the problem: plane(p) runs one plane. False when they do not (the caller's loops run).
// plane takes `auto p` so that it is not instantiated for double, which has no such kernel.
template <typename T, typename Plane>
bool run_pool_2x2(const Pool2dDesc& d, const Plane& plane) {
  if constexpr (std::is_same_v<T, double>) {
    return false;
  } else {
    if (!is_pool_2x2(d)) return false;
    for_planes(d, plane);
    return true;
  }
}

template <typename T>
void max_forward(const Pool2dDesc& d, const void* xv, void* yv) {
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  using A = acc_t<T>;
  if (run_pool_2x2<T>(d, [&](auto p) {
        max_pool_2x2_forward_plane<T>(d, x + p * d.H * d.W, y + p * d.OH * d.OW);
      }))
    return;
  for_planes(d, [&](int64_t p) {
    const T* xp = x + p * d.H * d.W;
    T* yp = y + p * d.OH * d.OW;
    for (int64_t oh = 0; oh < d.OH; ++oh) {
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const Window w = window(d, oh, ow);
        // Values only (the backward recomputes positions): a branch-free max plus a NaN flag.
        A best = -std::numeric_limits<A>::infinity();
        bool nan = false;
        for (int64_t h = w.h0; h < w.h1; ++h) {
          const T* row = xp + h * d.W;
          for (int64_t c = w.w0; c < w.w1; ++c) {
            const A v = static_cast<A>(row[c]);
            nan |= v != v;
            best = v > best ? v : best;
          }
        }
        yp[oh * d.OW + ow] = static_cast<T>(nan ? std::numeric_limits<A>::quiet_NaN() : best);
      }
    }
  });
}

template <typename T>
void avg_forward(const Pool2dDesc& d, const void* xv, void* yv) {
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  if (run_pool_2x2<T>(d, [&](auto p) {
        avg_pool_2x2_forward_plane<T>(d, x + p * d.H * d.W, y + p * d.OH * d.OW);
      }))
    return;
  for_planes(d, [&](int64_t p) {
    const T* xp = x + p * d.H * d.W;
    T* yp = y + p * d.OH * d.OW;
    for (int64_t oh = 0; oh < d.OH; ++oh) {
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const Window w = window(d, oh, ow);
        acc_t<T> s = 0;
        for (int64_t h = w.h0; h < w.h1; ++h)
          for (int64_t c = w.w0; c < w.w1; ++c) s += load(xp, h * d.W + c);
        yp[oh * d.OW + ow] = static_cast<T>(s / static_cast<acc_t<T>>(avg_divisor(d, oh, ow)));
      }
    }
  });
}

template <typename T>
void max_backward(const Pool2dDesc& d, const void* dyv, const void* xv, void* dxv) {
  const T* dy = static_cast<const T*>(dyv);
  const T* x = static_cast<const T*>(xv);
  T* dx = static_cast<T*>(dxv);
  if (run_pool_2x2<T>(d, [&](auto p) {
        max_pool_2x2_backward_plane<T>(d, dy + p * d.OH * d.OW, x + p * d.H * d.W, dx + p * d.H * d.W);
      }))
    return;
  if constexpr (std::is_same_v<T, float>) {
    if (fits_max_pool_any(d)) {
      for_planes(d, [&](int64_t p) {
        max_pool_any_backward_plane(d, dy + p * d.OH * d.OW, x + p * d.H * d.W, dx + p * d.H * d.W);
      });
      return;
    }
  }
  for_planes(d, [&](int64_t p) {
    const T* xp = x + p * d.H * d.W;
    const T* gp = dy + p * d.OH * d.OW;
    T* dp = dx + p * d.H * d.W;
    // Several windows can pick the same input element: a narrower storage type sums in float32
    // with a rounding after each addition (torch's `grad_input[i] += grad_output[o]` in T).
    if constexpr (std::is_same_v<T, acc_t<T>>) {
      std::memset(dp, 0, sizeof(T) * d.H * d.W);
      for (int64_t oh = 0; oh < d.OH; ++oh)
        for (int64_t ow = 0; ow < d.OW; ++ow) {
          const int64_t at = argmax_in(d, xp, window(d, oh, ow));
          if (at >= 0) dp[at] += gp[oh * d.OW + ow];
        }
    } else {
      std::vector<float> acc(static_cast<size_t>(d.H * d.W), 0.f);
      for (int64_t oh = 0; oh < d.OH; ++oh)
        for (int64_t ow = 0; ow < d.OW; ++ow) {
          const int64_t at = argmax_in(d, xp, window(d, oh, ow));
          if (at >= 0) acc[at] = round_to<T>(acc[at] + load(gp, oh * d.OW + ow));
        }
      for (int64_t i = 0; i < d.H * d.W; ++i) dp[i] = static_cast<T>(acc[i]);
    }
  });
}

template <typename T>
void avg_backward(const Pool2dDesc& d, const void* dyv, void* dxv) {
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  if (run_pool_2x2<T>(d, [&](auto p) {
        avg_pool_2x2_backward_plane<T>(d, dy + p * d.OH * d.OW, dx + p * d.H * d.W);
      }))
    return;
  for_planes(d, [&](int64_t p) {
    const T* gp = dy + p * d.OH * d.OW;
    T* dp = dx + p * d.H * d.W;
    // 16-bit types: torch's `grad_input += grad_output / divisor` in T, so the share r(dy / r(div))
    // and every partial sum round to T (the divisor too: 17 * 17 = 289 is 288 in bfloat16).
    using A = acc_t<T>;
    std::vector<A> acc(static_cast<size_t>(d.H * d.W), 0);
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const Window w = window(d, oh, ow);
        const A div = round_to<T>(static_cast<A>(avg_divisor(d, oh, ow)));
        const A g = round_to<T>(load(gp, oh * d.OW + ow) / div);
        for (int64_t h = w.h0; h < w.h1; ++h)
          for (int64_t c = w.w0; c < w.w1; ++c) {
            A& a = acc[h * d.W + c];
            a = round_to<T>(a + g);
          }
      }
    for (int64_t i = 0; i < d.H * d.W; ++i) dp[i] = static_cast<T>(acc[i]);
  });
}

template <typename T>
void max_indices(const Pool2dDesc& d, const void* xv, int64_t* indices) {
  const T* x = static_cast<const T*>(xv);
  for_planes(d, [&](int64_t p) {
    const T* xp = x + p * d.H * d.W;
    int64_t* ip = indices + p * d.OH * d.OW;
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow)
        ip[oh * d.OW + ow] = argmax_in(d, xp, window(d, oh, ow));
  });
}

void max_pool2d_forward(const Pool2dDesc& d, const void* x, void* y) {
  visit_conv_dtype(d.dtype, "max_pool2d", [&](auto t) { max_forward<decltype(t)>(d, x, y); });
}
void avg_pool2d_forward(const Pool2dDesc& d, const void* x, void* y) {
  visit_conv_dtype(d.dtype, "avg_pool2d", [&](auto t) { avg_forward<decltype(t)>(d, x, y); });
}
void max_pool2d_backward(const Pool2dDesc& d, const void* dy, const void* x, void* dx) {
  visit_conv_dtype(d.dtype, "max_pool2d_backward",
                   [&](auto t) { max_backward<decltype(t)>(d, dy, x, dx); });
}
void avg_pool2d_backward(const Pool2dDesc& d, const void* dy, void* dx) {
  visit_conv_dtype(d.dtype, "avg_pool2d_backward",
                   [&](auto t) { avg_backward<decltype(t)>(d, dy, dx); });
}
void max_pool2d_indices(const Pool2dDesc& d, const void* x, int64_t* indices) {
  visit_conv_dtype(d.dtype, "max_pool2d_indices",
                   [&](auto t) { max_indices<decltype(t)>(d, x, indices); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(max_pool2d_forward_stub, cpu, &cpu::max_pool2d_forward);
FABRIC_REGISTER_KERNEL(avg_pool2d_forward_stub, cpu, &cpu::avg_pool2d_forward);
FABRIC_REGISTER_KERNEL(max_pool2d_backward_stub, cpu, &cpu::max_pool2d_backward);
FABRIC_REGISTER_KERNEL(avg_pool2d_backward_stub, cpu, &cpu::avg_pool2d_backward);
FABRIC_REGISTER_KERNEL(max_pool2d_indices_stub, cpu, &cpu::max_pool2d_indices);
}  // namespace fabric
