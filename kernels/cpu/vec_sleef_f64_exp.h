// SLEEF 3.5.1's xexp and xexpm1 (FMA form, as Sleef_expd4_u10avx2 / Sleef_expm1d4_u10avx2 compute
// them), 8 lanes, and expk2, the double-double e^x that expm1, sinh, cosh, tanh
// (vec_sleef_f64_hyp.h) and erf (vec_sleef_f64_erf.h) build on. torch 1.13's float64 torch.exp /
// expm1 map every element through these (vml::vexp / vexpm1); its sigmoid, SiLU take exp for whole
// vectors (elementwise_unary.cpp). x = q ln2 + s (Cody-Waite, two parts), e^s by a degree-10
// polynomial in Estrin's scheme, 2^q applied in two steps; ~1 ulp. Each lane depends on its own
// input only. Checked bit for bit against libsleef (tests/kernels/test_vec_sleef_f64.cpp).
#pragma once

#include "kernels/cpu/vec_sleef_f64_dd.h"

namespace fabric::cpu::vec {

namespace sleef64 {

inline constexpr double kL2U = .69314718055966295651160180568695068359375;
inline constexpr double kL2L = .28235290563031577122588448175013436025525412068e-12;
inline constexpr double kRLn2 =
    1.442695040888963407359924681001892137426645954152985934135449406931;

// e^d for a double-double d, as a double-double; 0 below d = -1000.
FABRIC_VEC_INLINE D2 expk2(D2 d) {
  const VD dq = rint(mul(sum(d), splat(kRLn2)));
  const VI q = rint_i32(dq);
  D2 s = add2(d, mul(dq, splat(-kL2U)));
  s = add2(s, mul(dq, splat(-kL2L)));
  const D2 s2 = squ(s), s4 = squ(s2);
  const VD s8 = mul(s4.x, s4.x);
  const VD u =
      poly10(s.x, s2.x, s4.x, s8,
             {+0.1602472219709932072e-9, +0.2092255183563157007e-8, +0.2505230023782644465e-7,
              +0.2755724800902135303e-6, +0.2755731892386044373e-5, +0.2480158735605815065e-4,
              +0.1984126984148071858e-3, +0.1388888888886763255e-2, +0.8333333333333347095e-2,
              +0.4166666666666669905e-1});
  D2 t = add(splat(0.5), mul(s, splat(+0.1666666666666666574e+0)));
  t = add(splat(1.0), mul(t, s));
  t = add(splat(1.0), mul(t, s));
  t = add(t, mul(s4, u));
  const MD under = cmp_lt(d.x, splat(-1000.0));
  return {zero_where(under, ldexp2(t.x, q)), zero_where(under, ldexp2(t.y, q))};
}

}  // namespace sleef64

// e^d: inf above 709.78271114955742909, 0 below -1000.
FABRIC_VEC_INLINE sleef64::VD exp_u10_pd(sleef64::VD d) {
  using namespace sleef64;
  VD u = rint(mul(d, splat(kRLn2)));
  const VI q = rint_i32(u);
  VD s = fma(u, splat(-kL2U), d);
  s = fma(u, splat(-kL2L), s);
  const VD s2 = mul(s, s), s4 = mul(s2, s2), s8 = mul(s4, s4);
  u = poly10(s, s2, s4, s8,
             {+0.2081276378237164457e-8, +0.2511210703042288022e-7, +0.2755762628169491192e-6,
              +0.2755723402025388239e-5, +0.2480158687479686264e-4, +0.1984126989855865850e-3,
              +0.1388888888914497797e-2, +0.8333333333314938210e-2, +0.4166666666666602598e-1,
              +0.1666666666666669072e+0});
  u = fma(u, s, splat(0.5));
  u = fma(u, s, splat(1.0));
  u = fma(u, s, splat(1.0));
  u = ldexp2(u, q);
  u = sel(cmp_gt(d, splat(709.78271114955742909217217426)), splat(__builtin_inf()), u);
  return zero_where(cmp_lt(d, splat(-1000.0)), u);
}

// e^a - 1 = expk2(a) - 1 in double-double: inf above 709.782712893384, -1 below
// -36.736800569677101, -0 for -0.
FABRIC_VEC_INLINE sleef64::VD expm1_u10_pd(sleef64::VD a) {
  using namespace sleef64;
  const D2 d = add2(expk2(dd(a)), splat(-1.0));
  VD x = sum(d);
  x = sel(cmp_gt(a, splat(709.782712893383996732223)), splat(__builtin_inf()), x);
  x = sel(cmp_lt(a, splat(-36.736800569677101399113302437)), splat(-1.0), x);
  return sel(is_neg_zero(a), splat(-0.0), x);
}

}  // namespace fabric::cpu::vec
