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
// The vector types are GCC's own (<immintrin.h> declares __m512 etc. on every x86 target). Without
// 512-bit registers g++ 12 lowers many generic operations on them (shuffles, comparisons, ?:,
// __builtin_convertvector, integer ops whose result feeds one of those) lane by lane through the
// stack (bf16 add and fp32 exp ran 7-9x slower for it, 2026-12-04); so every function below
// splits its operands into AVX2 halves itself (lo, hi, join) and works on those with _mm256_*
// intrinsics or 32-byte generic vectors, which map to single instructions.
// -Wvector-operation-performance on x86_simd_probe_emulated.cpp lists any 64-byte generic
// operation that remains (none now). GCC's _mm512_* functions stay declared but are never
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

// 64-byte generic vectors only carry lane masks between functions (lanes16/32/64 to select) and
// the lanes of the one-by-one fallbacks; all arithmetic is on 32-byte halves.
using i16x32 = int16_t __attribute__((vector_size(64)));
using u16x32 = uint16_t __attribute__((vector_size(64)));
using i32x16 = int32_t __attribute__((vector_size(64)));
using i64x8 = int64_t __attribute__((vector_size(64)));
using i32x8 = int32_t __attribute__((vector_size(32)));
using u32x8 = uint32_t __attribute__((vector_size(32)));
using i64x4 = int64_t __attribute__((vector_size(32)));
using u64x4 = uint64_t __attribute__((vector_size(32)));

// ---- halves -------------------------------------------------------------------------------------
// A 64-byte vector as the two 32-byte halves it is made of. memcpy, not __builtin_shufflevector:
// g++ 12 expands a shuffle of a 64-byte vector element by element (16 extracts and inserts), while
// a copy of 32 bytes in or out of it is one register move, or nothing once the halves are in
// registers.
template <class Half, class Whole>
FABRIC_AVX512_EMU Half half_of(const Whole& a, int which) {
  static_assert(sizeof(Whole) == 2 * sizeof(Half));
  Half r;
  std::memcpy(&r, reinterpret_cast<const char*>(&a) + which * sizeof(Half), sizeof r);
  return r;
}
template <class Whole, class Half>
FABRIC_AVX512_EMU Whole whole_of(Half l, Half h) {
  static_assert(sizeof(Whole) == 2 * sizeof(Half));
  Whole r;
  std::memcpy(&r, &l, sizeof l);
  std::memcpy(reinterpret_cast<char*>(&r) + sizeof l, &h, sizeof h);
  return r;
}
FABRIC_AVX512_EMU __m256 lo(__m512 a) { return half_of<__m256>(a, 0); }
FABRIC_AVX512_EMU __m256 hi(__m512 a) { return half_of<__m256>(a, 1); }
FABRIC_AVX512_EMU __m512 join(__m256 l, __m256 h) { return whole_of<__m512>(l, h); }
FABRIC_AVX512_EMU __m256d lo(__m512d a) { return half_of<__m256d>(a, 0); }
FABRIC_AVX512_EMU __m256d hi(__m512d a) { return half_of<__m256d>(a, 1); }
FABRIC_AVX512_EMU __m512d join(__m256d l, __m256d h) { return whole_of<__m512d>(l, h); }
FABRIC_AVX512_EMU __m256i lo(__m512i a) { return half_of<__m256i>(a, 0); }
FABRIC_AVX512_EMU __m256i hi(__m512i a) { return half_of<__m256i>(a, 1); }
FABRIC_AVX512_EMU __m512i join(__m256i l, __m256i h) { return whole_of<__m512i>(l, h); }
FABRIC_AVX512_EMU __m128 lo(__m256 a) { return _mm256_castps256_ps128(a); }
FABRIC_AVX512_EMU __m128 hi(__m256 a) { return _mm256_extractf128_ps(a, 1); }
FABRIC_AVX512_EMU __m128i lo(__m256i a) { return _mm256_castsi256_si128(a); }
FABRIC_AVX512_EMU __m128i hi(__m256i a) { return _mm256_extracti128_si256(a, 1); }
FABRIC_AVX512_EMU __m256i join(__m128i l, __m128i h) { return _mm256_set_m128i(h, l); }

