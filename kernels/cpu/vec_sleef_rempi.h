// SLEEF's Payne-Hanek reduction for float arguments too large for Cody-Waite (rempif in
// src/libm/sleefsimdsp.c, FMA form, as Debian's libsleef3 3.5.1 has it): a = (q + r / (pi/2))
// quarter turns with r in double-float, |r| <= pi/4. sinf_u10_ps / cosf_u10_ps
// (vec_sleef_sincos.h) and tanf_u10_ps (vec_sleef_trig.h) take it for 8-lane groups holding a
// lane with |a| >= 125 (or NaN).
#pragma once

#include <cstdint>

#include "kernels/cpu/vec_sleef_df.h"

namespace fabric::cpu::vec::sleef {

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

// (x - rint(4x) / 4, rint(4x) - 4 rint(x)): the quarter turns of x and what they leave
// (rempisubf, FULL_FP_ROUNDING form; its products are by powers of two, exact, so fma
// contraction cannot change them).
FABRIC_VEC_INLINE __m512 rempisub(__m512 x, __m512i& q) {
  const __m512 y = rint(_mm512_mul_ps(x, splat(4.0f)));
  q = _mm512_cvttps_epi32(sub(y, _mm512_mul_ps(rint(x), splat(4.0f))));
  return sub(x, _mm512_mul_ps(y, splat(0.25f)));
}

// rempif: a mod (pi/2) as a double-float, with the quarter count (its low bits matter).
FABRIC_VEC_INLINE Reduced rempif(__m512 a) {
  __m512i ex = _mm512_sub_epi32(
      _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(a), 23), i32(0xff)), i32(0x7f + 25));
  // exponents above 90 scaled down by 2^64 (the table row already accounts for it)
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
  x = add2(x, mul_ff(a, tab(1)));
  x.x = rempisub(x.x, q2);
  q = _mm512_add_epi32(q, q2);
  x = normalize(x);
  x = add2(x, mul(F2{tab(2), tab(3)}, a));
  x = normalize(x);
  x = mul(x, F2{splat(3.1415927410125732422f * 2), splat(-8.7422776573475857731e-08f * 2)});
  return {sel(lt(abs(a), splat(0.7f)), F2{a, _mm512_setzero_ps()}, x), q};
}

// SLEEF's sinf/cosf/tanf_u1 reduce by Cody-Waite (small) when all 8 lanes of their AVX2 vector
// have |d| < 125, else every lane of those 8 by rempif (large); the two can differ in the last
// bit, so each 8-lane half here is reduced as its own AVX2 vector would be (torch's vectors start
// at the buffer start, as the 16-lane loops' halves do). NaN lanes count as large.
template <typename Small, typename Large>
FABRIC_VEC_INLINE Reduced reduce_by_halves(__m512 d, const Small& small, const Large& large) {
  const __mmask16 below = lt(abs(d), splat(125.0f));
  const bool lo = (below & 0xFF) == 0xFF, hi = (below & 0xFF00) == 0xFF00;
  if (__builtin_expect(lo && hi, 1)) return small(d);
  Reduced r = large(d);
  if (lo || hi) {
    const __mmask16 m = static_cast<__mmask16>((lo ? 0x00FF : 0) | (hi ? 0xFF00 : 0));
    const Reduced s = small(d);
    r.s = sel(m, s.s, r.s);
    r.q = _mm512_mask_mov_epi32(r.q, m, s.q);
  }
  return r;
}

}  // namespace fabric::cpu::vec::sleef
