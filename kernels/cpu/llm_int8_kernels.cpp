// CPU kernels of LLM.int8 (AVX-512, OpenMP over rows): the row-wise int8 quantizer with the
// outlier threshold, its dequantizer, the column-wise quantizer of the weight gradient (written
// transposed, as the int8 GEMM's operand), and the forward epilogue that turns the int32 GEMM
// result into the output (scales, bias, the cast to the activation dtype and the outlier columns'
// fp32 product), one pass over the int32 result. The semantics are in tensor/quant_kernels.h.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/vec_math.h"
#include "tensor/error.h"
#include "tensor/quant_kernels.h"

namespace fabric::cpu {
namespace {

// Below this many elements the OpenMP fork costs more than the loop.
constexpr int64_t kParallelMin = 1 << 16;
constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// ---- row-wise quantization --------------------------------------------------------------------

// One row: the absmax of the non-outliers (outlier columns flagged in colmask), then the codes.
// Lanes past K load as 0, which changes no maximum and is never an outlier (threshold > 0).
template <bool kThreshold, class T>
void quant_row(const T* a, int64_t K, float thr, int8_t* q, float* stat, uint8_t* colmask) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 thr_v = _mm512_set1_ps(thr);
  __m512 mx = zero;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = vec::tail_mask(K - k);
    __m512 v = _mm512_abs_ps(vec::load(a + k, m));
    if constexpr (kThreshold) {
      const __mmask16 out = _mm512_cmp_ps_mask(v, thr_v, _CMP_GE_OQ);
      if (out) {  // rare: outliers are what the threshold singles out
        _mm_mask_storeu_epi8(colmask + k, out, _mm_set1_epi8(1));
        v = _mm512_mask_mov_ps(v, out, zero);
      }
    }
    mx = _mm512_max_ps(v, mx);  // a NaN lane of v keeps mx: vmaxps returns its second operand
  }
  const float absmax = _mm512_reduce_max_ps(mx);
  *stat = absmax;
  if (absmax == 0.0f) {  // 127/0 = inf; torch's NaN -> int8 cast is undefined, so emit 0
    std::memset(q, 0, static_cast<size_t>(K));
    return;
  }
  const __m512 s = _mm512_set1_ps(127.0f / absmax);
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = vec::tail_mask(K - k);
    const __m512 v = vec::load(a + k, m);
    __m512 x = _mm512_mul_ps(v, s);
    if constexpr (kThreshold) {
      x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(_mm512_abs_ps(v), thr_v, _CMP_GE_OQ), zero);
    }
    // NaN (a NaN input, or inf · 0 in a row whose absmax is inf) has no int8 value: emit 0.
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512 y = _mm512_mask_mov_ps(_mm512_max_ps(_mm512_min_ps(x, hi), lo), nan, zero);
    _mm_mask_storeu_epi8(q + k, m, _mm512_cvtepi32_epi8(_mm512_cvt_roundps_epi32(y, kRne)));
  }
}

template <class T>
void quant_rows(const T* a, int64_t rows, int64_t K, float thr, int8_t* q, float* stats,
                uint8_t* colmask) {
  const bool parallel = rows > 1 && rows * K >= kParallelMin;
  std::vector<int64_t> outlier_cols;
#pragma omp parallel if (parallel)
  {
    // Each thread flags its own outliers; the masks are OR-ed once at the end.
    std::vector<uint8_t> local(thr > 0.0f ? static_cast<size_t>(K) : 0, 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      if (thr > 0.0f) {
        quant_row<true>(a + r * K, K, thr, q + r * K, stats + r, local.data());
      } else {
        quant_row<false>(a + r * K, K, thr, q + r * K, stats + r, nullptr);
      }
    }
    if (thr > 0.0f) {
#pragma omp critical(fabric_int8_colmask)
      for (int64_t k = 0; k < K; ++k) colmask[k] |= local[k];
#pragma omp barrier
#pragma omp single
      for (int64_t k = 0; k < K; ++k) {
        if (colmask[k]) outlier_cols.push_back(k);
      }
      // With more than one row, an outlier column is dropped from every row of the int8 part.
      if (rows > 1 && !outlier_cols.empty()) {
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c : outlier_cols) q[r * K + c] = 0;
        }
      }
    }
  }
}

