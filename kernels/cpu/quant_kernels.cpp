// CPU kernels of the quantizers (AVX-512): 4-bit NF4/FP4 blockwise quantize (NF4's code from a
// bin lookup and one compare, FP4's from a 3-step branchless binary search on vpermps) and
// dequantize (to the state's dtype, or through it to another in the same pass), the 8-bit
// blockwise quantizer of double quantization (an 8-step search on gathers) and its dequantizer,
// and the int8 GEMM (oneDNN's s8s8s32, or int8_gemm_widened.h without VNNI). The LLM.int8 row
// quantizer and forward epilogue are in llm_int8_kernels.cpp.
#include "tensor/quant_kernels.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/cpu/int8_gemm_widened.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

// Below this many elements the OpenMP fork costs more than the loop.
constexpr int64_t kParallelMin = 1 << 16;

// NF4's code search without a binary search: the scaled value's bin of width 1/16 on [-1, 1)
// (32 bins) gives the number of midpoints below the bin and the one midpoint the bin may hold
// (+inf if none); one compare with it finishes the count. Two table lookups instead of the four
// dependent probe-and-compare rounds of a 4-step search, which made the quantizer compute-bound
// (below memcpy at 1 thread). The midpoints are >= 0.08 apart (at most one per bin) and at
// least 2^-10 from every bin edge, so a bin misjudged by the rounding of 16·s + 16 still counts
// right: no midpoint lies between s and the edge it was rounded across.
constexpr int kNF4Bins = 32;
struct NF4BinTables {
  std::array<int32_t, kNF4Bins> below{};  // midpoints below the bin's lower edge
  std::array<float, kNF4Bins> inside{};   // the midpoint in the bin, or +inf
};
constexpr NF4BinTables make_nf4_bin_tables() {
  NF4BinTables t;
  for (int b = 0; b < kNF4Bins; ++b) {
    const double lo = b / 16.0 - 1.0, hi = (b + 1) / 16.0 - 1.0;
    t.inside[b] = std::numeric_limits<float>::infinity();
    for (float m : kNF4Midpoints) {
      if (m < lo) ++t.below[b];
      if (m >= lo && m < hi) t.inside[b] = m;
    }
  }
  return t;
}
constexpr bool nf4_bins_are_safe() {
  for (int i = 0; i < 15; ++i) {
    if (i + 1 < 15 && kNF4Midpoints[i + 1] - kNF4Midpoints[i] <= 1.0 / 16.0) return false;
    for (int b = 0; b <= kNF4Bins; ++b) {
      const double d = kNF4Midpoints[i] - (b / 16.0 - 1.0);
      if (d < 1.0 / 1024 && d > -1.0 / 1024) return false;
    }
  }
  return true;
}
static_assert(nf4_bins_are_safe(), "NF4 midpoints too close for the 1/16 bins of the code search");

// The search tables as 16 lanes. NF4: the two 32-bin tables, two vectors each. FP4: the 7
// thresholds and the bucket -> code map.
struct Tables {
  __m512i nf4_below_lo, nf4_below_hi;
  __m512 nf4_inside_lo, nf4_inside_hi;
  __m512 fp4_thr;
  __m512i fp4_map;
  __m512 nf4_code;
  __m512 fp4_code;
  Tables() {
    static constexpr NF4BinTables bins = make_nf4_bin_tables();
    nf4_below_lo = _mm512_loadu_si512(bins.below.data());
    nf4_below_hi = _mm512_loadu_si512(bins.below.data() + 16);
    nf4_inside_lo = _mm512_loadu_ps(bins.inside.data());
    nf4_inside_hi = _mm512_loadu_ps(bins.inside.data() + 16);
    alignas(64) float thr[16] = {};
    for (int i = 0; i < 7; ++i) thr[i] = kFP4Thresholds[i];
    for (int i = 7; i < 16; ++i) thr[i] = std::numeric_limits<float>::infinity();
    fp4_thr = _mm512_load_ps(thr);
    alignas(64) int32_t map[16] = {};
    for (int i = 0; i < 8; ++i) map[i] = kFP4BucketCode[i];
    fp4_map = _mm512_load_si512(map);
    nf4_code = _mm512_loadu_ps(kNF4Code.data());
    fp4_code = _mm512_loadu_ps(kFP4Code.data());
  }
};

