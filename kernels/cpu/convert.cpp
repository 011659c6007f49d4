// Bulk dtype conversion: AVX-512 kernels for the conversions training hits every step (fp32 to
// and from fp16/bf16/fp8/fp64), everything else staged through fp32 or done by scalar_cast.

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

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define FABRIC_CONVERT_AVX512 1
#endif

namespace fabric::cpu {
namespace {

// Below this many elements a chunk is not worth a thread (fork/join costs a few microseconds).
constexpr int64_t kGrain = int64_t{1} << 16;
// The fp32 staging buffer of the two-step conversions: small enough to stay in L1.
constexpr int64_t kStage = 2048;

#ifdef FABRIC_CONVERT_AVX512
// The first k (0..16) lanes.
inline __mmask16 tail_mask16(int64_t k) { return static_cast<__mmask16>((1u << k) - 1u); }
#endif

// ---- fp32 <-> fp16 ---------------------------------------------------------------------------
void f32_to_f16(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (; i + 32 <= n; i += 32) {
    __m256i a = _mm512_cvtps_ph(_mm512_loadu_ps(s + i), kRound);
    __m256i b = _mm512_cvtps_ph(_mm512_loadu_ps(s + i + 16), kRound);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i + 16), b);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask16(std::min<int64_t>(16, n - i));
    _mm256_mask_storeu_epi16(d + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, s + i), kRound));
  }
#endif
  for (; i < n; ++i) d[i] = float_to_half_bits(s[i]);
}

void f16_to_f32(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  for (; i + 32 <= n; i += 32) {
    _mm512_storeu_ps(d + i,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
    _mm512_storeu_ps(
        d + i + 16,
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 16))));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask16(std::min<int64_t>(16, n - i));
    _mm512_mask_storeu_ps(d + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + i)));
  }
#endif
  for (; i < n; ++i) d[i] = half_bits_to_float(s[i]);
}

// ---- fp32 <-> bf16 ---------------------------------------------------------------------------
#ifdef FABRIC_CONVERT_AVX512
// Integer RNE rather than vcvtneps2bf16: that instruction flushes fp32 denormals to zero and
// keeps NaN payloads, where the cast keeps bf16 subnormals and makes every NaN 0x7FC0. The
// result is the high half of each rounded 32-bit lane.
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
#endif

void f32_to_bf16(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  for (; i + 32 <= n; i += 32) {
    const __m512i a = bf16_round_lanes(_mm512_loadu_ps(s + i));
    const __m512i b = bf16_round_lanes(_mm512_loadu_ps(s + i + 16));
    _mm512_storeu_si512(d + i, high_halves(a, b));
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

void bf16_to_f32(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  for (; i + 16 <= n; i += 16) {
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    _mm512_storeu_si512(d + i, _mm512_slli_epi32(w, 16));
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
void f32_to_f64(const float* s, double* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  for (; i + 8 <= n; i += 8) _mm512_storeu_pd(d + i, _mm512_cvtps_pd(_mm256_loadu_ps(s + i)));
#endif
  for (; i < n; ++i) d[i] = s[i];
}

void f64_to_f32(const double* s, float* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  // Same MXCSR rounding as the scalar static_cast, so the tail agrees with the body.
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm512_cvtpd_ps(_mm512_loadu_pd(s + i)));
#endif
  for (; i < n; ++i) d[i] = static_cast<float>(s[i]);
}

// ---- fp32 <-> fp8 ----------------------------------------------------------------------------
#ifdef FABRIC_CONVERT_AVX512
// Vector form of float_to_fp8_*_bits: integer RNE for normal results; for subnormal results
// |x| + 2^k with 2^k's ulp equal to the smallest subnormal, added with static RNE (independent of
// MXCSR), leaves the code in the low bits.
template <int M, int B, bool E4M3, bool Sat>
inline __m128i fp8_rne16(__m512 x) {
  constexpr int kShift = 23 - M;
  // Rebiasing subtracts a multiple of 2^23, so the kept mantissa's lowest bit (the tie breaker)
  // is bit kShift of |x| itself and the bias folds into the rounding constant.
  constexpr int kRound =
      static_cast<int>(((1u << (kShift - 1)) - 1u) - (static_cast<uint32_t>(127 - B) << 23));
  constexpr int kDenorm = (127 + 1 - B - M + 23) << 23;
  constexpr int kMinNormal = (127 + 1 - B) << 23;
  constexpr int kOvf = E4M3 ? 0x43E80000 : 0x476FFFFF;  // > 464 : >= 61440
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
  // NaN lanes are among the overflow lanes; only where the overflow code is not NaN's do they
  // need a second pass.
  r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(kOvf)),
                            _mm512_set1_epi32(kOvfCode));
  if constexpr (kOvfCode != 0x7F) {
    r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000)),
                              _mm512_set1_epi32(0x7F));
  }
  // r | ((u >> 24) & 0x80): the sign bit.
  r = _mm512_ternarylogic_epi32(r, _mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80), 0xF8);
  return _mm512_cvtepi32_epi8(r);
}
#endif

