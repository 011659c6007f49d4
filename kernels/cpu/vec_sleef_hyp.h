// SLEEF's sinhf_u10 and coshf_u10 (FMA form, as Sleef_sinhf8_u10avx2 / Sleef_coshf8_u10avx2
// compute them), 16 lanes: (e^|x| -+ e^-|x|) / 2 with e^|x| in double-float (expk2f, shared
// with tanh in vec_sleef_exp_family.h), ~1 ulp.
// torch 1.13's float32 torch.sinh / torch.cosh take these for whole 16-element blocks of a
// contiguous row and libm's sinhf / coshf for the rest (cpu_kernel_vec), see
// elementwise_math.cpp. Checked lane by lane against Debian's libsleef
// (tests/kernels/test_vec_sleef_math.cpp).
#pragma once

#include <limits>

#include "kernels/cpu/vec_sleef_exp_family.h"

namespace fabric::cpu::vec {

namespace sleef {
// |x| > 89 or a NaN on the way -> inf; x NaN -> all bits set (SLEEF's NaN)
FABRIC_VEC_INLINE __m512 hyp_specials(__m512 x, __m512 y) {
  return sel(_mm512_cmp_ps_mask(abs(x), splat(89.0f), _CMP_GT_OQ) | isnan(y),
             splat(std::numeric_limits<float>::infinity()), y);
}
}  // namespace sleef

FABRIC_VEC_INLINE __m512 sinhf_u10_ps(__m512 x) {
  using namespace sleef;
  F2 d = expk2f(F2{abs(x), _mm512_setzero_ps()});
  d = sub(d, rec(d));
  const __m512 y = mulsign(hyp_specials(x, mul(add(d.x, d.y), splat(0.5f))), x);
  return or_ones(isnan(x), y);
}

FABRIC_VEC_INLINE __m512 coshf_u10_ps(__m512 x) {
  using namespace sleef;
  F2 d = expk2f(F2{abs(x), _mm512_setzero_ps()});
  d = add(d, rec(d));
  return or_ones(isnan(x), hyp_specials(x, mul(add(d.x, d.y), splat(0.5f))));
}

}  // namespace fabric::cpu::vec
