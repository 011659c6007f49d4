// The float32 sin and cos that torch 1.13's CPU kernels take for every element of torch.sin / cos
// (vml::vsin / vcos map the whole tensor, tail and gathered strided elements included, through
// Vectorized<float>::sin / cos): SLEEF's xsinf_u1 / xcosf_u1 in their FMA form, as Debian's
// libsleef3 3.5.1 computes them (Sleef_sinf8_u10avx2 / Sleef_cosf8_u10avx2), 16 lanes, ~1 ulp.
// The argument is reduced by pi (Cody-Waite, three parts, in double-float) when all eight lanes
// of an AVX2 vector are below 125 in magnitude, else, for the whole vector, by rempif (Payne-Hanek
// with SLEEF's table of 1/(2 pi) pieces, rempitabsp). The two reductions can differ in the last
// bit, so a lane's result depends on its neighbours: here each half of the 16 lanes takes the path
// its AVX2 vector would, and torch's vectors start at multiples of 8 elements of a row or of its
// 2048-element gather buffer, as ours do (the loops of elementwise_common.h start whole 16-lane
// vectors at multiples of 16). NaN lanes count as large. Checked bit for bit against libsleef on
// every float (uniform and mixed halves) and against torch's hashes in
// tests/kernels/test_vec_sleef_unary.cpp.
#pragma once

#include <cstdint>

#include "kernels/cpu/vec_sleef_df.h"

