// The AVX-512 intrinsics the CPU kernels use, for a CPU that has AVX2, FMA and F16C but no
// AVX-512. Included by x86_simd.h only; each `_mm512_*` name below becomes a macro for a function
// of fabric::cpu::avx512 with the instruction's result: every lane as Intel's pseudocode gives it
// (rounding, NaN choice, saturation, 128-bit-lane structure), so a kernel gives the same bits on
// both kinds of CPU. Three exceptions, all inputs to a refinement or fix-up that follows them in
// the kernels: _mm512_rcp14_ps is the correctly rounded 1/x (the hardware's is within 2^-14), and
// the masked loads and stores of 8/16-bit lanes touch only the lanes the mask selects, one by one.
// X86SimdEmulation (tests/kernels/test_x86_simd_emulation.cpp) runs every intrinsic here both ways
// on an AVX-512 CPU and requires the instruction's bits. One thing neither build fixes: with two
// NaN operands, vaddps, vmulps and the fmas return the first source's, and GCC orders the
// operands of those as register allocation suits it, in the AVX-512 build as here.
//
// The vector types are GCC's own (<immintrin.h> declares __m512 etc. on every x86 target); their
// arithmetic is lowered to two 256-bit halves. GCC's _mm512_* functions stay declared but are never
// called: they need the avx512f target. The immediates of the instructions that take one are
// template arguments here, so they stay constant at every optimisation level.
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "the CPU kernels need AVX-512, or AVX2 with FMA and F16C (build with -march=native)"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

// Passing 64-byte vectors between the (always inlined) functions below is what -Wpsabi warns of.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace fabric::cpu::avx512 {

#define FABRIC_AVX512_EMU inline __attribute__((always_inline))

using i8x64 = int8_t __attribute__((vector_size(64)));
using u8x64 = uint8_t __attribute__((vector_size(64)));
using i16x32 = int16_t __attribute__((vector_size(64)));
using u16x32 = uint16_t __attribute__((vector_size(64)));
using i32x16 = int32_t __attribute__((vector_size(64)));
using u32x16 = uint32_t __attribute__((vector_size(64)));
using i64x8 = int64_t __attribute__((vector_size(64)));
using u64x8 = uint64_t __attribute__((vector_size(64)));
using i8x16 = int8_t __attribute__((vector_size(16)));
using u8x16 = uint8_t __attribute__((vector_size(16)));
using i16x16 = int16_t __attribute__((vector_size(32)));
using u16x16 = uint16_t __attribute__((vector_size(32)));
using u8x32 = uint8_t __attribute__((vector_size(32)));
using i32x8 = int32_t __attribute__((vector_size(32)));

