// Vectorised float32 math for the CPU elementwise kernels (16-lane AVX-512 vectors): exp, log,
// tanh, erf, sigmoid and the activations built on them (1-2 ulp), plus fp32/bf16/fp16 loads and
// stores.
#pragma once

#include <cstdint>

#include "kernels/cpu/x86_simd.h"  // AVX-512, or its emulation on an AVX2 CPU
#include "tensor/float_formats.h"

// Force-inlined: GCC otherwise outlines the bigger ones (erf_large_exp) from hot loops, and the
// call spills every vector register.
#define FABRIC_VEC_INLINE inline __attribute__((always_inline))

namespace fabric::cpu::vec {

FABRIC_VEC_INLINE __m512 splat(float v) { return _mm512_set1_ps(v); }

// The first k lanes (k >= 16: all).
FABRIC_VEC_INLINE __mmask16 tail_mask(int64_t k) {
  return k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << k) - 1u);
}

// ---- loads and stores of 16 lanes as fp32 -------------------------------------------------------
// bf16 rounds to nearest even as the scalar cast: subnormals kept, every NaN 0x7FC0.
// vcvtneps2bf16 is that rounding on every other input (fp32 and bf16 share the exponent range), but
// flushes fp32 denormals and keeps NaN signs and payloads: vectors with such a lane (vfpclassps)
// take the integer arithmetic instead, as kernels/cpu/convert.cpp's bf16_pack32.
FABRIC_VEC_INLINE __m256i bf16_round_exact(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
}
FABRIC_VEC_INLINE __m256i bf16_round(__m512 x) {
#ifdef __AVX512BF16__
  constexpr int kNanOrDenormal = 0x01 | 0x20 | 0x80;
  if (__builtin_expect(_mm512_fpclass_ps_mask(x, kNanOrDenormal) == 0, 1))
    return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
#endif
  return bf16_round_exact(x);
}
FABRIC_VEC_INLINE __m512 bf16_widen(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
constexpr int kHalfRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

FABRIC_VEC_INLINE __m512 load(const float* p) { return _mm512_loadu_ps(p); }
FABRIC_VEC_INLINE __m512 load(const BFloat16* p) {
  return bf16_widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
FABRIC_VEC_INLINE __m512 load(const Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// Masked loads give 0 in the lanes outside m (and never touch their memory).
FABRIC_VEC_INLINE __m512 load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
FABRIC_VEC_INLINE __m512 load(const BFloat16* p, __mmask16 m) {
  return bf16_widen(_mm256_maskz_loadu_epi16(m, p));
}
FABRIC_VEC_INLINE __m512 load(const Half* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

FABRIC_VEC_INLINE void store(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
FABRIC_VEC_INLINE void store(BFloat16* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), bf16_round(v));
}
FABRIC_VEC_INLINE void store(Half* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, kHalfRound));
}
FABRIC_VEC_INLINE void store(float* p, __m512 v, __mmask16 m) { _mm512_mask_storeu_ps(p, m, v); }
FABRIC_VEC_INLINE void store(BFloat16* p, __m512 v, __mmask16 m) {
  _mm256_mask_storeu_epi16(p, m, bf16_round(v));
}
FABRIC_VEC_INLINE void store(Half* p, __m512 v, __mmask16 m) {
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, kHalfRound));
}

// Non-temporal stores (p aligned to 16 * sizeof(T)): outputs far larger than the caches skip the
// read-for-ownership of their lines, which is a third of the traffic of a + b -> c.
FABRIC_VEC_INLINE void stream(float* p, __m512 v) { _mm512_stream_ps(p, v); }
FABRIC_VEC_INLINE void stream(BFloat16* p, __m512 v) {
  _mm256_stream_si256(reinterpret_cast<__m256i*>(p), bf16_round(v));
}
FABRIC_VEC_INLINE void stream(Half* p, __m512 v) {
  _mm256_stream_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, kHalfRound));
}

// ---- math -----------------------------------------------------------------------------------
// NaN-propagating min/max of x against a constant: vminps/vmaxps return the second operand when
// either is NaN, so the variable goes second.
FABRIC_VEC_INLINE __m512 clamp_keep_nan(__m512 x, float lo, float hi) {
  return _mm512_max_ps(splat(lo), _mm512_min_ps(splat(hi), x));
}