void int8_row_quant_kernel(const void* A, DType dtype, int64_t rows, int64_t K, float threshold,
                           int8_t* q, float* stats, uint8_t* colmask) {
  FABRIC_CHECK(K >= 1, ValueError, "int8_row_quant kernel: K = ", K, " (expected >= 1)");
  const float thr = threshold > 0.0f ? threshold : 0.0f;
  switch (dtype) {
    case DType::float32:
      return quant_rows(static_cast<const float*>(A), rows, K, thr, q, stats, colmask);
    case DType::float16:
      return quant_rows(static_cast<const Half*>(A), rows, K, thr, q, stats, colmask);
    case DType::bfloat16:
      return quant_rows(static_cast<const BFloat16*>(A), rows, K, thr, q, stats, colmask);
    default:
      throw DTypeError(detail::cat("int8_row_quant kernel: ", dtype_name(dtype),
                                   " input (expected float32, float16 or bfloat16)"));
  }
}

// ---- column-wise quantization, written transposed ---------------------------------------------

// Pass 1: the column maxima of the non-outliers, each thread over its own rows, merged at the end.
// Lanes past K load as 0, which changes no maximum and is never an outlier (threshold > 0).
template <bool kThreshold, class T>
void col_absmax(const T* a, int64_t rows, int64_t K, float thr, float* stats, uint8_t* colmask) {
  std::fill(stats, stats + K, 0.0f);
#pragma omp parallel if (rows > 1 && rows * K >= kParallelMin)
  {
    std::vector<float> mx(static_cast<size_t>(K), 0.0f);
    std::vector<uint8_t> local(kThreshold ? static_cast<size_t>(K) : 0, 0);
    const __m512 thr_v = _mm512_set1_ps(thr);
#pragma omp for schedule(static) nowait
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = a + r * K;
      for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 m = vec::tail_mask(K - k);
        __m512 v = _mm512_abs_ps(vec::load(row + k, m));
        if constexpr (kThreshold) {
          const __mmask16 out = _mm512_cmp_ps_mask(v, thr_v, _CMP_GE_OQ);
          if (out) {
            _mm_mask_storeu_epi8(local.data() + k, out, _mm_set1_epi8(1));
            v = _mm512_mask_mov_ps(v, out, _mm512_setzero_ps());
          }
        }
        // A NaN lane of v keeps the running maximum: vmaxps returns its second operand.
        _mm512_mask_storeu_ps(mx.data() + k, m,
                              _mm512_max_ps(v, _mm512_maskz_loadu_ps(m, mx.data() + k)));
      }
    }
#pragma omp critical(fabric_int8_colstats)
    for (int64_t k = 0; k < K; ++k) {
      stats[k] = std::max(stats[k], mx[k]);
      if constexpr (kThreshold) colmask[k] |= local[k];
    }
  }
}

// Transposes 16 rows of 16 bytes, except that output row j is column bitrev4(j) of the input
// (unpack stages of widths 1, 2, 4 and 8 bytes, each pairing rows 2i and 2i+1).
FABRIC_VEC_INLINE void transpose16x16_bitrev(__m128i r[16]) {
  __m128i t[16];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
    t[i + 8] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm_unpacklo_epi16(t[2 * i], t[2 * i + 1]);
    r[i + 8] = _mm_unpackhi_epi16(t[2 * i], t[2 * i + 1]);
  }
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[i + 8] = _mm_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm_unpacklo_epi64(t[2 * i], t[2 * i + 1]);
    r[i + 8] = _mm_unpackhi_epi64(t[2 * i], t[2 * i + 1]);
  }
}
constexpr int kBitrev4[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};

