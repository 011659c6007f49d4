// Bulk dtype conversion: AVX-512 kernels for the conversions training hits every step (fp32 to
// and from fp16/bf16/fp8/fp64), everything else staged through fp32 or done by scalar_cast.
//
// Large conversions are bound by one core's memory parallelism, not by arithmetic: measured on
// the AVX-512 build machine, a kernel's time was the sum of its memory time and its compute time.
// Conversions whose destination has kStreamBytes or more therefore prefetch their source
// kPrefetchBytes ahead (so the two overlap) and write with non-temporal stores (no
// read-for-ownership of lines that are about to be overwritten, which costs the widening
// conversions up to 2/3 more traffic): 16M elements went from 0.67-0.95x memcpy to 0.9-1.5x on one
// thread. Each vector loop body writes whole 64-byte lines for that.

// g++ 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm*_undefined_*() (GCC
// PR105593); the state must be set before <immintrin.h> is first read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "kernels/cpu/convert.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "tensor/error.h"

// The 16-lane loops run on AVX-512, or on its emulation over AVX2 halves (x86_simd.h) in builds
// for CPUs without it; those under FABRIC_CONVERT_AVX512 on the hardware only: the bf16
// conversions and the E4M3 decoder, whose emulated forms ran slower than the scalar loops GCC
// vectorises for AVX2 (x86-64-v3 build, `bench_convert`, 2026-12-04, 2 threads: f32 -> bf16
// 65 -> 11-14 GB/s, f16 -> bf16 18 -> 5-8; 1 thread: e4m3 -> f32 4.2 -> 1.1), and, not measured
// emulated, f32 <-> f64 and the non-temporal stores of large conversions.
#include "kernels/cpu/x86_simd.h"
#if defined(__AVX512F__)
#define FABRIC_CONVERT_AVX512 1
#endif

namespace fabric::cpu {
namespace {

// Below this many elements a chunk is not worth a thread (fork/join costs a few microseconds).
constexpr int64_t kGrain = int64_t{1} << 16;
// The fp32 staging buffer of the two-step conversions: small enough to stay in L1.
constexpr int64_t kStage = 2048;
// Destinations of at least this many bytes are written around the caches: twice a server core's
// L2 (2 MiB on the build machine). Below it the result may still be in L2 when it is consumed;
// above it, reading it back from L3 measured no faster than from memory after a streamed write,
// while the streamed write itself was up to 1.8x faster (bf16 -> fp32, 4M elements: convert +
// read back 3.15 -> 2.38 ms).
constexpr int64_t kStreamBytes = int64_t{4} << 20;

// How far ahead of the current position the vector loops prefetch their source, into L2: of
// 4 KiB into L1 and 8 to 64 KiB into L2, 16 KiB into L2 was the fastest at 16M elements
// (fp32 -> fp8 0.91 -> 1.02x memcpy; with 4 KiB into L1 the fp8 encoders' arithmetic still
// delayed the loads).
constexpr int kPrefetchBytes = 16384;

// The first k (0..16) lanes.
inline __mmask16 tail_mask16(int64_t k) { return static_cast<__mmask16>((1u << k) - 1u); }

// With Prefetch, prefetches the source line kPrefetchBytes past p into L2 (a prefetch never
// faults, so the lines past the end of the source are harmless). Only large conversions do: on
// an L1-resident 8K-element bf16 -> fp32 the prefetches cost 10-15%.
template <bool Prefetch>
inline void prefetch_ahead(const void* p) {
  if constexpr (Prefetch) _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T1);
}

// One 64-byte line of output; with Stream the caller guarantees the line is 64-byte aligned.
template <bool Stream>
inline void store_line(void* p, __m512i v) {
  if constexpr (Stream) {
    _mm512_stream_si512(static_cast<__m512i*>(p), v);
  } else {
    _mm512_storeu_si512(p, v);
  }
}

inline __m512i concat256(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// ---- fp32 <-> fp16 ---------------------------------------------------------------------------
// Each kernel: Prefetch its source ahead; Stream its output with non-temporal stores, for which
// d must be 64-byte aligned (convert_serial peels the head).
template <bool Prefetch, bool Stream>
void f32_to_f16(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (; i + 32 <= n; i += 32) {
    prefetch_ahead<Prefetch>(s + i);
    prefetch_ahead<Prefetch>(s + i + 16);
    const __m256i a = _mm512_cvtps_ph(_mm512_loadu_ps(s + i), kRound);
    const __m256i b = _mm512_cvtps_ph(_mm512_loadu_ps(s + i + 16), kRound);
    if constexpr (Stream) {
      store_line<true>(d + i, concat256(a, b));
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), a);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i + 16), b);
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask16(std::min<int64_t>(16, n - i));
    _mm256_mask_storeu_epi16(d + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, s + i), kRound));
  }
  for (; i < n; ++i) d[i] = float_to_half_bits(s[i]);
}