// exp: SLEEF's expf_u10 reduction and polynomial (1.0 ulp); vscalefps rebuilds 2^q * p with
// correct overflow to inf and gradual underflow. Inputs are clamped first so inf gives no NaN.
FABRIC_VEC_INLINE __m512 exp_ps(__m512 x) {
  x = clamp_keep_nan(x, -104.0f, 89.0f);
  const __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(x, splat(1.442695040888963407f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 s = _mm512_fnmadd_ps(q, splat(0.693145751953125f), x);
  s = _mm512_fnmadd_ps(q, splat(1.428606765330187045e-06f), s);
  __m512 u = splat(0.000198527617612853646278381f);
  u = _mm512_fmadd_ps(u, s, splat(0.00139304355252534151077271f));
  u = _mm512_fmadd_ps(u, s, splat(0.00833336077630519866943359f));
  u = _mm512_fmadd_ps(u, s, splat(0.0416664853692054748535156f));
  u = _mm512_fmadd_ps(u, s, splat(0.166666671633720397949219f));
  u = _mm512_fmadd_ps(u, s, splat(0.5f));
  u = _mm512_add_ps(splat(1.0f), _mm512_fmadd_ps(_mm512_mul_ps(s, s), u, s));
  return _mm512_scalef_ps(u, q);
}

// log: fdlibm's logf on the mantissa in [sqrt(2)/2, sqrt(2)) (getmant/getexp handle subnormals),
// log(1+f) = f - hfsq + s*(hfsq + R(s^2)), s = f/(2+f).
FABRIC_VEC_INLINE __m512 log_ps(__m512 x) {
  __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
  __m512 e = _mm512_getexp_ps(x);
  const __mmask16 big = _mm512_cmp_ps_mask(m, splat(1.41421356237f), _CMP_GT_OQ);
  m = _mm512_mask_mul_ps(m, big, m, splat(0.5f));
  e = _mm512_mask_add_ps(e, big, e, splat(1.0f));
  const __m512 f = _mm512_sub_ps(m, splat(1.0f));
  const __m512 s = _mm512_div_ps(f, _mm512_add_ps(splat(2.0f), f));
  const __m512 z = _mm512_mul_ps(s, s);
  const __m512 w = _mm512_mul_ps(z, z);
  __m512 t1 = _mm512_fmadd_ps(w, splat(1.5313838422e-01f), splat(2.2222198546e-01f));
  t1 = _mm512_mul_ps(w, _mm512_fmadd_ps(w, t1, splat(4.0000000596e-01f)));
  __m512 t2 = _mm512_fmadd_ps(w, splat(1.4798198640e-01f), splat(1.8183572590e-01f));
  t2 = _mm512_fmadd_ps(w, t2, splat(2.8571429849e-01f));
  t2 = _mm512_mul_ps(z, _mm512_fmadd_ps(w, t2, splat(6.6666668653e-01f)));
  const __m512 r = _mm512_add_ps(t1, t2);
  const __m512 hfsq = _mm512_mul_ps(_mm512_mul_ps(splat(0.5f), f), f);
  // e*ln2_hi - ((hfsq - (s*(hfsq+R) + e*ln2_lo)) - f)
  __m512 inner =
      _mm512_fmadd_ps(s, _mm512_add_ps(hfsq, r), _mm512_mul_ps(e, splat(9.0580006145e-06f)));
  __m512 y = _mm512_sub_ps(_mm512_mul_ps(e, splat(6.9313812256e-01f)),
                           _mm512_sub_ps(_mm512_sub_ps(hfsq, inner), f));
  // log(<0) = NaN, log(+-0) = -inf, log(inf) = inf, NaN stays.
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ),
                         splat(__builtin_nanf("")));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_EQ_OQ),
                         splat(-__builtin_inff()));
  const __mmask16 pass = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q) |
                         _mm512_cmp_ps_mask(x, splat(__builtin_inff()), _CMP_EQ_OQ);
  return _mm512_mask_mov_ps(y, pass, x);
}