// Pass 2: tiles of 16 rows x 16 columns, quantized with the columns' scales (0 for an outlier or
// all-zero column) and stored transposed. Threads take blocks of 64 rows, so that each writes
// whole 64-byte runs of qt's rows.
template <class T>
void col_quant_t(const T* a, int64_t rows, int64_t K, const float* scale, int8_t* qt) {
  constexpr int64_t kRowBlock = 64;
  const int64_t nblocks = (rows + kRowBlock - 1) / kRowBlock;
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
#pragma omp parallel for schedule(static) if (rows > 1 && rows * K >= kParallelMin)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t r_end = std::min(rows, (b + 1) * kRowBlock);
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 km = vec::tail_mask(K - k);
      const __m512 s = _mm512_maskz_loadu_ps(km, scale + k);
      for (int64_t r0 = b * kRowBlock; r0 < r_end; r0 += 16) {
        const int64_t nr = std::min<int64_t>(16, r_end - r0);
        __m128i t[16];
        for (int64_t i = 0; i < 16; ++i) {
          if (i >= nr) {
            t[i] = _mm_setzero_si128();
            continue;
          }
          const __m512 x = _mm512_mul_ps(vec::load(a + (r0 + i) * K + k, km), s);
          // NaN (a NaN input, or inf · 0 in a zeroed column) has no int8 value: emit 0.
          const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
          const __m512 y =
              _mm512_mask_mov_ps(_mm512_max_ps(_mm512_min_ps(x, hi), lo), nan, _mm512_setzero_ps());
          t[i] = _mm512_cvtepi32_epi8(_mm512_cvt_roundps_epi32(y, kRne));
        }
        transpose16x16_bitrev(t);
        const __mmask16 rm = vec::tail_mask(nr);
        for (int j = 0; j < 16; ++j) {
          const int64_t c = k + kBitrev4[j];
          if (c < K) _mm_mask_storeu_epi8(qt + c * rows + r0, rm, t[j]);
        }
      }
    }
  }
}

template <class T>
void col_quant(const T* a, int64_t rows, int64_t K, float thr, int8_t* qt, float* stats,
               uint8_t* colmask) {
  if (thr > 0.0f) {
    col_absmax<true>(a, rows, K, thr, stats, colmask);
  } else {
    col_absmax<false>(a, rows, K, thr, stats, colmask);
  }
  std::vector<float> scale(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) {
    // 127/0 = inf; as in the row quantizer an all-zero column gives 0 (an inf absmax gives scale
    // 0 by itself, and NaN codes for its infinities, emitted as 0).
    const bool zeroed = stats[k] == 0.0f || (thr > 0.0f && colmask[k]);
    scale[k] = zeroed ? 0.0f : 127.0f / stats[k];
  }
  col_quant_t(a, rows, K, scale.data(), qt);
}

void int8_col_quant_kernel(const void* A, DType dtype, int64_t rows, int64_t K, float threshold,
                           int8_t* qt, float* stats, uint8_t* colmask) {
  FABRIC_CHECK(rows >= 1 && K >= 1, ValueError, "int8_col_quant kernel: rows = ", rows, ", K = ", K,
               " (expected both >= 1)");
  const float thr = threshold > 0.0f ? threshold : 0.0f;
  switch (dtype) {
    case DType::float32:
      return col_quant(static_cast<const float*>(A), rows, K, thr, qt, stats, colmask);
    case DType::float16:
      return col_quant(static_cast<const Half*>(A), rows, K, thr, qt, stats, colmask);
    case DType::bfloat16:
      return col_quant(static_cast<const BFloat16*>(A), rows, K, thr, qt, stats, colmask);
    default:
      throw DTypeError(detail::cat("int8_col_quant kernel: ", dtype_name(dtype),
                                   " input (expected float32, float16 or bfloat16)"));
  }
}

// ---- forward epilogue -------------------------------------------------------------------------

// v rounded to T and back (exact for float).
template <class T>
FABRIC_VEC_INLINE __m512 round_through(__m512 v) {
  if constexpr (std::is_same_v<T, Half>)
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, vec::kHalfRound));
  if constexpr (std::is_same_v<T, BFloat16>) return vec::bf16_widen(vec::bf16_round(v));
  return v;
}

// The product is rounded before the bias is added, as the scalar forward always did: opaque_ps
// keeps the compiler (-ffp-contract=fast, the C++ default) from fusing the two into one fma.
FABRIC_VEC_INLINE __m512 rounded(__m512 v) { return opaque_ps(v); }

