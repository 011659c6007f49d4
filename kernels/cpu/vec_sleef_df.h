// SLEEF's double-float ("df") arithmetic on 16 float lanes, in its FMA form (src/libm/df.h with
// ENABLE_FMA_SP, as Debian's libsleef3 3.5.1 builds Sleef_*f8_u10avx2, torch 1.13's): a value is
// the unevaluated sum x + y of two floats. Every vec_sleef_*.h float function is built from these,
// so that it rounds where SLEEF's does. Every product SLEEF rounds on its own goes through mul()
// (opaque_ps), so -ffp-contract=fast cannot fuse it into a following add; the fmas SLEEF writes
// are explicit _mm512_fm*_ps calls, and the sums keep SLEEF's order of operations.
// Names: SLEEF's dfadd_vf2_vf2_vf is add(F2, __m512), dfadd2_vf2_vf_vf2 is add2(__m512, F2),
// dfmul_vf2_vf2_vf2 is mul(F2, F2) and so on, by overload; the float-pair forms that would clash
// with the plain float ops are add_ff, add2_ff and mul_ff, and dfmul_vf_vf2_vf2 is mul_f.
#pragma once

#include <cstdint>

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
// c - a * b, one rounding (SLEEF's vfmanp)
FABRIC_VEC_INLINE __m512 fnma(__m512 a, __m512 b, __m512 c) { return _mm512_fnmadd_ps(a, b, c); }
FABRIC_VEC_INLINE __m512 rec(__m512 a) { return _mm512_div_ps(splat(1.0f), a); }
FABRIC_VEC_INLINE __m512i i32(int v) { return _mm512_set1_epi32(v); }
FABRIC_VEC_INLINE __m512 bits_ps(uint32_t v) {
  return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(v)));
}
FABRIC_VEC_INLINE __m512 sel(__mmask16 m, __m512 yes, __m512 no) {
  return _mm512_mask_mov_ps(no, m, yes);
}
FABRIC_VEC_INLINE F2 sel(__mmask16 m, F2 yes, F2 no) {
  return {sel(m, yes.x, no.x), sel(m, yes.y, no.y)};
}
FABRIC_VEC_INLINE __m512 abs(__m512 a) { return vec::abs_ps(a); }
FABRIC_VEC_INLINE __m512i sign_bits(__m512 a) {
  return _mm512_and_si512(_mm512_castps_si512(a), i32(static_cast<int>(0x80000000u)));
}
// x with its sign flipped where y's sign bit is set (vmulsign)
FABRIC_VEC_INLINE __m512 mulsign(__m512 x, __m512 y) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), sign_bits(y)));
}
FABRIC_VEC_INLINE __mmask16 lt(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
FABRIC_VEC_INLINE __mmask16 eq(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
FABRIC_VEC_INLINE __mmask16 isnan(__m512 a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
FABRIC_VEC_INLINE __mmask16 isinf(__m512 a) { return eq(abs(a), splat(__builtin_inff())); }
FABRIC_VEC_INLINE __mmask16 is_neg_zero(__m512 a) {
  return _mm512_cmpeq_epi32_mask(_mm512_castps_si512(a), i32(static_cast<int>(0x80000000u)));
}
// all bits set where m (vor_vm_vo32_vm: SLEEF's way of writing NaN)
FABRIC_VEC_INLINE __m512 or_ones(__mmask16 m, __m512 a) { return sel(m, bits_ps(0xFFFFFFFFu), a); }
// vrint_vf_vf: to nearest even
FABRIC_VEC_INLINE __m512 rint(__m512 x) {
  return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// q >> 1, arithmetic (the emulation has no srai)
FABRIC_VEC_INLINE __m512i sra1(__m512i q) {
  return _mm512_or_si512(_mm512_srli_epi32(q, 1),
                         _mm512_and_si512(q, i32(static_cast<int>(0x80000000u))));
}
// 2^q for q in the normal range (vpow2i)
FABRIC_VEC_INLINE __m512 pow2i(__m512i q) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(q, i32(0x7f)), 23));
}
// d * 2^q in two steps, so q may reach past the normal exponent range (vldexp2)
FABRIC_VEC_INLINE __m512 ldexp2(__m512 d, __m512i q) {
  const __m512i h = sra1(q);
  return mul(mul(d, pow2i(h)), pow2i(_mm512_sub_epi32(q, h)));
}

FABRIC_VEC_INLINE F2 normalize(F2 t) {  // dfnormalize_vf2_vf2
  const __m512 s = add(t.x, t.y);
  return {s, add(sub(t.x, s), t.y)};
}
FABRIC_VEC_INLINE F2 scale(F2 d, __m512 s) { return {mul(d.x, s), mul(d.y, s)}; }
FABRIC_VEC_INLINE F2 neg(F2 d) {
  const __m512 z = splat(-0.0f);
  return {_mm512_xor_ps(d.x, z), _mm512_xor_ps(d.y, z)};
}
FABRIC_VEC_INLINE F2 add_ff(__m512 x, __m512 y) {  // dfadd_vf2_vf_vf (|x| >= |y|)
  const __m512 s = add(x, y);
  return {s, add(sub(x, s), y)};
}
FABRIC_VEC_INLINE F2 add2_ff(__m512 x, __m512 y) {  // dfadd2_vf2_vf_vf
  const __m512 s = add(x, y), v = sub(s, x);
  return {s, add(sub(x, sub(s, v)), sub(y, v))};
}
FABRIC_VEC_INLINE F2 add(F2 x, __m512 y) {  // dfadd_vf2_vf2_vf
  const __m512 s = add(x.x, y);
  return {s, add(add(sub(x.x, s), y), x.y)};
}
FABRIC_VEC_INLINE F2 sub(F2 x, __m512 y) {  // dfsub_vf2_vf2_vf
  const __m512 s = sub(x.x, y);
  return {s, add(sub(sub(x.x, s), y), x.y)};
}
FABRIC_VEC_INLINE F2 add(__m512 x, F2 y) {  // dfadd_vf2_vf_vf2
  const __m512 s = add(x, y.x);
  return {s, add(add(sub(x, s), y.x), y.y)};
}
FABRIC_VEC_INLINE F2 add(F2 x, F2 y) {  // dfadd_vf2_vf2_vf2 (|x| >= |y|)
  const __m512 s = add(x.x, y.x);
  return {s, add(add(add(sub(x.x, s), y.x), x.y), y.y)};
}
FABRIC_VEC_INLINE F2 sub(F2 x, F2 y) {  // dfsub_vf2_vf2_vf2 (|x| >= |y|)
  const __m512 s = sub(x.x, y.x);
  return {s, sub(add(sub(sub(x.x, s), y.x), x.y), y.y)};
}
FABRIC_VEC_INLINE F2 add2(F2 x, __m512 y) {  // dfadd2_vf2_vf2_vf
  const __m512 s = add(x.x, y), v = sub(s, x.x);
  return {s, add(add(sub(x.x, sub(s, v)), sub(y, v)), x.y)};
}
FABRIC_VEC_INLINE F2 add2(__m512 x, F2 y) {  // dfadd2_vf2_vf_vf2
  const __m512 s = add(x, y.x), v = sub(s, x);
  return {s, add(add(sub(x, sub(s, v)), sub(y.x, v)), y.y)};
}
FABRIC_VEC_INLINE F2 add2(F2 x, F2 y) {  // dfadd2_vf2_vf2_vf2
  const __m512 s = add(x.x, y.x), v = sub(s, x.x);
  return {s, add(add(sub(x.x, sub(s, v)), sub(y.x, v)), add(x.y, y.y))};
}
FABRIC_VEC_INLINE F2 mul_ff(__m512 x, __m512 y) {  // dfmul_vf2_vf_vf
  const __m512 s = mul(x, y);
  return {s, fms(x, y, s)};
}
FABRIC_VEC_INLINE F2 mul(F2 x, __m512 y) {  // dfmul_vf2_vf2_vf
  const __m512 s = mul(x.x, y);
  return {s, fma(x.y, y, fms(x.x, y, s))};
}
FABRIC_VEC_INLINE F2 mul(F2 x, F2 y) {  // dfmul_vf2_vf2_vf2
  const __m512 s = mul(x.x, y.x);
  return {s, fma(x.x, y.y, fma(x.y, y.x, fms(x.x, y.x, s)))};
}
FABRIC_VEC_INLINE __m512 mul_f(F2 x, F2 y) {  // dfmul_vf_vf2_vf2
  return fma(x.x, y.x, fma(x.y, y.x, mul(x.x, y.y)));
}
FABRIC_VEC_INLINE F2 squ(F2 x) {  // dfsqu_vf2_vf2
  const __m512 s = mul(x.x, x.x);
  return {s, fma(add(x.x, x.x), x.y, fms(x.x, x.x, s))};
}
FABRIC_VEC_INLINE F2 div(F2 n, F2 d) {  // dfdiv_vf2_vf2_vf2
  const __m512 t = rec(d.x), qx = mul(n.x, t);
  const __m512 u = fms(t, n.x, qx);
  const __m512 qy = fnma(d.y, t, fnma(d.x, t, splat(1.0f)));
  return {qx, fma(qx, qy, fma(n.y, t, u))};
}
FABRIC_VEC_INLINE F2 rec_f(__m512 d) {  // dfrec_vf2_vf
  const __m512 q = rec(d);
  return {q, mul(q, fnma(d, q, splat(1.0f)))};
}
FABRIC_VEC_INLINE F2 rec(F2 d) {  // dfrec_vf2_vf2
  const __m512 q = rec(d.x);
  return {q, mul(q, fnma(d.y, q, fnma(d.x, q, splat(1.0f))))};
}
FABRIC_VEC_INLINE F2 sqrt_f(__m512 d) {  // dfsqrt_vf2_vf
  const __m512 t = _mm512_sqrt_ps(d);
  return scale(mul(add2(d, mul_ff(t, t)), rec_f(t)), splat(0.5f));
}

}  // namespace fabric::cpu::vec::sleef