template <bool Prefetch, bool Stream>
void f16_to_f32(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    prefetch_ahead<Prefetch>(s + i);
    for (int k = 0; k < 32; k += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + k));
      store_line<Stream>(d + i + k, _mm512_castps_si512(_mm512_cvtph_ps(h)));
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask16(std::min<int64_t>(16, n - i));
    _mm512_mask_storeu_ps(d + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + i)));
  }
  for (; i < n; ++i) d[i] = half_bits_to_float(s[i]);
}

// ---- fp32 <-> bf16 ---------------------------------------------------------------------------
#ifdef FABRIC_CONVERT_AVX512
// Integer RNE, for the lanes vcvtneps2bf16 gets wrong: that instruction flushes fp32 denormals
// to zero and keeps NaN signs and payloads, where the cast keeps bf16 subnormals and makes every
// NaN 0x7FC0 (as PyTorch's round_to_nearest_even does). The result is the high half of each
// rounded 32-bit lane.
inline __m512i bf16_round_lanes(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  return _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q),
                               _mm512_set1_epi32(0x7FC00000));
}

// The odd 16-bit lanes of a then b: 32 bf16 values in one shuffle (vpmovdw costs two per 16).
inline __m512i high_halves(__m512i a, __m512i b) {
  alignas(64) static constexpr uint16_t kIdx[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21,
                                                    23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43,
                                                    45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
  return _mm512_permutex2var_epi16(a, _mm512_load_si512(kIdx), b);
}

// 32 bf16 values from a (low half) and b.
inline __m512i bf16_pack32(__m512 a, __m512 b) {
#ifdef __AVX512BF16__
  // vcvtne2ps2bf16 is the same RNE on every other input (fp32 and bf16 share the exponent range,
  // so no other result is subnormal); vfpclassps finds the lanes it gets wrong: QNaN, SNaN and
  // denormal.
  constexpr int kNanOrDenormal = 0x01 | 0x20 | 0x80;
  if ((_mm512_fpclass_ps_mask(a, kNanOrDenormal) | _mm512_fpclass_ps_mask(b, kNanOrDenormal)) ==
      0) {
    return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));
  }
#endif
  return high_halves(bf16_round_lanes(a), bf16_round_lanes(b));
}
#endif

template <bool Prefetch, bool Stream>
void f32_to_bf16(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  for (; i + 32 <= n; i += 32) {
    prefetch_ahead<Prefetch>(s + i);
    prefetch_ahead<Prefetch>(s + i + 16);
    store_line<Stream>(d + i, bf16_pack32(_mm512_loadu_ps(s + i), _mm512_loadu_ps(s + i + 16)));
  }
  if (i < n) {
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
    const __m512i a = bf16_round_lanes(_mm512_maskz_loadu_ps(static_cast<__mmask16>(m), s + i));
    const __m512i b =
        bf16_round_lanes(_mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), s + i + 16));
    _mm512_mask_storeu_epi16(d + i, m, high_halves(a, b));
    i = n;
  }
#endif
  for (; i < n; ++i) d[i] = float_to_bf16_bits(s[i]);
}

