// SLEEF 3.5.1's xsinh, xcosh and xtanh (FMA form, as Sleef_sinhd4_u10avx2, Sleef_coshd4_u10avx2 and
// Sleef_tanhd4_u10avx2 compute them), 8 lanes: e = e^|x| in double-double (expk2,
// vec_sleef_f64_exp.h), then (e -+ 1/e) / 2 and (e - 1/e) / (e + 1/e), ~1 ulp; NaN in gives all
// bits set. torch 1.13's float64 torch.tanh maps every element through tanh (vml::vtanh);
// torch.sinh / cosh take these for whole blocks of 8 of a contiguous row and libm for the rest
// (cpu_kernel_vec), see elementwise_math.cpp. Each lane depends on its own input only.
#pragma once

#include "kernels/cpu/vec_sleef_f64_exp.h"

namespace fabric::cpu::vec {

namespace sleef64 {
// |x| > 710 or a NaN on the way -> inf
FABRIC_VEC_INLINE VD hyp_overflow(VD x, VD y) {
  return sel(m_or(cmp_gt(abs(x), splat(710.0)), isnan(y)), splat(__builtin_inf()), y);
}
}  // namespace sleef64

FABRIC_VEC_INLINE sleef64::VD sinh_u10_pd(sleef64::VD x) {
  using namespace sleef64;
  D2 d = expk2(dd(abs(x)));
  d = sub(d, rec(d));
  const VD y = mulsign(hyp_overflow(x, mul(sum(d), splat(0.5))), x);
  return or_ones(isnan(x), y);
}

FABRIC_VEC_INLINE sleef64::VD cosh_u10_pd(sleef64::VD x) {
  using namespace sleef64;
  D2 d = expk2(dd(abs(x)));
  d = add(d, rec(d));
  return or_ones(isnan(x), hyp_overflow(x, mul(sum(d), splat(0.5))));
}

// 1 above |x| = 18.714973875, x's sign last.
FABRIC_VEC_INLINE sleef64::VD tanh_u10_pd(sleef64::VD x) {
  using namespace sleef64;
  D2 d = expk2(dd(abs(x)));
  const D2 e = rec(d);
  d = div(add2(d, neg(e)), add2(d, e));
  VD y = sum(d);
  y = sel(m_or(cmp_gt(abs(x), splat(18.714973875)), isnan(y)), splat(1.0), y);
  return or_ones(isnan(x), mulsign(y, x));
}

}  // namespace fabric::cpu::vec