// ---- masks <-> lanes ----------------------------------------------------------------------------
// All-ones lanes where the mask bit is set: each lane ANDs the broadcast mask with its own bit and
// compares (vpand + vpcmpeq per half; the generic `!= 0` on 64 bytes went lane by lane).
FABRIC_AVX512_EMU __m256i lanes32_half(unsigned k8) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(k8)), bit), bit);
}
FABRIC_AVX512_EMU i32x16 lanes32(__mmask16 k) {
  return whole_of<i32x16>(lanes32_half(k & 0xFFu), lanes32_half(k >> 8 & 0xFFu));
}
FABRIC_AVX512_EMU __m256i lanes64_half(unsigned k4) {
  const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
  return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(k4), bit), bit);
}
FABRIC_AVX512_EMU i64x8 lanes64(__mmask8 k) {
  return whole_of<i64x8>(lanes64_half(k & 0xFu), lanes64_half(k >> 4 & 0xFu));
}
FABRIC_AVX512_EMU __m256i lanes16_half(unsigned k16) {
  const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
                                        8192, 16384, static_cast<int16_t>(0x8000));
  const __m256i ks = _mm256_set1_epi16(static_cast<int16_t>(k16 & 0xFFFFu));
  return _mm256_cmpeq_epi16(_mm256_and_si256(ks, bit), bit);
}
FABRIC_AVX512_EMU i16x32 lanes16(__mmask32 k) {
  return whole_of<i16x32>(lanes16_half(k & 0xFFFFu), lanes16_half(k >> 16));
}
// The mask of lanes whose sign bit is set (comparison results are all ones or zero).
FABRIC_AVX512_EMU __mmask16 mask_of(__m256i l, __m256i h) {  // two halves of 32-bit lanes
  return static_cast<__mmask16>(_mm256_movemask_ps(_mm256_castsi256_ps(l)) |
                                (_mm256_movemask_ps(_mm256_castsi256_ps(h)) << 8));
}
FABRIC_AVX512_EMU __mmask32 mask_of16(__m256i l, __m256i h) {  // two halves of 16-bit lanes
  // packs keeps each 16-bit lane's sign in a byte; the 64-bit permute undoes its lane interleave.
  const __m256i b = _mm256_permute4x64_epi64(_mm256_packs_epi16(l, h), 0xD8);
  return static_cast<__mmask32>(_mm256_movemask_epi8(b));
}
// b where take_b, else a; take_b's lanes are all ones or zero, so a byte blend (vpblendvb per
// half) serves every lane width.
template <class V, class L>
FABRIC_AVX512_EMU V select(L take_b, V a, V b) {
  static_assert(sizeof(V) == 64 && sizeof(L) == 64);
  const __m256i m0 = half_of<__m256i>(take_b, 0), m1 = half_of<__m256i>(take_b, 1);
  return whole_of<V>(_mm256_blendv_epi8(half_of<__m256i>(a, 0), half_of<__m256i>(b, 0), m0),
                     _mm256_blendv_epi8(half_of<__m256i>(a, 1), half_of<__m256i>(b, 1), m1));
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
FABRIC_AVX512_EMU __m512i set1_epi16(int16_t v) {
  return join(_mm256_set1_epi16(v), _mm256_set1_epi16(v));
}
FABRIC_AVX512_EMU __m512i set1_epi32(int32_t v) {
  return join(_mm256_set1_epi32(v), _mm256_set1_epi32(v));
}
FABRIC_AVX512_EMU __m512i set1_epi64(int64_t v) {
  return join(_mm256_set1_epi64x(v), _mm256_set1_epi64x(v));
}
FABRIC_AVX512_EMU __m512i setr_epi32(int32_t e0, int32_t e1, int32_t e2, int32_t e3, int32_t e4,
                                     int32_t e5, int32_t e6, int32_t e7, int32_t e8, int32_t e9,
                                     int32_t e10, int32_t e11, int32_t e12, int32_t e13,
                                     int32_t e14, int32_t e15) {
  return join(_mm256_setr_epi32(e0, e1, e2, e3, e4, e5, e6, e7),
              _mm256_setr_epi32(e8, e9, e10, e11, e12, e13, e14, e15));
}
FABRIC_AVX512_EMU __m512i setr_epi64(int64_t e0, int64_t e1, int64_t e2, int64_t e3, int64_t e4,
                                     int64_t e5, int64_t e6, int64_t e7) {
  return join(_mm256_setr_epi64x(e0, e1, e2, e3), _mm256_setr_epi64x(e4, e5, e6, e7));
}
FABRIC_AVX512_EMU __m512 setzero_ps() { return join(_mm256_setzero_ps(), _mm256_setzero_ps()); }
FABRIC_AVX512_EMU __m512i setzero_si512() {
  return join(_mm256_setzero_si256(), _mm256_setzero_si256());
}

// Two 32-byte loads and stores (a memcpy of the whole 64 bytes went through the stack in 16-byte
// pieces).
FABRIC_AVX512_EMU __m512 loadu_ps(const void* p) {
  const float* f = static_cast<const float*>(p);
  return join(_mm256_loadu_ps(f), _mm256_loadu_ps(f + 8));
}
FABRIC_AVX512_EMU __m512d loadu_pd(const void* p) {
  const double* d = static_cast<const double*>(p);
  return join(_mm256_loadu_pd(d), _mm256_loadu_pd(d + 4));
}
FABRIC_AVX512_EMU __m512i loadu_si512(const void* p) {
  const __m256i* v = static_cast<const __m256i*>(p);
  return join(_mm256_loadu_si256(v), _mm256_loadu_si256(v + 1));
}
FABRIC_AVX512_EMU void storeu_ps(void* p, __m512 v) {
  _mm256_storeu_ps(static_cast<float*>(p), lo(v));
  _mm256_storeu_ps(static_cast<float*>(p) + 8, hi(v));
}
FABRIC_AVX512_EMU void storeu_pd(void* p, __m512d v) {
  _mm256_storeu_pd(static_cast<double*>(p), lo(v));
  _mm256_storeu_pd(static_cast<double*>(p) + 4, hi(v));
}
FABRIC_AVX512_EMU void storeu_si512(void* p, __m512i v) {
  _mm256_storeu_si256(static_cast<__m256i*>(p), lo(v));
  _mm256_storeu_si256(static_cast<__m256i*>(p) + 1, hi(v));
}
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
  return lanes32_half(half ? k >> 8 & 0xFFu : k & 0xFFu);
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
  return join(_mm256_maskload_pd(d, lanes64_half(k & 0xFu)),
              _mm256_maskload_pd(d + 4, lanes64_half(k >> 4 & 0xFu)));
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
  _mm256_maskstore_pd(d, lanes64_half(k & 0xFu), lo(v));
  _mm256_maskstore_pd(d + 4, lanes64_half(k >> 4 & 0xFu), hi(v));
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
FABRIC_AVX512_EMU __m512 add_ps(__m512 a, __m512 b) {
  return join(_mm256_add_ps(lo(a), lo(b)), _mm256_add_ps(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512 sub_ps(__m512 a, __m512 b) {
  return join(_mm256_sub_ps(lo(a), lo(b)), _mm256_sub_ps(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512 mul_ps(__m512 a, __m512 b) {
  return join(_mm256_mul_ps(lo(a), lo(b)), _mm256_mul_ps(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512 div_ps(__m512 a, __m512 b) {
  return join(_mm256_div_ps(lo(a), lo(b)), _mm256_div_ps(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __m512d mul_pd(__m512d a, __m512d b) {
  return join(_mm256_mul_pd(lo(a), lo(b)), _mm256_mul_pd(hi(a), hi(b)));
}
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
  const __m256 m = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  return join(_mm256_and_ps(lo(a), m), _mm256_and_ps(hi(a), m));
}
FABRIC_AVX512_EMU __m512 xor_ps(__m512 a, __m512 b) {
  return join(_mm256_xor_ps(lo(a), lo(b)), _mm256_xor_ps(hi(a), hi(b)));
}
// Exactly rounded 1/x, within vrcp14ps's bound (see the file comment).
FABRIC_AVX512_EMU __m512 rcp14_ps(__m512 a) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return join(_mm256_div_ps(one, lo(a)), _mm256_div_ps(one, hi(a)));
}

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
  const __m256 q =
      _mm256_min_ps(_mm256_max_ps(fb, _mm256_set1_ps(-126.0f)), _mm256_set1_ps(127.0f));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(q), _mm256_set1_epi32(127)), 23);
  const __m256 r = _mm256_mul_ps(a, _mm256_castsi256_ps(e));
  const __m256 ar = _mm256_and_ps(r, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
  const __m256 aa = _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
  const __m256 ok = _mm256_and_ps(
      _mm256_and_ps(_mm256_cmp_ps(fb, q, _CMP_EQ_OQ),
                    _mm256_cmp_ps(aa, _mm256_set1_ps(INFINITY), _CMP_LT_OQ)),
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
// The exponent field of each lane, and the lanes that are zero, denormal, infinite or NaN (exponent
// field 0 or 255).
FABRIC_AVX512_EMU __m256i exponent_field(__m256 x) {
  return _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 23), _mm256_set1_epi32(0xFF));
}
FABRIC_AVX512_EMU __m256i not_normal_half(__m256 x) {
  const __m256i e = exponent_field(x);
  return _mm256_or_si256(_mm256_cmpeq_epi32(e, _mm256_setzero_si256()),
                         _mm256_cmpeq_epi32(e, _mm256_set1_epi32(0xFF)));
}
// The normal lanes from the exponent and significand fields; the others (rare: zeros, denormals,
// infinities, NaNs), one by one through memory, as scalef's slow path. Indexing the 64-byte vector
// instead would keep the whole result in memory on the fast path too.
template <float (*Lane)(float)>
FABRIC_AVX512_EMU __m256 fix_not_normal_half(__m256 x, __m256 r) {
  const int odd = _mm256_movemask_ps(_mm256_castsi256_ps(not_normal_half(x)));
  if (__builtin_expect(odd == 0, 1)) return r;
  alignas(32) float xv[8], rv[8];
  _mm256_store_ps(xv, x);
  _mm256_store_ps(rv, r);
  for (int i = 0; i < 8; ++i)
    if (odd >> i & 1) rv[i] = Lane(xv[i]);
  return _mm256_load_ps(rv);
}
FABRIC_AVX512_EMU __m256 getexp_half(__m256 x) {
  const __m256 r = _mm256_cvtepi32_ps(_mm256_sub_epi32(exponent_field(x), _mm256_set1_epi32(127)));
  return fix_not_normal_half<getexp_lane>(x, r);
}
FABRIC_AVX512_EMU __m512 getexp_ps(__m512 x) {
  return join(getexp_half(lo(x)), getexp_half(hi(x)));
}
FABRIC_AVX512_EMU __m256 getmant_half(__m256 x) {
  const __m256 r =
      _mm256_or_ps(_mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x007FFFFF))),
                   _mm256_castsi256_ps(_mm256_set1_epi32(0x3F800000)));
  return fix_not_normal_half<getmant_lane>(x, r);
}
template <int Interval, int Sign>
FABRIC_AVX512_EMU __m512 getmant_ps(__m512 x) {
  static_assert(Interval == _MM_MANT_NORM_1_2 && Sign == _MM_MANT_SIGN_zero,
                "only _MM_MANT_NORM_1_2 with _MM_MANT_SIGN_zero is emulated");
  return join(getmant_half(lo(x)), getmant_half(hi(x)));
}

// vrangeps with imm 0x0E: -min(|a|, |b|), with NaNs as the SDM's table for VRANGE gives them (and
// an AMD Zen 5 does, probed 2026-12-04): a quiet NaN beside a number gives the number, two quiet
// NaNs the first, each with the sign set; a signalling NaN gives itself quietened, sign kept (a's
// first).
// On 32-byte generic vectors, which g++ lowers to AVX2 instructions (64-byte ones: lane by lane).
FABRIC_AVX512_EMU __m256 range_half(__m256 a, __m256 b) {
  const u32x8 ua = reinterpret_cast<u32x8>(a), ub = reinterpret_cast<u32x8>(b);
  const u32x8 ma = ua & 0x7FFFFFFFu, mb = ub & 0x7FFFFFFFu;
  const i32x8 nan_a = ma > 0x7F800000u, nan_b = mb > 0x7F800000u;
  u32x8 r = nan_b ? ma : nan_a ? mb : (ma < mb) ? ma : mb;
  r |= 0x80000000u;
  r = (nan_b & ((ub & 0x00400000u) == 0)) ? (ub | 0x00400000u) : r;
  r = (nan_a & ((ua & 0x00400000u) == 0)) ? (ua | 0x00400000u) : r;
  return reinterpret_cast<__m256>(r);
}
template <int Imm>
FABRIC_AVX512_EMU __m512 range_ps(__m512 a, __m512 b) {
  static_assert(Imm == 0x0E, "only the negated minimum magnitude (0x0E) is emulated");
  return join(range_half(lo(a), lo(b)), range_half(hi(a), hi(b)));
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
// Per 32-byte half (generic 32-byte vectors are AVX2 instructions; 64-byte ones went lane by lane).
template <int Imm>
FABRIC_AVX512_EMU __m256i fpclass_ps_half(__m256 x) {
  return reinterpret_cast<__m256i>(
      fpclass_lanes<Imm, u32x8, i32x8, 0x80000000u, 0x7F800000u, 0x00400000u, 0x00800000u>(
          reinterpret_cast<u32x8>(x)));
}
template <int Imm>
FABRIC_AVX512_EMU __mmask16 fpclass_ps_mask(__m512 x) {
  return mask_of(fpclass_ps_half<Imm>(lo(x)), fpclass_ps_half<Imm>(hi(x)));
}
template <int Imm>
FABRIC_AVX512_EMU int fpclass_pd_half(__m256d x) {
  return _mm256_movemask_pd(reinterpret_cast<__m256d>(
      fpclass_lanes<Imm, u64x4, i64x4, 0x8000000000000000ull, 0x7FF0000000000000ull,
                    0x0008000000000000ull, 0x0010000000000000ull>(reinterpret_cast<u64x4>(x))));
}
template <int Imm>
FABRIC_AVX512_EMU __mmask8 fpclass_pd_mask(__m512d x) {
  return static_cast<__mmask8>(fpclass_pd_half<Imm>(lo(x)) | fpclass_pd_half<Imm>(hi(x)) << 4);
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
FABRIC_AVX512_EMU __m512 maskz_mov_ps(__mmask16 k, __m512 a) {
  return select(lanes32(k), setzero_ps(), a);
}
FABRIC_AVX512_EMU __m512 mask_add_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, add_ps(a, b));
}
FABRIC_AVX512_EMU __m512 mask_sub_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, sub_ps(a, b));
}
FABRIC_AVX512_EMU __m512 mask_mul_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, mul_ps(a, b));
}
FABRIC_AVX512_EMU __m512 mask_scalef_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), src, scalef_ps(a, b));
}
FABRIC_AVX512_EMU __m512 maskz_max_ps(__mmask16 k, __m512 a, __m512 b) {
  return select(lanes32(k), setzero_ps(), max_ps(a, b));
}
FABRIC_AVX512_EMU __m512d maskz_max_pd(__mmask8 k, __m512d a, __m512d b) {
  return select(lanes64(k), join(_mm256_setzero_pd(), _mm256_setzero_pd()), max_pd(a, b));
}
FABRIC_AVX512_EMU __m512 maskz_sqrt_ps(__mmask16 k, __m512 a) {
  return select(lanes32(k), setzero_ps(), sqrt_ps(a));
}
FABRIC_AVX512_EMU __m512d maskz_sqrt_pd(__mmask8 k, __m512d a) {
  return select(lanes64(k), join(_mm256_setzero_pd(), _mm256_setzero_pd()), sqrt_pd(a));
}
// vcompressps and vexpandps move lanes by a mask: with a table of 8-lane permutations per mask
// byte (a lane loop indexes the 64-byte vector, which keeps it in memory). The tables hold eight
// 4-bit lane numbers per mask byte, lane 0's in the low nibble.
struct LanePermutations {
  uint32_t compress[256];  // lane j: the j-th set bit's lane (0 past the last)
  uint32_t expand[256];    // lane i: the number of set bits below bit i
};
inline constexpr LanePermutations kLanePermutations = [] {
  LanePermutations t{};
  for (int m = 0; m < 256; ++m) {
    int n = 0;
    for (int i = 0; i < 8; ++i) {
      t.expand[m] |= static_cast<uint32_t>(n) << (4 * i);
      if (m >> i & 1) t.compress[m] |= static_cast<uint32_t>(i) << (4 * n++);
    }
  }
  return t;
}();
FABRIC_AVX512_EMU __m256i nibble_lanes(uint32_t packed) {  // the 8 nibbles as 32-bit lanes
  const __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(packed)),
                                      _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
  return _mm256_and_si256(v, _mm256_set1_epi32(0xF));
}
FABRIC_AVX512_EMU __m256i lanes_below(int n) {  // all ones in lanes 0..n-1
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// vcompressps (zeroing): the selected lanes packed to the front.
FABRIC_AVX512_EMU __m512 maskz_compress_ps(__mmask16 k, __m512 a) {
  const unsigned k0 = k & 0xFFu, k1 = k >> 8 & 0xFFu;
  const int c0 = __builtin_popcount(k0), c1 = __builtin_popcount(k1);
  const __m256 zero = _mm256_setzero_ps();
  // Each half packed on its own, zero past its count; then the upper half's c1 lanes go after
  // the lower half's c0: result lane j takes packed-upper lane j - c0.
  const __m256 p0 = _mm256_blendv_ps(
      zero, _mm256_permutevar8x32_ps(lo(a), nibble_lanes(kLanePermutations.compress[k0])),
      _mm256_castsi256_ps(lanes_below(c0)));
  const __m256 p1 = _mm256_blendv_ps(
      zero, _mm256_permutevar8x32_ps(hi(a), nibble_lanes(kLanePermutations.compress[k1])),
      _mm256_castsi256_ps(lanes_below(c1)));
  const __m256i j = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i from_p1 = _mm256_sub_epi32(j, _mm256_set1_epi32(c0));  // may be negative
  // permutevar uses the low 3 bits: lane j - c0 (mod 8) of p1.
  const __m256 r0 = _mm256_blendv_ps(_mm256_permutevar8x32_ps(p1, from_p1), p0,
                                     _mm256_castsi256_ps(lanes_below(c0)));
  // Upper result lanes 8 + j take p1's lane 8 + j - c0 where that is below 8, else zero.
  const __m256i from_p1_hi = _mm256_add_epi32(from_p1, _mm256_set1_epi32(8));
  const __m256 r1 = _mm256_blendv_ps(zero, _mm256_permutevar8x32_ps(p1, from_p1_hi),
                                     _mm256_castsi256_ps(lanes_below(c0)));
  return join(r0, r1);
}
// vexpandps (merging): consecutive lanes of a into the selected lanes, src elsewhere.
FABRIC_AVX512_EMU __m512 mask_expand_ps(__m512 src, __mmask16 k, __m512 a) {
  const unsigned k0 = k & 0xFFu, k1 = k >> 8 & 0xFFu;
  // A selected lower lane takes a's lane (its rank among the selected); an upper one, lane
  // c0 + rank, from either half of a (bit 3 of the lane number, moved to the sign, picks).
  const __m256 e0 = _mm256_permutevar8x32_ps(lo(a), nibble_lanes(kLanePermutations.expand[k0]));
  const __m256i i1 = _mm256_add_epi32(nibble_lanes(kLanePermutations.expand[k1]),
                                      _mm256_set1_epi32(__builtin_popcount(k0)));
  const __m256 e1 =
      _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo(a), i1), _mm256_permutevar8x32_ps(hi(a), i1),
                       _mm256_castsi256_ps(_mm256_slli_epi32(i1, 28)));
  return join(_mm256_blendv_ps(lo(src), e0, _mm256_castsi256_ps(lanes32_half(k0))),
              _mm256_blendv_ps(hi(src), e1, _mm256_castsi256_ps(lanes32_half(k1))));
}
template <int Scale>
FABRIC_AVX512_EMU __m512 i32gather_ps(__m512i idx, const void* base) {
  const float* b = static_cast<const float*>(base);
  return join(_mm256_i32gather_ps(b, lo(idx), Scale), _mm256_i32gather_ps(b, hi(idx), Scale));
}
template <int Scale>
FABRIC_AVX512_EMU __m512 mask_i32gather_ps(__m512 src, __mmask16 k, __m512i idx, const void* base) {
  const float* b = static_cast<const float*>(base);
  return join(_mm256_mask_i32gather_ps(lo(src), b, lo(idx),
                                       _mm256_castsi256_ps(lanes32_half(k & 0xFFu)), Scale),
              _mm256_mask_i32gather_ps(hi(src), b, hi(idx),
                                       _mm256_castsi256_ps(lanes32_half(k >> 8 & 0xFFu)), Scale));
}