template <bool Prefetch, bool Stream>
void bf16_to_f32(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  for (; i + 16 <= n; i += 16) {
    prefetch_ahead<Prefetch>(s + i);
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    store_line<Stream>(d + i, _mm512_slli_epi32(w, 16));
  }
  if (i < n) {
    const __mmask16 m = tail_mask16(n - i);
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + i));
    _mm512_mask_storeu_epi32(d + i, m, _mm512_slli_epi32(w, 16));
    i = n;
  }
#endif
  for (; i < n; ++i) d[i] = bf16_bits_to_float(s[i]);
}

// ---- fp32 <-> fp64 ---------------------------------------------------------------------------
template <bool Prefetch, bool Stream>
void f32_to_f64(const float* s, double* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  for (; i + 8 <= n; i += 8) {
    prefetch_ahead<Prefetch>(s + i);
    store_line<Stream>(d + i, _mm512_castpd_si512(_mm512_cvtps_pd(_mm256_loadu_ps(s + i))));
  }
#endif
  for (; i < n; ++i) d[i] = s[i];
}

template <bool Prefetch, bool Stream>
void f64_to_f32(const double* s, float* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  // Same MXCSR rounding as the scalar static_cast, so the tail agrees with the body.
  for (; i + 16 <= n; i += 16) {
    prefetch_ahead<Prefetch>(s + i);
    prefetch_ahead<Prefetch>(s + i + 8);
    const __m256 a = _mm512_cvtpd_ps(_mm512_loadu_pd(s + i));
    const __m256 b = _mm512_cvtpd_ps(_mm512_loadu_pd(s + i + 8));
    store_line<Stream>(d + i, concat256(_mm256_castps_si256(a), _mm256_castps_si256(b)));
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm512_cvtpd_ps(_mm512_loadu_pd(s + i)));
#endif
  for (; i < n; ++i) d[i] = static_cast<float>(s[i]);
}

// ---- fp32 <-> fp8 ----------------------------------------------------------------------------
// Vector form of float_to_fp8_*_bits: integer RNE for normal results; for subnormal results
// |x| + 2^k with 2^k's ulp equal to the smallest subnormal, added with static RNE (independent of
// MXCSR), leaves the code in the low bits.
template <int M, int B, bool E4M3, bool Sat>
inline __m512i fp8_codes16(__m512 x) {
  constexpr int kShift = 23 - M;
  // Rebiasing subtracts a multiple of 2^23, so the kept mantissa's lowest bit (the tie breaker)
  // is bit kShift of |x| itself and the bias folds into the rounding constant.
  constexpr int kRound =
      static_cast<int>(((1u << (kShift - 1)) - 1u) - (static_cast<uint32_t>(127 - B) << 23));
  constexpr int kDenorm = (127 + 1 - B - M + 23) << 23;
  constexpr int kMinNormal = (127 + 1 - B) << 23;
  constexpr int kOvfCode = E4M3 ? (Sat ? 0x7E : 0x7F) : (Sat ? 0x7B : 0x7C);
  const __m512i u = _mm512_castps_si512(x);
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, kShift), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(kRound)), odd), kShift);
  const __m512 sum =
      _mm512_add_round_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(_mm512_set1_epi32(kDenorm)),
                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(sum), _mm512_set1_epi32(kDenorm));
  r = _mm512_mask_mov_epi32(r, _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(kMinNormal)), sub);
  // Past the largest finite code the integer RNE keeps counting up (through inf and NaN), and
  // it first reaches the code after the largest finite one exactly at the overflow threshold
  // (> 464, >= 61440), so an unsigned minimum is the overflow rule. NaN lanes are among them;
  // only where the overflow code is not NaN's do they need a second pass.
  r = _mm512_min_epu32(r, _mm512_set1_epi32(kOvfCode));
  if constexpr (kOvfCode != 0x7F) {
    r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000)),
                              _mm512_set1_epi32(0x7F));
  }
  // r | ((u >> 24) & 0x80): the sign bit.
  r = _mm512_ternarylogic_epi32(r, _mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80), 0xF8);
  return r;
}

