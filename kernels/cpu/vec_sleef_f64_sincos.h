// SLEEF 3.5.1's xsin_u1 and xcos_u1 (FMA form, as Sleef_sind4_u10avx2 / Sleef_cosd4_u10avx2 compute
// them), 8 lanes, ~1 ulp: the argument reduced by pi (by vec_sleef_f64_rempi.h's three paths,
// chosen per 4-lane half as SLEEF's AVX2 vectors choose them) to a double-double s, then an odd
// polynomial in s^2 finished in double-double. torch 1.13's float64 torch.sin / cos map every
// element, tail and gathered strided elements included, through these (vml::vsin / vcos);
// elementwise_unary.cpp starts the 8-lane vectors where torch's 4-lane ones start.
#pragma once

#include "kernels/cpu/vec_sleef_f64_rempi.h"

namespace fabric::cpu::vec {

namespace sleef64 {

inline constexpr double kPiA = 3.1415926218032836914, kPiB = 3.1786509424591713469e-08,
                        kPiC = 1.2246467864107188502e-16, kPiD = 1.2736634327021899816e-24;
inline constexpr double kPiA2 = 3.141592653589793116, kPiB2 = 1.2246467991473532072e-16;
inline constexpr double k1Pi = 0.318309886183790671537767526745028724;  // M_1_PI

// sin: d - q pi
FABRIC_VEC_INLINE Reduced sin_small(VD d) {
  const VD dql = rint(mul(d, splat(k1Pi)));
  const VD u = fma(dql, splat(-kPiA2), d);
  return {add_dd(u, mul(dql, splat(-kPiB2))), rint_i32(dql)};
}
FABRIC_VEC_INLINE Reduced sin_medium(VD d) {
  const VD dqh = mul(trunc(mul(d, splat(k1Pi / (1 << 24)))), splat(1 << 24));
  const VD dql = rint(fms(d, splat(k1Pi), dqh));
  const VD u = fma(dqh, splat(-kPiA), d);
  D2 s = add_dd(u, mul(dql, splat(-kPiA)));
  s = add2(s, mul(dqh, splat(-kPiB)));
  s = add2(s, mul(dql, splat(-kPiB)));
  s = add2(s, mul(dqh, splat(-kPiC)));
  s = add2(s, mul(dql, splat(-kPiC)));
  s = add(s, mul(add(dqh, dql), splat(-kPiD)));
  return {s, rint_i32(dql)};
}
FABRIC_VEC_INLINE Reduced sin_large(VD d) {
  const Reduced r = rempi(d);
  VI q = iand(r.q, isplat(3));
  q = iadd(iadd(q, q), isel(cmp_gt(r.s.x, zero()), isplat(2), isplat(1)));
  q = isra<2>(q);
  const MD odd = ieq(iand(r.q, isplat(1)), 1);
  D2 x = {mulsign(splat(-3.141592653589793116 * 0.5), r.s.x),
          mulsign(splat(-1.2246467991473532072e-16 * 0.5), r.s.x)};
  x = add2(r.s, x);
  D2 s = normalize(sel(odd, x, r.s));
  s.x = or_ones(m_or(isinf(d), isnan(d)), s.x);
  return {s, q};
}

// cos: d - (2q' + 1) pi/2
FABRIC_VEC_INLINE Reduced cos_small(VD d) {
  VD dql = rint(fma(d, splat(k1Pi), splat(-0.5)));
  dql = fma(splat(2.0), dql, splat(1.0));
  D2 s = add2_dd(d, mul(dql, splat(-kPiA2 * 0.5)));
  s = add(s, mul(dql, splat(-kPiB2 * 0.5)));
  return {s, rint_i32(dql)};
}
FABRIC_VEC_INLINE Reduced cos_medium(VD d) {
  VD dqh = trunc(fma(d, splat(k1Pi / (1 << 23)), splat(-k1Pi / (1 << 24))));
  VI q = rint_i32(add(mul(d, splat(k1Pi)), fma(dqh, splat(-(1 << 23)), splat(-0.5))));
  dqh = mul(dqh, splat(1 << 24));
  q = iadd(iadd(q, q), isplat(1));
  const VD dql = to_pd(q);
  const VD u = fma(dqh, splat(-kPiA * 0.5), d);
  D2 s = add2_dd(u, mul(dql, splat(-kPiA * 0.5)));
  s = add2(s, mul(dqh, splat(-kPiB * 0.5)));
  s = add2(s, mul(dql, splat(-kPiB * 0.5)));
  s = add2(s, mul(dqh, splat(-kPiC * 0.5)));
  s = add2(s, mul(dql, splat(-kPiC * 0.5)));
  s = add(s, mul(add(dqh, dql), splat(-kPiD * 0.5)));
  return {s, q};
}
FABRIC_VEC_INLINE Reduced cos_large(VD d) {
  const Reduced r = rempi(d);
  const MD pos = cmp_gt(r.s.x, zero());
  VI q = iand(r.q, isplat(3));
  q = iadd(iadd(q, q), isel(pos, isplat(8), isplat(7)));
  q = isra<1>(q);
  const MD even = ieq(iand(r.q, isplat(1)), 0);
  const VD y = sel(pos, zero(), splat(-1.0));
  D2 x = {mulsign(splat(-3.141592653589793116 * 0.5), y),
          mulsign(splat(-1.2246467991473532072e-16 * 0.5), y)};
  x = add2(r.s, x);
  D2 s = normalize(sel(even, x, r.s));
  s.x = or_ones(m_or(isinf(d), isnan(d)), s.x);
  return {s, q};
}

// sin(s) of the reduced double-double s, before the quadrant's sign.
FABRIC_VEC_INLINE VD sin_poly(D2 s) {
  const D2 t = s;
  s = squ(s);
  const VD s2 = mul(s.x, s.x), s4 = mul(s2, s2);
  VD u = poly6(s.x, s2, s4,
               {2.72052416138529567917983e-15, -7.6429259411395447190023e-13,
                1.60589370117277896211623e-10, -2.5052106814843123359368e-08,
                2.75573192104428224777379e-06, -0.000198412698412046454654947});
  u = fma(u, s.x, splat(0.00833333333333318056201922));
  const D2 x = add(splat(1.0), mul(add_dd(splat(-0.166666666666666657414808), mul(u, s.x)), s));
  return mul_d(t, x);
}

FABRIC_VEC_INLINE VD flip_where(MD m, VD u) { return sel(m, neg(u), u); }

}  // namespace sleef64

FABRIC_VEC_INLINE sleef64::VD sin_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  const Reduced r = reduce_by_halves(
      d, kTrigRangeMax, [](VD v) { return sin_small(v); }, [](VD v) { return sin_medium(v); },
      [](VD v) { return sin_large(v); });
  const VD u = flip_where(ieq(iand(r.q, isplat(1)), 1), sin_poly(r.s));
  return sel(cmp_eq(d, zero()), d, u);
}

FABRIC_VEC_INLINE sleef64::VD cos_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  const Reduced r = reduce_by_halves(
      d, kTrigRangeMax, [](VD v) { return cos_small(v); }, [](VD v) { return cos_medium(v); },
      [](VD v) { return cos_large(v); });
  return flip_where(ieq(iand(r.q, isplat(2)), 0), sin_poly(r.s));
}

}  // namespace fabric::cpu::vec
