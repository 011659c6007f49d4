// SLEEF's logf_u10 (its FMA form, as Sleef_logf8_u10avx2 computes it), 16 lanes: the float32 log
// torch 1.13's CPU kernels take for every element of torch.log (its vml::vlog maps the whole
// tensor, tail included, through Vectorized<float>::log). The exponent comes from d * 4/3, the
// mantissa's log from atanh((m - 1) / (m + 1)) in double-float arithmetic (vec_sleef_df.h),
// ~1 ulp. The 8-lane twin in softmax_torch_row.h gives the same bits
// (tests/kernels/test_vec_sleef_log.cpp).
#pragma once

#include <limits>

#include "kernels/cpu/vec_sleef_df.h"

namespace fabric::cpu::vec {

namespace sleef {
// The shared start of xlogf_u1 / xlog2f / xlog10f: d scaled out of the subnormals, its exponent e
// (as float) and x = (m - 1) / (m + 1) in double-float.
FABRIC_VEC_INLINE F2 log_reduce(__m512 d, __m512& ef) {
  const __mmask16 tiny = lt(d, splat(std::numeric_limits<float>::min()));
  d = sel(tiny, mul(d, splat(18446744073709551616.0f)), d);
  __m512i e = _mm512_sub_epi32(
      _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(mul(d, splat(1.0f / 0.75f))), 23),
                       _mm512_set1_epi32(0xff)),
      _mm512_set1_epi32(0x7f));
  const __m512 m =
      _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_castps_si512(d), _mm512_slli_epi32(e, 23)));
  e = _mm512_mask_mov_epi32(e, tiny, _mm512_sub_epi32(e, _mm512_set1_epi32(64)));
  ef = _mm512_cvtepi32_ps(e);
  return div(add2_ff(splat(-1.0f), m), add2_ff(splat(1.0f), m));
}
// +inf -> +inf, negative or NaN -> NaN, +-0 -> -inf (the non-AVX-512 SLEEF selects)
FABRIC_VEC_INLINE __m512 log_specials(__m512 d, __m512 r) {
  const __m512 inf = splat(std::numeric_limits<float>::infinity());
  r = sel(eq(d, inf), inf, r);
  r = sel(_mm512_cmp_ps_mask(d, splat(0.0f), _CMP_NGE_UQ),
          splat(std::numeric_limits<float>::quiet_NaN()), r);
  return sel(eq(d, splat(0.0f)), splat(-std::numeric_limits<float>::infinity()), r);
}
}  // namespace sleef

FABRIC_VEC_INLINE __m512 logf_u10_ps(__m512 d) {
  using namespace sleef;
  __m512 ef;
  const F2 x = log_reduce(d, ef);
  const __m512 x2 = mul(x.x, x.x);
  __m512 t = fma(splat(+0.3027294874e+0f), x2, splat(+0.3996108174e+0f));
  t = fma(t, x2, splat(+0.6666694880e+0f));
  F2 s = mul(F2{splat(0.69314718246459960938f), splat(-1.904654323148236017e-09f)}, ef);
  s = add(s, scale(x, splat(2.0f)));
  s = add(s, mul(mul(x2, x.x), t));
  return log_specials(d, add(s.x, s.y));
}

}  // namespace fabric::cpu::vec