// 64 codes (each lane 0..255) as bytes in lane order: the saturating packs interleave the four
// sources per 128-bit lane, one dword permute restores the order. 4 port-5 uops where four
// vpmovdb and the inserts take 11.
inline __m512i pack_bytes64(__m512i c0, __m512i c1, __m512i c2, __m512i c3) {
  const __m512i b = _mm512_packus_epi16(_mm512_packus_epi32(c0, c1), _mm512_packus_epi32(c2, c3));
  return _mm512_permutexvar_epi32(
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), b);
}

template <bool E4M3, bool Sat, bool Prefetch, bool Stream>
void f32_to_fp8(const float* s, uint8_t* d, int64_t n) {
  int64_t i = 0;
  constexpr int kM = E4M3 ? 3 : 2, kB = E4M3 ? 7 : 15;
  auto codes = [&](int64_t j) { return fp8_codes16<kM, kB, E4M3, Sat>(_mm512_loadu_ps(s + j)); };
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 64; k += 16) prefetch_ahead<Prefetch>(s + i + k);
    store_line<Stream>(d + i, pack_bytes64(codes(i), codes(i + 16), codes(i + 32), codes(i + 48)));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask16(std::min<int64_t>(16, n - i));
    _mm_mask_storeu_epi8(
        d + i, m,
        _mm512_cvtepi32_epi8(fp8_codes16<kM, kB, E4M3, Sat>(_mm512_maskz_loadu_ps(m, s + i))));
  }
  for (; i < n; ++i)
    d[i] = E4M3 ? float_to_fp8_e4m3_bits(s[i], Sat) : float_to_fp8_e5m2_bits(s[i], Sat);
}

// E4M3 values are all exact fp16 values, so decoding is a 128-entry fp16 table lookup (two
// vpermi2w over 64 entries each) followed by vcvtph2ps. The NaN entry 0x7F80 widens to the same
// NaN the scalar decoder gives.
constexpr std::array<uint16_t, 128> make_e4m3_half_table() {
  std::array<uint16_t, 128> t{};
  for (int k = 0; k < 128; ++k) {
    t[k] = float_to_half_bits_portable(fp8_e4m3_bits_to_float(static_cast<uint8_t>(k)));
  }
  return t;
}
alignas(64) constexpr std::array<uint16_t, 128> kE4M3Half = make_e4m3_half_table();
static_assert(kE4M3Half[0x7F] == 0x7F80 && kE4M3Half[0x7E] == 0x5F00);

template <bool E4M3, bool Prefetch, bool Stream>
void fp8_to_f32(const uint8_t* s, float* d, int64_t n) {
  int64_t i = 0;
#ifndef FABRIC_CONVERT_AVX512
  if constexpr (!E4M3)  // emulated, the E4M3 table lookup is slower than the scalar decoder
#endif
  {
    const __m512i t0 = _mm512_load_si512(kE4M3Half.data());
    const __m512i t1 = _mm512_load_si512(kE4M3Half.data() + 32);
    const __m512i t2 = _mm512_load_si512(kE4M3Half.data() + 64);
    const __m512i t3 = _mm512_load_si512(kE4M3Half.data() + 96);
    auto to_half = [&](__m256i bytes) {
      const __m512i v = _mm512_cvtepu8_epi16(bytes);
      if constexpr (!E4M3) {
        return _mm512_slli_epi16(v, 8);  // E5M2 is the top byte of an fp16
      } else {
        const __m512i lo = _mm512_permutex2var_epi16(t0, v, t1);
        const __m512i hi = _mm512_permutex2var_epi16(t2, v, t3);
        const __m512i h =
            _mm512_mask_blend_epi16(_mm512_test_epi16_mask(v, _mm512_set1_epi16(0x40)), lo, hi);
        return _mm512_or_si512(h,
                               _mm512_slli_epi16(_mm512_and_si512(v, _mm512_set1_epi16(0x80)), 8));
      }
    };
    for (; i + 32 <= n; i += 32) {
      prefetch_ahead<Prefetch>(s + i);
      const __m512i h = to_half(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
      store_line<Stream>(d + i, _mm512_castps_si512(_mm512_cvtph_ps(_mm512_castsi512_si256(h))));
      store_line<Stream>(d + i + 16,
                         _mm512_castps_si512(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1))));
    }
    if (i < n) {
      const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
      const __m512i h = to_half(_mm256_maskz_loadu_epi8(m, s + i));
      _mm512_mask_storeu_ps(d + i, static_cast<__mmask16>(m),
                            _mm512_cvtph_ps(_mm512_castsi512_si256(h)));
      _mm512_mask_storeu_ps(d + i + 16, static_cast<__mmask16>(m >> 16),
                            _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
      i = n;
    }
  }
  for (; i < n; ++i) d[i] = E4M3 ? fp8_e4m3_bits_to_float(s[i]) : fp8_e5m2_bits_to_float(s[i]);
}