namespace fabric::cpu::vec {

namespace sleef {

// Sleef_rempitabsp, as libsleef 3.5.1 holds it: four floats per exponent (e - 25 clamped to
// [0, 102]), a double-float-and-a-bit of 1/(2 pi) scaled past that exponent's integer part. The
// last row is the data that follows the table there: infinities and NaNs (exponent 128) index it
// and SLEEF's result for them (NaN) takes its sign from the quadrant it yields.
alignas(64) inline constexpr uint32_t kRempiTab[104 * 4] = {
    0x3e22f980u, 0x335b9390u, 0x2782a540u, 0x9b762a0cu, 0x3d0be60cu, 0x31dc9c88u, 0x24a94fe0u,
    0x191d5f48u, 0x3d0be60cu, 0x31dc9c88u, 0x24a94fe0u, 0x191d5f48u, 0x3b3e60dcu, 0xaed8ddf4u,
    0xa33580f4u, 0x980a82e1u, 0x3b3e60dcu, 0xaed8ddf4u, 0xa33580f4u, 0x980a82e1u, 0x3b3e60dcu,
    0xaed8ddf4u, 0xa33580f4u, 0x980a82e1u, 0x3b3e60dcu, 0xaed8ddf4u, 0xa33580f4u, 0x980a82e1u,
    0x3a79836cu, 0x2f139104u, 0x23a53f84u, 0x17eafa3fu, 0x3a79836cu, 0x2f139104u, 0x23a53f84u,
    0x17eafa3fu, 0x39f306dcu, 0x2d9c8828u, 0x2294fe14u, 0x96282e0bu, 0x39660db8u, 0x2d9c8828u,
    0x2294fe14u, 0x96282e0bu, 0x38cc1b70u, 0x2d9c8828u, 0x2294fe14u, 0x96282e0bu, 0x381836e4u,
    0x2c644150u, 0x2127f09cu, 0x15afa3eau, 0x36c1b724u, 0x2bc882a4u, 0x201fc274u, 0x14be8faau,
    0x36c1b724u, 0x2bc882a4u, 0x201fc274u, 0x14be8faau, 0x36c1b724u, 0x2bc882a4u, 0x201fc274u,
    0x14be8faau, 0x36036e4cu, 0x2b110548u, 0x201fc274u, 0x14be8faau, 0x335b9390u, 0x2782a540u,
    0x9b762a0cu, 0x0efa9a6fu, 0x335b9390u, 0x2782a540u, 0x9b762a0cu, 0x0efa9a6fu, 0x335b9390u,
    0x2782a540u, 0x9b762a0cu, 0x0efa9a6fu, 0x335b9390u, 0x2782a540u, 0x9b762a0cu, 0x0efa9a6fu,
    0x335b9390u, 0x2782a540u, 0x9b762a0cu, 0x0efa9a6fu, 0x335b9390u, 0x2782a540u, 0x9b762a0cu,
    0x0efa9a6fu, 0x32b72720u, 0x2782a540u, 0x9b762a0cu, 0x0efa9a6fu, 0x31dc9c88u, 0x24a94fe0u,
    0x191d5f48u, 0x8c2cb224u, 0x31dc9c88u, 0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u, 0x31393910u,
    0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u, 0x3064e440u, 0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u,
    0x3064e440u, 0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u, 0x2fc9c880u, 0x24a94fe0u, 0x191d5f48u,
    0x8c2cb224u, 0x2f139104u, 0x23a53f84u, 0x17eafa3cu, 0x0ca9a6eeu, 0x2d9c8828u, 0x2294fe14u,
    0x96282e08u, 0x8b32c890u, 0x2d9c8828u, 0x2294fe14u, 0x96282e08u, 0x8b32c890u, 0x2d9c8828u,
    0x2294fe14u, 0x96282e08u, 0x8b32c890u, 0x2c644150u, 0x2127f09cu, 0x15afa3e8u, 0x0a9a6ee0u,
    0x2c644150u, 0x2127f09cu, 0x15afa3e8u, 0x0a9a6ee0u, 0x2c644150u, 0x2127f09cu, 0x15afa3e8u,
    0x0a9a6ee0u, 0x2bc882a4u, 0x201fc274u, 0x14be8fa8u, 0x09537703u, 0x2b110548u, 0x201fc274u,
    0x14be8fa8u, 0x09537703u, 0x29882a54u, 0x9b762a0cu, 0x0efa9a6cu, 0x03b81b6cu, 0x29882a54u,
    0x9b762a0cu, 0x0efa9a6cu, 0x03b81b6cu, 0x29882a54u, 0x9b762a0cu, 0x0efa9a6cu, 0x03b81b6cu,
    0x2782a540u, 0x9b762a0cu, 0x0efa9a6cu, 0x03b81b6cu, 0x2782a540u, 0x9b762a0cu, 0x0efa9a6cu,
    0x03b81b6cu, 0x2782a540u, 0x9b762a0cu, 0x0efa9a6cu, 0x03b81b6cu, 0x2782a540u, 0x9b762a0cu,
    0x0efa9a6cu, 0x03b81b6cu, 0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u, 0x0006db15u, 0x24a94fe0u,
    0x191d5f48u, 0x8c2cb224u, 0x0006db15u, 0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u, 0x0006db15u,
    0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u, 0x0006db15u, 0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u,
    0x0006db15u, 0x24a94fe0u, 0x191d5f48u, 0x8c2cb224u, 0x0006db15u, 0x23a53f84u, 0x17eafa3cu,
    0x0ca9a6ecu, 0x0181b6c5u, 0x23a53f84u, 0x17eafa3cu, 0x0ca9a6ecu, 0x0181b6c5u, 0x2294fe14u,
    0x96282e08u, 0x8b32c890u, 0x0006db15u, 0x2294fe14u, 0x96282e08u, 0x8b32c890u, 0x0006db15u,
    0x2127f09cu, 0x15afa3e8u, 0x0a9a6ee0u, 0x0006db15u, 0x2127f09cu, 0x15afa3e8u, 0x0a9a6ee0u,
    0x0006db15u, 0x2127f09cu, 0x15afa3e8u, 0x0a9a6ee0u, 0x0006db15u, 0x201fc274u, 0x14be8fa8u,
    0x09537700u, 0x0006db15u, 0x201fc274u, 0x14be8fa8u, 0x09537700u, 0x0006db15u, 0x1efe13acu,
    0x91382b2cu, 0x8508fc90u, 0x800004ebu, 0x1efe13acu, 0x91382b2cu, 0x8508fc90u, 0x800004ebu,
    0x1efe13acu, 0x91382b2cu, 0x8508fc90u, 0x800004ebu, 0x1e7c2758u, 0x91382b2cu, 0x8508fc90u,
    0x800004ebu, 0x1df84eb0u, 0x91382b2cu, 0x8508fc90u, 0x800004ebu, 0x3d709d5cu, 0x3251f534u,
    0x265dc0d8u, 0x1b58a566u, 0x3ce13abcu, 0x31a3ea68u, 0x265dc0d8u, 0x1b58a566u, 0x3c42757cu,
    0x308fa9a4u, 0x25bb81b4u, 0x1ab14acdu, 0x3b84eaf8u, 0x308fa9a4u, 0x25bb81b4u, 0x1ab14acdu,
    0x391d5f48u, 0xac2cb224u, 0x1e5b6294u, 0x12cc9e22u, 0x391d5f48u, 0xac2cb224u, 0x1e5b6294u,
    0x12cc9e22u, 0x391d5f48u, 0xac2cb224u, 0x1e5b6294u, 0x12cc9e22u, 0x391d5f48u, 0xac2cb224u,
    0x1e5b6294u, 0x12cc9e22u, 0x391d5f48u, 0xac2cb224u, 0x1e5b6294u, 0x12cc9e22u, 0x37eafa3cu,
    0x2ca9a6ecu, 0x2181b6c4u, 0x1615993cu, 0x37eafa3cu, 0x2ca9a6ecu, 0x2181b6c4u, 0x1615993cu,
    0x37eafa3cu, 0x2ca9a6ecu, 0x2181b6c4u, 0x1615993cu, 0x3755f47cu, 0x2ba69bb8u, 0x1e5b6294u,
    0x12cc9e22u, 0x36abe8f8u, 0x2ba69bb8u, 0x1e5b6294u, 0x12cc9e22u, 0x35afa3e8u, 0x2a9a6ee0u,
    0x1e5b6294u, 0x12cc9e22u, 0x35afa3e8u, 0x2a9a6ee0u, 0x1e5b6294u, 0x12cc9e22u, 0x34be8fa8u,
    0x29537700u, 0x1e5b6294u, 0x12cc9e22u, 0x34be8fa8u, 0x29537700u, 0x1e5b6294u, 0x12cc9e22u,
    0x33fa3ea4u, 0x28a6ee04u, 0x1db6c528u, 0x12cc9e22u, 0x33fa3ea4u, 0x28a6ee04u, 0x1db6c528u,
    0x12cc9e22u, 0x33747d4cu, 0x279bb818u, 0x1cdb14acu, 0x10c9e21du, 0x32e8fa98u, 0x279bb818u,
    0x1cdb14acu, 0x10c9e21du, 0x3251f534u, 0x265dc0d8u, 0x1b58a564u, 0x1013c439u, 0x31a3ea68u,
    0x265dc0d8u, 0x1b58a564u, 0x1013c439u, 0x308fa9a4u, 0x25bb81b4u, 0x1ab14accu, 0x0e9e21c8u,
    0x308fa9a4u, 0x25bb81b4u, 0x1ab14accu, 0x0e9e21c8u, 0x2efa9a6cu, 0x23b81b6cu, 0x1725664cu,
    0x0c443904u, 0x2efa9a6cu, 0x23b81b6cu, 0x1725664cu, 0x0c443904u, 0x2efa9a6cu, 0x23b81b6cu,
    0x1725664cu, 0x0c443904u, 0x2efa9a6cu, 0x23b81b6cu, 0x1725664cu, 0x0c443904u, 0x2e7534dcu,
    0x22e06db0u, 0x1725664cu, 0x0c443904u, 0x2dea69bcu, 0xa17c9274u, 0x95d4cd84u, 0x8ade37dfu,
    0x2d54d374u, 0x2240db60u, 0x1725664cu, 0x0c443904u, 0x2ca9a6ecu, 0x2181b6c4u, 0x1615993cu,
    0x09872084u, 0x2ba69bb8u, 0x1e5b6294u, 0x12cc9e20u, 0x07641080u, 0x2ba69bb8u, 0x1e5b6294u,
    0x12cc9e20u, 0x07641080u, 0x2a9a6ee0u, 0x1e5b6294u, 0x12cc9e20u, 0x07641080u, 0x4e6e6b28u,
    0x00000000u, 0x00000000u, 0x00000000u,
};

struct Reduced {  // the argument less q quarter (or half) turns, and q
  F2 s;
  __m512i q;
};

// rempisubf (FULL_FP_ROUNDING form): x less its nearest quarter, and that quarter count mod 4.
FABRIC_VEC_INLINE __m512 rempisub(__m512 x, __m512i& q) {
  const __m512 y = rint(mul(x, splat(4.0f)));
  q = _mm512_cvttps_epi32(sub(y, mul(rint(x), splat(4.0f))));
  return sub(x, mul(y, splat(0.25f)));
}

// rempif: a mod (pi/2) as a double-float, with the quarter count.
FABRIC_VEC_INLINE Reduced rempif(__m512 a) {
  __m512i ex = _mm512_sub_epi32(
      _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(a), 23), i32(0xff)), i32(0x7f + 25));
  const __mmask16 huge = _mm512_cmplt_epi32_mask(i32(90 - 25), ex);
  a = _mm512_castsi512_ps(
      _mm512_mask_add_epi32(_mm512_castps_si512(a), huge, _mm512_castps_si512(a), i32(-64 << 23)));
  ex = _mm512_mask_mov_epi32(ex, _mm512_cmplt_epi32_mask(ex, _mm512_setzero_si512()),
                             _mm512_setzero_si512());
  const __m512i idx = _mm512_slli_epi32(ex, 2);
  const auto tab = [&](int k) {
    return _mm512_i32gather_ps(idx, reinterpret_cast<const float*>(kRempiTab) + k, 4);
  };
  __m512i q, q2;
  F2 x = mul_ff(a, tab(0));
  x.x = rempisub(x.x, q);
  x = normalize(x);
  x = add2_FF(x, mul_ff(a, tab(1)));
  x.x = rempisub(x.x, q2);
  q = _mm512_add_epi32(q, q2);
  x = normalize(x);
  x = add2_FF(x, mul_Ff({tab(2), tab(3)}, a));
  x = normalize(x);
  x = mul_FF(x, {splat(3.1415927410125732422f * 2), splat(-8.7422776573475857731e-08f * 2)});
  x = select(_mm512_cmp_ps_mask(_mm512_abs_ps(a), splat(0.7f), _CMP_LT_OQ),
             F2{a, _mm512_setzero_ps()}, x);
  return {x, q};
}

