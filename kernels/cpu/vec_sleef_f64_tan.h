// SLEEF 3.5.1's xtan_u1 (FMA form, as Sleef_tand4_u10avx2 computes it), 8 lanes, ~1 ulp: the
// argument reduced by pi/2 (vec_sleef_f64_rempi.h's three paths, chosen per 4-lane half as SLEEF's
// AVX2 vectors choose them) to a double-double s, tan(s/2) by an odd polynomial, then the
// double-angle formula, reciprocal for odd quadrants. torch 1.13's float64 torch.tan maps every
// element, tail and strided ones included, through it (vml::vtan).
#pragma once

#include "kernels/cpu/vec_sleef_f64_sincos.h"

namespace fabric::cpu::vec {

namespace sleef64 {

inline constexpr double k2Pi = 0.636619772367581343075535053490057448;  // M_2_PI
inline constexpr double k2PiH = 0.63661977236758138243, k2PiL = -3.9357353350364971764e-17;

// d - q pi/2
FABRIC_VEC_INLINE Reduced tan_small(VD d) {
  const VD dql = rint(mul(d, splat(k2Pi)));
  const VD u = fma(dql, splat(-kPiA2 * 0.5), d);
  return {add_dd(u, mul(dql, splat(-kPiB2 * 0.5))), rint_i32(dql)};
}
FABRIC_VEC_INLINE Reduced tan_medium(VD d) {
  const VD dqh = mul(trunc(mul(d, splat(k2Pi / (1 << 24)))), splat(1 << 24));
  D2 s = add2(mul(dd(k2PiH, k2PiL), d), sub(sel(cmp_lt(d, zero()), splat(-0.5), splat(0.5)), dqh));
  const VD dql = trunc(sum(s));
  const VD u = fma(dqh, splat(-kPiA * 0.5), d);
  s = add_dd(u, mul(dql, splat(-kPiA * 0.5)));
  s = add2(s, mul(dqh, splat(-kPiB * 0.5)));
  s = add2(s, mul(dql, splat(-kPiB * 0.5)));
  s = add2(s, mul(dqh, splat(-kPiC * 0.5)));
  s = add2(s, mul(dql, splat(-kPiC * 0.5)));
  s = add(s, mul(add(dqh, dql), splat(-kPiD * 0.5)));
  return {s, rint_i32(dql)};
}
FABRIC_VEC_INLINE Reduced tan_large(VD d) {
  Reduced r = rempi(d);
  const MD special = m_or(isinf(d), isnan(d));
  r.s = {or_ones(special, r.s.x), or_ones(special, r.s.y)};
  return r;
}

}  // namespace sleef64

FABRIC_VEC_INLINE sleef64::VD tan_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  const Reduced r = reduce_by_halves(
      d, kTrigRangeMax, [](VD v) { return tan_small(v); }, [](VD v) { return tan_medium(v); },
      [](VD v) { return tan_large(v); });
  const D2 t = scale(r.s, splat(0.5));
  const D2 s = squ(t);
  const VD s2 = mul(s.x, s.x), s4 = mul(s2, s2);
  static constexpr double kC[8] = {+0.3245098826639276316e-3, +0.5619219738114323735e-3,
                                   +0.1460781502402784494e-2, +0.3591611540792499519e-2,
                                   +0.8863268409563113126e-2, +0.2186948728185535498e-1,
                                   +0.5396825399517272970e-1, +0.1333333333330500581e+0};
  VD u = poly8(s.x, s2, s4, kC);
  u = fma(u, s.x, splat(+0.3333333333333343695e+0));
  D2 x = add(t, mul(mul(s, t), u));
  const D2 y = add(splat(-1.0), squ(x));
  x = scale(x, splat(-2.0));
  const MD odd = ieq(iand(r.q, isplat(1)), 1);
  x = div(sel(odd, neg(y), x), sel(odd, x, y));
  return sel(cmp_eq(d, zero()), d, sum(x));
}

}  // namespace fabric::cpu::vec