// ---- dispatch --------------------------------------------------------------------------------
// Reads one element of a buffer as T; bool storage is read as bytes so any non-zero byte is true.
template <typename T>
inline T load_as(const void* p, int64_t i) {
  if constexpr (std::is_same_v<T, bool>) {
    return static_cast<const uint8_t*>(p)[i] != 0;
  } else {
    return static_cast<const T*>(p)[i];
  }
}

template <typename S, typename D>
void scalar_loop(const void* src, void* dst, int64_t n) {
  D* d = static_cast<D*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = scalar_cast<D>(load_as<S>(src, i));
}

// Whether every value of the dtype converts exactly through fp32 (and to it, when the dtype is
// the destination), i.e. whether the fp32 staging is the definition of the cast, not an
// approximation of it.
constexpr bool is_f32_family(DType t) { return t >= DType::float32 && t <= DType::float8_e5m2; }

// Prefetch / Stream as for the kernels, where a vector kernel does the conversion.
template <bool Prefetch, bool Stream>
void to_f32(DType s, const void* src, float* d, int64_t n) {
  switch (s) {
    case DType::float32:
      std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::float16:
      f16_to_f32<Prefetch, Stream>(static_cast<const uint16_t*>(src), d, n);
      return;
    case DType::bfloat16:
      bf16_to_f32<Prefetch, Stream>(static_cast<const uint16_t*>(src), d, n);
      return;
    case DType::float8_e4m3fn:
      fp8_to_f32<true, Prefetch, Stream>(static_cast<const uint8_t*>(src), d, n);
      return;
    case DType::float8_e5m2:
      fp8_to_f32<false, Prefetch, Stream>(static_cast<const uint8_t*>(src), d, n);
      return;
    case DType::float64:
      f64_to_f32<Prefetch, Stream>(static_cast<const double*>(src), d, n);
      return;
    default:
      visit_dtype(s, [&](auto tag) { scalar_loop<decltype(tag), float>(src, d, n); });
  }
}

