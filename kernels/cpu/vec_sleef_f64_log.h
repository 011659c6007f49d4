// SLEEF 3.5.1's xlog_u1, xlog2, xlog10 and xlog1p (FMA form, as Sleef_logd4_u10avx2,
// Sleef_log2d4_u10avx2, Sleef_log10d4_u10avx2 and Sleef_log1pd4_u10avx2 compute them), 8 lanes:
// torch 1.13's float64 torch.log / log2 / log10 / log1p map every element, tail and strided ones
// included, through these (vml::v<op> over Vectorized<double>). The exponent comes from d * 4/3,
// the mantissa's log from atanh((m - 1) / (m + 1)) in double-double arithmetic
// (vec_sleef_f64_dd.h), ~1 ulp. Each lane depends on its own input only. Checked bit for bit
// against libsleef and through the ops against torch (tests/kernels/test_vec_sleef_f64.cpp).
#pragma once

#include "kernels/cpu/vec_sleef_f64_dd.h"

namespace fabric::cpu::vec {

namespace sleef64 {

inline constexpr double kDblMin = 2.2250738585072013831e-308;
inline constexpr double k2p64 = 18446744073709551616.0;

// The shared start of xlog_u1 / xlog2 / xlog10: d scaled out of the subnormals, its exponent e
// (from d * 4/3, so m lands in [0.75, 1.5)) and x = (m - 1) / (m + 1) in double-double.
FABRIC_VEC_INLINE D2 log_reduce(VD d, VD& ef) {
  const MD tiny = cmp_lt(d, splat(kDblMin));
  d = sel(tiny, mul(d, splat(k2p64)), d);
  VI e = ilogb2k(mul(d, splat(1.0 / 0.75)));
  const VD m = add_exponent(d, ineg(e));
  e = isel(tiny, isub(e, isplat(64)), e);
  ef = to_pd(e);
  return div(add2_dd(splat(-1.0), m), add2_dd(splat(1.0), m));
}
// +inf -> +inf, negative or NaN -> NaN, +-0 -> -inf
FABRIC_VEC_INLINE VD log_specials(VD d, VD r) {
  r = sel(is_pos_inf(d), splat(__builtin_inf()), r);
  r = sel(m_or(cmp_lt(d, zero()), isnan(d)), splat(__builtin_nan("")), r);
  return sel(cmp_eq(d, zero()), splat(-__builtin_inf()), r);
}
// The odd series' tail x^3 t(x^2) of xlog_u1 and xlog1p.
FABRIC_VEC_INLINE VD log_tail(D2 x, VD& x2) {
  x2 = mul(x.x, x.x);
  const VD x4 = mul(x2, x2), x8 = mul(x4, x4);
  const VD t = poly7(x2, x4, x8,
                     {0.1532076988502701353e+0, 0.1525629051003428716e+0, 0.1818605932937785996e+0,
                      0.2222214519839380009e+0, 0.2857142932794299317e+0, 0.3999999999635251990e+0,
                      0.6666666666667333541e+0});
  return mul(mul(x2, x.x), t);
}
inline constexpr double kLn2Hi = 0.693147180559945286226764,
                        kLn2Lo = 2.319046813846299558417771e-17;

}  // namespace sleef64

FABRIC_VEC_INLINE sleef64::VD log_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  VD ef;
  const D2 x = log_reduce(d, ef);
  VD x2;
  const VD tail = log_tail(x, x2);
  D2 s = mul(dd(kLn2Hi, kLn2Lo), ef);
  s = add(s, scale(x, splat(2.0)));
  s = add(s, tail);
  return log_specials(d, sum(s));
}

FABRIC_VEC_INLINE sleef64::VD log2_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  VD ef;
  const D2 x = log_reduce(d, ef);
  const VD x2 = mul(x.x, x.x), x4 = mul(x2, x2), x8 = mul(x4, x4);
  const VD t =
      poly7(x2, x4, x8,
            {+0.2211941750456081490e+0, +0.2200768693152277689e+0, +0.2623708057488514656e+0,
             +0.3205977477944495502e+0, +0.4121985945485324709e+0, +0.5770780162997058982e+0,
             +0.96179669392608091449});
  D2 s = add2(ef, mul(x, dd(2.885390081777926774, 6.0561604995516736434e-18)));
  s = add2(s, mul(mul(x2, x.x), t));
  return log_specials(d, sum(s));
}

FABRIC_VEC_INLINE sleef64::VD log10_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  VD ef;
  const D2 x = log_reduce(d, ef);
  const VD x2 = mul(x.x, x.x), x4 = mul(x2, x2), x8 = mul(x4, x4);
  const VD t =
      poly7(x2, x4, x8,
            {+0.6653725819576758460e-1, +0.6625722782820833712e-1, +0.7898105214313944078e-1,
             +0.9650955035715275132e-1, +0.1240841409721444993e+0, +0.1737177927454605086e+0,
             +0.2895296546021972617e+0});
  D2 s = mul(dd(0.30102999566398119802, -2.803728127785170339e-18), ef);
  s = add(s, mul(x, dd(0.86858896380650363334, 1.1430059694096389311e-17)));
  s = add(s, mul(mul(x2, x.x), t));
  return log_specials(d, sum(s));
}

// log(1 + d): 1 + d = 2^e (1 + m) with e from (1 + d) * 4/3 (sums below DBL_MIN scaled by 2^64
// first), m = d 2^-e + (2^-e - 1) by one fma; log(1 + m) = 2 atanh(m / (2 + m)). inf above 1e307,
// NaN below -1, -inf at -1, -0 for -0.
FABRIC_VEC_INLINE sleef64::VD log1p_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  VD dp1 = add(d, splat(1.0));
  const MD tiny = cmp_lt(dp1, splat(kDblMin));
  dp1 = sel(tiny, mul(dp1, splat(k2p64)), dp1);
  VI e = ilogb2k(mul(dp1, splat(1.0 / 0.75)));
  const VD t = add_exponent(splat(1.0), ineg(e));
  const VD m = fma(d, t, sub(t, splat(1.0)));
  e = isel(tiny, isub(e, isplat(64)), e);
  D2 s = mul(dd(kLn2Hi, kLn2Lo), to_pd(e));
  const D2 x = div(dd(m), add_dd(splat(2.0), m));
  VD x2;
  const VD tail = log_tail(x, x2);
  s = add(s, scale(x, splat(2.0)));
  s = add(s, tail);
  VD r = sum(s);
  r = sel(cmp_gt(d, splat(1e+307)), splat(__builtin_inf()), r);
  r = sel(m_or(cmp_lt(d, splat(-1.0)), isnan(d)), splat(__builtin_nan("")), r);
  r = sel(cmp_eq(d, splat(-1.0)), splat(-__builtin_inf()), r);
  return sel(is_neg_zero(d), splat(-0.0), r);
}

}  // namespace fabric::cpu::vec
