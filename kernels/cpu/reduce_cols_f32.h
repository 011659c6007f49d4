// The float32 leaf of the column sums (bias gradients: sum over the rows of a (rows, w) block,
// columns contiguous): Reducer<sum, float>::cols (reduce.cpp) adds up to 16 rows into acc one
// column at a time, each column from 0 in row order. Here those same additions run with the
// accumulators in registers, 64 columns at a time, and bfloat16 rows widened in the load instead
// of staged through convert() per row. One thread, sum over dim 0: bf16 [2048, 1024] 373 ->
// 201 us, [2048, 256] 70 -> 20 us; float32 [2048, 1024] 359 -> 324 us (bound by the L3 reads).
// Same additions in the same order, so the same bits (tests/kernels/test_reduce_cols_f32.cpp).
#pragma once
#include <cstdint>

#include "kernels/cpu/reduce_math.h"

namespace fabric::cpu {

// Whether col_sum_rows_f32 takes rows of this dtype.
inline bool col_sum_rows_f32_supports(DType dt) {
  return dt == DType::float32 || dt == DType::bfloat16;
}

// acc[j] = ((0 + rows[0][j]) + rows[1][j]) + ... + rows[nrows - 1][j] for j in [0, w), each row
// w values of dt (float32 or bfloat16) from rows[r].
inline void col_sum_rows_f32(const char* const* rows, int64_t nrows, DType dt, int64_t w,
                             float* acc) {
  const bool bf16 = dt == DType::bfloat16;
  const int64_t isz = bf16 ? 2 : 4;
  // 16 values at column j of row p under mask k, as float32 (bf16 -> f32 is exact: the high half).
  const auto load = [bf16](const char* p, __mmask16 k) {
    if (bf16) {
      const __m256i h = _mm256_maskz_loadu_epi16(k, p);
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_loadu_ps(k, reinterpret_cast<const float*>(p));
  };
  int64_t j = 0;
  for (; j + 64 <= w; j += 64) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t r = 0; r < nrows; ++r) {
      const char* p = rows[r] + j * isz;
      a0 = _mm512_add_ps(a0, load(p, 0xFFFF));
      a1 = _mm512_add_ps(a1, load(p + 16 * isz, 0xFFFF));
      a2 = _mm512_add_ps(a2, load(p + 32 * isz, 0xFFFF));
      a3 = _mm512_add_ps(a3, load(p + 48 * isz, 0xFFFF));
    }
    _mm512_storeu_ps(acc + j, a0);
    _mm512_storeu_ps(acc + j + 16, a1);
    _mm512_storeu_ps(acc + j + 32, a2);
    _mm512_storeu_ps(acc + j + 48, a3);
  }
  for (; j < w; j += 16) {
    const __mmask16 k = static_cast<__mmask16>(w - j >= 16 ? 0xFFFF : (1u << (w - j)) - 1u);
    __m512 a = _mm512_setzero_ps();
    for (int64_t r = 0; r < nrows; ++r) a = _mm512_add_ps(a, load(rows[r] + j * isz, k));
    _mm512_mask_storeu_ps(acc + j, k, a);
  }
}

}  // namespace fabric::cpu
