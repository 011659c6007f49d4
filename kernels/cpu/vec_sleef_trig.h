// SLEEF's atanf_u10, asinf_u10, acosf_u10 and tanf_u10 (FMA form, as Sleef_<op>f8_u10avx2 compute
// them), 16 lanes: torch 1.13's float32 torch.atan / asin / acos / tan map every element, tail and
// strided ones included, through these (vml::v<op>). ~1 ulp, double-float inside (vec_sleef_df.h).
// Checked lane by lane against Debian's libsleef and through the ops against torch
// (tests/kernels/test_vec_sleef_math.cpp).
#pragma once

#include <cmath>
#include <limits>

#include "kernels/cpu/vec_sleef_df.h"
#include "kernels/cpu/vec_sleef_rempi.h"

namespace fabric::cpu::vec {

// xatanf_u1: atan(|d|) in double-float (atan2kf_u1 with x = 1: for |d| > 1 as
// atan(-1 / |d|) + pi/2), its sign then d's.
FABRIC_VEC_INLINE __m512 atanf_u10_ps(__m512 d) {
  using namespace sleef;
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

namespace sleef {
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
}  // namespace sleef

FABRIC_VEC_INLINE __m512 asinf_u10_ps(__m512 d) {
  using namespace sleef;
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
  using namespace sleef;
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

namespace sleef {
// tan's Cody-Waite reduction: d - q pi/2 in double-float, |d| < 125
FABRIC_VEC_INLINE Reduced tan_small(__m512 d) {
  const __m512 u0 = rint(mul(d, splat(static_cast<float>(2 * M_1_PI))));
  F2 s = add2_ff(fma(u0, splat(-3.1414794921875f * 0.5f), d),
                 mul(u0, splat(-0.00011315941810607910156f * 0.5f)));
  s = add(s, mul(u0, splat(-1.9841872589410058936e-09f * 0.5f)));
  return {s, _mm512_cvttps_epi32(u0)};
}
FABRIC_VEC_INLINE Reduced tan_large(__m512 d) {
  Reduced r = rempif(d);
  const __mmask16 special = static_cast<__mmask16>(isnan(d) | isinf(d));
  r.s = {or_ones(special, r.s.x), or_ones(special, r.s.y)};
  return r;
}
}  // namespace sleef

// tan: reduced by pi/2, each 8-lane half as SLEEF's AVX2 vector holding it would (reduce_by_halves,
// vec_sleef_rempi.h).
FABRIC_VEC_INLINE __m512 tanf_u10_ps(__m512 d) {
  using namespace sleef;
  const Reduced red = reduce_by_halves(
      d, [](__m512 v) { return tan_small(v); }, [](__m512 v) { return tan_large(v); });
  const __mmask16 o = _mm512_cmpeq_epi32_mask(_mm512_and_si512(red.q, i32(1)), i32(1));
  F2 s = {sel(o, _mm512_xor_ps(red.s.x, splat(-0.0f)), red.s.x),
          sel(o, _mm512_xor_ps(red.s.y, splat(-0.0f)), red.s.y)};
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
  return sel(is_neg_zero(d), d, r);
}

}  // namespace fabric::cpu::vec
