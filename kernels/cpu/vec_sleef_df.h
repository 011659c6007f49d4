// SLEEF's double-float arithmetic (its df.h, the FMA forms that Sleef_*f8_u10avx2 compile to), on
// 16-lane vectors: a value is the unevaluated sum x + y of two floats. The float functions of
// vec_sleef_sincos.h and vec_sleef_exp_family.h are built from these, each step rounding where
// SLEEF's does: every product that SLEEF rounds on its own goes through mul (opaque_ps), so
// -ffp-contract cannot fuse it into a following add; the sums keep SLEEF's order of operations.
#pragma once

#include "kernels/cpu/vec_math.h"

namespace fabric::cpu::vec::sleef {

struct F2 {  // x + y, |y| <= ulp(x) / 2 once normalised
  __m512 x, y;
};

FABRIC_VEC_INLINE __m512 mul(__m512 a, __m512 b) { return opaque_ps(_mm512_mul_ps(a, b)); }
FABRIC_VEC_INLINE __m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
FABRIC_VEC_INLINE __m512 sub(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
FABRIC_VEC_INLINE __m512 fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
FABRIC_VEC_INLINE __m512 fms(__m512 a, __m512 b, __m512 c) { return _mm512_fmsub_ps(a, b, c); }
FABRIC_VEC_INLINE __m512 fnma(__m512 a, __m512 b, __m512 c) { return _mm512_fnmadd_ps(a, b, c); }
FABRIC_VEC_INLINE __m512i i32(int v) { return _mm512_set1_epi32(v); }
FABRIC_VEC_INLINE __m512 bits_ps(uint32_t v) {
  return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(v)));
}
// vmulsign: x with its sign flipped where y's sign bit is set
FABRIC_VEC_INLINE __m512 mulsign(__m512 x, __m512 y) {
  return _mm512_castsi512_ps(_mm512_xor_si512(
      _mm512_castps_si512(x),
      _mm512_and_si512(_mm512_castps_si512(y), i32(static_cast<int>(0x80000000u)))));
}
FABRIC_VEC_INLINE __mmask16 is_neg_zero(__m512 d) {
  return _mm512_cmpeq_epi32_mask(_mm512_castps_si512(d), i32(static_cast<int>(0x80000000u)));
}
FABRIC_VEC_INLINE __mmask16 is_nan(__m512 d) { return _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q); }
FABRIC_VEC_INLINE __mmask16 is_inf(__m512 d) {
  return _mm512_cmp_ps_mask(_mm512_abs_ps(d), splat(__builtin_inff()), _CMP_EQ_OQ);
}
// vor_vm_vo32_vm(o, x): all bits set (a NaN with the sign bit) where o
FABRIC_VEC_INLINE __m512 or_ones(__mmask16 o, __m512 x) {
  return _mm512_mask_mov_ps(x, o, bits_ps(0xFFFFFFFFu));
}
// vrint_vf_vf: to nearest even
FABRIC_VEC_INLINE __m512 rint(__m512 x) {
  return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// vpow2i: 2^q as bits (q + 127) << 23
FABRIC_VEC_INLINE __m512 pow2i(__m512i q) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(q, i32(0x7f)), 23));
}
// q >> 1, arithmetic, for q >= -512 (no vpsrad in the AVX2 emulation's list)
FABRIC_VEC_INLINE __m512i half_floor(__m512i q) {
  return _mm512_sub_epi32(_mm512_srli_epi32(_mm512_add_epi32(q, i32(512)), 1), i32(256));
}
// vldexp2: d * 2^(q>>1) * 2^(q - (q>>1))
FABRIC_VEC_INLINE __m512 ldexp2(__m512 d, __m512i q) {
  const __m512i h = half_floor(q);
  return mul(mul(d, pow2i(h)), pow2i(_mm512_sub_epi32(q, h)));
}

