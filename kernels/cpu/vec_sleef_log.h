// SLEEF's logf_u10 (its FMA form, as Sleef_logf8_u10avx2 computes it), 16 lanes: the float32 log
// torch 1.13's CPU kernels take for every element of torch.log (its vml::vlog maps the whole
// tensor, tail included, through Vectorized<float>::log). The exponent comes from d * 4/3, the
// mantissa's log from atanh((m - 1) / (m + 1)) in double-float arithmetic, ~1 ulp. Every product
// SLEEF rounds on its own goes through opaque_ps so -ffp-contract cannot fuse it; the 8-lane twin
// in softmax_torch_row.h gives the same bits (tests/kernels/test_vec_sleef_log.cpp).
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace fabric::cpu::vec {

FABRIC_VEC_INLINE __m512 logf_u10_ps(__m512 d) {
  const auto mul = [](__m512 a, __m512 b) { return opaque_ps(_mm512_mul_ps(a, b)); };
  const auto i32 = [](int v) { return _mm512_set1_epi32(v); };
  // Subnormals are scaled by 2^64 first, and their exponent lowered by 64.
  const __mmask16 tiny =
      _mm512_cmp_ps_mask(d, splat(std::numeric_limits<float>::min()), _CMP_LT_OQ);
  d = _mm512_mask_mov_ps(d, tiny, mul(d, splat(18446744073709551616.0f)));
  __m512i e = _mm512_sub_epi32(
      _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(mul(d, splat(1.0f / 0.75f))), 23),
                       i32(0xff)),
      i32(0x7f));
  const __m512 m =
      _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_castps_si512(d), _mm512_slli_epi32(e, 23)));
  e = _mm512_mask_mov_epi32(e, tiny, _mm512_sub_epi32(e, i32(64)));
  const __m512 ef = _mm512_cvtepi32_ps(e);
  // s = (ln2 hi, ln2 lo) * e
  __m512 sx = mul(splat(0.69314718246459960938f), ef);
  __m512 sy = _mm512_fmadd_ps(splat(-1.904654323148236017e-09f), ef,
                              _mm512_fmsub_ps(splat(0.69314718246459960938f), ef, sx));
  // x = (m - 1) / (m + 1) in double-float: both sums exact as pairs, then the pair division
  const auto add2 = [](__m512 a, __m512 b, __m512& lo) {
    const __m512 sum = _mm512_add_ps(a, b), v = _mm512_sub_ps(sum, a);
    lo = _mm512_add_ps(_mm512_sub_ps(a, _mm512_sub_ps(sum, v)), _mm512_sub_ps(b, v));
    return sum;
  };
  __m512 nl, dl;
  const __m512 nh = add2(splat(-1.0f), m, nl), dh = add2(splat(1.0f), m, dl);
  const __m512 t0 = _mm512_div_ps(splat(1.0f), dh), xq = mul(nh, t0);
  const __m512 u = _mm512_fmsub_ps(t0, nh, xq);
  const __m512 v = _mm512_fnmadd_ps(dl, t0, _mm512_fnmadd_ps(dh, t0, splat(1.0f)));
  const __m512 xx = xq, xy = _mm512_fmadd_ps(xq, v, _mm512_fmadd_ps(nl, t0, u));
  const __m512 x2 = mul(xx, xx);
  __m512 t = _mm512_fmadd_ps(splat(0.3027294874e+0f), x2, splat(0.3996108174e+0f));
  t = _mm512_fmadd_ps(t, x2, splat(0.6666694880e+0f));
  // s += 2x (pair + pair), then s += x^3 t (pair + float)
  const __m512 x2h = mul(xx, splat(2.0f)), x2l = mul(xy, splat(2.0f));
  __m512 h = _mm512_add_ps(sx, x2h);
  sy = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(sx, h), x2h), sy), x2l);
  sx = h;
  const __m512 w = mul(mul(x2, xx), t);
  h = _mm512_add_ps(sx, w);
  sy = _mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(sx, h), w), sy);
  __m512 r = _mm512_add_ps(h, sy);
  const __m512 inf = splat(std::numeric_limits<float>::infinity());
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(d, inf, _CMP_EQ_OQ), inf);
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(d, splat(0.0f), _CMP_NGE_UQ),  // d < 0 or NaN
                         splat(std::numeric_limits<float>::quiet_NaN()));
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(d, splat(0.0f), _CMP_EQ_OQ),
                            splat(-std::numeric_limits<float>::infinity()));
}

}  // namespace fabric::cpu::vec
