// SLEEF 3.5.1's xatan_u1, xasin_u1 and xacos_u1 (FMA form, as Sleef_atand4_u10avx2,
// Sleef_asind4_u10avx2 and Sleef_acosd4_u10avx2 compute them), 8 lanes: torch 1.13's float64
// torch.atan / asin / acos map every element, tail and strided ones included, through these
// (vml::v<op>). ~1 ulp, double-double inside (vec_sleef_f64_dd.h). Each lane depends on its own
// input only.
#pragma once

#include "kernels/cpu/vec_sleef_f64_dd.h"

namespace fabric::cpu::vec {

namespace sleef64 {

// atan2k_u1: atan(y / x) in double-double for y >= 0, the quadrant from x's sign and |x| < y.
FABRIC_VEC_INLINE D2 atan2k_u1(D2 y, D2 x) {
  const VI neg_x = isel(signbit(x.x), isplat(-2), isplat(0));
  const VD flip = sel(cmp_lt(x.x, zero()), splat(-0.0), zero());
  x = {bit_xor(flip, x.x), bit_xor(flip, x.y)};
  const MD p = cmp_lt(x.x, y.x);
  const VI q = isel(p, iadd(neg_x, isplat(1)), neg_x);
  D2 s = sel(p, neg(x), y);
  D2 t = sel(p, y, x);
  s = div(s, t);
  t = normalize(squ(s));
  const VD t2 = mul(t.x, t.x), t4 = mul(t2, t2), t8 = mul(t4, t4);
  static constexpr double kC[16] = {
      1.06298484191448746607415e-05, -0.000125620649967286867384336, 0.00070557664296393412389774,
      -0.00251865614498713360352999, 0.00646262899036991172313504,   -0.0128281333663399031014274,
      0.0208024799924145797902497,   -0.0289002344784740315686289,   0.0359785005035104590853656,
      -0.041848579703592507506027,   0.0470843011653283988193763,    -0.0524914210588448421068719,
      0.0587946590969581003860434,   -0.0666620884778795497194182,   0.0769225330296203768654095,
      -0.0909090442773387574781907};
  VD u = poly16(t.x, t2, t4, t8, kC);
  u = fma(u, t.x, splat(0.111111108376896236538123));
  u = fma(u, t.x, splat(-0.142857142756268568062339));
  u = fma(u, t.x, splat(0.199999999997977351284817));
  u = fma(u, t.x, splat(-0.333333333333317605173818));
  t = add(s, mul(mul(s, t), u));
  return add(mul(dd(1.570796326794896557998982, 6.12323399573676603586882e-17), to_pd(q)), t);
}

// The shared start of asin_u1 / acos_u1: o = |d| < 0.5, x2 = d^2 or (1 - |d|) / 2, x = |d| or
// sqrt(x2) in double-double (0 at |d| = 1), and the odd series' tail u = p(x2) x2 x.
FABRIC_VEC_INLINE VD asin_reduce(VD d, MD& o, D2& x) {
  const VD a = abs(d);
  o = cmp_lt(a, splat(0.5));
  const VD x2 = sel(o, mul(d, d), mul(sub(splat(1.0), a), splat(0.5)));
  x = sel(o, dd(a), sqrt_d(x2));
  x = sel(cmp_eq(a, splat(1.0)), dd(0.0, 0.0), x);
  const VD x4 = mul(x2, x2), x8 = mul(x4, x4), x16 = mul(x8, x8);
  const VD u =
      poly12(x2, x4, x8, x16,
             {+0.3161587650653934628e-1, -0.1581918243329996643e-1, +0.1929045477267910674e-1,
              +0.6606077476277170610e-2, +0.1215360525577377331e-1, +0.1388715184501609218e-1,
              +0.1735956991223614604e-1, +0.2237176181932048341e-1, +0.3038195928038132237e-1,
              +0.4464285681377102438e-1, +0.7500000000378581611e-1, +0.1666666666666497543e+0});
  return mul(u, mul(x2, x.x));
}

inline constexpr double kPiHi = 3.141592653589793116, kPiLo = 1.2246467991473532072e-16;

}  // namespace sleef64

// atan(|d|) through atan2k_u1(|d|, 1), pi/2 at infinity, d's sign last.
FABRIC_VEC_INLINE sleef64::VD atan_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  const D2 t = atan2k_u1(dd(abs(d)), dd(1.0, 0.0));
  const VD r = sel(isinf(d), splat(1.570796326794896557998982), sum(t));
  return mulsign(r, d);
}

FABRIC_VEC_INLINE sleef64::VD asin_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  MD o;
  D2 x;
  const VD u = asin_reduce(d, o, x);
  // pi/2 - 2 asin(sqrt((1 - |d|) / 2)), as (pi/4 - x - u) * 2
  const D2 y = sub(sub(dd(kPiHi / 4, kPiLo / 4), x), u);
  const VD r = sel(o, add(u, x.x), mul(sum(y), splat(2.0)));
  return mulsign(r, d);
}

FABRIC_VEC_INLINE sleef64::VD acos_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  MD o;
  D2 x;
  const VD u = asin_reduce(d, o, x);
  D2 y = sub(dd(kPiHi / 2, kPiLo / 2), add_dd(mulsign(x.x, d), mulsign(u, d)));
  x = add(x, u);
  y = sel(o, y, scale(x, splat(2.0)));
  y = sel(m_andnot(o, cmp_lt(d, zero())), sub(dd(kPiHi, kPiLo), y), y);
  return sum(y);
}

}  // namespace fabric::cpu::vec