template <class T>
void epilogue_typed(const Int8LinearEpilogue& e) {
  const int64_t M = e.M, N = e.N, ncols = e.ncols;
  const T* x = static_cast<const T*>(e.x);
  T* out = static_cast<T*>(e.out);
  const __m512 scale = _mm512_set1_ps(e.scale);
#pragma omp parallel if (M * N >= kParallelMin)
  {
    std::vector<float> x_out(static_cast<size_t>(ncols));  // this row's outlier inputs
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t j = 0; j < ncols; ++j) x_out[j] = static_cast<float>(x[m * e.K + e.cols[j]]);
      const int32_t* acc = e.acc + m * N;
      const __m512 row = _mm512_set1_ps(e.row_stats[m]);
      T* o = out + m * N;
      for (int64_t n = 0; n < N; n += 16) {
        const __mmask16 k = vec::tail_mask(N - n);
        const __m512 c = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, acc + n));
        const __m512 s = _mm512_mul_ps(row, _mm512_maskz_loadu_ps(k, e.col_stats + n));
        __m512 v = rounded(_mm512_mul_ps(_mm512_mul_ps(c, s), scale));
        if (e.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, e.bias + n));
        if (ncols > 0) {
          // addmm in the output dtype: the stored partial result plus the fp32 sum, rounded once.
          v = round_through<T>(v);
          for (int64_t j = 0; j < ncols; ++j) {
            v = _mm512_fmadd_ps(_mm512_set1_ps(x_out[j]),
                                _mm512_maskz_loadu_ps(k, e.w_cols + j * N + n), v);
          }
        }
        vec::store(o + n, v, k);
      }
    }
  }
}

void int8_linear_epilogue_kernel(const Int8LinearEpilogue& e) {
  switch (e.dtype) {
    case DType::float32:
      return epilogue_typed<float>(e);
    case DType::float16:
      return epilogue_typed<Half>(e);
    case DType::bfloat16:
      return epilogue_typed<BFloat16>(e);
    default:
      throw DTypeError(detail::cat("int8_linear_epilogue kernel: ", dtype_name(e.dtype),
                                   " output (expected float32, float16 or bfloat16)"));
  }
}

// ---- row-wise dequantization (the int8 weight of Linear8bitLt's backward) ---------------------

// The flat element range in chunks of this many (about 16 KiB of int8 in, 64 KiB of fp32 out),
// each walking the row segments it overlaps: rows of any length split evenly across threads.
constexpr int64_t kDequantChunk = 1 << 14;

void int8_row_dequant_kernel(const int8_t* q, const float* stats, int64_t rows, int64_t K,
                             float scale, float* out) {
  FABRIC_CHECK(K >= 1, ValueError, "int8_row_dequant kernel: K ", K, " (expected >= 1)");
  const int64_t n = rows * K;
  const int64_t nchunks = (n + kDequantChunk - 1) / kDequantChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kDequantChunk);
    for (int64_t i = c * kDequantChunk; i < end;) {
      const int64_t r = i / K;
      const int64_t seg_end = std::min(end, (r + 1) * K);
      // (q · stat) · scale, each product rounded (bitsandbytes' A * stats * 1/127, left to right).
      const __m512 stat = _mm512_set1_ps(stats[r]);
      const __m512 f = _mm512_set1_ps(scale);
      for (; i + 16 <= seg_end; i += 16) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i));
        const __m512 qs = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), stat);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(qs, f));
      }
      if (i < seg_end) {
        const __mmask16 m = vec::tail_mask(seg_end - i);
        const __m128i b = _mm_maskz_loadu_epi8(m, q + i);
        const __m512 qs = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), stat);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(qs, f));
        i = seg_end;
      }
    }
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(int8_row_quant_stub, cpu, &cpu::int8_row_quant_kernel);
FABRIC_REGISTER_KERNEL(int8_col_quant_stub, cpu, &cpu::int8_col_quant_kernel);
FABRIC_REGISTER_KERNEL(int8_row_dequant_stub, cpu, &cpu::int8_row_dequant_kernel);
FABRIC_REGISTER_KERNEL(int8_linear_epilogue_stub, cpu, &cpu::int8_linear_epilogue_kernel);
}  // namespace fabric
