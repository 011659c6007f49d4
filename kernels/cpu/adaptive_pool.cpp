// CPU adaptive average pooling over contiguous NCHW planes, forward and backward, with torch's
// windows (conv_kernels.h) and arithmetic: a window's sum is divided by its height, then by its
// width (sum / kh / kw, not sum / (kh * kw): the two differ by an ulp). The backward gathers (each
// input element sums the outputs whose windows hold it, in (oh, ow) order, torch's scatter order)
// rather than scattering, as the CUDA kernel does, so both add in one order and need no
// accumulation buffer. Reduced precision sums the forward in float32; its backward rounds as
// torch's 16-bit scalars do (each share and each partial sum to the storage type).
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/run_tasks.h"
#include "tensor/conv_kernels.h"
#include "tensor/pool_arithmetic.h"
#include "tensor/error.h"
#include "tensor/float_formats.h"

namespace fabric::cpu {
namespace {

using fabric::pool_arith::acc_t;
using fabric::pool_arith::round_to;

// Output i of `out` averages inputs [start[i], end[i]) of `in`: floor(i*in/out) and
// ceil((i+1)*in/out). Computed once per call: per element, the divisions cost more than the sums.
struct Windows {
  std::vector<int64_t> start, end;
};
Windows windows(int64_t in, int64_t out) {
  Windows w{std::vector<int64_t>(static_cast<size_t>(out)),
            std::vector<int64_t>(static_cast<size_t>(out))};
  for (int64_t i = 0; i < out; ++i) {
    w.start[i] = i * in / out;
    w.end[i] = ((i + 1) * in + out - 1) / out;
  }
  return w;
}

template <typename F>
void for_planes(const Pool2dDesc& d, F&& f) {
  const int64_t work = d.planes * (d.H * d.W + d.OH * d.OW);
  run_tasks(d.planes, work > 32768, f);
}

template <typename T>
void forward(const Pool2dDesc& d, const void* xv, void* yv) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  const Windows rows = windows(d.H, d.OH), cols = windows(d.W, d.OW);
  for_planes(d, [&](int64_t p) {
    const T* xp = x + p * d.H * d.W;
    T* yp = y + p * d.OH * d.OW;
    for (int64_t oh = 0; oh < d.OH; ++oh) {
      const int64_t h0 = rows.start[oh], h1 = rows.end[oh];
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const int64_t w0 = cols.start[ow], w1 = cols.end[ow];
        A s = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t c = w0; c < w1; ++c) s += static_cast<A>(xp[h * d.W + c]);
        yp[oh * d.OW + ow] = static_cast<T>(s / static_cast<A>(h1 - h0) / static_cast<A>(w1 - w0));
      }
    }
  });
}

// Input row h lies in the windows of outputs [start, end) of windows(OH, H): the same formulas
// with the sizes swapped (floor(oh*H/OH) <= h  <=>  oh < ceil((h+1)*OH/H), and likewise above).
// Each output's share dy / kh / kw is computed once (the CUDA kernel divides per term: the same
// quotients, added in the same order). 16-bit types round as torch 1.13's CPU kernel, whose
// `grad_input += grad_output / kh / kw` is BFloat16 arithmetic: r(r(dy / r(kh)) / r(kw)) added
// with a rounding after every addition.
template <typename T>
void backward(const Pool2dDesc& d, const void* dyv, void* dxv) {
  using A = acc_t<T>;
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  const Windows rows = windows(d.H, d.OH), cols = windows(d.W, d.OW);
  const Windows row_cover = windows(d.OH, d.H), col_cover = windows(d.OW, d.W);
  for_planes(d, [&](int64_t p) {
    const T* gp = dy + p * d.OH * d.OW;
    T* dp = dx + p * d.H * d.W;
    std::vector<A> share(static_cast<size_t>(d.OH * d.OW));
    for (int64_t oh = 0; oh < d.OH; ++oh) {
      const A kh = round_to<T>(static_cast<A>(rows.end[oh] - rows.start[oh]));
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const A kw = round_to<T>(static_cast<A>(cols.end[ow] - cols.start[ow]));
        share[oh * d.OW + ow] =
            round_to<T>(round_to<T>(static_cast<A>(gp[oh * d.OW + ow]) / kh) / kw);
      }
    }
    for (int64_t h = 0; h < d.H; ++h) {
      const int64_t oh0 = row_cover.start[h], oh1 = row_cover.end[h];
      for (int64_t c = 0; c < d.W; ++c) {
        const int64_t ow0 = col_cover.start[c], ow1 = col_cover.end[c];
        A acc = 0;
        for (int64_t oh = oh0; oh < oh1; ++oh)
          for (int64_t ow = ow0; ow < ow1; ++ow) acc = round_to<T>(acc + share[oh * d.OW + ow]);
        dp[h * d.W + c] = static_cast<T>(acc);
      }
    }
  });
}

void adaptive_avg_pool2d_forward(const Pool2dDesc& d, const void* x, void* y) {
  visit_conv_dtype(d.dtype, "adaptive_avg_pool2d", [&](auto t) { forward<decltype(t)>(d, x, y); });
}
void adaptive_avg_pool2d_backward(const Pool2dDesc& d, const void* dy, void* dx) {
  visit_conv_dtype(d.dtype, "adaptive_avg_pool2d_backward",
                   [&](auto t) { backward<decltype(t)>(d, dy, dx); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(adaptive_avg_pool2d_forward_stub, cpu, &cpu::adaptive_avg_pool2d_forward);
FABRIC_REGISTER_KERNEL(adaptive_avg_pool2d_backward_stub, cpu, &cpu::adaptive_avg_pool2d_backward);
}  // namespace fabric