constexpr float kPiA2 = 3.1414794921875f, kPiB2 = 0.00011315941810607910156f,
                kPiC2 = 1.9841872589410058936e-09f;
constexpr float k1Pi = 0.318309886183790671537767526745028724f;  // (float)M_1_PI

FABRIC_VEC_INLINE Reduced sin_small(__m512 d) {  // |d| < 125: d - q pi, Cody-Waite
  const __m512 u = rint(mul(d, splat(k1Pi)));
  const __m512 v = fma(u, splat(-kPiA2), d);
  F2 s = add2_ff(v, mul(u, splat(-kPiB2)));
  s = add_Ff(s, mul(u, splat(-kPiC2)));
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
  x = add2_FF(r.s, x);
  F2 s = normalize(select(odd, x, r.s));
  s.x = or_ones(is_inf(d) | is_nan(d), s.x);
  return {s, q};
}
FABRIC_VEC_INLINE Reduced cos_small(__m512 d) {  // |d| < 125: d - (2q' + 1) pi/2
  const __m512 dq = fma(rint(fma(d, splat(k1Pi), splat(-0.5f))), splat(2.0f), splat(1.0f));
  F2 s = add2_ff(d, mul(dq, splat(-kPiA2 * 0.5f)));
  s = add2_Ff(s, mul(dq, splat(-kPiB2 * 0.5f)));
  s = add2_Ff(s, mul(dq, splat(-kPiC2 * 0.5f)));
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
  x = add2_FF(r.s, x);
  F2 s = normalize(select(even, x, r.s));
  s.x = or_ones(is_inf(d) | is_nan(d), s.x);
  return {s, q};
}

