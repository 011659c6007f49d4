// The float32 tanh, expm1, log1p and erf that torch 1.13's CPU kernels take for every element of
// torch.tanh / expm1 / log1p / erf (vml::v<op> maps the whole tensor, tail and gathered strided
// elements included, through Vectorized<float>::<op>), 16 lanes:
//   - tanh, expm1, log1p: SLEEF's xtanhf / xexpm1f / xlog1pf in their FMA form, as Debian's
//     libsleef3 3.5.1 (Sleef_tanhf8_u10avx2 etc.) computes them: e^x as a double-float from
//     expk2f, the log from atanh(m / (2 + m)), ~1 ulp;
//   - erf: SLEEF's xerff_u1 (Sleef_erff8_u10avx2: Vectorized<float>::erf calls it in this build,
//     torch.erf's bits equal libsleef's on every non-NaN float sampled).
// Each lane depends on its own input only. vec::tanh_ps / expm1_ps / log1p_ps / erf_ps stay as
// they are for their other users (GELU, ELU, softplus...). Checked bit for bit against libsleef
// on every float and against torch's hashes in tests/kernels/test_vec_sleef_unary.cpp.
#pragma once

#include "kernels/cpu/vec_sleef_df.h"

namespace fabric::cpu::vec {

namespace sleef {

// expk2f: e^d for a double-float d, as a double-float; 0 below d = -104.
FABRIC_VEC_INLINE F2 expk2f(F2 d) {
  const __m512i q =  // vcvtps2dq: to nearest even, INT_MIN out of range
      _mm512_cvt_roundps_epi32(mul(add(d.x, d.y), splat(1.442695040888963407359924681001892137f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 qf = _mm512_cvtepi32_ps(q);
  F2 s = add2(d, mul(qf, splat(-0.693145751953125f)));
  s = add2(s, mul(qf, splat(-1.428606765330187045e-06f)));
  __m512 u = splat(+0.1980960224e-3f);
  u = fma(u, s.x, splat(+0.1394256484e-2f));
  u = fma(u, s.x, splat(+0.8333456703e-2f));
  u = fma(u, s.x, splat(+0.4166637361e-1f));
  F2 t = add2(mul(s, u), splat(+0.166666659414234244790680580464e+0f));
  t = add2(mul(s, t), splat(0.5f));
  t = add2(s, mul(squ(s), t));
  t = add(splat(1.0f), t);
  t.x = ldexp2(t.x, q);
  t.y = ldexp2(t.y, q);
  const __mmask16 under = _mm512_cmp_ps_mask(d.x, splat(-104.0f), _CMP_LT_OQ);
  t.x = _mm512_mask_mov_ps(t.x, under, _mm512_setzero_ps());
  t.y = _mm512_mask_mov_ps(t.y, under, _mm512_setzero_ps());
  return t;
}

}  // namespace sleef

// SLEEF xtanhf: (e - 1/e) / (e + 1/e) in double-float, e = e^|x|; 1 above |x| = 8.664339742,
// x's sign last; NaN in gives all bits set (0xFFFFFFFF), as SLEEF's vor.
FABRIC_VEC_INLINE __m512 tanhf_u10_ps(__m512 x) {
  using namespace sleef;
  const __m512 ax = _mm512_abs_ps(x);
  F2 d = expk2f({ax, _mm512_setzero_ps()});
  const F2 e = rec(d);
  d = div(add(d, neg(e)), add(d, e));
  __m512 y = add(d.x, d.y);
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(ax, splat(8.664339742f), _CMP_GT_OQ) | isnan(y),
                         splat(1.0f));
  y = mulsign(y, x);
  return or_ones(isnan(x), y);
}

// SLEEF xexpm1f: e^a - 1 in double-float; inf above 88.72283172607421875, -1 below
// -16.635532333438687426, -0 for -0.
FABRIC_VEC_INLINE __m512 expm1f_u10_ps(__m512 a) {
  using namespace sleef;
  const F2 d = add2(expk2f({a, _mm512_setzero_ps()}), splat(-1.0f));
  __m512 x = add(d.x, d.y);
  x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(a, splat(88.72283172607421875f), _CMP_GT_OQ),
                         splat(__builtin_inff()));
  x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(a, splat(-16.635532333438687426013570f), _CMP_LT_OQ),
                         splat(-1.0f));
  return _mm512_mask_mov_ps(x, is_neg_zero(a), splat(-0.0f));
}

// SLEEF xlog1pf (its AVX2 form): 1 + d = 2^e (1 + m) with e from (1 + d) * 4/3 (subnormal sums
// scaled by 2^64 first), m = d 2^-e + (2^-e - 1) by one fma; log(1 + m) = 2 atanh(m / (2 + m)).
// inf above 1e38, NaN (all bits) below -1, -inf at -1, -0 for -0.
FABRIC_VEC_INLINE __m512 log1pf_u10_ps(__m512 d) {
  using namespace sleef;
  __m512 dp1 = add(d, splat(1.0f));
  const __mmask16 tiny = _mm512_cmp_ps_mask(dp1, splat(1.17549435e-38f), _CMP_LT_OQ);
  dp1 = _mm512_mask_mov_ps(dp1, tiny, mul(dp1, splat(18446744073709551616.0f)));
  __m512i e = _mm512_sub_epi32(
      _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(mul(dp1, splat(1.0f / 0.75f))), 23),
                       i32(0xff)),
      i32(0x7f));
  // vldexp3(1, -e): 1.0's bits with -e added to the exponent field
  const __m512 t = _mm512_castsi512_ps(
      _mm512_sub_epi32(_mm512_castps_si512(splat(1.0f)), _mm512_slli_epi32(e, 23)));
  const __m512 m = fma(d, t, sub(t, splat(1.0f)));
  e = _mm512_mask_mov_epi32(e, tiny, _mm512_sub_epi32(e, i32(64)));
  F2 s = mul(F2{splat(0.69314718246459960938f), splat(-1.904654323148236017e-09f)},
             _mm512_cvtepi32_ps(e));
  const F2 x = div({m, _mm512_setzero_ps()}, add_ff(splat(2.0f), m));
  const __m512 x2 = mul(x.x, x.x);
  __m512 p = splat(+0.3027294874e+0f);
  p = fma(p, x2, splat(+0.3996108174e+0f));
  p = fma(p, x2, splat(+0.6666694880e+0f));
  s = add(s, scale(x, splat(2.0f)));
  s = add(s, mul(mul(x2, x.x), p));
  __m512 r = add(s.x, s.y);
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(d, splat(1e+38f), _CMP_GT_OQ),
                         splat(__builtin_inff()));
  r = or_ones(_mm512_cmp_ps_mask(splat(-1.0f), d, _CMP_GT_OQ), r);
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(d, splat(-1.0f), _CMP_EQ_OQ),
                         splat(-__builtin_inff()));
  return _mm512_mask_mov_ps(r, is_neg_zero(d), splat(-0.0f));
}