// Number of table entries strictly below s (ties stay in the lower bucket; NaN compares false
// everywhere and lands in bucket 0). `levels` halvings starting at 2^(levels-1).
template <int Levels>
FABRIC_VEC_INLINE __m512i bucket(__m512 s, __m512 table) {
  __m512i idx = _mm512_setzero_si512();
  for (int step = 1 << (Levels - 1); step >= 1; step >>= 1) {
    const __m512i probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
    const __m512 t = _mm512_permutexvar_ps(probe, table);
    const __mmask16 gt = _mm512_cmp_ps_mask(s, t, _CMP_GT_OQ);
    idx = _mm512_mask_add_epi32(idx, gt, idx, _mm512_set1_epi32(step));
  }
  return idx;
}

// The number of NF4 midpoints strictly below s (ties low; NaN: 0). The bin is clamped to
// [0, 31] in float first (vmaxps returns its second operand for a NaN: bin 0; ±inf: the end
// bins), then truncated.
FABRIC_VEC_INLINE __m512i nf4_codes(__m512 s, const Tables& tb) {
  const __m512 pos = _mm512_fmadd_ps(s, _mm512_set1_ps(16.0f), _mm512_set1_ps(16.0f));
  const __m512 clamped = _mm512_min_ps(_mm512_max_ps(pos, _mm512_setzero_ps()),
                                       _mm512_set1_ps(static_cast<float>(kNF4Bins - 1)));
  const __m512i bin = _mm512_cvttps_epi32(clamped);
  const __m512i below = _mm512_permutex2var_epi32(tb.nf4_below_lo, bin, tb.nf4_below_hi);
  const __m512 inside = _mm512_permutex2var_ps(tb.nf4_inside_lo, bin, tb.nf4_inside_hi);
  const __mmask16 gt = _mm512_cmp_ps_mask(s, inside, _CMP_GT_OQ);
  return _mm512_mask_add_epi32(below, gt, below, _mm512_set1_epi32(1));
}

FABRIC_VEC_INLINE __m512i codes_of(__m512 s, Quant4Type type, const Tables& tb) {
  if (type == Quant4Type::nf4) return nf4_codes(s, tb);
  const __m512 a = _mm512_abs_ps(s);
  __m512i c = _mm512_permutexvar_epi32(bucket<3>(a, tb.fp4_thr), tb.fp4_map);
  const __mmask16 neg = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_or_epi32(c, neg, c, _mm512_set1_epi32(8));
}

// 16 codes (one per int32 lane, 0..15) -> 8 bytes, element 2j in the high nibble of byte j: in
// each 64-bit lane (c_2j low, c_2j+1 high) the low byte of (lane << 4) | (lane >> 32) is that
// byte, and one vpmovqb gathers them (two narrowing moves through 8-bit and 16-bit lanes before).
FABRIC_VEC_INLINE __m128i pack_nibbles(__m512i codes) {
  return _mm512_cvtepi64_epi8(
      _mm512_or_si512(_mm512_slli_epi64(codes, 4), _mm512_srli_epi64(codes, 32)));
}

// A block's absmax, with a NaN anywhere making it NaN (torch.max propagates NaN). With the sign
// bit cleared, float bit patterns order as the magnitudes do and every NaN's lies above +inf's:
// one unsigned integer max per vector finds both (no NaN compare and mask per vector).
template <class T>
FABRIC_VEC_INLINE float block_absmax(const T* x, int64_t len) {
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i mx = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    const __m512i bits = _mm512_castps_si512(vec::load(x + i));
    mx = _mm512_max_epu32(mx, _mm512_and_si512(bits, magnitude));
  }
  if (i < len) {
    const __m512i bits = _mm512_castps_si512(vec::load(x + i, vec::tail_mask(len - i)));
    mx = _mm512_max_epu32(mx, _mm512_and_si512(bits, magnitude));
  }
  const uint32_t m = _mm512_reduce_max_epu32(mx);
  return m > 0x7F800000u ? std::numeric_limits<float>::quiet_NaN() : std::bit_cast<float>(m);
}