template <bool E4M3, bool Sat>
void f32_to_fp8(const float* s, uint8_t* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
  constexpr int kM = E4M3 ? 3 : 2, kB = E4M3 ? 7 : 15;
  for (; i + 32 <= n; i += 32) {
    const __m128i lo = fp8_rne16<kM, kB, E4M3, Sat>(_mm512_loadu_ps(s + i));
    const __m128i hi = fp8_rne16<kM, kB, E4M3, Sat>(_mm512_loadu_ps(s + i + 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_set_m128i(hi, lo));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask16(std::min<int64_t>(16, n - i));
    _mm_mask_storeu_epi8(d + i, m, fp8_rne16<kM, kB, E4M3, Sat>(_mm512_maskz_loadu_ps(m, s + i)));
  }
#endif
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

template <bool E4M3>
void fp8_to_f32(const uint8_t* s, float* d, int64_t n) {
  int64_t i = 0;
#ifdef FABRIC_CONVERT_AVX512
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
      return _mm512_or_si512(h, _mm512_slli_epi16(_mm512_and_si512(v, _mm512_set1_epi16(0x80)), 8));
    }
  };
  for (; i + 32 <= n; i += 32) {
    const __m512i h = to_half(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    _mm512_storeu_ps(d + i, _mm512_cvtph_ps(_mm512_castsi512_si256(h)));
    _mm512_storeu_ps(d + i + 16, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
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
#endif
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

void to_f32(DType s, const void* src, float* d, int64_t n) {
  switch (s) {
    case DType::float32:
      std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::float16:
      f16_to_f32(static_cast<const uint16_t*>(src), d, n);
      return;
    case DType::bfloat16:
      bf16_to_f32(static_cast<const uint16_t*>(src), d, n);
      return;
    case DType::float8_e4m3fn:
      fp8_to_f32<true>(static_cast<const uint8_t*>(src), d, n);
      return;
    case DType::float8_e5m2:
      fp8_to_f32<false>(static_cast<const uint8_t*>(src), d, n);
      return;
    case DType::float64:
      f64_to_f32(static_cast<const double*>(src), d, n);
      return;
    default:
      visit_dtype(s, [&](auto tag) { scalar_loop<decltype(tag), float>(src, d, n); });
  }
}

void from_f32(const float* s, DType d, void* dst, int64_t n, bool sat) {
  switch (d) {
    case DType::float32:
      std::memcpy(dst, s, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::float16:
      f32_to_f16(s, static_cast<uint16_t*>(dst), n);
      return;
    case DType::bfloat16:
      f32_to_bf16(s, static_cast<uint16_t*>(dst), n);
      return;
    case DType::float8_e4m3fn:
      return sat ? f32_to_fp8<true, true>(s, static_cast<uint8_t*>(dst), n)
                 : f32_to_fp8<true, false>(s, static_cast<uint8_t*>(dst), n);
    case DType::float8_e5m2:
      return sat ? f32_to_fp8<false, true>(s, static_cast<uint8_t*>(dst), n)
                 : f32_to_fp8<false, false>(s, static_cast<uint8_t*>(dst), n);
    case DType::float64:
      f32_to_f64(s, static_cast<double*>(dst), n);
      return;
    default:
      visit_dtype(d, [&](auto tag) { scalar_loop<float, decltype(tag)>(s, dst, n); });
  }
}

// Converts [0, n) on the calling thread.
void convert_serial(DType s, const char* src, DType d, char* dst, int64_t n, bool sat) {
  if (s == d) {
    if (src != dst) std::memcpy(dst, src, static_cast<size_t>(n * itemsize(s)));
    return;
  }
  if (s == DType::float32) return from_f32(reinterpret_cast<const float*>(src), d, dst, n, sat);
  if (d == DType::float32) return to_f32(s, src, reinterpret_cast<float*>(dst), n);
  if (is_f32_family(s) || is_f32_family(d)) {
    // Both casts are defined through fp32 here (double/int -> half/bf16/fp8 by PyTorch's rule),
    // so two vectorised passes over an L1-resident buffer are exact.
    alignas(64) float stage[kStage];
    for (int64_t i = 0; i < n; i += kStage) {
      const int64_t m = std::min(kStage, n - i);
      to_f32(s, src + i * itemsize(s), stage, m);
      from_f32(stage, d, dst + i * itemsize(d), m, sat);
    }
    return;
  }
  visit_dtype(s, [&](auto stag) {
    visit_dtype(d, [&](auto dtag) { scalar_loop<decltype(stag), decltype(dtag)>(src, dst, n); });
  });
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
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= 1 || n < 2 * kGrain) return convert_serial(s, sp, d, dp, n, saturate_fp8);

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
    convert_serial(s, sp + lo * ss, d, dp + lo * ds, m, saturate_fp8);
  }
}

}  // namespace fabric::cpu