// ---- reductions, in the order of GCC's own _mm512_reduce_* sequences ----------------------------
FABRIC_AVX512_EMU float reduce_add_ps(__m512 a) {
  const __m256 t3 = _mm256_add_ps(hi(a), lo(a));
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
  // The maximum does not depend on the order: halves, then 128-bit halves, then within a block.
  const __m256i t = _mm256_max_epu32(lo(a), hi(a));
  __m128i m = _mm_max_epu32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
  m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4E));
  m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xB1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(m));
}

// ---- integer arithmetic, logic and comparisons --------------------------------------------------
#define FABRIC_AVX512_EMU_BINARY(name, avx2)             \
  FABRIC_AVX512_EMU __m512i name(__m512i a, __m512i b) { \
    return join(avx2(lo(a), lo(b)), avx2(hi(a), hi(b))); \
  }
FABRIC_AVX512_EMU_BINARY(add_epi32, _mm256_add_epi32)
FABRIC_AVX512_EMU_BINARY(sub_epi32, _mm256_sub_epi32)
FABRIC_AVX512_EMU_BINARY(mullo_epi32, _mm256_mullo_epi32)
FABRIC_AVX512_EMU_BINARY(add_epi64, _mm256_add_epi64)
FABRIC_AVX512_EMU_BINARY(and_si512, _mm256_and_si256)
FABRIC_AVX512_EMU_BINARY(or_si512, _mm256_or_si256)
FABRIC_AVX512_EMU_BINARY(xor_si512, _mm256_xor_si256)
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
// Shifts by a count >= the lane width give 0, in AVX2's vpsll/vpsrl as in AVX-512's.
#define FABRIC_AVX512_EMU_SHIFT(name, avx2)                                          \
  FABRIC_AVX512_EMU __m512i name(__m512i a, unsigned n) {                            \
    return join(avx2(lo(a), static_cast<int>(n)), avx2(hi(a), static_cast<int>(n))); \
  }
