// Dispatch stubs for 2-D upsampling (interpolate's nearest and bilinear modes) and the source
// index arithmetic both devices share, written from torch 1.13's UpSample.h so that the CPU and
// CUDA kernels pick the same input pixels and weights.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/float_formats.h"
#include "tensor/upsample_math.h"

namespace fabric {

// planes = N * C contiguous (H, W) -> (OH, OW) planes. scale_h/scale_w are interpolate's
// scale_factor when one was given (torch passes it on to the kernel), <= 0 when the output size
// was: the source index then uses in/out, otherwise 1/scale_factor.
struct UpsampleDesc {
  int64_t planes = 0, H = 0, W = 0, OH = 0, OW = 0;
  bool bilinear = false, align_corners = false;
  // nearest: whether the identity and doubling read o and o / 2 whatever the scale (torch's
  // channels-last kernel) or floor(o / scale) (its kernel for other layouts); see
  // upsample_nearest_index.
  bool nearest_shortcuts = true;
  double scale_h = 0, scale_w = 0;
  DType dtype = DType::float32;
};

using UpsampleForwardFn = void (*)(const UpsampleDesc& d, const void* x, void* y);
// dx (all of it written) from dy: each input element gathers the outputs that read it, in
// (oh, ow) order, so the sums have one order on every device and need no atomics.
using UpsampleBackwardFn = void (*)(const UpsampleDesc& d, const void* dy, void* dx);
FABRIC_DECLARE_STUB(upsample2d_forward_stub, UpsampleForwardFn);
FABRIC_DECLARE_STUB(upsample2d_backward_stub, UpsampleBackwardFn);

// ---- torch's source indices (UpSample.h), along one dimension of `in` -> `out` elements -------

// The two inputs output o reads and their weights: nearest reads i0 with weight 1 (i1 = i0, l1 =
// 0).
template <typename A>
struct UpsampleTaps {
  int64_t i0, i1;
  A l0, l1;
};

// torch's nearest source index: floor(o * s) with a float s (1/scale_factor, or in/out). torch's
// channels-last kernel (nearest_idx) takes the identity and doubling as o and o / 2 first, which
// differs from floor(o * s) when a scale_factor (2.2 on 4 pixels, 1.2 on 3) gives those sizes;
// its kernel for the other layouts (compute_indices_weights_nearest) does not.
FABRIC_HD inline int64_t upsample_nearest_index(int64_t o, int64_t in, int64_t out, double scale,
                                                bool shortcuts) {
  if (shortcuts && out == in) return o;
  if (shortcuts && out == 2 * in) return o >> 1;
  const float s = scale > 0 ? static_cast<float>(1.0 / scale)
                            : static_cast<float>(in) / static_cast<float>(out);
  const int64_t i = static_cast<int64_t>(floorf(static_cast<float>(o) * s));
  return i < in - 1 ? i : in - 1;
}

// torch's area_pixel_compute_scale in the accumulation type A.
template <typename A>
FABRIC_HD inline A upsample_linear_ratio(int64_t in, int64_t out, bool align_corners,
                                         double scale) {
  if (align_corners) return out > 1 ? static_cast<A>(in - 1) / static_cast<A>(out - 1) : A(0);
  return scale > 0 ? static_cast<A>(1.0 / scale) : static_cast<A>(in) / static_cast<A>(out);
}

// torch's compute_source_index_and_lambda: align_corners maps corner to corner (ratio * o),
// otherwise pixel centres ((o + 0.5) * ratio - 0.5, clamped at 0); the last input repeats. The
// source position is a double, as torch's CPU accumulation type for float32 (acc_type): exact
// (ratio's 24 bits times o + 0.5), so no compiler's fma changes it, and the weights keep their
// precision where a float position would not (its ulp is 2^-15 past 256 pixels; a 1920 -> 1080
// resize moved 203 of 1080 outputs). float16/bfloat16 take it too (torch rounds their ratio and
// weights to the half type; README).
template <typename A>
FABRIC_HD inline UpsampleTaps<A> upsample_linear_taps(int64_t o, int64_t in, int64_t out,
                                                      bool align_corners, A ratio) {
  if (out == in) return {o, o, A(1), A(0)};
  const double r = static_cast<double>(ratio);
  double real =
      align_corners ? r * static_cast<double>(o) : r * (static_cast<double>(o) + 0.5) - 0.5;
  if (!align_corners && real < 0) real = 0;
  int64_t i0 = static_cast<int64_t>(real);
  if (i0 > in - 1) i0 = in - 1;
  double frac = real - static_cast<double>(i0);
  frac = frac < 0 ? 0 : (frac > 1 ? 1 : frac);
  const A l1 = static_cast<A>(frac);
  return {i0, i0 + (i0 < in - 1 ? 1 : 0), A(1) - l1, l1};
}

// Output o's taps along one dimension of `in` -> `out` elements (scale as UpsampleDesc's).
template <typename A>
FABRIC_HD inline UpsampleTaps<A> upsample_axis_taps(int64_t o, int64_t in, int64_t out,
                                                    double scale, bool linear, bool align_corners,
                                                    bool nearest_shortcuts) {
  if (!linear) {
    const int64_t i = upsample_nearest_index(o, in, out, scale, nearest_shortcuts);
    return {i, i, A(1), A(0)};
  }
  return upsample_linear_taps<A>(o, in, out, align_corners,
                                 upsample_linear_ratio<A>(in, out, align_corners, scale));
}

template <typename A>
FABRIC_HD inline UpsampleTaps<A> upsample_taps(const UpsampleDesc& d, bool rows, int64_t o) {
  const int64_t in = rows ? d.H : d.W, out = rows ? d.OH : d.OW;
  const double scale = rows ? d.scale_h : d.scale_w;
  return upsample_axis_taps<A>(o, in, out, scale, d.bilinear, d.align_corners, d.nearest_shortcuts);
}

// The weight input i has in output o's value (0 when o does not read i).
template <typename A>
FABRIC_HD inline A upsample_weight(const UpsampleTaps<A>& t, int64_t i) {
  return (t.i0 == i ? t.l0 : A(0)) + (t.i1 == i ? t.l1 : A(0));
}

// The outputs [lo, hi) that read input i: both taps are non-decreasing in o, so these are the
// outputs from the first whose i1 reaches i to the last whose i0 has not passed it.
template <typename A>
FABRIC_HD inline void upsample_readers(const UpsampleDesc& d, bool rows, int64_t i, int64_t& lo,
                                       int64_t& hi) {
  const int64_t out = rows ? d.OH : d.OW;
  int64_t a = 0, b = out;  // first o with i1(o) >= i
  while (a < b) {
    const int64_t m = a + (b - a) / 2;
    if (upsample_taps<A>(d, rows, m).i1 < i)
      a = m + 1;
    else
      b = m;
  }
  lo = a;
  b = out;  // first o with i0(o) > i
  while (a < b) {
    const int64_t m = a + (b - a) / 2;
    if (upsample_taps<A>(d, rows, m).i0 <= i)
      a = m + 1;
    else
      b = m;
  }
  hi = a;
}

// ---- 3-D upsampling (interpolate's nearest and trilinear modes on (N, C, D, H, W)) -----------

// One spatial dimension of a 3-D upsampling: `in` -> `out` elements, `scale` as UpsampleDesc's.
struct UpsampleAxis {
  int64_t in = 1, out = 1;
  double scale = 0;
};

// planes = N * C contiguous (D, H, W) -> (OD, OH, OW) volumes.
struct Upsample3dDesc {
  int64_t planes = 0;
  UpsampleAxis d, h, w;
  bool trilinear = false, align_corners = false;
  // nearest: as UpsampleDesc's (torch's channels-last kernel, for channels-last-3d inputs).
  bool nearest_shortcuts = true;
  DType dtype = DType::float32;
};

// y from x, and dx (all of it written) from dy. The backward gathers, each input element
// summing, in torch 1.13's order, the terms its cpu_upsample_linear_backward adds to it: outputs
// in (od, oh, ow) order, within one output its taps in (d, h, w) order, each term
// ((wd * wh) * ww) * g added on its own (where two taps of one output read the same input, as at
// the last input, torch adds two terms, not one of the summed weight).
using Upsample3dFn = void (*)(const Upsample3dDesc& d, const void* in, void* out);
FABRIC_DECLARE_STUB(upsample3d_forward_stub, Upsample3dFn);
FABRIC_DECLARE_STUB(upsample3d_backward_stub, Upsample3dFn);

template <typename A>
FABRIC_HD inline UpsampleTaps<A> upsample3d_taps(const Upsample3dDesc& d, const UpsampleAxis& a,
                                                 int64_t o) {
  return upsample_axis_taps<A>(o, a.in, a.out, a.scale, d.trilinear, d.align_corners,
                               d.nearest_shortcuts);
}

// The outputs [lo, hi) along axis `a` that read input i (as upsample_readers).
template <typename A>
FABRIC_HD inline void upsample3d_readers(const Upsample3dDesc& d, const UpsampleAxis& a, int64_t i,
                                         int64_t& lo, int64_t& hi) {
  int64_t l = 0, r = a.out;  // first o with i1(o) >= i
  while (l < r) {
    const int64_t m = l + (r - l) / 2;
    if (upsample3d_taps<A>(d, a, m).i1 < i)
      l = m + 1;
    else
      r = m;
  }
  lo = l;
  r = a.out;  // first o with i0(o) > i
  while (l < r) {
    const int64_t m = l + (r - l) / 2;
    if (upsample3d_taps<A>(d, a, m).i0 <= i)
      l = m + 1;
    else
      r = m;
  }
  hi = l;
}

// The weights of output taps t that read input i, in tap order (torch adds one term per tap):
// returns how many (0..2; nearest has one tap).
template <typename A>
FABRIC_HD inline int upsample3d_tap_weights(const UpsampleTaps<A>& t, bool linear, int64_t i,
                                            A w[2]) {
  int n = 0;
  if (t.i0 == i) w[n++] = t.l0;
  if (linear && t.i1 == i) w[n++] = t.l1;
  return n;
}

}  // namespace fabric
