// SLEEF's log2f_u10 and log10f_u10 (FMA form, as Sleef_log2f8_u10avx2 / Sleef_log10f8_u10avx2
// compute them), 16 lanes: torch 1.13's float32 torch.log2 / torch.log10 map every element, tail
// and strided ones included, through these (vml::vlog2 / vlog10). Like logf_u10_ps, whose
// log_reduce / log_specials they share (vec_sleef_log.h): subnormals scaled by 2^64, the exponent
// from d * 4/3, the mantissa's log from atanh((m - 1) / (m + 1)) in double-float, ~1 ulp. Checked
// lane by lane against Debian's libsleef and through the ops against torch
// (tests/kernels/test_vec_sleef_math.cpp).
#pragma once

#include "kernels/cpu/vec_sleef_log.h"

namespace fabric::cpu::vec {

FABRIC_VEC_INLINE __m512 log2f_u10_ps(__m512 d) {
  using namespace sleef;
  __m512 ef;
  const F2 x = log_reduce(d, ef);
  const __m512 x2 = mul(x.x, x.x);
  __m512 t = fma(splat(+0.4374550283e+0f), x2, splat(+0.5764790177e+0f));
  t = fma(t, x2, splat(+0.9618012905120f));
  F2 s = add2(ef, mul(x, F2{splat(2.8853900432586669922f), splat(3.2734474483568488616e-08f)}));
  s = add2(s, mul(mul(x2, x.x), t));
  return log_specials(d, add(s.x, s.y));
}

FABRIC_VEC_INLINE __m512 log10f_u10_ps(__m512 d) {
  using namespace sleef;
  __m512 ef;
  const F2 x = log_reduce(d, ef);
  const __m512 x2 = mul(x.x, x.x);
  __m512 t = fma(splat(+0.1314289868e+0f), x2, splat(+0.1735493541e+0f));
  t = fma(t, x2, splat(+0.2895309627e+0f));
  F2 s = mul(F2{splat(0.30103001f), splat(-1.432098889e-08f)}, ef);
  s = add(s, mul(x, F2{splat(0.868588984f), splat(-2.170757285e-08f)}));
  s = add(s, mul(mul(x2, x.x), t));
  return log_specials(d, add(s.x, s.y));
}

}  // namespace fabric::cpu::vec