FABRIC_VEC_INLINE __m512 abs_ps(__m512 x) { return _mm512_abs_ps(x); }
FABRIC_VEC_INLINE __m512 copysign_ps(__m512 mag, __m512 sign) {
  const __m512i sbit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  return _mm512_castsi512_ps(
      _mm512_ternarylogic_epi32(_mm512_castps_si512(mag), _mm512_castps_si512(sign), sbit, 0xD8));
}

// tanh: Cephes' tanhf: an odd polynomial below |x| = 0.625, 1 - 2/(exp(2|x|) + 1) above, both
// on |x| and given x's sign last, so tanh(-0) is -0 (the polynomial on x itself would give
// (-0 * -0) + -0 = +0 there; elsewhere round-to-nearest is symmetric and the values are the same).
FABRIC_VEC_INLINE __m512 tanh_ps(__m512 x) {
  const __m512 t = abs_ps(x);
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_fmadd_ps(splat(-5.70498872745e-3f), z, splat(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, splat(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, splat(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, splat(-3.33332819422e-1f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), t, t);
  const __m512 e = exp_ps(_mm512_add_ps(t, t));
  const __m512 large =
      _mm512_sub_ps(splat(1.0f), _mm512_div_ps(splat(2.0f), _mm512_add_ps(e, splat(1.0f))));
  return copysign_ps(
      _mm512_mask_mov_ps(small, _mm512_cmp_ps_mask(t, splat(0.625f), _CMP_GE_OQ), large), x);
}

// erf pieces (N. Juffa's erff, < 1 ulp): below |a| = 0.927734375 an odd polynomial; above,
// erf(|a|) = 1 - exp(r(|a|)) with r a polynomial (fitted for erf, not for erfc's relative accuracy:
// the GELU below has tail approximations of its own).
constexpr float kErfSplit = 0.927734375f;
FABRIC_VEC_INLINE __m512 erf_small(__m512 a) {
  const __m512 s = _mm512_mul_ps(a, a);
  __m512 r = _mm512_fmadd_ps(splat(-5.96761703e-4f), s, splat(4.99119423e-3f));
  r = _mm512_fmadd_ps(r, s, splat(-2.67681349e-2f));
  r = _mm512_fmadd_ps(r, s, splat(1.12819925e-1f));
  r = _mm512_fmadd_ps(r, s, splat(-3.76125336e-1f));
  r = _mm512_fmadd_ps(r, s, splat(1.28379166e-1f));
  return _mm512_fmadd_ps(r, a, a);
}
FABRIC_VEC_INLINE __m512 erf_large_exp(__m512 t) {  // t = |a| >= kErfSplit
  const __m512 s = _mm512_mul_ps(t, t);
  __m512 r = _mm512_fmadd_ps(splat(-1.72853470e-5f), t, splat(3.83197126e-4f));
  const __m512 u = _mm512_fmadd_ps(splat(-3.88396438e-3f), t, splat(2.42546219e-2f));
  r = _mm512_fmadd_ps(r, s, u);
  r = _mm512_fmadd_ps(r, t, splat(-1.06777877e-1f));
  r = _mm512_fmadd_ps(r, t, splat(-6.34846687e-1f));
  r = _mm512_fmadd_ps(r, t, splat(-1.28717512e-1f));
  r = _mm512_fmadd_ps(r, t, _mm512_sub_ps(_mm512_setzero_ps(), t));
  return exp_ps(r);
}
FABRIC_VEC_INLINE __m512 erf_ps(__m512 a) {
  const __m512 t = abs_ps(a);
  const __m512 large = copysign_ps(_mm512_sub_ps(splat(1.0f), erf_large_exp(t)), a);
  return _mm512_mask_mov_ps(erf_small(a), _mm512_cmp_ps_mask(t, splat(kErfSplit), _CMP_GE_OQ),
                            large);
}

FABRIC_VEC_INLINE __m512 sigmoid_ps(__m512 x) {
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(splat(1.0f), _mm512_add_ps(splat(1.0f), e));
}
FABRIC_VEC_INLINE __m512 silu_ps(__m512 x) {
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(x, _mm512_add_ps(splat(1.0f), e));
}
// mish's tanh(softplus(x)) = tanh(log1p(exp(x))) = n / (n + 2), n = e^x (e^x + 2): one exp and
// one division instead of exp, log and tanh. Past x = 20 it is 1 in float (and n would overflow).
FABRIC_VEC_INLINE __m512 tanh_softplus_ps(__m512 x) {
  const __m512 e = exp_ps(_mm512_min_ps(splat(20.0f), x));
  const __m512 n = _mm512_mul_ps(e, _mm512_add_ps(e, splat(2.0f)));
  const __m512 r = _mm512_div_ps(n, _mm512_add_ps(n, splat(2.0f)));
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, splat(20.0f), _CMP_GT_OQ), splat(1.0f));
}

// gelu(x) = x/2 * (1 + erf(x/sqrt2)) = x Phi(x) and its derivative Phi(x) + x phi(x), each in two
// halves so a kernel can run the expensive one only on the lanes that need it (kernels/cpu/
// gelu_split.h): gelu_erf_is_large / gelu_erf_grad_is_large pick the half, and gelu_erf_ps /
// gelu_erf_grad_ps are exactly the per-lane selections. Where 1 + erf cancels (x < 0) both keep
// their accuracy: against float64, gelu is within 1.75 ulp (2^-26 floor, as the accuracy tests
// measure) and 4 plain ulp down to where it underflows, the derivative within 2.7 (2^-26 floor);
// tests/ops/test_gelu_accuracy.cpp.
constexpr float kGeluSplit = 1.31201458f;
constexpr float kInvSqrt2Pi = 0.398942280401432678f;  // phi(0) = 1/sqrt(2 pi)
FABRIC_VEC_INLINE __mmask16 gelu_erf_is_large(__m512 x) {
  return _mm512_cmp_ps_mask(abs_ps(x), splat(kGeluSplit), _CMP_GE_OQ);
}
// |x| < kGeluSplit (NaN lands here): x Phi(x) = x/2 + x^2/sqrt(2 pi) + x^4 R(x^2), R a minimax fit
// for the error relative to the result on the negative side, where the sum cancels to a quarter of
// its terms: x/2 + hi(x^2/sqrt(2 pi)) is exact there (Sterbenz), so the rounding errors of x^2, of
// the product (both recovered with fma) and of the constant go into the small correction instead.
FABRIC_VEC_INLINE __m512 gelu_erf_small_ps(__m512 x) {
  constexpr float kLo = static_cast<float>(0.398942280401432678 - static_cast<double>(kInvSqrt2Pi));
  const __m512 s = _mm512_mul_ps(x, x);
  const __m512 s_lo = _mm512_fmsub_ps(x, x, s);
  const __m512 p = _mm512_mul_ps(splat(kInvSqrt2Pi), s);
  const __m512 p_lo = _mm512_fmsub_ps(splat(kInvSqrt2Pi), s, p);
  __m512 r = _mm512_fmadd_ps(splat(4.443156172e-07f), s, splat(-8.900120520e-06f));
  r = _mm512_fmadd_ps(r, s, splat(1.147329313e-04f));
  r = _mm512_fmadd_ps(r, s, splat(-1.186845591e-03f));
  r = _mm512_fmadd_ps(r, s, splat(9.973393753e-03f));
  r = _mm512_fmadd_ps(r, s, splat(-6.649035960e-02f));
  const __m512 lo = _mm512_fmadd_ps(splat(kLo), s, _mm512_fmadd_ps(splat(kInvSqrt2Pi), s_lo, p_lo));
  const __m512 corr = _mm512_fmadd_ps(_mm512_mul_ps(s, r), s, lo);
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(x, splat(0.5f), p), corr);
  return copysign_ps(y, x);  // gelu(-0) = -0 (the sum gives +0)
}
// |x| >= 1: Phi(-|x|) = exp(-x^2/2) H(q) / (|x| + 3.125), q = (|x| - 3.125)/(|x| + 3.125) in
// [-0.52, 0.64] up to where gelu underflows, H a degree-8 minimax fit (relative error 8e-9; the
// factor |x| + 3.125 keeps its terms from cancelling). 1/(|x| + 3.125) is rcp14 and one Newton step
// on the exact sum, q gets one correction from its exact residual. x^2 = s + s_lo exactly, and
// exp(-x^2/2) = e (1 + c) with e = exp(-s/2), c = -s_lo/2: the far left tail keeps its accuracy.
struct GeluTail {
  __m512 e, c, g;  // Phi(-|x|) = e g (1 + c)
};
FABRIC_VEC_INLINE GeluTail gelu_tail(__m512 x) {
  constexpr float k = 3.125f;
  const __m512 t = _mm512_min_ps(abs_ps(x), splat(16.0f));
  // Squared at most 16^2: e = exp(-128) is already 0 in float32 there, and x^2 past 2^128 would
  // overflow to inf and turn c (inf - inf) and so gelu(x <= -2^64) into NaN.
  const __m512 s = _mm512_mul_ps(t, t);
  const __m512 c = _mm512_mul_ps(splat(-0.5f), _mm512_fmsub_ps(t, t, s));
  const __m512 e = exp_ps(_mm512_mul_ps(splat(-0.5f), s));
  const __m512 r0 = _mm512_rcp14_ps(_mm512_add_ps(t, splat(k)));
  const __m512 rd =
      _mm512_fmadd_ps(r0, _mm512_fnmadd_ps(r0, t, _mm512_fnmadd_ps(r0, splat(k), splat(1.0f))), r0);
  const __m512 num = _mm512_sub_ps(t, splat(k));  // exact
  __m512 q = _mm512_mul_ps(num, rd);
  q = _mm512_fmadd_ps(rd, _mm512_fnmadd_ps(q, splat(k), _mm512_fnmadd_ps(q, t, num)), q);
  __m512 h = _mm512_fmadd_ps(splat(9.377500828e-05f), q, splat(-1.063484815e-03f));
  h = _mm512_fmadd_ps(h, q, splat(-1.115938721e-04f));
  h = _mm512_fmadd_ps(h, q, splat(7.989387028e-03f));
  h = _mm512_fmadd_ps(h, q, splat(-5.320814438e-03f));
  h = _mm512_fmadd_ps(h, q, splat(-6.382616609e-02f));
  h = _mm512_fmadd_ps(h, q, splat(2.526613176e-01f));
  h = _mm512_fmadd_ps(h, q, splat(-5.249630213e-01f));
  h = _mm512_fmadd_ps(h, q, splat(7.334536314e-01f));
  return {e, c, _mm512_mul_ps(h, rd)};
}
// gelu = x Phi(-|x|) for x < 0, x - x Phi(-|x|) for x > 0 (x itself past 8, which also keeps inf).
FABRIC_VEC_INLINE __m512 gelu_erf_large_ps(__m512 x) {
  const GeluTail tl = gelu_tail(x);
  const __m512 xge = _mm512_mul_ps(_mm512_mul_ps(x, tl.g), tl.e);  // x g first: stays normal longer
  const __m512 xphi = _mm512_fmadd_ps(xge, tl.c, xge);             // x Phi(-|x|)
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 y = _mm512_mask_mov_ps(_mm512_sub_ps(x, xphi), neg, xphi);
  return copysign_ps(_mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, splat(8.0f), _CMP_GT_OQ), x), x);
}
FABRIC_VEC_INLINE __m512 gelu_erf_ps(__m512 x) {
  return _mm512_mask_mov_ps(gelu_erf_small_ps(x), gelu_erf_is_large(x), gelu_erf_large_ps(x));
}

