// One row of layer_norm / rms_norm backward (kernels/cpu/norm.cpp): the row's terms of the
// dweight/dbias partial sums and its dx. norm_backward_row is the definition (plain loops, any
// accumulation type); norm_backward_row_f32 computes the same float32 values with the same
// operations in AVX-512 in two passes over the row instead of seven, with row_sum/row_dot's
// lane sums (reduce_math.h) taken during the first pass where the row is whole groups of 64 and
// at most 1024 long. A 256-wide row on one thread: 156 -> 107 ns in L2, 170 -> 111 ns for 2048
// rows from L3, where the row is then bound by the L3 reads (tests/kernels/
// test_norm_backward_row.cpp checks the bits against norm_backward_row).
#pragma once
#include <cstdint>

#include "kernels/cpu/reduce_math.h"

namespace fabric::cpu {

// Row buffers: x, dy (n values); w (n) or null; m = mean (0 under rms), rs = rstd. tdw / tdb (n)
// or null get dy * xhat and dy added; dx (n) or null gets the input gradient, and may be g.
// xhat and g are n-value scratch rows.
//   xhat = (x - m) * rs;  g = dy * w;  dx = rs * (g - mean(g) - xhat * mean(g * xhat))
// (rms: without mean(g)).
template <typename A>
void norm_backward_row(const A* x, const A* dy, const A* w, A m, A rs, int64_t n, bool rms, A* tdw,
                       A* tdb, A* dx, A* xhat, A* g) {
  for (int64_t j = 0; j < n; ++j) xhat[j] = (x[j] - m) * rs;
  if (tdw)
    for (int64_t j = 0; j < n; ++j) tdw[j] += dy[j] * xhat[j];
  if (tdb)
    for (int64_t j = 0; j < n; ++j) tdb[j] += dy[j];
  if (!dx) return;
  if (w) {
    for (int64_t j = 0; j < n; ++j) g[j] = dy[j] * w[j];
  } else {
    std::copy(dy, dy + n, g);
  }
  const A inv_n = A(1) / static_cast<A>(n);
  const A mg = rms ? A(0) : row_sum(g, n) * inv_n;
  const A mgx = row_dot(g, xhat, n) * inv_n;
  for (int64_t j = 0; j < n; ++j) dx[j] = rs * (g[j] - mg - xhat[j] * mgx);
}

// norm_backward_row<float>, the same operations per element: the compiler contracts
// tdw += dy * xhat, row_dot's acc += g * xhat and (g - mg) - xhat * mgx into one rounding each,
// and so do these intrinsics (GCC contracts _mm512_mul_ps into a following _mm512_add_ps too:
// only the _round_ forms stay unfused).
inline void norm_backward_row_f32(const float* x, const float* dy, const float* w, float m,
                                  float rs, int64_t n, bool rms, float* tdw, float* tdb, float* dx,
                                  float* xhat, float* g) {
  const __m512 vm = _mm512_set1_ps(m), vrs = _mm512_set1_ps(rs);
  // Elements [j, j + 16) under mask k: xhat, the tdw/tdb terms and (with dx) g; returns g.
  const auto step = [&](int64_t j, __mmask16 k, __m512& xh) {
    const __m512 dyv = _mm512_maskz_loadu_ps(k, dy + j);
    xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm), vrs);
    _mm512_mask_storeu_ps(xhat + j, k, xh);
    if (tdw)
      _mm512_mask_storeu_ps(tdw + j, k,
                            _mm512_fmadd_ps(dyv, xh, _mm512_maskz_loadu_ps(k, tdw + j)));
    if (tdb)
      _mm512_mask_storeu_ps(tdb + j, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, tdb + j), dyv));
    if (!dx) return dyv;
    const __m512 gv = w ? _mm512_mul_ps(dyv, _mm512_maskz_loadu_ps(k, w + j)) : dyv;
    _mm512_mask_storeu_ps(g + j, k, gv);
    return gv;
  };
  // Where sum_range takes its one-level path with no scalar tail, lane j of its 64 takes the
  // elements j mod 64 in order: s0..s3 / d0..d3 hold lanes 0-15, ..., 48-63 of row_sum(g) /
  // row_dot(g, xhat).
  const bool lanes = dx && n % 64 == 0 && n <= 16 * 64;
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, d0 = s0, d1 = s0, d2 = s0, d3 = s0;
  if (lanes) {
    for (int64_t j = 0; j < n; j += 64) {
      __m512 x0, x1, x2, x3;
      const __m512 g0 = step(j, 0xFFFF, x0), g1 = step(j + 16, 0xFFFF, x1);
      const __m512 g2 = step(j + 32, 0xFFFF, x2), g3 = step(j + 48, 0xFFFF, x3);
      s0 = _mm512_add_ps(s0, g0);
      s1 = _mm512_add_ps(s1, g1);
      s2 = _mm512_add_ps(s2, g2);
      s3 = _mm512_add_ps(s3, g3);
      d0 = _mm512_fmadd_ps(g0, x0, d0);
      d1 = _mm512_fmadd_ps(g1, x1, d1);
      d2 = _mm512_fmadd_ps(g2, x2, d2);
      d3 = _mm512_fmadd_ps(g3, x3, d3);
    }
  } else {
    for (int64_t j = 0; j < n; j += 16) {
      __m512 xh;
      step(j, static_cast<__mmask16>(n - j >= 16 ? 0xFFFF : (1u << (n - j)) - 1u), xh);
    }
  }
  if (!dx) return;
  const float inv_n = 1.0f / static_cast<float>(n);
  float mg = 0, mgx;
  if (lanes) {
    if (!rms) mg = fold_lanes64(s0, s1, s2, s3) * inv_n;
    mgx = fold_lanes64(d0, d1, d2, d3) * inv_n;
  } else {
    if (!rms) mg = row_sum(g, n) * inv_n;
    mgx = row_dot(g, xhat, n) * inv_n;
  }
  const __m512 vmg = _mm512_set1_ps(mg), vmgx = _mm512_set1_ps(mgx);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = static_cast<__mmask16>(n - j >= 16 ? 0xFFFF : (1u << (n - j)) - 1u);
    const __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, g + j), vmg);
    _mm512_mask_storeu_ps(
        dx + j, k,
        _mm512_mul_ps(vrs, _mm512_fnmadd_ps(_mm512_maskz_loadu_ps(k, xhat + j), vmgx, t)));
  }
}

}  // namespace fabric::cpu