FABRIC_AVX512_EMU_SHIFT(slli_epi16, _mm256_slli_epi16)
FABRIC_AVX512_EMU_SHIFT(slli_epi32, _mm256_slli_epi32)
FABRIC_AVX512_EMU_SHIFT(slli_epi64, _mm256_slli_epi64)
FABRIC_AVX512_EMU_SHIFT(srli_epi32, _mm256_srli_epi32)
FABRIC_AVX512_EMU_SHIFT(srli_epi64, _mm256_srli_epi64)
#undef FABRIC_AVX512_EMU_SHIFT
// vpternlogd: each result bit is imm's bit number (a << 2 | b << 1 | c) of the three inputs' bits.
template <int Imm>
FABRIC_AVX512_EMU __m256i ternarylogic_half(__m256i a, __m256i b, __m256i c) {
  const u64x4 x = reinterpret_cast<u64x4>(a), y = reinterpret_cast<u64x4>(b),
              z = reinterpret_cast<u64x4>(c);
  u64x4 r = {};
  if constexpr (Imm & 0x01) r |= ~x & ~y & ~z;
  if constexpr (Imm & 0x02) r |= ~x & ~y & z;
  if constexpr (Imm & 0x04) r |= ~x & y & ~z;
  if constexpr (Imm & 0x08) r |= ~x & y & z;
  if constexpr (Imm & 0x10) r |= x & ~y & ~z;
  if constexpr (Imm & 0x20) r |= x & ~y & z;
  if constexpr (Imm & 0x40) r |= x & y & ~z;
  if constexpr (Imm & 0x80) r |= x & y & z;
  return reinterpret_cast<__m256i>(r);
}
template <int Imm>
FABRIC_AVX512_EMU __m512i ternarylogic_epi32(__m512i a, __m512i b, __m512i c) {
  return join(ternarylogic_half<Imm>(lo(a), lo(b), lo(c)),
              ternarylogic_half<Imm>(hi(a), hi(b), hi(c)));
}
FABRIC_AVX512_EMU __mmask16 cmpeq_epi32_mask(__m512i a, __m512i b) {
  return mask_of(_mm256_cmpeq_epi32(lo(a), lo(b)), _mm256_cmpeq_epi32(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __mmask16 cmplt_epi32_mask(__m512i a, __m512i b) {
  return mask_of(_mm256_cmpgt_epi32(lo(b), lo(a)), _mm256_cmpgt_epi32(hi(b), hi(a)));
}
FABRIC_AVX512_EMU __mmask16 cmpge_epi32_mask(__m512i a, __m512i b) {
  return static_cast<__mmask16>(~cmplt_epi32_mask(a, b));
}
// Unsigned: flipping both sign bits turns the order into the signed one AVX2 compares.
FABRIC_AVX512_EMU __mmask16 cmpgt_epu32_mask(__m512i a, __m512i b) {
  const __m256i s = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  return mask_of(_mm256_cmpgt_epi32(_mm256_xor_si256(lo(a), s), _mm256_xor_si256(lo(b), s)),
                 _mm256_cmpgt_epi32(_mm256_xor_si256(hi(a), s), _mm256_xor_si256(hi(b), s)));
}
FABRIC_AVX512_EMU __mmask16 cmplt_epu32_mask(__m512i a, __m512i b) {
  return cmpgt_epu32_mask(b, a);
}
FABRIC_AVX512_EMU __mmask32 mask_cmpeq_epi16_mask(__mmask32 k, __m512i a, __m512i b) {
  return k & mask_of16(_mm256_cmpeq_epi16(lo(a), lo(b)), _mm256_cmpeq_epi16(hi(a), hi(b)));
}
FABRIC_AVX512_EMU __mmask32 test_epi16_mask(__m512i a, __m512i b) {
  const __m256i z = _mm256_setzero_si256(), ones = _mm256_set1_epi16(-1);
  return mask_of16(_mm256_xor_si256(_mm256_cmpeq_epi16(_mm256_and_si256(lo(a), lo(b)), z), ones),
                   _mm256_xor_si256(_mm256_cmpeq_epi16(_mm256_and_si256(hi(a), hi(b)), z), ones));
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
  return join(_mm256_cvtepi32_ps(lo(a)), _mm256_cvtepi32_ps(hi(a)));
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
// Truncating narrowings (vpmovdw, vpmovdb, vpmovqd, vpmovqb) and widenings, with AVX2's shuffles,
// packs and vpmovzx/vpmovsx (__builtin_convertvector of 64-byte vectors went lane by lane).
// The low 16 bits of each 32-bit lane, in lane order: masked to 16 bits, vpackusdw cannot saturate;
// it interleaves the halves' 128-bit blocks, which the 64-bit permute puts back in order.
FABRIC_AVX512_EMU __m256i cvtepi32_epi16(__m512i a) {
  const __m256i m = _mm256_set1_epi32(0xFFFF);
  const __m256i p = _mm256_packus_epi32(_mm256_and_si256(lo(a), m), _mm256_and_si256(hi(a), m));
  return _mm256_permute4x64_epi64(p, 0xD8);
}
// Byte 0 of each 32-bit lane, in order, in the low 8 bytes (the upper 8 zero).
FABRIC_AVX512_EMU __m128i low_bytes_of_32(__m256i v) {
  const __m256i pick =
      _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                       -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b = _mm256_shuffle_epi8(v, pick);
  return _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
}
FABRIC_AVX512_EMU __m128i cvtepi32_epi8(__m512i a) {
  return _mm_unpacklo_epi64(low_bytes_of_32(lo(a)), low_bytes_of_32(hi(a)));
}
// The low 32 bits of each 64-bit lane: even 32-bit lanes, in order.
FABRIC_AVX512_EMU __m128i low_dwords_of_64(__m256i v) {
  const __m256 f = _mm256_castsi256_ps(v);
  return _mm_castps_si128(
      _mm_shuffle_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1), 0x88));
}
FABRIC_AVX512_EMU __m256i cvtepi64_epi32(__m512i a) {
  return _mm256_set_m128i(low_dwords_of_64(hi(a)), low_dwords_of_64(lo(a)));
}
FABRIC_AVX512_EMU __m128i cvtepi64_epi8(__m512i a) {  // 8 bytes, the upper 8 zero
  const __m128i pick = _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  return _mm_unpacklo_epi32(_mm_shuffle_epi8(low_dwords_of_64(lo(a)), pick),
                            _mm_shuffle_epi8(low_dwords_of_64(hi(a)), pick));
}
FABRIC_AVX512_EMU __m512i cvtepi8_epi32(__m128i a) {
  return join(_mm256_cvtepi8_epi32(a), _mm256_cvtepi8_epi32(_mm_unpackhi_epi64(a, a)));
}
FABRIC_AVX512_EMU __m512i cvtepu8_epi32(__m128i a) {
  return join(_mm256_cvtepu8_epi32(a), _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(a, a)));
}
FABRIC_AVX512_EMU __m512i cvtepu16_epi32(__m256i a) {
  return join(_mm256_cvtepu16_epi32(lo(a)), _mm256_cvtepu16_epi32(hi(a)));
}
FABRIC_AVX512_EMU __m512i cvtepu8_epi16(__m256i a) {
  return join(_mm256_cvtepu8_epi16(lo(a)), _mm256_cvtepu8_epi16(hi(a)));
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
template <int J>
FABRIC_AVX512_EMU __m128i block_of(__m512i a) {  // 128-bit block J (0-3)
  const __m256i h = J < 2 ? lo(a) : hi(a);
  return J & 1 ? _mm256_extracti128_si256(h, 1) : _mm256_castsi256_si128(h);
}
template <int Imm>
FABRIC_AVX512_EMU __m512i shuffle_i32x4(__m512i a, __m512i b) {
  return join(_mm256_set_m128i(block_of<(Imm >> 2 & 3)>(a), block_of<(Imm & 3)>(a)),
              _mm256_set_m128i(block_of<(Imm >> 6 & 3)>(b), block_of<(Imm >> 4 & 3)>(b)));
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