// The derivative, split at -1 and kGeluSplit: it cancels for x < 0 (it crosses 0 at -0.75), less in
// gelu_tail's form than in the polynomial's.
FABRIC_VEC_INLINE __mmask16 gelu_erf_grad_is_large(__m512 x) {
  return _mm512_cmp_ps_mask(x, splat(-1.0f), _CMP_LT_OQ) |
         _mm512_cmp_ps_mask(x, splat(kGeluSplit), _CMP_GE_OQ);
}
// -1 <= x < kGeluSplit (NaN lands here): Phi(x) + x phi(x) = 1/2 + x D(x^2), with
// D = erf(x/sqrt2)/(2x) + phi(x) = 2/sqrt(2 pi) + x^2 D1(x^2), D1 a minimax polynomial (no exp).
// Where it cancels, 1/2 + hi(x 2/sqrt(2 pi)) is exact, and the product's rounding error joins the
// correction.
FABRIC_VEC_INLINE __m512 gelu_erf_grad_small_ps(__m512 x) {
  constexpr float kD0 = 2 * kInvSqrt2Pi;
  constexpr float kD0Lo = static_cast<float>(0.797884560802865355 - static_cast<double>(kD0));
  const __m512 s = _mm512_mul_ps(x, x);
  __m512 d = _mm512_fmadd_ps(splat(5.990316822e-06f), s, splat(-1.055908433e-04f));
  d = _mm512_fmadd_ps(d, s, splat(1.144913957e-03f));
  d = _mm512_fmadd_ps(d, s, splat(-9.492509067e-03f));
  d = _mm512_fmadd_ps(d, s, splat(5.983939394e-02f));
  d = _mm512_fmadd_ps(d, s, splat(-2.659612894e-01f));
  const __m512 hi = _mm512_mul_ps(x, splat(kD0));
  const __m512 lo = _mm512_fmadd_ps(x, splat(kD0Lo), _mm512_fmsub_ps(x, splat(kD0), hi));
  const __m512 corr = _mm512_fmadd_ps(_mm512_mul_ps(x, s), d, lo);
  return _mm512_add_ps(_mm512_add_ps(splat(0.5f), hi), corr);
}
// The other lanes: with E = exp(-x^2/2), Phi(-|x|) = E g and x phi(x) = E x/sqrt(2 pi), so the
// derivative is E (g + x/sqrt(2 pi)) for x < 0 and 1 + E (x/sqrt(2 pi) - g) for x > 0 (1 past 8;
// NaN at +-inf, as PyTorch's Phi(x) + x phi(x) gives).
FABRIC_VEC_INLINE __m512 gelu_erf_grad_large_ps(__m512 x) {
  const GeluTail tl = gelu_tail(x);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 gs = _mm512_mask_sub_ps(tl.g, ~neg, _mm512_setzero_ps(), tl.g);
  const __m512 ew = _mm512_mul_ps(tl.e, _mm512_fmadd_ps(x, splat(kInvSqrt2Pi), gs));
  const __m512 ewc = _mm512_fmadd_ps(ew, tl.c, ew);
  const __m512 d = _mm512_mask_add_ps(ewc, ~neg, ewc, splat(1.0f));
  const __mmask16 past =
      _mm512_cmp_ps_mask(x, splat(8.0f), _CMP_GT_OQ) & ~_mm512_fpclass_ps_mask(x, 0x08);
  return _mm512_mask_mov_ps(d, past, splat(1.0f));
}
FABRIC_VEC_INLINE __m512 gelu_erf_grad_ps(__m512 x) {
  return _mm512_mask_mov_ps(gelu_erf_grad_small_ps(x), gelu_erf_grad_is_large(x),
                            gelu_erf_grad_large_ps(x));
}

