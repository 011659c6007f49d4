// SLEEF's atanf_u10, asinf_u10, acosf_u10 and tanf_u10 (FMA form, as Sleef_<op>f8_u10avx2 compute
// them), 16 lanes: torch 1.13's float32 torch.atan / asin / acos / tan map every element, tail and
// strided ones included, through these (vml::v<op>). ~1 ulp, double-float inside (vec_sleef_f2.h).
// Checked lane by lane against Debian's libsleef and through the ops against torch
// (tests/kernels/test_vec_sleef_math.cpp).
#pragma once

#include <cmath>
#include <limits>

#include "kernels/cpu/vec_sleef_f2.h"
#include "kernels/cpu/vec_sleef_rempi.h"

namespace fabric::cpu::vec {

// xatanf_u1: atan(|d|) in double-float (atan2kf_u1 with x = 1: for |d| > 1 as
// atan(-1 / |d|) + pi/2), its sign then d's.
FABRIC_VEC_INLINE __m512 atanf_u10_ps(__m512 d) {
  using namespace sleef_f2;
  const __m512 y = abs(d), one = splat(1.0f);
  const __mmask16 p = lt(one, y);
  const F2 s = div(sel(p, F2{splat(-1.0f), splat(-0.0f)}, F2{y, splat(0.0f)}),
                   sel(p, F2{y, splat(0.0f)}, F2{one, splat(0.0f)}));
  F2 t = normalize(squ(s));
  __m512 u = splat(-0.00176397908944636583328247f);
  u = fma(u, t.x, splat(0.0107900900766253471374512f));
  u = fma(u, t.x, splat(-0.0309564601629972457885742f));
  u = fma(u, t.x, splat(0.0577365085482597351074219f));
  u = fma(u, t.x, splat(-0.0838950723409652709960938f));
  u = fma(u, t.x, splat(0.109463557600975036621094f));
  u = fma(u, t.x, splat(-0.142626821994781494140625f));
  u = fma(u, t.x, splat(0.199983194470405578613281f));
  t = mul(t, add_ff(splat(-0.333332866430282592773438f), mul(u, t.x)));
  t = mul(s, add(one, t));
  const __m512 q = sel(p, one, splat(0.0f));
  t = add(mul(F2{splat(1.5707963705062866211f), splat(-4.3711388286737928865e-08f)}, q), t);
  __m512 r = add(t.x, t.y);
  r = sel(eq(y, splat(std::numeric_limits<float>::infinity())), splat(1.570796326794896557998982f),
          r);
  return mulsign(r, d);
}

namespace sleef_f2 {
// The shared start of asinf_u1 / acosf_u1: o = |d| < 0.5, x2 = d^2 or (1 - |d|) / 2, x = |d| or
// sqrt(x2) in double-float (0 at |d| = 1), and u = the odd polynomial's tail times x2 x.
FABRIC_VEC_INLINE __m512 asin_reduce(__m512 d, __mmask16& o, F2& x) {
  const __m512 a = abs(d);
  o = lt(a, splat(0.5f));
  const __m512 x2 = sel(o, mul(d, d), mul(sub(splat(1.0f), a), splat(0.5f)));
  x = sel(o, F2{a, splat(0.0f)}, sqrt_f(x2));
  x = sel(eq(a, splat(1.0f)), F2{splat(0.0f), splat(0.0f)}, x);
  __m512 u = splat(+0.4197454825e-1f);
  u = fma(u, x2, splat(+0.2424046025e-1f));
  u = fma(u, x2, splat(+0.4547423869e-1f));
  u = fma(u, x2, splat(+0.7495029271e-1f));
  u = fma(u, x2, splat(+0.1666677296e+0f));
  return mul(u, mul(x2, x.x));
}
}  // namespace sleef_f2

FABRIC_VEC_INLINE __m512 asinf_u10_ps(__m512 d) {
  using namespace sleef_f2;
  __mmask16 o;
  F2 x;
  const __m512 u = asin_reduce(d, o, x);
  // pi/2 - 2 asin(sqrt((1 - |d|) / 2)), as (pi/4 - x - u) * 2
  const F2 y =
      sub(sub(F2{splat(3.1415927410125732422f / 4), splat(-8.7422776573475857731e-08f / 4)}, x), u);
  const __m512 r = sel(o, add(u, x.x), mul(add(y.x, y.y), splat(2.0f)));
  return mulsign(r, d);
}

FABRIC_VEC_INLINE __m512 acosf_u10_ps(__m512 d) {
  using namespace sleef_f2;
  __mmask16 o;
  F2 x;
  const __m512 u = asin_reduce(d, o, x);
  F2 y = sub(F2{splat(3.1415927410125732422f / 2), splat(-8.7422776573475857731e-08f / 2)},
             add_ff(mulsign(x.x, d), mulsign(u, d)));
  x = add(x, u);
  y = sel(o, y, scale(x, splat(2.0f)));
  const __mmask16 flip = static_cast<__mmask16>(~o & lt(d, splat(0.0f)));
  y = sel(flip, sub(F2{splat(3.1415927410125732422f), splat(-8.7422776573475857731e-08f)}, y), y);
  return add(y.x, y.y);
}

// tan: SLEEF reduces by pi/2 with Cody-Waite when all 8 lanes of its AVX2 vector have |d| < 125,
// else every lane of those 8 through rempif (Payne-Hanek); the two reductions could differ in the
// last bit (none seen in 70000 random values below 125), so each 8-lane half here picks as SLEEF's
// vector holding those lanes would (torch's vectors start at the buffer start, as the 16-lane
// loops' halves do).
FABRIC_VEC_INLINE __m512 tanf_u10_ps(__m512 d) {
  using namespace sleef_f2;
  const __m512 u0 = _mm512_roundscale_ps(mul(d, splat(static_cast<float>(2 * M_1_PI))),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512i q = _mm512_cvttps_epi32(u0);
  F2 s = add2_ff(fma(u0, splat(-3.1414794921875f * 0.5f), d),
                 mul(u0, splat(-0.00011315941810607910156f * 0.5f)));
  s = add(s, mul(u0, splat(-1.9841872589410058936e-09f * 0.5f)));
  const __mmask16 big = static_cast<__mmask16>(~lt(abs(d), splat(125.0f)));
  if (big != 0) {
    const __mmask16 halves =
        static_cast<__mmask16>(((big & 0x00FF) ? 0x00FF : 0) | ((big & 0xFF00) ? 0xFF00 : 0));
    __m512i qr;
    F2 r = rempif(d, qr);
    const __mmask16 special = static_cast<__mmask16>(
        isnan(d) | eq(abs(d), splat(std::numeric_limits<float>::infinity())));
    r = {or_ones(special, r.x), or_ones(special, r.y)};
    s = sel(halves, r, s);
    q = _mm512_mask_mov_epi32(q, halves, qr);
  }
  const __mmask16 o =
      _mm512_cmpeq_epi32_mask(_mm512_and_si512(q, _mm512_set1_epi32(1)), _mm512_set1_epi32(1));
  s = {sel(o, _mm512_xor_ps(s.x, splat(-0.0f)), s.x),
       sel(o, _mm512_xor_ps(s.y, splat(-0.0f)), s.y)};
  const F2 t = s;
  s = normalize(squ(s));
  __m512 u = splat(0.00446636462584137916564941f);
  u = fma(u, s.x, splat(-8.3920182078145444393158e-05f));
  u = fma(u, s.x, splat(0.0109639242291450500488281f));
  u = fma(u, s.x, splat(0.0212360303848981857299805f));
  u = fma(u, s.x, splat(0.0540687143802642822265625f));
  F2 x = add_ff(splat(0.133325666189193725585938f), mul(u, s.x));
  x = add(splat(1.0f), mul(add(splat(0.33333361148834228515625f), mul(s, x)), s));
  x = mul(t, x);
  x = sel(o, rec(x), x);
  const __m512 r = add(x.x, x.y);
  const __mmask16 negzero = _mm512_cmpeq_epi32_mask(
      _mm512_castps_si512(d), _mm512_set1_epi32(static_cast<int>(0x80000000u)));
  return sel(negzero, d, r);
}

}  // namespace fabric::cpu::vec
