// log1p and expm1 for 16 float32 lanes (AVX-512), accurate near 0 where log(1 + x) and
// exp(x) - 1 lose every digit to cancellation. Only the unary kernel uses them, so they live
// apart from vec_math.h (which every CPU kernel includes).
#pragma once
#include "kernels/cpu/vec_math.h"

namespace fabric::cpu::vec {

// Below this magnitude log1p(x) and expm1(x) round to x itself (x^2/2 is under half an ulp);
// taking x also keeps -0 and subnormals exact.
inline constexpr float kLog1pExpm1Identity = 0x1p-25f;

// log1p: fdlibm's scheme. u = 1 + x rounds; its rounding error c = (1 + x) - u is exact (TwoSum)
// and log1p(x) = log(u) + c/u to first order. u == inf (x = inf) and u == 0 (x = -1, -inf
// from log) take log(u) alone; x < -1 gives log's NaN.
FABRIC_VEC_INLINE __m512 log1p_ps(__m512 x) {
  const __m512 one = splat(1.0f);
  const __m512 u = _mm512_add_ps(one, x);
  const __m512 x_part = _mm512_sub_ps(u, one);
  const __m512 one_part = _mm512_sub_ps(u, x_part);
  const __m512 c = _mm512_add_ps(_mm512_sub_ps(one, one_part), _mm512_sub_ps(x, x_part));
  __m512 y = log_ps(u);
  // c != 0 is false for NaN (u = inf) and for c = 0 (exact sums, x = -1).
  const __mmask16 correct = _mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_NEQ_OQ);
  y = _mm512_mask_add_ps(y, correct, y, _mm512_div_ps(c, u));
  const __mmask16 tiny = _mm512_cmp_ps_mask(abs_ps(x), splat(kLog1pExpm1Identity), _CMP_LT_OQ);
  return _mm512_mask_mov_ps(y, tiny, x);
}

// expm1: x = q ln2 + r with |r| <= ln2/2, expm1(r) by its Taylor series to r^9 (the r^10 term
// is under 2^-30 relative), then expm1(x) = 2^q expm1(r) + (2^q - 1) in one fma (2^q - 1 is
// exact for the q where it matters). Past q = 64, 2^q - 1 is 2^q and 2^q alone could overflow
// while the result does not, so those lanes take vscalefps(expm1(r) + 1, q).
FABRIC_VEC_INLINE __m512 expm1_ps(__m512 x) {
  const __m512 xc = clamp_keep_nan(x, -100.0f, 89.0f);  // -1 and inf beyond; inf gives no NaN
  const __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(xc, splat(1.442695040888963407f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(q, splat(0.693145751953125f), xc);
  r = _mm512_fnmadd_ps(q, splat(1.428606765330187045e-06f), r);
  __m512 p = splat(1.0f / 362880.0f);
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 40320.0f));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 5040.0f));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, splat(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, splat(0.5f));
  const __m512 em1_r = _mm512_fmadd_ps(_mm512_mul_ps(r, r), p, r);
  const __m512 one = splat(1.0f);
  const __m512 two_q = _mm512_scalef_ps(one, q);
  __m512 y = _mm512_fmadd_ps(two_q, em1_r, _mm512_sub_ps(two_q, one));
  const __mmask16 huge = _mm512_cmp_ps_mask(q, splat(64.0f), _CMP_GT_OQ);
  y = _mm512_mask_mov_ps(y, huge, _mm512_scalef_ps(_mm512_add_ps(em1_r, one), q));
  const __mmask16 tiny = _mm512_cmp_ps_mask(abs_ps(x), splat(kLog1pExpm1Identity), _CMP_LT_OQ);
  return _mm512_mask_mov_ps(y, tiny, x);
}

}  // namespace fabric::cpu::vec