// A block's packed codes for the scale r.
template <class T>
FABRIC_VEC_INLINE void block_codes(const T* x, int64_t len, float r, Quant4Type type,
                                   const Tables& tb, uint8_t* out) {
  const __m512 rv = _mm512_set1_ps(r);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    const __m512i c = codes_of(_mm512_mul_ps(vec::load(x + i), rv), type, tb);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i / 2), pack_nibbles(c));
  }
  if (i < len) {
    const int64_t k = len - i;
    const __mmask16 m = vec::tail_mask(k);
    __m512i c = codes_of(_mm512_mul_ps(vec::load(x + i, m), rv), type, tb);
    // Lanes past the end are padding: the code of a 0 input, whatever r is.
    c = _mm512_mask_mov_epi32(_mm512_set1_epi32(quant4_zero_code(type)), m, c);
    alignas(16) uint8_t tmp[16];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(tmp), pack_nibbles(c));
    std::memcpy(out + i / 2, tmp, static_cast<size_t>((k + 1) / 2));
  }
}

// Blocks go in chunks of about 4 KiB of input, in two passes: every block's absmax (a plain
// stream of loads, many in flight), then every block's codes from L1. One block at a time left
// the next block's loads queued behind the previous block's code search: ~5.5 GB/s at 1 thread,
// below what the memory gives.
constexpr int64_t kChunkBytes = 4096;
constexpr int64_t kMaxChunkBlocks = kChunkBytes / (32 * 2);  // the smallest block: 32 x 2 bytes

template <class T>
void quantize_4bit_typed(const T* x, int64_t n, int64_t bs, Quant4Type type, uint8_t* packed,
                         float* absmax) {
  static const Tables tb;
  const int64_t nblocks = (n + bs - 1) / bs;
  const bool partial = n % bs != 0;
  const int64_t per_chunk =
      std::max<int64_t>(1, kChunkBytes / (bs * static_cast<int64_t>(sizeof(T))));
  const int64_t nchunks = (nblocks + per_chunk - 1) / per_chunk;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t b0 = c * per_chunk, b1 = std::min(nblocks, b0 + per_chunk);
    float r[kMaxChunkBlocks];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t start = b * bs;
      float m = block_absmax(x + start, std::min(bs, n - start));
      // An all-zero block scales to 0 (the zero code) instead of 0·inf = NaN. The default
      // backend stores absmax 0, or the 1e-38 clamp for a trailing partial block (spec §6).
      r[b - b0] = m == 0.0f ? 0.0f : 1.0f / m;
      if (m == 0.0f && partial && b == nblocks - 1) m = 1e-38f;
      absmax[b] = m;
    }
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t start = b * bs;
      block_codes(x + start, std::min(bs, n - start), r[b - b0], type, tb, packed + start / 2);
    }
  }
}

void quantize_4bit_kernel(const void* x, DType dtype, int64_t n, int64_t bs, Quant4Type type,
                          uint8_t* packed, float* absmax) {
  FABRIC_CHECK(bs >= 32 && (bs & (bs - 1)) == 0, ValueError, "quantize_4bit kernel: blocksize ", bs,
               " is not a power of two >= 32");
  switch (dtype) {
    case DType::float32:
      return quantize_4bit_typed(static_cast<const float*>(x), n, bs, type, packed, absmax);
    case DType::float16:
      return quantize_4bit_typed(static_cast<const Half*>(x), n, bs, type, packed, absmax);
    case DType::bfloat16:
      return quantize_4bit_typed(static_cast<const BFloat16*>(x), n, bs, type, packed, absmax);
    default:
      throw DTypeError(detail::cat("quantize_4bit kernel: ", dtype_name(dtype),
                                   " input (expected float32, float16 or bfloat16)"));
  }
}

// 8 packed bytes -> 16 table indices in element order.
FABRIC_VEC_INLINE __m512i unpack_nibbles(__m128i bytes) {
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(0x0F));
  const __m128i lo = _mm_and_si128(bytes, _mm_set1_epi8(0x0F));
  return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(hi, lo));
}

// v rounded to Via's precision and widened back to fp32 (exactly): the first rounding of a
// dequantization to Via followed by a cast. float: no rounding.
template <class Via>
FABRIC_VEC_INLINE __m512 round_through(__m512 v) {
  if constexpr (std::is_same_v<Via, Half>) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, vec::kHalfRound));
  } else if constexpr (std::is_same_v<Via, BFloat16>) {
    return vec::bf16_widen(vec::bf16_round(v));
  } else {
    return v;
  }
}