template <bool Prefetch, bool Stream>
void from_f32(const float* s, DType d, void* dst, int64_t n, bool sat) {
  switch (d) {
    case DType::float32:
      std::memcpy(dst, s, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::float16:
      f32_to_f16<Prefetch, Stream>(s, static_cast<uint16_t*>(dst), n);
      return;
    case DType::bfloat16:
      f32_to_bf16<Prefetch, Stream>(s, static_cast<uint16_t*>(dst), n);
      return;
    case DType::float8_e4m3fn:
      return sat ? f32_to_fp8<true, true, Prefetch, Stream>(s, static_cast<uint8_t*>(dst), n)
                 : f32_to_fp8<true, false, Prefetch, Stream>(s, static_cast<uint8_t*>(dst), n);
    case DType::float8_e5m2:
      return sat ? f32_to_fp8<false, true, Prefetch, Stream>(s, static_cast<uint8_t*>(dst), n)
                 : f32_to_fp8<false, false, Prefetch, Stream>(s, static_cast<uint8_t*>(dst), n);
    case DType::float64:
      f32_to_f64<Prefetch, Stream>(s, static_cast<double*>(dst), n);
      return;
    default:
      visit_dtype(d, [&](auto tag) { scalar_loop<float, decltype(tag)>(s, dst, n); });
  }
}

// Converts [0, n) on the calling thread; Stream (for conversions larger than the caches)
// prefetches the source and streams dst, which must be 64-byte aligned.
template <bool Stream>
void convert_aligned(DType s, const char* src, DType d, char* dst, int64_t n, bool sat) {
  if (s == d) {
    if (src != dst) std::memcpy(dst, src, static_cast<size_t>(n * itemsize(s)));
    return;
  }
  if (s == DType::float32) {
    return from_f32<Stream, Stream>(reinterpret_cast<const float*>(src), d, dst, n, sat);
  }
  if (d == DType::float32) return to_f32<Stream, Stream>(s, src, reinterpret_cast<float*>(dst), n);
  if (is_f32_family(s) || is_f32_family(d)) {
    // Both casts are defined through fp32 here (double/int -> half/bf16/fp8 by PyTorch's rule),
    // so two vectorised passes over an L1-resident buffer are exact. Chunks start kStage
    // elements apart, which keeps a 64-byte aligned dst aligned.
    alignas(64) float stage[kStage];
    for (int64_t i = 0; i < n; i += kStage) {
      const int64_t m = std::min(kStage, n - i);
      to_f32<Stream, false>(s, src + i * itemsize(s), stage, m);
      from_f32<false, Stream>(stage, d, dst + i * itemsize(d), m, sat);
    }
    return;
  }
  visit_dtype(s, [&](auto stag) {
    visit_dtype(d, [&](auto dtag) { scalar_loop<decltype(stag), decltype(dtag)>(src, dst, n); });
  });
}

// Converts [0, n) on the calling thread. With stream, the elements from the first 64-byte
// aligned destination address on are written with non-temporal stores.
void convert_serial(DType s, const char* src, DType d, char* dst, int64_t n, bool sat,
                    bool stream) {
#ifdef FABRIC_CONVERT_AVX512
  const int64_t ds = itemsize(d);
  const auto addr = reinterpret_cast<uintptr_t>(dst);
  if (stream && addr % static_cast<uintptr_t>(ds) == 0) {
    const int64_t head = std::min(n, static_cast<int64_t>((0 - addr) % 64) / ds);
    convert_aligned<false>(s, src, d, dst, head, sat);
    convert_aligned<true>(s, src + head * itemsize(s), d, dst + head * ds, n - head, sat);
    // Non-temporal stores are weakly ordered: make them visible before anyone is told the
    // conversion is done.
    _mm_sfence();
    return;
  }
#else
  (void)stream;
#endif
  convert_aligned<false>(s, src, d, dst, n, sat);
}

}  // namespace

void convert(DType s, const void* src, DType d, void* dst, int64_t n, bool saturate_fp8) {
  FABRIC_CHECK(n >= 0, ValueError, "convert(", s, " -> ", d, "): element count must be >= 0, got ",
               n);
  if (n == 0) return;
  FABRIC_CHECK(src != nullptr && dst != nullptr, ValueError, "convert(", s, " -> ", d, ", n=", n,
               "): null ", (src ? "destination" : "source"), " buffer");
  const char* sp = static_cast<const char*>(src);
  char* dp = static_cast<char*>(dst);
  const bool stream = n * itemsize(d) >= kStreamBytes;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= 1 || n < 2 * kGrain) return convert_serial(s, sp, d, dp, n, saturate_fp8, stream);

  // Blocks of at least kGrain elements, multiples of 64 so vector bodies stay full.
  int64_t block = std::max(kGrain, (n + threads - 1) / threads);
  block = (block + 63) & ~int64_t{63};
  const int64_t blocks = (n + block - 1) / block;
  const int64_t ss = itemsize(s), ds = itemsize(d);
#pragma omp parallel for schedule(static) \
    num_threads(static_cast <int>(std::min <int64_t>(threads, blocks)))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * block;
    const int64_t m = std::min(block, n - lo);
    convert_serial(s, sp + lo * ss, d, dp + lo * ds, m, saturate_fp8, stream);
  }
}

}  // namespace fabric::cpu
