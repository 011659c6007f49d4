// One row of layer_norm / rms_norm forward (kernels/cpu/norm.cpp): the row's mean (layer_norm),
// rstd and output. norm_forward_row is the definition (plain loops, any accumulation type);
// norm_forward_row_f32 computes the same float32 values with the same operations in AVX-512,
// inlined and in registers, taking row_sum/row_dot/sum_range's 64 lane sums itself where the row
// is whole groups of 64 and at most 1024 long (GPT's 256 and 768), so its sums add the same
// values in the same order. Rows stay three passes (mean, variance about the mean, output): the
// variance needs the mean and the output needs the variance. tests/kernels/
// test_norm_forward_row.cpp checks the bits against norm_forward_row.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/cpu/reduce_math.h"

namespace fabric::cpu {

// Row buffers: x, y (n values); w, b (n) or null (b is ignored under rms).
// layer_norm: mean = sum(x) / n, var = sum((x - mean)^2) / n, rstd = 1 / sqrt(var + eps),
//   y = (x - mean) * rstd * w + b;  rms_norm: rstd = 1 / sqrt(sum(x^2) / n + eps), y = x * rstd * w
// (mean is left alone under rms).
template <typename A>
void norm_forward_row(const A* x, const A* w, const A* b, A eps, int64_t n, bool rms, A* y, A& mean,
                      A& rstd) {
  const A inv_n = A(1) / static_cast<A>(n);
  if (rms) {
    const A ms = row_dot(x, x, n) * inv_n;
    const A rs = A(1) / std::sqrt(ms + eps);
    rstd = rs;
    if (w) {
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] * rs * w[j];
    } else {
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] * rs;
    }
    return;
  }
  const A m = row_sum(x, n) * inv_n;
  const A var = sum_range<A>(0, n, [x, m](int64_t j) { return (x[j] - m) * (x[j] - m); }) * inv_n;
  const A rs = A(1) / std::sqrt(var + eps);
  mean = m;
  rstd = rs;
  if (w && b) {
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) * rs * w[j] + b[j];
  } else if (w) {
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) * rs * w[j];
  } else if (b) {
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) * rs + b[j];
  } else {
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) * rs;
  }
}

// norm_forward_row<float>, the same operations per element: the compiler contracts the sums'
// acc += d * d, sum * inv_n + eps (the scaled sum has no other use) and the output's u * w + b
// (u * rstd + b without weight) into one rounding each, and so does this code, with explicit
// fused forms (GCC contracts _mm512_mul_ps into a following _mm512_add_ps too, so no unfused
// product is followed by an addition here).
inline void norm_forward_row_f32(const float* x, const float* w, const float* b, float eps,
                                 int64_t n, bool rms, float* y, float& mean, float& rstd) {
  const float inv_n = 1.0f / static_cast<float>(n);
  // sum_range's one-level path with no scalar tail: lane j of its 64 takes the elements j mod 64
  // in order; a0..a3 hold lanes 0-15, ..., 48-63.
  const bool lanes = n % 64 == 0 && n <= 16 * 64;
  const auto mask = [n](int64_t j) {
    return static_cast<__mmask16>(n - j >= 16 ? 0xFFFF : (1u << (n - j)) - 1u);
  };
  if (rms) {
    float ss;
    if (lanes) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t j = 0; j < n; j += 64) {
        const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
        const __m512 x2 = _mm512_loadu_ps(x + j + 32), x3 = _mm512_loadu_ps(x + j + 48);
        a0 = _mm512_fmadd_ps(x0, x0, a0);
        a1 = _mm512_fmadd_ps(x1, x1, a1);
        a2 = _mm512_fmadd_ps(x2, x2, a2);
        a3 = _mm512_fmadd_ps(x3, x3, a3);
      }
      ss = fold_lanes64(a0, a1, a2, a3);
    } else {
      ss = row_dot(x, x, n);
    }
    const float rs = 1.0f / std::sqrt(std::fma(ss, inv_n, eps));
    rstd = rs;
    const __m512 vrs = _mm512_set1_ps(rs);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = mask(j);
      const __m512 u = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + j), vrs);
      _mm512_mask_storeu_ps(y + j, k, w ? _mm512_mul_ps(u, _mm512_maskz_loadu_ps(k, w + j)) : u);
    }
    return;
  }
  float m, sq;  // mean, sum of squared deviations
  if (lanes) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < n; j += 64) {
      a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + j));
      a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + j + 16));
      a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + j + 32));
      a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + j + 48));
    }
    m = fold_lanes64(a0, a1, a2, a3) * inv_n;
    const __m512 vm = _mm512_set1_ps(m);
    a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < n; j += 64) {
      const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + j), vm);
      const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm);
      const __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 32), vm);
      const __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 48), vm);
      a0 = _mm512_fmadd_ps(d0, d0, a0);
      a1 = _mm512_fmadd_ps(d1, d1, a1);
      a2 = _mm512_fmadd_ps(d2, d2, a2);
      a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    sq = fold_lanes64(a0, a1, a2, a3);
  } else {
    m = row_sum(x, n) * inv_n;
    sq = sum_range<float>(0, n, [x, m](int64_t j) { return (x[j] - m) * (x[j] - m); });
  }
  const float rs = 1.0f / std::sqrt(std::fma(sq, inv_n, eps));
  mean = m;
  rstd = rs;
  const __m512 vm = _mm512_set1_ps(m), vrs = _mm512_set1_ps(rs);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = mask(j);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm);
    __m512 v;
    if (w && b) {
      v = _mm512_fmadd_ps(_mm512_mul_ps(d, vrs), _mm512_maskz_loadu_ps(k, w + j),
                          _mm512_maskz_loadu_ps(k, b + j));
    } else if (w) {
      v = _mm512_mul_ps(_mm512_mul_ps(d, vrs), _mm512_maskz_loadu_ps(k, w + j));
    } else if (b) {
      v = _mm512_fmadd_ps(d, vrs, _mm512_maskz_loadu_ps(k, b + j));
    } else {
      v = _mm512_mul_ps(d, vrs);
    }
    _mm512_mask_storeu_ps(y + j, k, v);
  }
}

}  // namespace fabric::cpu