// out = code * absmax rounded to Via, then to T (Via = float: once, to T).
template <class Via, class T>
void dequantize_4bit_typed(const uint8_t* packed, const float* absmax, int64_t n, int64_t bs,
                           Quant4Type type, T* out) {
  static const Tables tb;
  const __m512 table = type == Quant4Type::nf4 ? tb.nf4_code : tb.fp4_code;
  const int64_t nblocks = (n + bs - 1) / bs;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t start = b * bs;
    const int64_t len = std::min(bs, n - start);
    const __m512 a = _mm512_set1_ps(absmax[b]);
    const uint8_t* p = packed + start / 2;
    T* o = out + start;
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i / 2));
      const __m512 v = _mm512_mul_ps(_mm512_permutexvar_ps(unpack_nibbles(bytes), table), a);
      vec::store(o + i, round_through<Via>(v));
    }
    if (i < len) {
      const int64_t k = len - i;
      alignas(16) uint8_t tmp[16] = {};
      std::memcpy(tmp, p + i / 2, static_cast<size_t>((k + 1) / 2));
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tmp));
      const __m512 v = _mm512_mul_ps(_mm512_permutexvar_ps(unpack_nibbles(bytes), table), a);
      vec::store(o + i, round_through<Via>(v), vec::tail_mask(k));
    }
  }
}

void check_dequantize_4bit_blocksize(int64_t bs) {
  FABRIC_CHECK(bs >= 32 && (bs & (bs - 1)) == 0, ValueError, "dequantize_4bit kernel: blocksize ",
               bs, " is not a power of two >= 32");
}

// The output dtype's instance for a first rounding to Via.
template <class Via>
void dequantize_4bit_to(const uint8_t* packed, const float* absmax, int64_t n, int64_t bs,
                        Quant4Type type, DType dtype, void* out) {
  switch (dtype) {
    case DType::float32:
      return dequantize_4bit_typed<Via>(packed, absmax, n, bs, type, static_cast<float*>(out));
    case DType::float16:
      return dequantize_4bit_typed<Via>(packed, absmax, n, bs, type, static_cast<Half*>(out));
    case DType::bfloat16:
      return dequantize_4bit_typed<Via>(packed, absmax, n, bs, type, static_cast<BFloat16*>(out));
    default:
      throw DTypeError(detail::cat("dequantize_4bit kernel: ", dtype_name(dtype),
                                   " output (expected float32, float16 or bfloat16)"));
  }
}

void dequantize_4bit_kernel(const uint8_t* packed, const float* absmax, int64_t n, int64_t bs,
                            Quant4Type type, DType dtype, void* out) {
  check_dequantize_4bit_blocksize(bs);
  dequantize_4bit_to<float>(packed, absmax, n, bs, type, dtype, out);
}

void dequantize_4bit_via_kernel(const uint8_t* packed, const float* absmax, int64_t n, int64_t bs,
                                Quant4Type type, DType via, DType dtype, void* out) {
  check_dequantize_4bit_blocksize(bs);
  // Rounding to the output dtype twice is rounding once, and float32 is no rounding: those need
  // no round trip.
  if (via == dtype || via == DType::float32) {
    return dequantize_4bit_to<float>(packed, absmax, n, bs, type, dtype, out);
  }
  switch (via) {
    case DType::float16:
      return dequantize_4bit_to<Half>(packed, absmax, n, bs, type, dtype, out);
    case DType::bfloat16:
      return dequantize_4bit_to<BFloat16>(packed, absmax, n, bs, type, dtype, out);
    default:
      throw DTypeError(detail::cat("dequantize_4bit kernel: rounding through ", dtype_name(via),
                                   " (expected float32, float16 or bfloat16)"));
  }
}

// ---- 8-bit blockwise quantization (the absmax statistics of double quantization) ---------------

