// grid_sample's coordinate arithmetic as torch 1.13's vectorized CPU kernel does it
// (aten/src/ATen/native/cpu/GridSamplerKernel.cpp, ComputeLocation), lane by lane: internal to
// nn/grid_sample_2d.cpp. torch builds that kernel with -mavx2 -mfma and g++ contracts a product
// that only feeds an add or subtract into one fused multiply-add; the fused steps are written
// out as std::fma here (found against torch's values) and the includer turns any other
// contraction off.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "nn/grid_sample_kernels.h"

namespace fabric::nn::grid_sample_detail {

// torch's Vectorized<T>::size() in its AVX2 kernels (the reference build's CPU capability): how
// many output points one step of its walk handles, which sets the order grad_input sums in.
template <typename T>
constexpr int64_t kLanes = sizeof(T) == 4 ? 8 : 4;

// convert_to_int_of_same_size: x86 turns NaN and out-of-range values into the integer type's
// minimum (float -> int32, double -> int64), which every bounds test then rejects.
template <typename T>
int64_t to_index(T v) {
  if constexpr (std::is_same_v<T, float>) {
    if (!(v >= -2147483648.0f && v < 2147483648.0f)) return std::numeric_limits<int32_t>::min();
    return static_cast<int32_t>(v);
  } else {
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
      return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(v);
  }
}

// at::vec::maximum / minimum: NaN in either operand gives NaN.
template <typename T>
T nan_max(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  return a > b ? a : b;
}
template <typename T>
T nan_min(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  return a < b ? a : b;
}

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// One spatial dimension of `size` pixels: un-normalizing, clipping and reflecting a coordinate.
template <typename T>
struct Location {
  Padding padding;
  bool align_corners;
  T max_val, scaling, low, twice_span;
  bool empty;  // align_corners with one pixel: reflection has no span

  Location(int64_t size, Padding pad, bool align)
      : padding(pad),
        align_corners(align),
        max_val(static_cast<T>(size - 1)),
        scaling(align ? static_cast<T>(size - 1) / 2 : static_cast<T>(size) / 2),
        low(align ? T(0) : T(-0.5)),
        twice_span(align ? static_cast<T>(size - 1) * 2 : static_cast<T>(size) * 2),
        empty(align ? size <= 1 : size <= 0) {}

  T unnormalize(T in) const {
    return align_corners ? (in + T(1)) * scaling : std::fma(in + T(1), scaling, T(-0.5));
  }

  // clamp_max(max, clamp_min(0, in)): maxps/minps return the second operand on NaN, so NaN -> 0.
  T clip(T in) const {
    const T lo = in > T(0) ? in : T(0);
    return lo < max_val ? lo : max_val;
  }

  // With its gradient factor: the borders themselves count as outside (factor 0).
  std::pair<T, bool> clip_get_grad(T in) const {
    const T bounded_lo = nan_max(in, T(0));
    const bool in_lo = !same_bits(bounded_lo, T(0));
    const T res = nan_min(bounded_lo, max_val);
    const bool in_hi = !same_bits(res, max_val);
    return {res, in_lo && in_hi};
  }

  T reflect(T in) const {
    if (align_corners && empty) return T(0);
    const T abs_in = std::fabs(align_corners ? in : in - low);
    const T double_flips = std::trunc(abs_in / twice_span);
    const T extra = std::fma(-double_flips, twice_span, abs_in);
    const T r = nan_min(extra, twice_span - extra);
    return align_corners ? r : r + low;
  }

  std::pair<T, T> reflect_get_grad(T in) const {
    if (align_corners && empty) return {T(0), T(0)};
    const T shifted = align_corners ? in : in - low;
    const bool neg = shifted < T(0);
    const T abs_in = std::fabs(shifted);
    const T double_flips = std::trunc(abs_in / twice_span);
    const T extra = std::fma(-double_flips, twice_span, abs_in);
    const T reflected = twice_span - extra;
    const bool flip = extra > reflected;
    const T r = flip ? reflected : extra;
    return {align_corners ? r : r + low, (flip != neg) ? T(-1) : T(1)};
  }

  // compute_coordinates: the padding rule on an un-normalized coordinate.
  T compute(T in) const {
    if (padding == Padding::border) return clip(in);
    if (padding == Padding::reflection) return clip(reflect(in));
    return in;
  }

  T apply(T in) const { return compute(unnormalize(in)); }

  // The source coordinate and d(coordinate)/d(grid value).
  std::pair<T, T> apply_get_grad(T in) const {
    const T u = unnormalize(in);
    if (padding == Padding::border) {
      auto [res, ok] = clip_get_grad(u);
      return {res, ok ? scaling : T(0)};
    }
    if (padding == Padding::reflection) {
      auto [r, g_refl] = reflect_get_grad(u);
      const T grad = g_refl * scaling;
      auto [res, ok] = clip_get_grad(r);
      return {res, ok ? grad : T(0)};
    }
    return {u, scaling};
  }
};

inline bool in_bounds(int64_t i, int64_t size) { return i > -1 && i < size; }

}  // namespace fabric::nn::grid_sample_detail
