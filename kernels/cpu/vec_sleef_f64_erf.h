// SLEEF 3.5.1's xerf_u1 (FMA form, as Sleef_erfd4_u10avx2 computes it; later SLEEF releases
// replaced it), 8 lanes: three fits chosen per lane by |a| (below 1, 3.7, 6), each a degree-19
// polynomial (in a^2 below 1, in |a| above) finished in double-double; below 1 erf = a p(a^2),
// above erf = 1 - e^(p(|a|)) through expk2 (vec_sleef_f64_exp.h); 1 from 6 on, a's sign last, NaN
// in gives the default NaN. torch 1.13's float64 torch.erf maps every element through it
// (vml::verf), its GELU whole vectors (elementwise_unary.cpp). Each lane depends on its own input
// only.
#pragma once

#include "kernels/cpu/vec_sleef_f64_exp.h"

namespace fabric::cpu::vec {

FABRIC_VEC_INLINE sleef64::VD erf_u10_pd(sleef64::VD s) {
  using namespace sleef64;
  const VD a = abs(s);
  const MD o0 = cmp_lt(a, splat(1.0)), o1 = cmp_lt(a, splat(3.7)), o2 = cmp_lt(a, splat(6.0));
  const auto pick = [&](double c0, double c1, double c2) {  // vsel_vd_vo_vo_d_d_d
    return sel(o0, splat(c0), sel(o1, splat(c1), splat(c2)));
  };
  static constexpr double kC[20][3] = {
      {+0.6801072401395392157e-20, +0.2830954522087717660e-13, -0.5846750404269610493e-17},
      {-0.2161766247570056391e-18, -0.1509491946179481940e-11, +0.6076691048812607898e-15},
      {+0.4695919173301598752e-17, +0.3827857177807173152e-10, -0.3007518609604893831e-13},
      {-0.9049140419888010819e-16, -0.6139733921558987241e-09, +0.9427906260824646063e-12},
      {+0.1634018903557411517e-14, +0.6985387934608038824e-08, -0.2100110908269393629e-10},
      {-0.2783485786333455216e-13, -0.5988224513034371474e-07, +0.3534639523461223473e-09},
      {+0.4463221276786412722e-12, +0.4005716952355346640e-06, -0.4664967728285395926e-08},
      {-0.6711366622850138987e-11, -0.2132190104575784400e-05, +0.4943823283769000532e-07},
      {+0.9422759050232658346e-10, +0.9092461304042630325e-05, -0.4271203394761148254e-06},
      {-0.1229055530100228477e-08, -0.3079188080966205457e-04, +0.3034067677404915895e-05},
      {+0.1480719281585085023e-07, +0.7971413443082370762e-04, -0.1776295289066871135e-04},
      {-0.1636584469123402714e-06, -0.1387853215225442864e-03, +0.8524547630559505050e-04},
      {+0.1646211436588923363e-05, +0.6469678026257590965e-04, -0.3290582944961784398e-03},
      {-0.1492565035840624866e-04, +0.4996645280372945860e-03, +0.9696966068789101157e-03},
      {+0.1205533298178966496e-03, -0.1622802482842520535e-02, -0.1812527628046986137e-02},
      {-0.8548327023450851166e-03, +0.1615320557049377171e-03, -0.4725409828123619017e-03},
      {+0.5223977625442188799e-02, +0.1915262325574875607e-01, +0.2090315427924229266e-01},
      {-0.2686617064513125569e-01, -0.1027818298486033455e+00, -0.1052041921842776645e+00},
      {+0.1128379167095512753e+00, -0.6366172819842503827e+00, -0.6345351808766568347e+00},
      {-0.3761263890318375380e+00, -0.1128379590648910469e+01, -0.1129442929103524396e+01},
  };
  const VD u = sel(o0, mul(a, a), a);
  VD t = pick(kC[0][0], kC[0][1], kC[0][2]);
  for (int i = 1; i < 20; ++i) t = fma(t, u, pick(kC[i][0], kC[i][1], kC[i][2]));
  D2 d = mul_dd(t, u);
  d = add2(d, D2{pick(1.1283791670955125586, 3.4110644736196137587e-08, 0.00024963035690526438285),
                 pick(1.5335459613165822674e-17, -2.4875650708323294246e-24,
                      -5.4362665034856259795e-21)});
  if (m_bits(o0) != 0xFFu)  // 1 - e^d where |a| >= 1 (e^d of the small lanes is not needed)
    d = sel(o0, mul(d, a), add(splat(1.0), neg(expk2(d))));
  else
    d = mul(d, a);
  const VD r = mulsign(sel(o2, sum(d), splat(1.0)), s);
  return sel(isnan(a), splat(__builtin_nan("")), r);
}

}  // namespace fabric::cpu::vec