// ---- halves -------------------------------------------------------------------------------------
FABRIC_AVX512_EMU __m256 lo(__m512 a) { return __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7); }
FABRIC_AVX512_EMU __m256 hi(__m512 a) {
  return __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
}
FABRIC_AVX512_EMU __m512 join(__m256 l, __m256 h) {
  return __builtin_shufflevector(l, h, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
FABRIC_AVX512_EMU __m256d lo(__m512d a) { return __builtin_shufflevector(a, a, 0, 1, 2, 3); }
FABRIC_AVX512_EMU __m256d hi(__m512d a) { return __builtin_shufflevector(a, a, 4, 5, 6, 7); }
FABRIC_AVX512_EMU __m512d join(__m256d l, __m256d h) {
  return __builtin_shufflevector(l, h, 0, 1, 2, 3, 4, 5, 6, 7);
}
FABRIC_AVX512_EMU __m256i lo(__m512i a) { return __builtin_shufflevector(a, a, 0, 1, 2, 3); }
FABRIC_AVX512_EMU __m256i hi(__m512i a) { return __builtin_shufflevector(a, a, 4, 5, 6, 7); }
FABRIC_AVX512_EMU __m512i join(__m256i l, __m256i h) {
  return __builtin_shufflevector(l, h, 0, 1, 2, 3, 4, 5, 6, 7);
}
FABRIC_AVX512_EMU __m128 lo(__m256 a) { return _mm256_castps256_ps128(a); }
FABRIC_AVX512_EMU __m128 hi(__m256 a) { return _mm256_extractf128_ps(a, 1); }
FABRIC_AVX512_EMU __m128i lo(__m256i a) { return _mm256_castsi256_si128(a); }
FABRIC_AVX512_EMU __m128i hi(__m256i a) { return _mm256_extracti128_si256(a, 1); }
FABRIC_AVX512_EMU __m256i join(__m128i l, __m128i h) { return _mm256_set_m128i(h, l); }

// ---- masks <-> lanes ----------------------------------------------------------------------------
// All-ones lanes where the mask bit is set.
FABRIC_AVX512_EMU i32x16 lanes32(__mmask16 k) {
  const i32x16 bit = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  return ((i32x16{} + static_cast<int32_t>(k)) & bit) != 0;
}
FABRIC_AVX512_EMU i64x8 lanes64(__mmask8 k) {
  const i64x8 bit = {1, 2, 4, 8, 16, 32, 64, 128};
  return ((i64x8{} + static_cast<int64_t>(k)) & bit) != 0;
}
FABRIC_AVX512_EMU i16x32 lanes16(__mmask32 k) {
  const i16x32 bit = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
                      static_cast<int16_t>(0x8000), 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
                      2048, 4096, 8192, 16384, static_cast<int16_t>(0x8000)};
  const int16_t k0 = static_cast<int16_t>(k & 0xFFFF), k1 = static_cast<int16_t>(k >> 16);
  const i16x32 ks = {k0, k0, k0, k0, k0, k0, k0, k0, k0, k0, k0, k0, k0, k0, k0, k0,
                     k1, k1, k1, k1, k1, k1, k1, k1, k1, k1, k1, k1, k1, k1, k1, k1};
  return (ks & bit) != 0;
}
// The mask of lanes whose sign bit is set (comparison results are all ones or zero).
FABRIC_AVX512_EMU __mmask16 mask_of(i32x16 v) {
  const __m512 f = reinterpret_cast<__m512>(v);
  return static_cast<__mmask16>(_mm256_movemask_ps(lo(f)) | (_mm256_movemask_ps(hi(f)) << 8));
}
FABRIC_AVX512_EMU __mmask8 mask_of(i64x8 v) {
  const __m512d f = reinterpret_cast<__m512d>(v);
  return static_cast<__mmask8>(_mm256_movemask_pd(lo(f)) | (_mm256_movemask_pd(hi(f)) << 4));
}
FABRIC_AVX512_EMU __mmask32 mask_of(i16x32 v) {
  const __m512i w = reinterpret_cast<__m512i>(v);
  // packs keeps each 16-bit lane's sign in a byte; the 64-bit permute undoes its lane interleave.
  const __m256i b = _mm256_permute4x64_epi64(_mm256_packs_epi16(lo(w), hi(w)), 0xD8);
  return static_cast<__mmask32>(_mm256_movemask_epi8(b));
}
template <class V, class L>
FABRIC_AVX512_EMU V select(L take_b, V a, V b) {  // b where take_b, else a
  const L ai = reinterpret_cast<L>(a), bi = reinterpret_cast<L>(b);
  return reinterpret_cast<V>((bi & take_b) | (ai & ~take_b));
}

// ---- casts, set, load, store --------------------------------------------------------------------
FABRIC_AVX512_EMU __m512i castps_si512(__m512 a) { return reinterpret_cast<__m512i>(a); }
FABRIC_AVX512_EMU __m512 castsi512_ps(__m512i a) { return reinterpret_cast<__m512>(a); }
FABRIC_AVX512_EMU __m512i castpd_si512(__m512d a) { return reinterpret_cast<__m512i>(a); }
FABRIC_AVX512_EMU __m256 castps512_ps256(__m512 a) { return lo(a); }
FABRIC_AVX512_EMU __m256i castsi512_si256(__m512i a) { return lo(a); }
FABRIC_AVX512_EMU __m512i castsi256_si512(__m256i a) { return join(a, _mm256_setzero_si256()); }
template <int I>
FABRIC_AVX512_EMU __m256 extractf32x8_ps(__m512 a) {
  return I & 1 ? hi(a) : lo(a);
}
template <int I>
FABRIC_AVX512_EMU __m256i extracti64x4_epi64(__m512i a) {
  return I & 1 ? hi(a) : lo(a);
}
template <int I>
FABRIC_AVX512_EMU __m512i inserti64x4(__m512i a, __m256i b) {
  return I & 1 ? join(lo(a), b) : join(b, hi(a));
}

// Broadcasts copy the bits (0 + v would turn -0 into +0 and quieten a signalling NaN).
FABRIC_AVX512_EMU __m512 set1_ps(float v) { return join(_mm256_set1_ps(v), _mm256_set1_ps(v)); }
FABRIC_AVX512_EMU __m512d set1_pd(double v) { return join(_mm256_set1_pd(v), _mm256_set1_pd(v)); }
FABRIC_AVX512_EMU __m512i set1_epi16(int16_t v) { return reinterpret_cast<__m512i>(i16x32{} + v); }
FABRIC_AVX512_EMU __m512i set1_epi32(int32_t v) { return reinterpret_cast<__m512i>(i32x16{} + v); }
FABRIC_AVX512_EMU __m512i set1_epi64(int64_t v) { return reinterpret_cast<__m512i>(i64x8{} + v); }
FABRIC_AVX512_EMU __m512i setr_epi32(int32_t e0, int32_t e1, int32_t e2, int32_t e3, int32_t e4,
                                     int32_t e5, int32_t e6, int32_t e7, int32_t e8, int32_t e9,
                                     int32_t e10, int32_t e11, int32_t e12, int32_t e13,
                                     int32_t e14, int32_t e15) {
  return reinterpret_cast<__m512i>(
      i32x16{e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15});
}
FABRIC_AVX512_EMU __m512i setr_epi64(int64_t e0, int64_t e1, int64_t e2, int64_t e3, int64_t e4,
                                     int64_t e5, int64_t e6, int64_t e7) {
  return reinterpret_cast<__m512i>(i64x8{e0, e1, e2, e3, e4, e5, e6, e7});
}
FABRIC_AVX512_EMU __m512 setzero_ps() { return __m512{}; }
FABRIC_AVX512_EMU __m512i setzero_si512() { return __m512i{}; }

FABRIC_AVX512_EMU __m512 loadu_ps(const void* p) {
  __m512 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
FABRIC_AVX512_EMU __m512d loadu_pd(const void* p) {
  __m512d v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
FABRIC_AVX512_EMU __m512i loadu_si512(const void* p) {
  __m512i v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
FABRIC_AVX512_EMU void storeu_ps(void* p, __m512 v) { std::memcpy(p, &v, sizeof v); }
FABRIC_AVX512_EMU void storeu_pd(void* p, __m512d v) { std::memcpy(p, &v, sizeof v); }
FABRIC_AVX512_EMU void storeu_si512(void* p, __m512i v) { std::memcpy(p, &v, sizeof v); }
// Non-temporal stores need 32-byte alignment per half (the AVX-512 form: 64 for the whole).
FABRIC_AVX512_EMU void stream_ps(void* p, __m512 v) {
  _mm256_stream_ps(static_cast<float*>(p), lo(v));
  _mm256_stream_ps(static_cast<float*>(p) + 8, hi(v));
}
FABRIC_AVX512_EMU void stream_si512(void* p, __m512i v) {
  _mm256_stream_si256(static_cast<__m256i*>(p), lo(v));
  _mm256_stream_si256(static_cast<__m256i*>(p) + 1, hi(v));
}

// Masked loads and stores read and write only the selected lanes (vmaskmov for 32/64-bit lanes,
// which suppresses faults on the others as AVX-512's masking does; byte loops for 8/16-bit lanes).
FABRIC_AVX512_EMU __m256i mask_vector_half(__mmask16 k, int half) {
  return lo(reinterpret_cast<__m512i>(lanes32(static_cast<__mmask16>(half ? k >> 8 : k))));
}
FABRIC_AVX512_EMU __m512 maskz_loadu_ps(__mmask16 k, const void* p) {
  const float* f = static_cast<const float*>(p);
  return join(_mm256_maskload_ps(f, mask_vector_half(k, 0)),
              _mm256_maskload_ps(f + 8, mask_vector_half(k, 1)));
}
FABRIC_AVX512_EMU __m512 mask_loadu_ps(__m512 src, __mmask16 k, const void* p) {
  return select(lanes32(k), src, maskz_loadu_ps(k, p));
}
FABRIC_AVX512_EMU __m512i maskz_loadu_epi32(__mmask16 k, const void* p) {
  const int* f = static_cast<const int*>(p);
  return join(_mm256_maskload_epi32(f, mask_vector_half(k, 0)),
              _mm256_maskload_epi32(f + 8, mask_vector_half(k, 1)));
}
FABRIC_AVX512_EMU __m512d maskz_loadu_pd(__mmask8 k, const void* p) {
  const double* d = static_cast<const double*>(p);
  const __m512i m = reinterpret_cast<__m512i>(lanes64(k));
  return join(_mm256_maskload_pd(d, lo(m)), _mm256_maskload_pd(d + 4, hi(m)));
}
FABRIC_AVX512_EMU void mask_storeu_ps(void* p, __mmask16 k, __m512 v) {
  float* f = static_cast<float*>(p);
  _mm256_maskstore_ps(f, mask_vector_half(k, 0), lo(v));
  _mm256_maskstore_ps(f + 8, mask_vector_half(k, 1), hi(v));
}
FABRIC_AVX512_EMU void mask_storeu_epi32(void* p, __mmask16 k, __m512i v) {
  int* f = static_cast<int*>(p);
  _mm256_maskstore_epi32(f, mask_vector_half(k, 0), lo(v));
  _mm256_maskstore_epi32(f + 8, mask_vector_half(k, 1), hi(v));
}
FABRIC_AVX512_EMU void mask_storeu_pd(void* p, __mmask8 k, __m512d v) {
  double* d = static_cast<double*>(p);
  const __m512i m = reinterpret_cast<__m512i>(lanes64(k));
  _mm256_maskstore_pd(d, lo(m), lo(v));
  _mm256_maskstore_pd(d + 4, hi(m), hi(v));
}
template <class T, int N, class V>
FABRIC_AVX512_EMU V masked_load_small(uint64_t k, const void* p) {
  T lanes[N] = {};
  const T* s = static_cast<const T*>(p);
  for (int i = 0; i < N; ++i)
    if (k >> i & 1) lanes[i] = s[i];
  V v;
  std::memcpy(&v, lanes, sizeof v);
  return v;
}
template <class T, int N, class V>
FABRIC_AVX512_EMU void masked_store_small(void* p, uint64_t k, V v) {
  T lanes[N];
  std::memcpy(lanes, &v, sizeof v);
  T* d = static_cast<T*>(p);
  for (int i = 0; i < N; ++i)
    if (k >> i & 1) d[i] = lanes[i];
}
FABRIC_AVX512_EMU __m512i maskz_loadu_epi16(__mmask32 k, const void* p) {
  return masked_load_small<uint16_t, 32, __m512i>(k, p);
}
FABRIC_AVX512_EMU void mask_storeu_epi16(void* p, __mmask32 k, __m512i v) {
  masked_store_small<uint16_t, 32>(p, k, v);
}
FABRIC_AVX512_EMU __m256i mm256_maskz_loadu_epi16(__mmask16 k, const void* p) {
  return masked_load_small<uint16_t, 16, __m256i>(k, p);
}
FABRIC_AVX512_EMU __m256i mm256_maskz_loadu_epi8(__mmask32 k, const void* p) {
  return masked_load_small<uint8_t, 32, __m256i>(k, p);
}
FABRIC_AVX512_EMU void mm256_mask_storeu_epi16(void* p, __mmask16 k, __m256i v) {
  masked_store_small<uint16_t, 16>(p, k, v);
}
FABRIC_AVX512_EMU __m128i mm_maskz_loadu_epi8(__mmask16 k, const void* p) {
  return masked_load_small<uint8_t, 16, __m128i>(k, p);
}
FABRIC_AVX512_EMU void mm_mask_storeu_epi8(void* p, __mmask16 k, __m128i v) {
  masked_store_small<uint8_t, 16>(p, k, v);
}

// ---- float arithmetic ---------------------------------------------------------------------------
FABRIC_AVX512_EMU __m512 add_ps(__m512 a, __m512 b) { return a + b; }
FABRIC_AVX512_EMU __m512 sub_ps(__m512 a, __m512 b) { return a - b; }
FABRIC_AVX512_EMU __m512 mul_ps(__m512 a, __m512 b) { return a * b; }
FABRIC_AVX512_EMU __m512 div_ps(__m512 a, __m512 b) { return a / b; }
FABRIC_AVX512_EMU __m512d mul_pd(__m512d a, __m512d b) { return a * b; }
// The embedded rounding of the kernels' *_round_ps is round-to-nearest-even, the default mode.
// Like the instruction (a builtin GCC never contracts), the add is not fused with a product that
// feeds it: the kernels use it as that barrier. The operands go through an empty asm.
template <int R>
FABRIC_AVX512_EMU __m512 add_round_ps(__m512 a, __m512 b) {
  static_assert((R & 3) == _MM_FROUND_TO_NEAREST_INT, "only round-to-nearest is emulated");
  __m256 al = lo(a), ah = hi(a), bl = lo(b), bh = hi(b);
  asm("" : "+x"(al), "+x"(ah), "+x"(bl), "+x"(bh));
  return join(_mm256_add_ps(al, bl), _mm256_add_ps(ah, bh));
}
FABRIC_AVX512_EMU __m512 fmadd_ps(__m512 a, __m512 b, __m512 c) {
  return join(_mm256_fmadd_ps(lo(a), lo(b), lo(c)), _mm256_fmadd_ps(hi(a), hi(b), hi(c)));
}
FABRIC_AVX512_EMU __m512 fmsub_ps(__m512 a, __m512 b, __m512 c) {
  return join(_mm256_fmsub_ps(lo(a), lo(b), lo(c)), _mm256_fmsub_ps(hi(a), hi(b), hi(c)));
}
FABRIC_AVX512_EMU __m512 fnmadd_ps(__m512 a, __m512 b, __m512 c) {
  return join(_mm256_fnmadd_ps(lo(a), lo(b), lo(c)), _mm256_fnmadd_ps(hi(a), hi(b), hi(c)));
}
// min/max as the instructions: the second operand when either is NaN (or both are zeros).
FABRIC_AVX512_EMU __m512 min_ps(__m512 a, __m512 b) {
  return join(_mm256_min_ps(lo(a), lo(b)), _mm256_min_ps(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512 max_ps(__m512 a, __m512 b) {
  return join(_mm256_max_ps(lo(a), lo(b)), _mm256_max_ps(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512d max_pd(__m512d a, __m512d b) {
  return join(_mm256_max_pd(lo(a), lo(b)), _mm256_max_pd(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512 sqrt_ps(__m512 a) {
  return join(_mm256_sqrt_ps(lo(a)), _mm256_sqrt_ps(hi(a)));
}
FABRIC_AVX512_EMU __m512d sqrt_pd(__m512d a) {
  return join(_mm256_sqrt_pd(lo(a)), _mm256_sqrt_pd(hi(a)));
}
FABRIC_AVX512_EMU __m512 abs_ps(__m512 a) {
  return reinterpret_cast<__m512>(reinterpret_cast<u32x16>(a) & 0x7FFFFFFFu);
}
FABRIC_AVX512_EMU __m512 xor_ps(__m512 a, __m512 b) {
  return reinterpret_cast<__m512>(reinterpret_cast<u32x16>(a) ^ reinterpret_cast<u32x16>(b));
}
// Exactly rounded 1/x, within vrcp14ps's bound (see the file comment).
FABRIC_AVX512_EMU __m512 rcp14_ps(__m512 a) { return 1.0f / a; }

template <int R>
FABRIC_AVX512_EMU __m512 roundscale_ps(__m512 a) {
  static_assert((R & 0xF0) == 0, "only scale 0 (rounding to integers) is emulated");
  return join(_mm256_round_ps(lo(a), R & 0x0F), _mm256_round_ps(hi(a), R & 0x0F));
}

// vscalefps: a * 2^floor(b), one rounding (denormal results included). Through double, where
// a * 2^q with |q| <= 300 is exact and its conversion to float the one rounding. Special cases
// as the SDM's table for VSCALEFPS has them and an AMD Zen 5 gives them (probed 2026-12-04 by
// X86SimdEmulation): a quiet NaN a gives itself, except +inf for b = +inf and +0 for b = -inf; a
// signalling NaN a gives itself quietened, and so does a NaN b beside any other a. 0 * 2^+inf and
// inf * 2^-inf give the default NaN with its sign set (0xFFC00000), not 0x7FC00000.
FABRIC_AVX512_EMU float scalef_lane(float a, float b) {
  if (std::isnan(a)) {
    uint32_t bits;
    std::memcpy(&bits, &a, sizeof bits);
    const bool quiet = bits & 0x00400000u;
    if (quiet && std::isinf(b)) return b > 0 ? b : 0.0f;
    return a + a;  // quietened
  }
  if (std::isnan(b)) return b + b;
  if (std::isinf(b)) {
    const float indefinite = -std::numeric_limits<float>::quiet_NaN();  // 0xFFC00000
    if (b > 0) return a == 0 ? indefinite : a * b;
    return std::isinf(a) ? indefinite : a * 0.0f;
  }
  const double q = std::fmin(std::fmax(std::floor(static_cast<double>(b)), -300.0), 300.0);
  return static_cast<float>(std::ldexp(static_cast<double>(a), static_cast<int>(q)));
}
FABRIC_AVX512_EMU __m256 scalef_half(__m256 a, __m256 b) {
  const __m256 fb = _mm256_floor_ps(b);
  // Fast path: finite a, and floor(b) in [-126, 127] with a * 2^q normal or zero: one product
  // by an exact power of two.
  const __m256 q = _mm256_min_ps(_mm256_max_ps(fb, _mm256_set1_ps(-126.0f)), _mm256_set1_ps(127.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(q), _mm256_set1_epi32(127)), 23);
  const __m256 r = _mm256_mul_ps(a, _mm256_castsi256_ps(e));
  const __m256 ar = _mm256_and_ps(r, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
  const __m256 aa = _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
  const __m256 ok = _mm256_and_ps(
      _mm256_and_ps(_mm256_cmp_ps(fb, q, _CMP_EQ_OQ), _mm256_cmp_ps(aa, _mm256_set1_ps(INFINITY), _CMP_LT_OQ)),
      _mm256_or_ps(_mm256_and_ps(_mm256_cmp_ps(ar, _mm256_set1_ps(0x1p-126f), _CMP_GE_OQ),
                                 _mm256_cmp_ps(ar, _mm256_set1_ps(INFINITY), _CMP_LT_OQ)),
                   _mm256_cmp_ps(aa, _mm256_setzero_ps(), _CMP_EQ_OQ)));
  if (_mm256_movemask_ps(ok) == 0xFF) return r;
  alignas(32) float av[8], bv[8], rv[8];
  _mm256_store_ps(av, a);
  _mm256_store_ps(bv, b);
  for (int i = 0; i < 8; ++i) rv[i] = scalef_lane(av[i], bv[i]);
  return _mm256_load_ps(rv);
}
FABRIC_AVX512_EMU __m512 scalef_ps(__m512 a, __m512 b) {
  return join(scalef_half(lo(a), lo(b)), scalef_half(hi(a), hi(b)));
}

// vgetexpps: floor(log2|x|) as a float (denormals normalised), -inf for zeros, +inf for infinities.
FABRIC_AVX512_EMU float getexp_lane(float x) {
  if (std::isnan(x)) return x + x;
  if (x == 0) return -INFINITY;
  if (std::isinf(x)) return INFINITY;
  return static_cast<float>(std::ilogb(x));
}
// vgetmantps with _MM_MANT_NORM_1_2 and _MM_MANT_SIGN_zero: |x|'s significand in [1, 2);
// 1 for zeros and infinities, NaN for NaN.
FABRIC_AVX512_EMU float getmant_lane(float x) {
  if (std::isnan(x)) return x + x;
  if (x == 0 || std::isinf(x)) return 1.0f;
  int e;
  return std::fabs(std::frexp(x, &e)) * 2.0f;
}
// Lanes that are zero, denormal, infinite or NaN (exponent field 0 or 255).
FABRIC_AVX512_EMU __mmask16 not_normal(__m512 x) {
  const i32x16 exp = reinterpret_cast<i32x16>(reinterpret_cast<u32x16>(x) >> 23 & 0xFFu);
  return mask_of((exp == 0) | (exp == 0xFF));
}
FABRIC_AVX512_EMU __m512 getexp_ps(__m512 x) {
  const i32x16 e = reinterpret_cast<i32x16>(reinterpret_cast<u32x16>(x) >> 23 & 0xFFu) - 127;
  __m512 r = __builtin_convertvector(e, __m512);
  if (__mmask16 odd = not_normal(x)) {
    for (int i = 0; i < 16; ++i)
      if (odd >> i & 1) r[i] = getexp_lane(x[i]);
  }
  return r;
}
template <int Interval, int Sign>
FABRIC_AVX512_EMU __m512 getmant_ps(__m512 x) {
  static_assert(Interval == _MM_MANT_NORM_1_2 && Sign == _MM_MANT_SIGN_zero,
                "only _MM_MANT_NORM_1_2 with _MM_MANT_SIGN_zero is emulated");
  __m512 r = reinterpret_cast<__m512>((reinterpret_cast<u32x16>(x) & 0x007FFFFFu) | 0x3F800000u);
  if (__mmask16 odd = not_normal(x)) {
    for (int i = 0; i < 16; ++i)
      if (odd >> i & 1) r[i] = getmant_lane(x[i]);
  }
  return r;
}

// vrangeps with imm 0x0E: -min(|a|, |b|), with NaNs as the SDM's table for VRANGE gives them (and
// an AMD Zen 5 does, probed 2026-12-04): a quiet NaN beside a number gives the number, two quiet
// NaNs the first, each with the sign set; a signalling NaN gives itself quietened, sign kept (a's
// first).
template <int Imm>
FABRIC_AVX512_EMU __m512 range_ps(__m512 a, __m512 b) {
  static_assert(Imm == 0x0E, "only the negated minimum magnitude (0x0E) is emulated");
  const u32x16 ua = reinterpret_cast<u32x16>(a), ub = reinterpret_cast<u32x16>(b);
  const u32x16 ma = ua & 0x7FFFFFFFu, mb = ub & 0x7FFFFFFFu;
  const i32x16 nan_a = ma > 0x7F800000u, nan_b = mb > 0x7F800000u;
  u32x16 r = nan_b ? ma : nan_a ? mb : (ma < mb) ? ma : mb;
  r |= 0x80000000u;
  r = (nan_b & ((ub & 0x00400000u) == 0)) ? (ub | 0x00400000u) : r;
  r = (nan_a & ((ua & 0x00400000u) == 0)) ? (ua | 0x00400000u) : r;
  return reinterpret_cast<__m512>(r);
}

// vfpclassps/pd: bit 0 QNaN, 1 +0, 2 -0, 3 +inf, 4 -inf, 5 denormal, 6 negative finite (nonzero,
// denormals included), 7 SNaN.
template <int Imm, class U, class S, auto kSign, auto kExpMask, auto kQuiet, auto kMinNormal>
FABRIC_AVX512_EMU S fpclass_lanes(U u) {
  const U mag = u & ~kSign;
  const S neg = reinterpret_cast<S>((u & kSign) != 0);
  const S nan = reinterpret_cast<S>(mag > kExpMask);
  const S quiet = reinterpret_cast<S>((u & kQuiet) != 0);
  const S zero = reinterpret_cast<S>(mag == 0);
  const S inf = reinterpret_cast<S>(mag == kExpMask);
  const S denormal = reinterpret_cast<S>(mag < kMinNormal) & ~zero;
  S r = S{};
  if constexpr (Imm & 0x01) r |= nan & quiet;
  if constexpr (Imm & 0x02) r |= zero & ~neg;
  if constexpr (Imm & 0x04) r |= zero & neg;
  if constexpr (Imm & 0x08) r |= inf & ~neg;
  if constexpr (Imm & 0x10) r |= inf & neg;
  if constexpr (Imm & 0x20) r |= denormal;
  if constexpr (Imm & 0x40) r |= neg & ~zero & ~inf & ~nan;
  if constexpr (Imm & 0x80) r |= nan & ~quiet;
  return r;
}
template <int Imm>
FABRIC_AVX512_EMU __mmask16 fpclass_ps_mask(__m512 x) {
  return mask_of(fpclass_lanes<Imm, u32x16, i32x16, 0x80000000u, 0x7F800000u, 0x00400000u, 0x00800000u>(
      reinterpret_cast<u32x16>(x)));
}
template <int Imm>
FABRIC_AVX512_EMU __mmask8 fpclass_pd_mask(__m512d x) {
  return mask_of(fpclass_lanes<Imm, u64x8, i64x8, 0x8000000000000000ull, 0x7FF0000000000000ull,
                               0x0008000000000000ull, 0x0010000000000000ull>(
      reinterpret_cast<u64x8>(x)));
}

template <int P>
FABRIC_AVX512_EMU __mmask16 cmp_ps_mask(__m512 a, __m512 b) {
  return static_cast<__mmask16>(_mm256_movemask_ps(_mm256_cmp_ps(lo(a), lo(b), P)) |
                                (_mm256_movemask_ps(_mm256_cmp_ps(hi(a), hi(b), P)) << 8));
}

// ---- masked float operations --------------------------------------------------------------------
FABRIC_AVX512_EMU __m512 mask_mov_ps(__m512 src, __mmask16 k, __m512 a) {
  return select(lanes32(k), src, a);
}
FABRIC_AVX512_EMU __m512 maskz_mov_ps(__mmask16 k, __m512 a) { return select(lanes32(k), __m512{}, a); }
FABRIC_AVX512_EMU __m512 mask_add_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, a + b);
}
FABRIC_AVX512_EMU __m512 mask_sub_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, a - b);
}
FABRIC_AVX512_EMU __m512 mask_mul_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, a * b);
}
FABRIC_AVX512_EMU __m512 mask_scalef_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, scalef_ps(a, b));
}
FABRIC_AVX512_EMU __m512 maskz_max_ps(__mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), __m512{}, max_ps(a, b));
}
FABRIC_AVX512_EMU __m512d maskz_max_pd(__mmask8 k, __m512d a, __m512d b) {
  return select(lanes64(k), __m512d{}, max_pd(a, b));
}
FABRIC_AVX512_EMU __m512 maskz_sqrt_ps(__mmask16 k, __m512 a) {
  return select(lanes32(k), __m512{}, sqrt_ps(a));
}
FABRIC_AVX512_EMU __m512d maskz_sqrt_pd(__mmask8 k, __m512d a) {
  return select(lanes64(k), __m512d{}, sqrt_pd(a));
}
// vcompressps (zeroing): the selected lanes packed to the front.
FABRIC_AVX512_EMU __m512 maskz_compress_ps(__mmask16 k, __m512 a) {
  __m512 r = {};
  int n = 0;
  for (int i = 0; i < 16; ++i)
    if (k >> i & 1) r[n++] = a[i];
  return r;
}
// vexpandps (merging): consecutive lanes of a into the selected lanes, src elsewhere.
FABRIC_AVX512_EMU __m512 mask_expand_ps(__m512 src, __mmask16 k, __m512 a) {
  int n = 0;
  for (int i = 0; i < 16; ++i)
    if (k >> i & 1) src[i] = a[n++];
  return src;
}
template <int Scale>
FABRIC_AVX512_EMU __m512 i32gather_ps(__m512i idx, const void* base) {
  const float* b = static_cast<const float*>(base);
  return join(_mm256_i32gather_ps(b, lo(idx), Scale), _mm256_i32gather_ps(b, hi(idx), Scale));
}
template <int Scale>
FABRIC_AVX512_EMU __m512 mask_i32gather_ps(__m512 src, __mmask16 k, __m512i idx, const void* base) {
  const float* b = static_cast<const float*>(base);
  const __m512 m = reinterpret_cast<__m512>(lanes32(k));
  return join(_mm256_mask_i32gather_ps(lo(src), b, lo(idx), lo(m), Scale),
              _mm256_mask_i32gather_ps(hi(src), b, hi(idx), hi(m), Scale));
}

// ---- reductions, in the order of GCC's own _mm512_reduce_* sequences ----------------------------
FABRIC_AVX512_EMU float reduce_add_ps(__m512 a) {
  const __m256 t3 = hi(a) + lo(a);
  const __m128 t6 = hi(t3) + lo(t3);
  const __m128 t8 = t6 + __builtin_shufflevector(t6, t6, 2, 3, 0, 1);
  return t8[0] + t8[1];
}
FABRIC_AVX512_EMU float reduce_max_ps(__m512 a) {
  const __m256 t3 = _mm256_max_ps(hi(a), lo(a));
  const __m128 t6 = _mm_max_ps(hi(t3), lo(t3));
  const __m128 t8 = _mm_max_ps(t6, __builtin_shufflevector(t6, t6, 2, 3, 0, 1));
  return _mm_cvtss_f32(_mm_max_ps(t8, __builtin_shufflevector(t8, t8, 1, 0, 1, 0)));
}
FABRIC_AVX512_EMU float reduce_min_ps(__m512 a) {
  const __m256 t3 = _mm256_min_ps(hi(a), lo(a));
  const __m128 t6 = _mm_min_ps(hi(t3), lo(t3));
  const __m128 t8 = _mm_min_ps(t6, __builtin_shufflevector(t6, t6, 2, 3, 0, 1));
  return _mm_cvtss_f32(_mm_min_ps(t8, __builtin_shufflevector(t8, t8, 1, 0, 1, 0)));
}
FABRIC_AVX512_EMU uint32_t reduce_max_epu32(__m512i a) {
  const u32x16 v = reinterpret_cast<u32x16>(a);
  uint32_t m = v[0];
  for (int i = 1; i < 16; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// ---- integer arithmetic, logic and comparisons --------------------------------------------------
#define FABRIC_AVX512_EMU_BINARY(name, lane_type, op)                                 \
  FABRIC_AVX512_EMU __m512i name(__m512i a, __m512i b) {                             \
    return reinterpret_cast<__m512i>(reinterpret_cast<lane_type>(a) op               \
                                     reinterpret_cast<lane_type>(b));                \
  }
FABRIC_AVX512_EMU_BINARY(add_epi32, u32x16, +)
FABRIC_AVX512_EMU_BINARY(sub_epi32, u32x16, -)
FABRIC_AVX512_EMU_BINARY(mullo_epi32, u32x16, *)
FABRIC_AVX512_EMU_BINARY(add_epi64, u64x8, +)
FABRIC_AVX512_EMU_BINARY(and_si512, u64x8, &)
FABRIC_AVX512_EMU_BINARY(or_si512, u64x8, |)
FABRIC_AVX512_EMU_BINARY(xor_si512, u64x8, ^)
#undef FABRIC_AVX512_EMU_BINARY
FABRIC_AVX512_EMU __m512i max_epu32(__m512i a, __m512i b) {
  return join(_mm256_max_epu32(lo(a), lo(b)), _mm256_max_epu32(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512i min_epu32(__m512i a, __m512i b) {
  return join(_mm256_min_epu32(lo(a), lo(b)), _mm256_min_epu32(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512i mul_epu32(__m512i a, __m512i b) {
  return join(_mm256_mul_epu32(lo(a), lo(b)), _mm256_mul_epu32(hi(a), hi(b)));
}
// Shifts by a count >= the lane width give 0, as the instructions.
FABRIC_AVX512_EMU __m512i slli_epi16(__m512i a, unsigned n) {
  return n > 15 ? __m512i{} : reinterpret_cast<__m512i>(reinterpret_cast<u16x32>(a) << n);
}
FABRIC_AVX512_EMU __m512i slli_epi32(__m512i a, unsigned n) {
  return n > 31 ? __m512i{} : reinterpret_cast<__m512i>(reinterpret_cast<u32x16>(a) << n);
}
FABRIC_AVX512_EMU __m512i slli_epi64(__m512i a, unsigned n) {
  return n > 63 ? __m512i{} : reinterpret_cast<__m512i>(reinterpret_cast<u64x8>(a) << n);
}
FABRIC_AVX512_EMU __m512i srli_epi32(__m512i a, unsigned n) {
  return n > 31 ? __m512i{} : reinterpret_cast<__m512i>(reinterpret_cast<u32x16>(a) >> n);
}
FABRIC_AVX512_EMU __m512i srli_epi64(__m512i a, unsigned n) {
  return n > 63 ? __m512i{} : reinterpret_cast<__m512i>(reinterpret_cast<u64x8>(a) >> n);
}
// vpternlogd: each result bit is imm's bit number (a << 2 | b << 1 | c) of the three inputs' bits.
template <int Imm>
FABRIC_AVX512_EMU __m512i ternarylogic_epi32(__m512i a, __m512i b, __m512i c) {
  const u64x8 x = reinterpret_cast<u64x8>(a), y = reinterpret_cast<u64x8>(b),
              z = reinterpret_cast<u64x8>(c);
  u64x8 r = {};
  if constexpr (Imm & 0x01) r |= ~x & ~y & ~z;
  if constexpr (Imm & 0x02) r |= ~x & ~y & z;
  if constexpr (Imm & 0x04) r |= ~x & y & ~z;
  if constexpr (Imm & 0x08) r |= ~x & y & z;
  if constexpr (Imm & 0x10) r |= x & ~y & ~z;
  if constexpr (Imm & 0x20) r |= x & ~y & z;
  if constexpr (Imm & 0x40) r |= x & y & ~z;
  if constexpr (Imm & 0x80) r |= x & y & z;
  return reinterpret_cast<__m512i>(r);
}
FABRIC_AVX512_EMU __mmask16 cmpeq_epi32_mask(__m512i a, __m512i b) {
  return mask_of(reinterpret_cast<i32x16>(a) == reinterpret_cast<i32x16>(b));
}
FABRIC_AVX512_EMU __mmask16 cmpge_epi32_mask(__m512i a, __m512i b) {
  return mask_of(reinterpret_cast<i32x16>(a) >= reinterpret_cast<i32x16>(b));
}
FABRIC_AVX512_EMU __mmask16 cmplt_epi32_mask(__m512i a, __m512i b) {
  return mask_of(reinterpret_cast<i32x16>(a) < reinterpret_cast<i32x16>(b));
}
FABRIC_AVX512_EMU __mmask16 cmpgt_epu32_mask(__m512i a, __m512i b) {
  return mask_of(reinterpret_cast<i32x16>(reinterpret_cast<u32x16>(a) > reinterpret_cast<u32x16>(b)));
}
FABRIC_AVX512_EMU __mmask16 cmplt_epu32_mask(__m512i a, __m512i b) {
  return mask_of(reinterpret_cast<i32x16>(reinterpret_cast<u32x16>(a) < reinterpret_cast<u32x16>(b)));
}
FABRIC_AVX512_EMU __mmask32 mask_cmpeq_epi16_mask(__mmask32 k, __m512i a, __m512i b) {
  return k & mask_of(reinterpret_cast<i16x32>(a) == reinterpret_cast<i16x32>(b));
}
FABRIC_AVX512_EMU __mmask32 test_epi16_mask(__m512i a, __m512i b) {
  return mask_of((reinterpret_cast<i16x32>(a) & reinterpret_cast<i16x32>(b)) != 0);
}
FABRIC_AVX512_EMU __m512i mask_mov_epi32(__m512i src, __mmask16 k, __m512i a) {
  return select(lanes32(k), src, a);
}
FABRIC_AVX512_EMU __m512i mask_blend_epi32(__mmask16 k, __m512i a, __m512i b) {
  return select(lanes32(k), a, b);
}
FABRIC_AVX512_EMU __m512i mask_blend_epi16(__mmask32 k, __m512i a, __m512i b) {
  return select(lanes16(k), a, b);
}
FABRIC_AVX512_EMU __m512i mask_add_epi32(__m512i src, __mmask16 k, __m512i a, __m512i b) {
  return select(lanes32(k), src, add_epi32(a, b));
}
FABRIC_AVX512_EMU __m512i mask_or_epi32(__m512i src, __mmask16 k, __m512i a, __m512i b) {
  return select(lanes32(k), src, or_si512(a, b));
}

// ---- conversions --------------------------------------------------------------------------------
FABRIC_AVX512_EMU __m512 cvtepi32_ps(__m512i a) {
  return __builtin_convertvector(reinterpret_cast<i32x16>(a), __m512);
}
FABRIC_AVX512_EMU __m512i cvttps_epi32(__m512 a) {  // out of range and NaN: INT_MIN
  return join(_mm256_cvttps_epi32(lo(a)), _mm256_cvttps_epi32(hi(a)));
}
template <int R>
FABRIC_AVX512_EMU __m512i cvt_roundps_epi32(__m512 a) {
  static_assert((R & 3) == _MM_FROUND_TO_NEAREST_INT, "only round-to-nearest is emulated");
  return cvttps_epi32(roundscale_ps<_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC>(a));
}
FABRIC_AVX512_EMU __m512d cvtps_pd(__m256 a) {
  return join(_mm256_cvtps_pd(lo(a)), _mm256_cvtps_pd(hi(a)));
}
FABRIC_AVX512_EMU __m256 cvtpd_ps(__m512d a) {
  return _mm256_set_m128(_mm256_cvtpd_ps(hi(a)), _mm256_cvtpd_ps(lo(a)));
}
FABRIC_AVX512_EMU __m512 cvtph_ps(__m256i h) {
  return join(_mm256_cvtph_ps(lo(h)), _mm256_cvtph_ps(hi(h)));
}
template <int R>
FABRIC_AVX512_EMU __m256i cvtps_ph(__m512 a) {
  return join(_mm256_cvtps_ph(lo(a), R), _mm256_cvtps_ph(hi(a), R));
}
// Truncating narrowings (vpmovdw, vpmovdb, vpmovqd, vpmovqb) and widenings.
FABRIC_AVX512_EMU __m256i cvtepi32_epi16(__m512i a) {
  return reinterpret_cast<__m256i>(__builtin_convertvector(reinterpret_cast<i32x16>(a), i16x16));
}
FABRIC_AVX512_EMU __m128i cvtepi32_epi8(__m512i a) {
  return reinterpret_cast<__m128i>(__builtin_convertvector(reinterpret_cast<i32x16>(a), i8x16));
}
FABRIC_AVX512_EMU __m256i cvtepi64_epi32(__m512i a) {
  return reinterpret_cast<__m256i>(__builtin_convertvector(reinterpret_cast<i64x8>(a), i32x8));
}
FABRIC_AVX512_EMU __m128i cvtepi64_epi8(__m512i a) {  // 8 bytes, the upper 8 zero
  using i8x8 = int8_t __attribute__((vector_size(8)));
  const i8x8 b = __builtin_convertvector(reinterpret_cast<i64x8>(a), i8x8);
  return _mm_set_epi64x(0, reinterpret_cast<long long>(b));
}
FABRIC_AVX512_EMU __m512i cvtepi8_epi32(__m128i a) {
  return reinterpret_cast<__m512i>(__builtin_convertvector(reinterpret_cast<i8x16>(a), i32x16));
}
FABRIC_AVX512_EMU __m512i cvtepu8_epi32(__m128i a) {
  return reinterpret_cast<__m512i>(__builtin_convertvector(reinterpret_cast<u8x16>(a), i32x16));
}
FABRIC_AVX512_EMU __m512i cvtepu16_epi32(__m256i a) {
  return reinterpret_cast<__m512i>(__builtin_convertvector(reinterpret_cast<u16x16>(a), i32x16));
}
FABRIC_AVX512_EMU __m512i cvtepu8_epi16(__m256i a) {
  return reinterpret_cast<__m512i>(__builtin_convertvector(reinterpret_cast<u8x32>(a), i16x32));
}
// Saturating packs, per 128-bit lane as the instructions.
FABRIC_AVX512_EMU __m512i packus_epi32(__m512i a, __m512i b) {
  return join(_mm256_packus_epi32(lo(a), lo(b)), _mm256_packus_epi32(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512i packus_epi16(__m512i a, __m512i b) {
  return join(_mm256_packus_epi16(lo(a), lo(b)), _mm256_packus_epi16(hi(a), hi(b)));
}

// ---- permutes and unpacks -----------------------------------------------------------------------
FABRIC_AVX512_EMU __m512i unpacklo_epi32(__m512i a, __m512i b) {
  return join(_mm256_unpacklo_epi32(lo(a), lo(b)), _mm256_unpacklo_epi32(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512i unpackhi_epi32(__m512i a, __m512i b) {
  return join(_mm256_unpackhi_epi32(lo(a), lo(b)), _mm256_unpackhi_epi32(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512i unpacklo_epi64(__m512i a, __m512i b) {
  return join(_mm256_unpacklo_epi64(lo(a), lo(b)), _mm256_unpacklo_epi64(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512i unpackhi_epi64(__m512i a, __m512i b) {
  return join(_mm256_unpackhi_epi64(lo(a), lo(b)), _mm256_unpackhi_epi64(hi(a), hi(b)));
}
// vshufi32x4: 128-bit blocks a[imm0], a[imm1], b[imm2], b[imm3].
template <int Imm>
FABRIC_AVX512_EMU __m512i shuffle_i32x4(__m512i a, __m512i b) {
  return __builtin_shufflevector(a, b, 2 * (Imm & 3), 2 * (Imm & 3) + 1, 2 * (Imm >> 2 & 3),
                                 2 * (Imm >> 2 & 3) + 1, 8 + 2 * (Imm >> 4 & 3),
                                 8 + 2 * (Imm >> 4 & 3) + 1, 8 + 2 * (Imm >> 6 & 3),
                                 8 + 2 * (Imm >> 6 & 3) + 1);
}
// 32-bit lanes of the 16-lane table t picked by idx's low 4 bits (vpermd / vpermps).
FABRIC_AVX512_EMU __m256 permute16_half(__m256i idx, __m512 t) {
  const __m256 from_lo = _mm256_permutevar8x32_ps(lo(t), idx);
  const __m256 from_hi = _mm256_permutevar8x32_ps(hi(t), idx);
  const __m256i upper = _mm256_slli_epi32(idx, 28);  // bit 3 to the sign
  return _mm256_blendv_ps(from_lo, from_hi, _mm256_castsi256_ps(upper));
}
FABRIC_AVX512_EMU __m512 permutexvar_ps(__m512i idx, __m512 a) {
  return join(permute16_half(lo(idx), a), permute16_half(hi(idx), a));
}
FABRIC_AVX512_EMU __m512i permutexvar_epi32(__m512i idx, __m512i a) {
  return reinterpret_cast<__m512i>(permutexvar_ps(idx, reinterpret_cast<__m512>(a)));
}
// vpermt2ps / vpermt2d: 32 lanes of a then b, picked by idx's low 5 bits.
FABRIC_AVX512_EMU __m256 permute32_half(__m256i idx, __m512 a, __m512 b) {
  const __m256 from_a = permute16_half(idx, a), from_b = permute16_half(idx, b);
  const __m256i use_b = _mm256_slli_epi32(idx, 27);  // bit 4 to the sign
  return _mm256_blendv_ps(from_a, from_b, _mm256_castsi256_ps(use_b));
}
FABRIC_AVX512_EMU __m512 permutex2var_ps(__m512 a, __m512i idx, __m512 b) {
  return join(permute32_half(lo(idx), a, b), permute32_half(hi(idx), a, b));
}
FABRIC_AVX512_EMU __m512i permutex2var_epi32(__m512i a, __m512i idx, __m512i b) {
  return reinterpret_cast<__m512i>(
      permutex2var_ps(reinterpret_cast<__m512>(a), idx, reinterpret_cast<__m512>(b)));
}
// vpermt2w: 64 16-bit lanes of a then b, picked by idx's low 6 bits.
FABRIC_AVX512_EMU __m512i permutex2var_epi16(__m512i a, __m512i idx, __m512i b) {
  const u16x32 x = reinterpret_cast<u16x32>(a), y = reinterpret_cast<u16x32>(b),
               i = reinterpret_cast<u16x32>(idx);
  u16x32 r;
  for (int l = 0; l < 32; ++l) {
    const int j = i[l] & 63;
    r[l] = j < 32 ? x[j] : y[j - 32];
  }
  return reinterpret_cast<__m512i>(r);
}

#undef FABRIC_AVX512_EMU
}  // namespace fabric::cpu::avx512

// The intrinsics' names, for the code that follows (replacing GCC's own macros for some of them,
// e.g. those taking an immediate when not optimising).
#define FABRIC_AVX512_NAME(name) ::fabric::cpu::avx512::name
#undef _mm512_castps_si512
#define _mm512_castps_si512 FABRIC_AVX512_NAME(castps_si512)
#undef _mm512_castsi512_ps
#define _mm512_castsi512_ps FABRIC_AVX512_NAME(castsi512_ps)
#undef _mm512_castpd_si512
#define _mm512_castpd_si512 FABRIC_AVX512_NAME(castpd_si512)
#undef _mm512_castps512_ps256
#define _mm512_castps512_ps256 FABRIC_AVX512_NAME(castps512_ps256)
#undef _mm512_castsi512_si256
#define _mm512_castsi512_si256 FABRIC_AVX512_NAME(castsi512_si256)
#undef _mm512_castsi256_si512
#define _mm512_castsi256_si512 FABRIC_AVX512_NAME(castsi256_si512)
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps(a, i) FABRIC_AVX512_NAME(extractf32x8_ps)<(i)>(a)
#undef _mm512_extracti64x4_epi64
#define _mm512_extracti64x4_epi64(a, i) FABRIC_AVX512_NAME(extracti64x4_epi64)<(i)>(a)
#undef _mm512_inserti64x4
#define _mm512_inserti64x4(a, b, i) FABRIC_AVX512_NAME(inserti64x4)<(i)>((a), (b))
#undef _mm512_set1_ps
#define _mm512_set1_ps FABRIC_AVX512_NAME(set1_ps)
#undef _mm512_set1_pd
#define _mm512_set1_pd FABRIC_AVX512_NAME(set1_pd)
#undef _mm512_set1_epi16
#define _mm512_set1_epi16 FABRIC_AVX512_NAME(set1_epi16)
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 FABRIC_AVX512_NAME(set1_epi32)
#undef _mm512_set1_epi64
#define _mm512_set1_epi64 FABRIC_AVX512_NAME(set1_epi64)
#undef _mm512_setr_epi32
#define _mm512_setr_epi32 FABRIC_AVX512_NAME(setr_epi32)
#undef _mm512_setr_epi64
#define _mm512_setr_epi64 FABRIC_AVX512_NAME(setr_epi64)
#undef _mm512_setzero_ps
#define _mm512_setzero_ps FABRIC_AVX512_NAME(setzero_ps)
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 FABRIC_AVX512_NAME(setzero_si512)
#undef _mm512_load_ps
#define _mm512_load_ps FABRIC_AVX512_NAME(loadu_ps)
#undef _mm512_loadu_ps
#define _mm512_loadu_ps FABRIC_AVX512_NAME(loadu_ps)
#undef _mm512_loadu_pd
#define _mm512_loadu_pd FABRIC_AVX512_NAME(loadu_pd)
#undef _mm512_load_si512
#define _mm512_load_si512 FABRIC_AVX512_NAME(loadu_si512)
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 FABRIC_AVX512_NAME(loadu_si512)
#undef _mm512_store_ps
#define _mm512_store_ps FABRIC_AVX512_NAME(storeu_ps)
#undef _mm512_storeu_ps
#define _mm512_storeu_ps FABRIC_AVX512_NAME(storeu_ps)
#undef _mm512_storeu_pd
#define _mm512_storeu_pd FABRIC_AVX512_NAME(storeu_pd)
#undef _mm512_store_si512
#define _mm512_store_si512 FABRIC_AVX512_NAME(storeu_si512)
#undef _mm512_storeu_si512
#define _mm512_storeu_si512 FABRIC_AVX512_NAME(storeu_si512)
#undef _mm512_stream_ps
#define _mm512_stream_ps FABRIC_AVX512_NAME(stream_ps)
#undef _mm512_stream_si512
#define _mm512_stream_si512 FABRIC_AVX512_NAME(stream_si512)
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps FABRIC_AVX512_NAME(maskz_loadu_ps)
#undef _mm512_mask_loadu_ps
#define _mm512_mask_loadu_ps FABRIC_AVX512_NAME(mask_loadu_ps)
#undef _mm512_maskz_loadu_epi32
#define _mm512_maskz_loadu_epi32 FABRIC_AVX512_NAME(maskz_loadu_epi32)
#undef _mm512_maskz_loadu_pd
#define _mm512_maskz_loadu_pd FABRIC_AVX512_NAME(maskz_loadu_pd)
#undef _mm512_maskz_loadu_epi16
#define _mm512_maskz_loadu_epi16 FABRIC_AVX512_NAME(maskz_loadu_epi16)
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps FABRIC_AVX512_NAME(mask_storeu_ps)
#undef _mm512_mask_storeu_epi32
#define _mm512_mask_storeu_epi32 FABRIC_AVX512_NAME(mask_storeu_epi32)
#undef _mm512_mask_storeu_pd
#define _mm512_mask_storeu_pd FABRIC_AVX512_NAME(mask_storeu_pd)
#undef _mm512_mask_storeu_epi16
#define _mm512_mask_storeu_epi16 FABRIC_AVX512_NAME(mask_storeu_epi16)
#undef _mm256_maskz_loadu_epi16
#define _mm256_maskz_loadu_epi16 FABRIC_AVX512_NAME(mm256_maskz_loadu_epi16)
#undef _mm256_maskz_loadu_epi8
#define _mm256_maskz_loadu_epi8 FABRIC_AVX512_NAME(mm256_maskz_loadu_epi8)
#undef _mm256_mask_storeu_epi16
#define _mm256_mask_storeu_epi16 FABRIC_AVX512_NAME(mm256_mask_storeu_epi16)
#undef _mm_maskz_loadu_epi8
#define _mm_maskz_loadu_epi8 FABRIC_AVX512_NAME(mm_maskz_loadu_epi8)
#undef _mm_mask_storeu_epi8
#define _mm_mask_storeu_epi8 FABRIC_AVX512_NAME(mm_mask_storeu_epi8)
#undef _mm512_add_ps
#define _mm512_add_ps FABRIC_AVX512_NAME(add_ps)
#undef _mm512_sub_ps
#define _mm512_sub_ps FABRIC_AVX512_NAME(sub_ps)
#undef _mm512_mul_ps
#define _mm512_mul_ps FABRIC_AVX512_NAME(mul_ps)
#undef _mm512_div_ps
#define _mm512_div_ps FABRIC_AVX512_NAME(div_ps)
#undef _mm512_mul_pd
#define _mm512_mul_pd FABRIC_AVX512_NAME(mul_pd)
#undef _mm512_add_round_ps
#define _mm512_add_round_ps(a, b, r) FABRIC_AVX512_NAME(add_round_ps)<(r)>((a), (b))
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps FABRIC_AVX512_NAME(fmadd_ps)
#undef _mm512_fmsub_ps
#define _mm512_fmsub_ps FABRIC_AVX512_NAME(fmsub_ps)
#undef _mm512_fnmadd_ps
#define _mm512_fnmadd_ps FABRIC_AVX512_NAME(fnmadd_ps)
#undef _mm512_min_ps
#define _mm512_min_ps FABRIC_AVX512_NAME(min_ps)
#undef _mm512_max_ps
#define _mm512_max_ps FABRIC_AVX512_NAME(max_ps)
#undef _mm512_sqrt_ps
#define _mm512_sqrt_ps FABRIC_AVX512_NAME(sqrt_ps)
#undef _mm512_abs_ps
#define _mm512_abs_ps FABRIC_AVX512_NAME(abs_ps)
#undef _mm512_xor_ps
#define _mm512_xor_ps FABRIC_AVX512_NAME(xor_ps)
#undef _mm512_rcp14_ps
#define _mm512_rcp14_ps FABRIC_AVX512_NAME(rcp14_ps)
#undef _mm512_roundscale_ps
#define _mm512_roundscale_ps(a, r) FABRIC_AVX512_NAME(roundscale_ps)<(r)>(a)
#undef _mm512_scalef_ps
#define _mm512_scalef_ps FABRIC_AVX512_NAME(scalef_ps)
#undef _mm512_getexp_ps
#define _mm512_getexp_ps FABRIC_AVX512_NAME(getexp_ps)
#undef _mm512_getmant_ps
#define _mm512_getmant_ps(a, i, s) FABRIC_AVX512_NAME(getmant_ps)<(i), (s)>(a)
#undef _mm512_range_ps
#define _mm512_range_ps(a, b, i) FABRIC_AVX512_NAME(range_ps)<(i)>((a), (b))
#undef _mm512_fpclass_ps_mask
#define _mm512_fpclass_ps_mask(a, i) FABRIC_AVX512_NAME(fpclass_ps_mask)<(i)>(a)
#undef _mm512_fpclass_pd_mask
#define _mm512_fpclass_pd_mask(a, i) FABRIC_AVX512_NAME(fpclass_pd_mask)<(i)>(a)
#undef _mm512_cmp_ps_mask
#define _mm512_cmp_ps_mask(a, b, p) FABRIC_AVX512_NAME(cmp_ps_mask)<(p)>((a), (b))
#undef _mm512_mask_mov_ps
#define _mm512_mask_mov_ps FABRIC_AVX512_NAME(mask_mov_ps)
#undef _mm512_maskz_mov_ps
#define _mm512_maskz_mov_ps FABRIC_AVX512_NAME(maskz_mov_ps)
#undef _mm512_mask_add_ps
#define _mm512_mask_add_ps FABRIC_AVX512_NAME(mask_add_ps)
#undef _mm512_mask_sub_ps
#define _mm512_mask_sub_ps FABRIC_AVX512_NAME(mask_sub_ps)
#undef _mm512_mask_mul_ps
#define _mm512_mask_mul_ps FABRIC_AVX512_NAME(mask_mul_ps)
#undef _mm512_mask_scalef_ps
#define _mm512_mask_scalef_ps FABRIC_AVX512_NAME(mask_scalef_ps)
#undef _mm512_maskz_max_ps
#define _mm512_maskz_max_ps FABRIC_AVX512_NAME(maskz_max_ps)
#undef _mm512_maskz_max_pd
#define _mm512_maskz_max_pd FABRIC_AVX512_NAME(maskz_max_pd)
#undef _mm512_maskz_sqrt_ps
#define _mm512_maskz_sqrt_ps FABRIC_AVX512_NAME(maskz_sqrt_ps)
#undef _mm512_maskz_sqrt_pd
#define _mm512_maskz_sqrt_pd FABRIC_AVX512_NAME(maskz_sqrt_pd)
#undef _mm512_maskz_compress_ps
#define _mm512_maskz_compress_ps FABRIC_AVX512_NAME(maskz_compress_ps)
#undef _mm512_mask_expand_ps
#define _mm512_mask_expand_ps FABRIC_AVX512_NAME(mask_expand_ps)
#undef _mm512_i32gather_ps
#define _mm512_i32gather_ps(i, b, s) FABRIC_AVX512_NAME(i32gather_ps)<(s)>((i), (b))
#undef _mm512_mask_i32gather_ps
#define _mm512_mask_i32gather_ps(src, k, i, b, s) \
  FABRIC_AVX512_NAME(mask_i32gather_ps)<(s)>((src), (k), (i), (b))
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps FABRIC_AVX512_NAME(reduce_add_ps)
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps FABRIC_AVX512_NAME(reduce_max_ps)
#undef _mm512_reduce_min_ps
#define _mm512_reduce_min_ps FABRIC_AVX512_NAME(reduce_min_ps)
#undef _mm512_reduce_max_epu32
#define _mm512_reduce_max_epu32 FABRIC_AVX512_NAME(reduce_max_epu32)
#undef _mm512_add_epi32
#define _mm512_add_epi32 FABRIC_AVX512_NAME(add_epi32)
#undef _mm512_sub_epi32
#define _mm512_sub_epi32 FABRIC_AVX512_NAME(sub_epi32)
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32 FABRIC_AVX512_NAME(mullo_epi32)
#undef _mm512_add_epi64
#define _mm512_add_epi64 FABRIC_AVX512_NAME(add_epi64)
#undef _mm512_and_si512
#define _mm512_and_si512 FABRIC_AVX512_NAME(and_si512)
#undef _mm512_or_si512
#define _mm512_or_si512 FABRIC_AVX512_NAME(or_si512)
#undef _mm512_xor_si512
#define _mm512_xor_si512 FABRIC_AVX512_NAME(xor_si512)
#undef _mm512_max_epu32
#define _mm512_max_epu32 FABRIC_AVX512_NAME(max_epu32)
#undef _mm512_min_epu32
#define _mm512_min_epu32 FABRIC_AVX512_NAME(min_epu32)
#undef _mm512_mul_epu32
#define _mm512_mul_epu32 FABRIC_AVX512_NAME(mul_epu32)
#undef _mm512_slli_epi16
#define _mm512_slli_epi16 FABRIC_AVX512_NAME(slli_epi16)
#undef _mm512_slli_epi32
#define _mm512_slli_epi32 FABRIC_AVX512_NAME(slli_epi32)
#undef _mm512_slli_epi64
#define _mm512_slli_epi64 FABRIC_AVX512_NAME(slli_epi64)
#undef _mm512_srli_epi32
#define _mm512_srli_epi32 FABRIC_AVX512_NAME(srli_epi32)
#undef _mm512_srli_epi64
#define _mm512_srli_epi64 FABRIC_AVX512_NAME(srli_epi64)
#undef _mm512_ternarylogic_epi32
#define _mm512_ternarylogic_epi32(a, b, c, i) \
  FABRIC_AVX512_NAME(ternarylogic_epi32)<(i)>((a), (b), (c))
#undef _mm512_cmpeq_epi32_mask
#define _mm512_cmpeq_epi32_mask FABRIC_AVX512_NAME(cmpeq_epi32_mask)
#undef _mm512_cmpge_epi32_mask
#define _mm512_cmpge_epi32_mask FABRIC_AVX512_NAME(cmpge_epi32_mask)
#undef _mm512_cmplt_epi32_mask
#define _mm512_cmplt_epi32_mask FABRIC_AVX512_NAME(cmplt_epi32_mask)
#undef _mm512_cmpgt_epu32_mask
#define _mm512_cmpgt_epu32_mask FABRIC_AVX512_NAME(cmpgt_epu32_mask)
#undef _mm512_cmplt_epu32_mask
#define _mm512_cmplt_epu32_mask FABRIC_AVX512_NAME(cmplt_epu32_mask)
#undef _mm512_mask_cmpeq_epi16_mask
#define _mm512_mask_cmpeq_epi16_mask FABRIC_AVX512_NAME(mask_cmpeq_epi16_mask)
#undef _mm512_test_epi16_mask
#define _mm512_test_epi16_mask FABRIC_AVX512_NAME(test_epi16_mask)
#undef _mm512_mask_mov_epi32
#define _mm512_mask_mov_epi32 FABRIC_AVX512_NAME(mask_mov_epi32)
#undef _mm512_mask_blend_epi32
#define _mm512_mask_blend_epi32 FABRIC_AVX512_NAME(mask_blend_epi32)
#undef _mm512_mask_blend_epi16
#define _mm512_mask_blend_epi16 FABRIC_AVX512_NAME(mask_blend_epi16)
#undef _mm512_mask_add_epi32
#define _mm512_mask_add_epi32 FABRIC_AVX512_NAME(mask_add_epi32)
#undef _mm512_mask_or_epi32
#define _mm512_mask_or_epi32 FABRIC_AVX512_NAME(mask_or_epi32)
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps FABRIC_AVX512_NAME(cvtepi32_ps)
#undef _mm512_cvttps_epi32
#define _mm512_cvttps_epi32 FABRIC_AVX512_NAME(cvttps_epi32)
#undef _mm512_cvt_roundps_epi32
#define _mm512_cvt_roundps_epi32(a, r) FABRIC_AVX512_NAME(cvt_roundps_epi32)<(r)>(a)
#undef _mm512_cvtps_pd
#define _mm512_cvtps_pd FABRIC_AVX512_NAME(cvtps_pd)
#undef _mm512_cvtpd_ps
#define _mm512_cvtpd_ps FABRIC_AVX512_NAME(cvtpd_ps)
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps FABRIC_AVX512_NAME(cvtph_ps)
#undef _mm512_cvtps_ph
#define _mm512_cvtps_ph(a, r) FABRIC_AVX512_NAME(cvtps_ph)<(r)>(a)
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16 FABRIC_AVX512_NAME(cvtepi32_epi16)
#undef _mm512_cvtepi32_epi8
#define _mm512_cvtepi32_epi8 FABRIC_AVX512_NAME(cvtepi32_epi8)
#undef _mm512_cvtepi64_epi32
#define _mm512_cvtepi64_epi32 FABRIC_AVX512_NAME(cvtepi64_epi32)
#undef _mm512_cvtepi64_epi8
#define _mm512_cvtepi64_epi8 FABRIC_AVX512_NAME(cvtepi64_epi8)
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 FABRIC_AVX512_NAME(cvtepi8_epi32)
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 FABRIC_AVX512_NAME(cvtepu8_epi32)
#undef _mm512_cvtepu16_epi32
#define _mm512_cvtepu16_epi32 FABRIC_AVX512_NAME(cvtepu16_epi32)
#undef _mm512_cvtepu8_epi16
#define _mm512_cvtepu8_epi16 FABRIC_AVX512_NAME(cvtepu8_epi16)
#undef _mm512_packus_epi32
#define _mm512_packus_epi32 FABRIC_AVX512_NAME(packus_epi32)
#undef _mm512_packus_epi16
#define _mm512_packus_epi16 FABRIC_AVX512_NAME(packus_epi16)
#undef _mm512_unpacklo_epi32
#define _mm512_unpacklo_epi32 FABRIC_AVX512_NAME(unpacklo_epi32)
#undef _mm512_unpackhi_epi32
#define _mm512_unpackhi_epi32 FABRIC_AVX512_NAME(unpackhi_epi32)
#undef _mm512_unpacklo_epi64
#define _mm512_unpacklo_epi64 FABRIC_AVX512_NAME(unpacklo_epi64)
#undef _mm512_unpackhi_epi64
#define _mm512_unpackhi_epi64 FABRIC_AVX512_NAME(unpackhi_epi64)
#undef _mm512_shuffle_i32x4
#define _mm512_shuffle_i32x4(a, b, i) FABRIC_AVX512_NAME(shuffle_i32x4)<(i)>((a), (b))
#undef _mm512_permutexvar_ps
#define _mm512_permutexvar_ps FABRIC_AVX512_NAME(permutexvar_ps)
#undef _mm512_permutexvar_epi32
#define _mm512_permutexvar_epi32 FABRIC_AVX512_NAME(permutexvar_epi32)
#undef _mm512_permutex2var_ps
#define _mm512_permutex2var_ps FABRIC_AVX512_NAME(permutex2var_ps)
#undef _mm512_permutex2var_epi32
#define _mm512_permutex2var_epi32 FABRIC_AVX512_NAME(permutex2var_epi32)
#undef _mm512_permutex2var_epi16
#define _mm512_permutex2var_epi16 FABRIC_AVX512_NAME(permutex2var_epi16)
