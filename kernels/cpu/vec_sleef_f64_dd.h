// SLEEF's double-double ("dd") arithmetic on 8 float64 lanes, in its FMA form (src/libm/dd.h with
// ENABLE_FMA_DP, as Debian's libsleef3 3.5.1 builds Sleef_*d4_u10avx2, torch 1.13's): a value is
// the unevaluated sum x + y of two doubles. The vec_sleef_f64_*.h functions are built from these,
// so that they round where SLEEF's do: every product SLEEF rounds on its own goes through mul()
// (opaque, vec_sleef_f64_simd.h), the fmas SLEEF writes are explicit, and the sums keep SLEEF's
// order. Names as vec_sleef_df.h's float twins: SLEEF's ddadd_vd2_vd2_vd is add(D2, VD),
// ddadd2_vd2_vd_vd2 is add2(VD, D2), ddmul_vd2_vd2_vd2 is mul(D2, D2) and so on by overload; the
// double-pair forms that would clash with the plain ops are add_dd, add2_dd and mul_dd, and
// ddmul_vd_vd2_vd2 is mul_d.
#pragma once

#include "kernels/cpu/vec_sleef_f64_simd.h"

namespace fabric::cpu::vec::sleef64 {

struct D2 {  // x + y, |y| <= ulp(x) / 2 once normalised
  VD x, y;
};

FABRIC_VEC_INLINE D2 dd(double hi, double lo) { return {splat(hi), splat(lo)}; }
FABRIC_VEC_INLINE D2 dd(VD hi) { return {hi, zero()}; }
FABRIC_VEC_INLINE D2 sel(MD m, D2 yes, D2 no) { return {sel(m, yes.x, no.x), sel(m, yes.y, no.y)}; }
FABRIC_VEC_INLINE VD sum(D2 a) { return add(a.x, a.y); }

FABRIC_VEC_INLINE D2 neg(D2 a) { return {neg(a.x), neg(a.y)}; }
FABRIC_VEC_INLINE D2 normalize(D2 t) {  // ddnormalize_vd2_vd2
  const VD s = add(t.x, t.y);
  return {s, add(sub(t.x, s), t.y)};
}
FABRIC_VEC_INLINE D2 scale(D2 d, VD s) { return {mul(d.x, s), mul(d.y, s)}; }
FABRIC_VEC_INLINE D2 add_dd(VD x, VD y) {  // ddadd_vd2_vd_vd (|x| >= |y|)
  const VD s = add(x, y);
  return {s, add(sub(x, s), y)};
}
FABRIC_VEC_INLINE D2 add2_dd(VD x, VD y) {  // ddadd2_vd2_vd_vd
  const VD s = add(x, y), v = sub(s, x);
  return {s, add(sub(x, sub(s, v)), sub(y, v))};
}
FABRIC_VEC_INLINE D2 add(D2 x, VD y) {  // ddadd_vd2_vd2_vd
  const VD s = add(x.x, y);
  return {s, add(add(sub(x.x, s), y), x.y)};
}
FABRIC_VEC_INLINE D2 sub(D2 x, VD y) {  // ddsub_vd2_vd2_vd
  const VD s = sub(x.x, y);
  return {s, add(sub(sub(x.x, s), y), x.y)};
}
FABRIC_VEC_INLINE D2 add2(D2 x, VD y) {  // ddadd2_vd2_vd2_vd
  const VD s = add(x.x, y), v = sub(s, x.x);
  return {s, add(add(sub(x.x, sub(s, v)), sub(y, v)), x.y)};
}
FABRIC_VEC_INLINE D2 add(VD x, D2 y) {  // ddadd_vd2_vd_vd2
  const VD s = add(x, y.x);
  return {s, add(add(sub(x, s), y.x), y.y)};
}
FABRIC_VEC_INLINE D2 add2(VD x, D2 y) {  // ddadd2_vd2_vd_vd2
  const VD s = add(x, y.x), v = sub(s, x);
  return {s, add(add(sub(x, sub(s, v)), sub(y.x, v)), y.y)};
}
FABRIC_VEC_INLINE D2 add(D2 x, D2 y) {  // ddadd_vd2_vd2_vd2 (|x| >= |y|)
  const VD s = add(x.x, y.x);
  return {s, add(add(add(sub(x.x, s), y.x), x.y), y.y)};
}
FABRIC_VEC_INLINE D2 add2(D2 x, D2 y) {  // ddadd2_vd2_vd2_vd2
  const VD s = add(x.x, y.x), v = sub(s, x.x);
  return {s, add(add(sub(x.x, sub(s, v)), sub(y.x, v)), add(x.y, y.y))};
}
FABRIC_VEC_INLINE D2 sub(D2 x, D2 y) {  // ddsub_vd2_vd2_vd2 (|x| >= |y|)
  const VD s = sub(x.x, y.x);
  return {s, sub(add(sub(sub(x.x, s), y.x), x.y), y.y)};
}
FABRIC_VEC_INLINE D2 mul_dd(VD x, VD y) {  // ddmul_vd2_vd_vd
  const VD s = mul(x, y);
  return {s, fms(x, y, s)};
}
FABRIC_VEC_INLINE D2 mul(D2 x, VD y) {  // ddmul_vd2_vd2_vd
  const VD s = mul(x.x, y);
  return {s, fma(x.y, y, fms(x.x, y, s))};
}
FABRIC_VEC_INLINE D2 mul(D2 x, D2 y) {  // ddmul_vd2_vd2_vd2
  const VD s = mul(x.x, y.x);
  return {s, fma(x.x, y.y, fma(x.y, y.x, fms(x.x, y.x, s)))};
}
FABRIC_VEC_INLINE VD mul_d(D2 x, D2 y) {  // ddmul_vd_vd2_vd2
  return fma(x.x, y.x, fma(x.y, y.x, mul(x.x, y.y)));
}
FABRIC_VEC_INLINE D2 squ(D2 x) {  // ddsqu_vd2_vd2
  const VD s = mul(x.x, x.x);
  return {s, fma(add(x.x, x.x), x.y, fms(x.x, x.x, s))};
}
FABRIC_VEC_INLINE D2 div(D2 n, D2 d) {  // dddiv_vd2_vd2_vd2
  const VD t = rec(d.x), qx = mul(n.x, t);
  const VD u = fms(t, n.x, qx);
  const VD qy = fnma(d.y, t, fnma(d.x, t, splat(1.0)));
  return {qx, fma(qx, qy, fma(n.y, t, u))};
}
FABRIC_VEC_INLINE D2 rec_d(VD d) {  // ddrec_vd2_vd
  const VD q = rec(d);
  return {q, mul(q, fnma(d, q, splat(1.0)))};
}
FABRIC_VEC_INLINE D2 rec(D2 d) {  // ddrec_vd2_vd2
  const VD q = rec(d.x);
  return {q, mul(q, fnma(d.y, q, fnma(d.x, q, splat(1.0))))};
}
FABRIC_VEC_INLINE D2 sqrt_d(VD d) {  // ddsqrt_vd2_vd
  const VD t = sqrt(d);
  return scale(mul(add2(d, mul_dd(t, t)), rec_d(t)), splat(0.5));
}

// SLEEF's POLYn (estrin.h): Estrin's scheme, every step an fma; c[0] is the highest coefficient.
FABRIC_VEC_INLINE VD poly2(VD x, double c1, double c0) { return fma(x, splat(c1), splat(c0)); }
FABRIC_VEC_INLINE VD poly3(VD x, VD x2, double c2, double c1, double c0) {
  return fma(x2, splat(c2), poly2(x, c1, c0));
}
FABRIC_VEC_INLINE VD poly4(VD x, VD x2, double c3, double c2, double c1, double c0) {
  return fma(x2, poly2(x, c3, c2), poly2(x, c1, c0));
}
FABRIC_VEC_INLINE VD poly6(VD x, VD x2, VD x4, const double (&c)[6]) {
  return fma(x4, poly2(x, c[0], c[1]), poly4(x, x2, c[2], c[3], c[4], c[5]));
}
FABRIC_VEC_INLINE VD poly7(VD x, VD x2, VD x4, const double (&c)[7]) {
  return fma(x4, poly3(x, x2, c[0], c[1], c[2]), poly4(x, x2, c[3], c[4], c[5], c[6]));
}
FABRIC_VEC_INLINE VD poly8(VD x, VD x2, VD x4, const double* c) {
  return fma(x4, poly4(x, x2, c[0], c[1], c[2], c[3]), poly4(x, x2, c[4], c[5], c[6], c[7]));
}
FABRIC_VEC_INLINE VD poly10(VD x, VD x2, VD x4, VD x8, const double (&c)[10]) {
  return fma(x8, poly2(x, c[0], c[1]), poly8(x, x2, x4, c + 2));
}
FABRIC_VEC_INLINE VD poly12(VD x, VD x2, VD x4, VD x8, const double (&c)[12]) {
  return fma(x8, poly4(x, x2, c[0], c[1], c[2], c[3]), poly8(x, x2, x4, c + 4));
}
FABRIC_VEC_INLINE VD poly16(VD x, VD x2, VD x4, VD x8, const double* c) {
  return fma(x8, poly8(x, x2, x4, c), poly8(x, x2, x4, c + 8));
}

}  // namespace fabric::cpu::vec::sleef64
