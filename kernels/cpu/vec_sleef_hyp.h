// SLEEF's sinhf_u10 and coshf_u10 (FMA form, as Sleef_sinhf8_u10avx2 / Sleef_coshf8_u10avx2
// compute them), 16 lanes: (e^|x| -+ e^-|x|) / 2 with e^|x| in double-float (expk2f), ~1 ulp.
// torch 1.13's float32 torch.sinh / torch.cosh take these for whole 16-element blocks of a
// contiguous row and libm's sinhf / coshf for the rest (cpu_kernel_vec), see
// elementwise_math.cpp. Checked lane by lane against Debian's libsleef
// (tests/kernels/test_vec_sleef_math.cpp).
#pragma once

#include <limits>

#include "kernels/cpu/vec_sleef_f2.h"

namespace fabric::cpu::vec {

namespace sleef_f2 {
// e^d for d = (x, 0), x >= 0, in double-float (expk2f)
FABRIC_VEC_INLINE F2 expk2(__m512 dx) {
  // q = rint(x / ln 2) (out of range: INT_MIN, as vcvtps2dq), used as float too
  const __m512i q = _mm512_cvt_roundps_epi32(mul(dx, splat(1.442695040888963407359924681f)),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 qf = _mm512_cvtepi32_ps(q);
  F2 s = add2(F2{dx, splat(0.0f)}, mul(qf, splat(-0.693145751953125f)));
  s = add2(s, mul(qf, splat(-1.428606765330187045e-06f)));
  __m512 u = splat(+0.1980960224e-3f);
  u = fma(u, s.x, splat(+0.1394256484e-2f));
  u = fma(u, s.x, splat(+0.8333456703e-2f));
  u = fma(u, s.x, splat(+0.4166637361e-1f));
  F2 t = add2(mul(s, u), splat(+0.166666659414234244790680580464e+0f));
  t = add2(mul(s, t), splat(0.5f));
  t = add2(s, mul(squ(s), t));
  t = add(splat(1.0f), t);
  t = {ldexp2(t.x, q), ldexp2(t.y, q)};
  const __mmask16 under = lt(dx, splat(-104.0f));
  return {sel(under, splat(0.0f), t.x), sel(under, splat(0.0f), t.y)};
}
// |x| > 89 or a NaN on the way -> inf; x NaN -> all bits set (SLEEF's NaN)
FABRIC_VEC_INLINE __m512 hyp_specials(__m512 x, __m512 y) {
  return sel(_mm512_cmp_ps_mask(abs(x), splat(89.0f), _CMP_GT_OQ) | isnan(y),
             splat(std::numeric_limits<float>::infinity()), y);
}
}  // namespace sleef_f2

FABRIC_VEC_INLINE __m512 sinhf_u10_ps(__m512 x) {
  using namespace sleef_f2;
  F2 d = expk2(abs(x));
  d = sub(d, rec(d));
  const __m512 y = mulsign(hyp_specials(x, mul(add(d.x, d.y), splat(0.5f))), x);
  return or_ones(isnan(x), y);
}

FABRIC_VEC_INLINE __m512 coshf_u10_ps(__m512 x) {
  using namespace sleef_f2;
  F2 d = expk2(abs(x));
  d = add(d, rec(d));
  return or_ones(isnan(x), hyp_specials(x, mul(add(d.x, d.y), splat(0.5f))));
}

}  // namespace fabric::cpu::vec