FABRIC_VEC_INLINE F2 normalize(F2 t) {  // dfnormalize_vf2_vf2
  const __m512 s = add(t.x, t.y);
  return {s, add(sub(t.x, s), t.y)};
}
FABRIC_VEC_INLINE F2 scale(F2 d, __m512 s) { return {mul(d.x, s), mul(d.y, s)}; }
FABRIC_VEC_INLINE F2 neg(F2 d) {
  return {_mm512_xor_ps(d.x, splat(-0.0f)), _mm512_xor_ps(d.y, splat(-0.0f))};
}
FABRIC_VEC_INLINE F2 add_ff(__m512 x, __m512 y) {  // dfadd_vf2_vf_vf (|x| >= |y|)
  const __m512 s = add(x, y);
  return {s, add(sub(x, s), y)};
}
FABRIC_VEC_INLINE F2 add2_ff(__m512 x, __m512 y) {  // dfadd2_vf2_vf_vf
  const __m512 s = add(x, y), v = sub(s, x);
  return {s, add(sub(x, sub(s, v)), sub(y, v))};
}
FABRIC_VEC_INLINE F2 add_Ff(F2 x, __m512 y) {  // dfadd_vf2_vf2_vf
  const __m512 s = add(x.x, y);
  return {s, add(add(sub(x.x, s), y), x.y)};
}
FABRIC_VEC_INLINE F2 add_fF(__m512 x, F2 y) {  // dfadd_vf2_vf_vf2
  const __m512 s = add(x, y.x);
  return {s, add(add(sub(x, s), y.x), y.y)};
}
FABRIC_VEC_INLINE F2 add_FF(F2 x, F2 y) {  // dfadd_vf2_vf2_vf2 (|x| >= |y|)
  const __m512 s = add(x.x, y.x);
  return {s, add(add(add(sub(x.x, s), y.x), x.y), y.y)};
}
FABRIC_VEC_INLINE F2 add2_Ff(F2 x, __m512 y) {  // dfadd2_vf2_vf2_vf
  const __m512 s = add(x.x, y), v = sub(s, x.x);
  return {s, add(add(sub(x.x, sub(s, v)), sub(y, v)), x.y)};
}
FABRIC_VEC_INLINE F2 add2_fF(__m512 x, F2 y) {  // dfadd2_vf2_vf_vf2
  const __m512 s = add(x, y.x), v = sub(s, x);
  return {s, add(add(sub(x, sub(s, v)), sub(y.x, v)), y.y)};
}
FABRIC_VEC_INLINE F2 add2_FF(F2 x, F2 y) {  // dfadd2_vf2_vf2_vf2
  const __m512 s = add(x.x, y.x), v = sub(s, x.x);
  return {s, add(add(sub(x.x, sub(s, v)), sub(y.x, v)), add(x.y, y.y))};
}
FABRIC_VEC_INLINE F2 mul_ff(__m512 x, __m512 y) {  // dfmul_vf2_vf_vf
  const __m512 s = mul(x, y);
  return {s, fms(x, y, s)};
}
FABRIC_VEC_INLINE F2 mul_Ff(F2 x, __m512 y) {  // dfmul_vf2_vf2_vf
  const __m512 s = mul(x.x, y);
  return {s, fma(x.y, y, fms(x.x, y, s))};
}
FABRIC_VEC_INLINE F2 mul_FF(F2 x, F2 y) {  // dfmul_vf2_vf2_vf2
  const __m512 s = mul(x.x, y.x);
  return {s, fma(x.x, y.y, fma(x.y, y.x, fms(x.x, y.x, s)))};
}
FABRIC_VEC_INLINE __m512 mul_FF_f(F2 x, F2 y) {  // dfmul_vf_vf2_vf2
  return fma(x.x, y.x, fma(x.y, y.x, mul(x.x, y.y)));
}
FABRIC_VEC_INLINE F2 squ(F2 x) {  // dfsqu_vf2_vf2
  const __m512 s = mul(x.x, x.x);
  return {s, fma(add(x.x, x.x), x.y, fms(x.x, x.x, s))};
}
FABRIC_VEC_INLINE F2 rec(F2 d) {  // dfrec_vf2_vf2
  const __m512 t = _mm512_div_ps(splat(1.0f), d.x);
  return {t, mul(t, fnma(d.y, t, fnma(d.x, t, splat(1.0f))))};
}
FABRIC_VEC_INLINE F2 div(F2 n, F2 d) {  // dfdiv_vf2_vf2_vf2
  const __m512 t = _mm512_div_ps(splat(1.0f), d.x), qx = mul(n.x, t);
  const __m512 u = fms(t, n.x, qx);
  const __m512 qy = fnma(d.y, t, fnma(d.x, t, splat(1.0f)));
  return {qx, fma(qx, qy, fma(n.y, t, u))};
}
FABRIC_VEC_INLINE F2 select(__mmask16 m, F2 a, F2 b) {  // a where m, else b
  return {_mm512_mask_mov_ps(b.x, m, a.x), _mm512_mask_mov_ps(b.y, m, a.y)};
}

}  // namespace fabric::cpu::vec::sleef
