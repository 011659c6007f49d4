// The float32 sin and cos that torch 1.13's CPU kernels take for every element of torch.sin / cos
// (vml::vsin / vcos map the whole tensor, tail and gathered strided elements included, through
// Vectorized<float>::sin / cos): SLEEF's xsinf_u1 / xcosf_u1 in their FMA form, as Debian's
// libsleef3 3.5.1 computes them (Sleef_sinf8_u10avx2 / Sleef_cosf8_u10avx2), 16 lanes, ~1 ulp.
// The argument is reduced by pi (Cody-Waite, three parts, in double-float) when all eight lanes of
// an AVX2 vector are below 125 in magnitude, else, for the whole vector, by rempif (Payne-Hanek,
// vec_sleef_rempi.h, with SLEEF's table of 1/(2 pi) pieces). The two reductions can differ in the
// last bit, so a lane's result depends on its neighbours: here each half of the 16 lanes takes the
// path its AVX2 vector would, and torch's vectors start at multiples of 8 elements of a row or of
// its 2048-element gather buffer, as ours do (the loops of elementwise_common.h start whole 16-lane
// vectors at multiples of 16). NaN lanes count as large. Checked bit for bit against libsleef on
// every float (uniform and mixed halves) and against torch's hashes in
// tests/kernels/test_vec_sleef_unary.cpp.
#pragma once

#include "kernels/cpu/vec_sleef_rempi.h"

namespace fabric::cpu::vec {

namespace sleef {

constexpr float kPiA2 = 3.1414794921875f, kPiB2 = 0.00011315941810607910156f,
                kPiC2 = 1.9841872589410058936e-09f;
constexpr float k1Pi = 0.318309886183790671537767526745028724f;  // (float)M_1_PI

FABRIC_VEC_INLINE Reduced sin_small(__m512 d) {  // |d| < 125: d - q pi, Cody-Waite
  const __m512 u = rint(mul(d, splat(k1Pi)));
  const __m512 v = fma(u, splat(-kPiA2), d);
  F2 s = add2_ff(v, mul(u, splat(-kPiB2)));
  s = add(s, mul(u, splat(-kPiC2)));
  return {s, _mm512_cvttps_epi32(u)};
}
FABRIC_VEC_INLINE Reduced sin_large(__m512 d) {
  const Reduced r = rempif(d);
  const __m512i qi = r.q;
  const __mmask16 pos = _mm512_cmp_ps_mask(r.s.x, _mm512_setzero_ps(), _CMP_GT_OQ);
  __m512i q = _mm512_and_si512(qi, i32(3));
  q = _mm512_add_epi32(_mm512_add_epi32(q, q), _mm512_mask_blend_epi32(pos, i32(1), i32(2)));
  q = _mm512_srli_epi32(q, 2);
  const __mmask16 odd = _mm512_cmpeq_epi32_mask(_mm512_and_si512(qi, i32(1)), i32(1));
  F2 x = {mulsign(splat(3.1415927410125732422f * -0.5f), r.s.x),
          mulsign(splat(-8.7422776573475857731e-08f * -0.5f), r.s.x)};
  x = add2(r.s, x);
  F2 s = normalize(sel(odd, x, r.s));
  s.x = or_ones(isinf(d) | isnan(d), s.x);
  return {s, q};
}
FABRIC_VEC_INLINE Reduced cos_small(__m512 d) {  // |d| < 125: d - (2q' + 1) pi/2
  const __m512 dq = fma(rint(fma(d, splat(k1Pi), splat(-0.5f))), splat(2.0f), splat(1.0f));
  F2 s = add2_ff(d, mul(dq, splat(-kPiA2 * 0.5f)));
  s = add2(s, mul(dq, splat(-kPiB2 * 0.5f)));
  s = add2(s, mul(dq, splat(-kPiC2 * 0.5f)));
  return {s, _mm512_cvttps_epi32(dq)};
}
FABRIC_VEC_INLINE Reduced cos_large(__m512 d) {
  const Reduced r = rempif(d);
  const __m512i qi = r.q;
  const __mmask16 pos = _mm512_cmp_ps_mask(r.s.x, _mm512_setzero_ps(), _CMP_GT_OQ);
  __m512i q = _mm512_and_si512(qi, i32(3));
  q = _mm512_add_epi32(_mm512_add_epi32(q, q), _mm512_mask_blend_epi32(pos, i32(7), i32(8)));
  q = _mm512_srli_epi32(q, 1);
  const __mmask16 even = _mm512_cmpeq_epi32_mask(_mm512_and_si512(qi, i32(1)), i32(0));
  const __m512 y = _mm512_mask_mov_ps(splat(-1.0f), pos, _mm512_setzero_ps());
  F2 x = {mulsign(splat(3.1415927410125732422f * -0.5f), y),
          mulsign(splat(-8.7422776573475857731e-08f * -0.5f), y)};
  x = add2(r.s, x);
  F2 s = normalize(sel(even, x, r.s));
  s.x = or_ones(isinf(d) | isnan(d), s.x);
  return {s, q};
}

// sin(s) (or cos, by the caller's q) of the reduced double-float s, before the quadrant's sign.
FABRIC_VEC_INLINE __m512 sin_poly(F2 s) {
  const F2 t = s;
  s = squ(s);
  __m512 u = splat(2.6083159809786593541503e-06f);
  u = fma(u, s.x, splat(-0.0001981069071916863322258f));
  u = fma(u, s.x, splat(0.00833307858556509017944336f));
  const F2 x = add(splat(1.0f), mul(add_ff(splat(-0.166666597127914428710938f), mul(u, s.x)), s));
  return mul_f(t, x);
}

FABRIC_VEC_INLINE __m512 flip_where(__mmask16 m, __m512 u) {
  return _mm512_mask_mov_ps(u, m, _mm512_xor_ps(u, splat(-0.0f)));
}

}  // namespace sleef

FABRIC_VEC_INLINE __m512 sinf_u10_ps(__m512 d) {
  using namespace sleef;
  const Reduced r = reduce_by_halves(
      d, [](__m512 v) { return sin_small(v); }, [](__m512 v) { return sin_large(v); });
  __m512 u = sin_poly(r.s);
  u = flip_where(_mm512_cmpeq_epi32_mask(_mm512_and_si512(r.q, i32(1)), i32(1)), u);
  return _mm512_mask_mov_ps(u, is_neg_zero(d), d);
}

FABRIC_VEC_INLINE __m512 cosf_u10_ps(__m512 d) {
  using namespace sleef;
  const Reduced r = reduce_by_halves(
      d, [](__m512 v) { return cos_small(v); }, [](__m512 v) { return cos_large(v); });
  const __m512 u = sin_poly(r.s);
  return flip_where(_mm512_cmpeq_epi32_mask(_mm512_and_si512(r.q, i32(2)), i32(0)), u);
}

}  // namespace fabric::cpu::vec