// One block: absmax (NaN if any element is NaN), then each x·r bucketized against the 255
// midpoints by an 8-step branchless binary search (v > mid: ties and NaN stay low).
void quantize_8bit_block(const float* x, int64_t len, const float* mid, uint8_t* codes,
                         float* absmax_out) {
  __m512 mx = _mm512_setzero_ps();
  __mmask16 nan = 0;
  for (int64_t i = 0; i < len; i += 16) {
    const __m512 v = vec::load(x + i, vec::tail_mask(len - i));
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
  }
  const float absmax = nan ? std::numeric_limits<float>::quiet_NaN() : _mm512_reduce_max_ps(mx);
  *absmax_out = absmax;
  const __m512 r = _mm512_set1_ps(absmax == 0.0f ? 0.0f : 1.0f / absmax);
  for (int64_t i = 0; i < len; i += 16) {
    const __mmask16 m = vec::tail_mask(len - i);
    const __m512 s = _mm512_mul_ps(vec::load(x + i, m), r);
    __m512i idx = _mm512_setzero_si512();
    for (int step = 128; step >= 1; step >>= 1) {
      const __m512i probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));  // <= 254
      const __m512 t = _mm512_i32gather_ps(probe, mid, 4);
      const __mmask16 gt = _mm512_cmp_ps_mask(s, t, _CMP_GT_OQ);
      idx = _mm512_mask_add_epi32(idx, gt, idx, _mm512_set1_epi32(step));
    }
    _mm_mask_storeu_epi8(codes + i, m, _mm512_cvtepi32_epi8(idx));
  }
}

void quantize_8bit_blockwise_kernel(const float* x, int64_t n, int64_t bs, const float* midpoints,
                                    uint8_t* codes, float* absmax) {
  FABRIC_CHECK(bs >= 1, ValueError, "quantize_8bit_blockwise kernel: blocksize ", bs,
               " (expected >= 1)");
  const int64_t nblocks = (n + bs - 1) / bs;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t start = b * bs;
    quantize_8bit_block(x + start, std::min(bs, n - start), midpoints, codes + start, absmax + b);
  }
}

// ---- 8-bit blockwise dequantization (the absmax of a double-quantized 4-bit state) -------------

// One block: the 256-entry table gathered from L1, times the block's absmax.
FABRIC_VEC_INLINE void dequantize_8bit_block(const uint8_t* codes, int64_t len, float absmax,
                                             const float* code, float* out) {
  const __m512 a = _mm512_set1_ps(absmax);
  for (int64_t i = 0; i < len; i += 16) {
    const __mmask16 m = vec::tail_mask(len - i);
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, codes + i));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_i32gather_ps(idx, code, 4), a));
  }
}

void dequantize_8bit_blockwise_kernel(const uint8_t* codes, const float* absmax, int64_t n,
                                      int64_t bs, const float* code, float* out) {
  FABRIC_CHECK(bs >= 1, ValueError, "dequantize_8bit_blockwise kernel: blocksize ", bs,
               " (expected >= 1)");
  const int64_t nblocks = (n + bs - 1) / bs;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t start = b * bs;
    dequantize_8bit_block(codes + start, std::min(bs, n - start), absmax[b], code, out + start);
  }
}

// oneDNN's s8s8s32 GEMM accumulates exactly in int32 (row-major; B is read transposed) where the
// CPU has VNNI; elsewhere it saturates, and the widened GEMM is exact (int8_gemm_widened.h).
void int8_gemm_kernel(int64_t M, int64_t N, int64_t K, const int8_t* A, const int8_t* B,
                      int32_t* C) {
  if constexpr (!kOneDnnInt8GemmExact) return int8_gemm_widened(M, N, K, A, B, C);
  const int32_t zero = 0;
  const dnnl_status_t st =
      dnnl_gemm_s8s8s32('N', 'T', 'F', M, N, K, 1.0f, A, K, 0, B, K, 0, 0.0f, C, N, &zero);
  FABRIC_CHECK(st == dnnl_success, ValueError,
               "int8_gemm: oneDNN dnnl_gemm_s8s8s32 failed (status ", static_cast<int>(st),
               ") for M=", M, " N=", N, " K=", K);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(quantize_4bit_stub, cpu, &cpu::quantize_4bit_kernel);
FABRIC_REGISTER_KERNEL(dequantize_4bit_stub, cpu, &cpu::dequantize_4bit_kernel);
FABRIC_REGISTER_KERNEL(dequantize_4bit_via_stub, cpu, &cpu::dequantize_4bit_via_kernel);
FABRIC_REGISTER_KERNEL(quantize_8bit_blockwise_stub, cpu, &cpu::quantize_8bit_blockwise_kernel);
FABRIC_REGISTER_KERNEL(dequantize_8bit_blockwise_stub, cpu, &cpu::dequantize_8bit_blockwise_kernel);
FABRIC_REGISTER_KERNEL(int8_gemm_stub, cpu, &cpu::int8_gemm_kernel);
}  // namespace fabric