// SLEEF xerff_u1 (Sleef_erff8_u10avx2, which torch 1.13's Vectorized<float>::erf calls): below
// |a| = 1.1 an odd polynomial in a^2 finished in double-float, up to 2.4 and up to 4 two fits of
// erfc's exponent, erf = 1 - e^(p(|a|)) through expk2f; 1 from 4 on, a's sign last; NaN in gives
// the default NaN (0x7FC00000).
FABRIC_VEC_INLINE __m512 erff_u10_ps(__m512 s) {
  using namespace sleef;
  const __m512 a = _mm512_abs_ps(s);
  const __mmask16 o0 = _mm512_cmp_ps_mask(a, splat(1.1f), _CMP_LT_OQ);
  const __mmask16 o1 = _mm512_cmp_ps_mask(a, splat(2.4f), _CMP_LT_OQ);
  const __mmask16 o2 = _mm512_cmp_ps_mask(a, splat(4.0f), _CMP_LT_OQ);
  const auto pick = [&](float c0, float c1, float c2) {  // vsel_vf_vo_vo_f_f_f
    return _mm512_mask_mov_ps(_mm512_mask_mov_ps(splat(c2), o1, splat(c1)), o0, splat(c0));
  };
  const auto pick2 = [&](double c0, double c1, double c2) {  // vsel_vf2_vo_vo_d_d_d
    const auto hi = [](double c) { return static_cast<float>(c); };
    const auto lo = [](double c) { return static_cast<float>(c - static_cast<float>(c)); };
    return F2{pick(hi(c0), hi(c1), hi(c2)), pick(lo(c0), lo(c1), lo(c2))};
  };
  const __m512 u = _mm512_mask_mov_ps(a, o0, mul(a, a));
  __m512 t = pick(+0.7089292194e-4f, -0.1792667899e-4f, -0.9495757695e-5f);
  t = fma(t, u, pick(-0.7768311189e-3f, +0.3937633010e-3f, +0.2481465926e-3f));
  t = fma(t, u, pick(+0.5159463733e-2f, -0.3949181177e-2f, -0.2918176819e-2f));
  t = fma(t, u, pick(-0.2683781274e-1f, +0.2445474640e-1f, +0.2059706673e-1f));
  t = fma(t, u, pick(+0.1128318012e+0f, -0.1070996150e+0f, -0.9901899844e-1f));
  F2 d = mul_ff(t, u);
  d = add2(d, pick2(-0.376125876000657465175213237214e+0, -0.634588905908410389971210809210e+0,
                    -0.643598050547891613081201721633e+0));
  d = mul(d, u);
  d = add2(d, pick2(+0.112837916021059138255978217023e+1, -0.112879855826694507209862753992e+1,
                    -0.112461487742845562801052956293e+1));
  d = mul(d, a);
  if (o0 != 0xFFFF) d = sel(o0, d, add(splat(1.0f), neg(expk2f(d))));
  __m512 r = mulsign(_mm512_mask_mov_ps(splat(1.0f), o2, add(d.x, d.y)), s);
  return _mm512_mask_mov_ps(r, isnan(a), bits_ps(0x7FC00000u));
}

}  // namespace fabric::cpu::vec
