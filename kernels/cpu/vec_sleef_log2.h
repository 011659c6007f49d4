// SLEEF's log2f_u10 and log10f_u10 (FMA form, as Sleef_log2f8_u10avx2 / Sleef_log10f8_u10avx2
// compute them), 16 lanes: torch 1.13's float32 torch.log2 / torch.log10 map every element, tail
// and strided ones included, through these (vml::vlog2 / vlog10). Like logf_u10_ps
// (vec_sleef_log.h): subnormals scaled by 2^64, the exponent from d * 4/3, the mantissa's log from
// atanh((m - 1) / (m + 1)) in double-float, ~1 ulp. Checked lane by lane against Debian's libsleef
// and through the ops against torch (tests/kernels/test_vec_sleef_math.cpp).
#pragma once

#include <limits>

#include "kernels/cpu/vec_sleef_f2.h"

namespace fabric::cpu::vec {

namespace sleef_f2 {
// The shared start of xlog2f / xlog10f: d scaled out of the subnormals, its exponent e (as float)
// and x = (m - 1) / (m + 1) in double-float.
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
}  // namespace sleef_f2

FABRIC_VEC_INLINE __m512 log2f_u10_ps(__m512 d) {
  using namespace sleef_f2;
  __m512 ef;
  const F2 x = log_reduce(d, ef);
  const __m512 x2 = mul(x.x, x.x);
  __m512 t = fma(splat(+0.4374550283e+0f), x2, splat(+0.5764790177e+0f));
  t = fma(t, x2, splat(+0.9618012905120f));
  F2 s = add2(ef, mul(x, F2{splat(2.8853900432586669922f), splat(3.2734474483568488616e-08f)}));
  s = add2(s, mul(mul(x2, x.x), t));
  return log_specials(d, add(s.x, s.y));
}

FABRIC_VEC_INLINE __m512 log10f_u10_ps(__m512 d) {
  using namespace sleef_f2;
  __m512 ef;
  const F2 x = log_reduce(d, ef);
  const __m512 x2 = mul(x.x, x.x);
  __m512 t = fma(splat(+0.1314289868e+0f), x2, splat(+0.1735493541e+0f));
  t = fma(t, x2, splat(+0.2895309627e+0f));
  F2 s = mul(F2{splat(0.30103001f), splat(-1.432098889e-08f)}, ef);
  s = add(s, mul(x, F2{splat(0.868588984f), splat(-2.170757285e-08f)}));
  s = add(s, mul(mul(x2, x.x), t));
  return log_specials(d, add(s.x, s.y));
}

}  // namespace fabric::cpu::vec