// Each 8-lane half reduced as its own AVX2 vector would be: small(d) when all its lanes are below
// 125 in magnitude, large(d) otherwise.
template <typename Small, typename Large>
FABRIC_VEC_INLINE Reduced reduce_by_halves(__m512 d, const Small& small, const Large& large) {
  const __mmask16 lt = _mm512_cmp_ps_mask(_mm512_abs_ps(d), splat(125.0f), _CMP_LT_OQ);
  const bool lo = (lt & 0xFF) == 0xFF, hi = (lt & 0xFF00) == 0xFF00;
  if (__builtin_expect(lo && hi, 1)) return small(d);
  Reduced r = large(d);
  if (lo || hi) {
    const __mmask16 m = static_cast<__mmask16>((lo ? 0x00FF : 0) | (hi ? 0xFF00 : 0));
    const Reduced s = small(d);
    r.s = select(m, s.s, r.s);
    r.q = _mm512_mask_mov_epi32(r.q, m, s.q);
  }
  return r;
}

// sin(s) (or cos, by the caller's q) of the reduced double-float s, before the quadrant's sign.
FABRIC_VEC_INLINE __m512 sin_poly(F2 s) {
  const F2 t = s;
  s = squ(s);
  __m512 u = splat(2.6083159809786593541503e-06f);
  u = fma(u, s.x, splat(-0.0001981069071916863322258f));
  u = fma(u, s.x, splat(0.00833307858556509017944336f));
  const F2 x =
      add_fF(splat(1.0f), mul_FF(add_ff(splat(-0.166666597127914428710938f), mul(u, s.x)), s));
  return mul_FF_f(t, x);
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