// ---- GELU, tanh form -------------------------------------------------------------------------
// gelu(x) = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + k x^3), k = 0.044715 (PyTorch's definition),
// computed as x sigmoid(2u) from z = exp(-|2u|) <= 1: x / (1 + z) for x >= 0 and x z / (1 + z) for
// x < 0, with no cancellation and no overflow (the left tail keeps its relative accuracy down to
// where it underflows). The error of exp(-|2u|) is that of 2u times |2u| (up to 143), so float32
// results take 2u as an unevaluated sum hi + lo (kFull); bfloat16/float16 results, 8/11 bits, take
// it in plain float and a degree-4 exp (errors under 2^-15 relative, far below their rounding):
// a third fewer operations. The scalar twin of this formulation, for float64 and strided rows and
// for every CUDA GELU-tanh kernel, is tensor/gelu_tanh_math.h.
// Inputs are clamped to +-kGeluTanhClamp inside: past it exp(-|2u|) is 0 in float (x itself, or 0).
// Against float64, in float32 (tests/ops/test_gelu_accuracy.cpp, GeluTanhAccuracy): gelu within
// 3.1 ulp everywhere (2.0 floored at 2^-26, 1.1 ulp of 2^-149 on subnormal results), the derivative
// within 4.7 floored; bfloat16 results are the float64 reference rounded but for one input each.
constexpr float kGeluTanhClamp = 12.0f;
// -min(|x|, kGeluTanhClamp) (vrangeps: the smaller magnitude, sign set; NaN gives a number): 2u is
// odd in x, so exp(-|2u|) is exp(2u(-|x|)).
FABRIC_VEC_INLINE __m512 gelu_tanh_neg_abs_clamp(__m512 x) {
  return _mm512_range_ps(x, splat(kGeluTanhClamp), 0x0E);
}
// exp(2u) = p 2^q (p in [0.7, 1.42]) at x <= 0 (-143 <= 2u <= 0), 2u = A P, A = 2 sqrt(2/pi),
// P = x (1 + k x^2): exp_ps's reduction and polynomial (no clamp needed: vscalefps underflows
// gradually). kFull keeps P as P + P_lo (each rounding error recovered with an fma: x^2's,
// 1 + k x^2's, where 1 - w is exact for w >= 1, and the product's; plus k's low part) and reduces
// A P - q ln2 with A's low part, in the fma that takes the exact product A P.
struct GeluTanhExp {
  __m512 p, q;
  __m512 s;  // x^2
};
template <bool kFull>
FABRIC_VEC_INLINE GeluTanhExp gelu_tanh_exp(__m512 x) {
  constexpr float kAh = 1.595769167e+00f, kAl = -4.534068054e-08f;  // A = kAh + kAl
  constexpr float kKh = 4.471499845e-02f, kKl = 1.546144435e-09f;   // k = kKh + kKl
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187045e-06f;
  const __m512 s = _mm512_mul_ps(x, x);
  const __m512 w = _mm512_fmadd_ps(splat(kKh), s, splat(1.0f));
  const __m512 pp = _mm512_mul_ps(x, w);
  const __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(pp, splat(kAh * 1.442695040888963407f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r;
  if constexpr (!kFull) {
    r = _mm512_fnmadd_ps(q, splat(kLn2Hi), _mm512_mul_ps(splat(kAh), pp));
  } else {
    const __m512 s_lo = _mm512_fmsub_ps(x, x, s);
    __m512 w_lo = _mm512_fmadd_ps(splat(kKh), s, _mm512_sub_ps(splat(1.0f), w));
    w_lo = _mm512_fmadd_ps(splat(kKl), s, w_lo);
    w_lo = _mm512_fmadd_ps(splat(kKh), s_lo, w_lo);
    const __m512 pp_lo = _mm512_fmadd_ps(x, w_lo, _mm512_fmsub_ps(x, w, pp));
    // q ln2_hi is exact (|q| < 2^9): one rounding, of a result under 0.35 + 2^-9.
    r = _mm512_fmsub_ps(splat(kAh), pp, _mm512_mul_ps(q, splat(kLn2Hi)));
    r = _mm512_fmadd_ps(splat(kAh), pp_lo, _mm512_fmadd_ps(splat(kAl), pp, r));
  }
  r = _mm512_fnmadd_ps(q, splat(kLn2Lo), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 u;
  if constexpr (kFull) {  // exp_ps's coefficients in Estrin's scheme: the chain is the latency
    const __m512 c01 = _mm512_fmadd_ps(splat(0.166666671633720397949219f), r, splat(0.5f));
    const __m512 c23 = _mm512_fmadd_ps(splat(0.00833336077630519866943359f), r,
                                       splat(0.0416664853692054748535156f));
    const __m512 c45 = _mm512_fmadd_ps(splat(0.000198527617612853646278381f), r,
                                       splat(0.00139304355252534151077271f));
    u = _mm512_fmadd_ps(_mm512_fmadd_ps(c45, r2, c23), r2, c01);
  } else {  // degree 4, relative error 2^-17.5 (a fit of (e^r - 1 - r)/r^2)
    u = _mm512_fmadd_ps(splat(4.127727449e-02f), r, splat(1.675345004e-01f));
    u = _mm512_fmadd_ps(u, r, splat(5.000511408e-01f));
  }
  return {_mm512_add_ps(splat(1.0f), _mm512_fmadd_ps(r2, u, r)), q, s};
}
// NaN stays NaN, +inf gives inf and -inf NaN, as PyTorch's -inf/2 (1 + tanh(-inf)) = -inf * 0.
template <bool kFull = true>
FABRIC_VEC_INLINE __m512 gelu_tanh_ps(__m512 x) {
  const __m512 xn = gelu_tanh_neg_abs_clamp(x);
  const GeluTanhExp e = gelu_tanh_exp<kFull>(xn);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 z = _mm512_scalef_ps(e.p, e.q);
  const __m512 d = _mm512_add_ps(splat(1.0f), z);
  if constexpr (kFull) {
    // x p / d, then 2^q: results near and below FLT_MIN round once, not after z's own rounding.
    const __m512 y = _mm512_div_ps(_mm512_mask_mul_ps(x, neg, xn, e.p), d);
    return _mm512_mask_mov_ps(_mm512_mask_scalef_ps(y, neg, y, e.q),
                              _mm512_fpclass_ps_mask(x, 0x10), splat(__builtin_nanf("")));
  } else {
    return _mm512_div_ps(_mm512_mask_mul_ps(x, neg, x, z), d);  // -inf * 0 = NaN
  }
}
// The derivative, as PyTorch's GeluBackward defines it: (1 + t)/2 + x/2 (1 - t^2) du/dx,
// t = tanh(u). With z = exp(-|2u|), d = 1 + z and D = 2 du/dx = A (1 + 3k x^2): sigmoid(2u) is 1/d
// or z/d and 1 - t^2 = 4z/d^2, so it is (d + D x z)/d^2 for x >= 0 and z (d + D x)/d^2 for x < 0,
// where d + D x crosses 0 (at x = -0.7517) without cancelling more than its terms' rounding. NaN at
// +-inf (x/2 (1 - t^2) is inf * 0 there, as in PyTorch).
template <bool kFull = true>
FABRIC_VEC_INLINE __m512 gelu_tanh_grad_ps(__m512 x) {
  constexpr float k3K = 1.341450065e-01f;  // 3k
  const __m512 xn = gelu_tanh_neg_abs_clamp(x);
  const GeluTanhExp e = gelu_tanh_exp<kFull>(xn);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 z = _mm512_scalef_ps(e.p, e.q);
  const __m512 d = _mm512_add_ps(splat(1.0f), z);
  // -D x (the argument is -|x|). x < 0: d + D x, exact where it cancels; x >= 0: d + D x z.
  const __m512 ndx = _mm512_mul_ps(_mm512_mul_ps(splat(1.595769167e+00f), xn),
                                   _mm512_fmadd_ps(splat(k3K), e.s, splat(1.0f)));
  const __m512 sum = _mm512_mask_add_ps(_mm512_fnmadd_ps(ndx, z, d), neg, d, ndx);
  const __m512 d2 = _mm512_mul_ps(d, d);
  // z = p 2^q with 2^q applied last: subnormal results round once.
  __m512 g = _mm512_div_ps(_mm512_mask_mul_ps(sum, neg, sum, e.p), d2);
  g = _mm512_mask_scalef_ps(g, neg, g, e.q);
  // NaN and +-inf.
  return _mm512_mask_mov_ps(g, _mm512_fpclass_ps_mask(x, 0x99), splat(__builtin_nanf("")));
}
// The gradient g gelu'(x) with PyTorch's zeros (tensor/gelu_tanh_math.h, with_torch_zero): a
// product that rounds to zero in the output's dtype (magnitude at most zero_below, a constant:
// 0 for float32 results) is g * (+0), not -g * 0 as in the left tail.
template <bool kFull = true>
FABRIC_VEC_INLINE __m512 gelu_tanh_backward_ps(__m512 g, __m512 x, float zero_below) {
  const __m512 r = _mm512_mul_ps(g, gelu_tanh_grad_ps<kFull>(x));
  const __mmask16 zero = zero_below == 0.0f
                             ? _mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_EQ_OQ)
                             : _mm512_cmp_ps_mask(abs_ps(r), splat(zero_below), _CMP_LE_OQ);
  return _mm512_mask_mul_ps(r, zero, g, _mm512_setzero_ps());
}

}  // namespace fabric::cpu::vec
