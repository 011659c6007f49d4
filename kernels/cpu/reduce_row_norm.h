// The sum of squares of torch 1.13's CPU p = 2 norm over a contiguous last dim (the vectorised
// path of ReduceOpsKernel.cpp, taken for float32 and bfloat16 whose output keeps the input's
// dtype), in the order Debian's AVX2 build of python3-torch runs it, so that norm(x, 2, {-1}) and
// a full norm of contiguous data get torch's bits:
//   - float32: 8 lane sums over the row's whole vectors of 8, each step an fma (GCC fused
//     `acc += v * v`); the lanes stored and added to lane 0 one by one, lowest first; then the tail
//     of n % 8 values into that sum, the first 4 of a tail of 4 or more as rounded squares added in
//     turn (GCC vectorised four multiplies), the rest as fmas;
//   - bfloat16: 16 values to a vector, widened to two float vectors (values 0-7, then 8-15) whose
//     squares go into the 8 lanes in that order; the tail as float squares (squares of bfloat16
//     values are exact in float, so fused or not gives the same sums).
// The caller takes the square root (in float) and rounds it to the output dtype.
// tests/ops/test_norm_torch_rows.cpp holds this to torch's own results
// (tools/fixtures/make_norm_rows.py) and to a scalar transcription
// (tests/common/torch_norm_order.h).
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/cpu/reduce_row_sum.h"

namespace fabric::cpu {

// v unchanged but opaque to the optimiser: a square passed through it is rounded on its own,
// never fused with the following add.
inline __attribute__((always_inline)) float opaque_f(float v) {
  asm("" : "+x"(v));
  return v;
}

// torch's end of a float32 row: the 8 lane sums folded in order, then the tail of t values.
inline float norm2_finish_f32(__m256 lanes, const float* tail, int64_t t) {
  alignas(32) float b[8];
  _mm256_store_ps(b, lanes);
  float s = b[0];
  for (int j = 1; j < 8; ++j) s = s + b[j];
  int64_t i = 0;
  if (t >= 4)
    for (; i < 4; ++i) s = s + opaque_f(tail[i] * tail[i]);
  for (; i < t; ++i) s = std::fma(tail[i], tail[i], s);
  return s;
}

// The same for a bfloat16 row (the squares are exact in float).
inline float norm2_finish_bf16(__m256 lanes, const uint16_t* tail, int64_t t) {
  alignas(32) float b[8];
  _mm256_store_ps(b, lanes);
  float s = b[0];
  for (int j = 1; j < 8; ++j) s = s + b[j];
  for (int64_t i = 0; i < t; ++i) {
    const float v = bf16_bits_to_float(tail[i]);
    s = s + opaque_f(v * v);
  }
  return s;
}

// Sums of squares of NS float32 rows of n values each, out[r] for rows[r]. The rows advance
// together: each is its own chain of fmas, so NS of them keep the FMA units busy where one row
// waits on each fma's latency.
template <int NS>
inline void norm2_rows_f32(const float* const* rows, int64_t n, float* out) {
  __m256 acc[NS];
  for (int r = 0; r < NS; ++r) acc[r] = _mm256_setzero_ps();
  const int64_t whole = n - n % 8;
  for (int64_t d = 0; d < whole; d += 8)
    for (int r = 0; r < NS; ++r) {
      const __m256 v = _mm256_loadu_ps(rows[r] + d);
      acc[r] = _mm256_fmadd_ps(v, v, acc[r]);
    }
  for (int r = 0; r < NS; ++r) out[r] = norm2_finish_f32(acc[r], rows[r] + whole, n - whole);
}

template <int NS>
inline void norm2_rows_bf16(const uint16_t* const* rows, int64_t n, float* out) {
  const auto widen = [](__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  };
  __m256 acc[NS];
  for (int r = 0; r < NS; ++r) acc[r] = _mm256_setzero_ps();
  const int64_t whole = n - n % 16;
  for (int64_t d = 0; d < whole; d += 16)
    for (int r = 0; r < NS; ++r) {
      const auto* p = reinterpret_cast<const __m128i*>(rows[r] + d);
      const __m256 lo = widen(_mm_loadu_si128(p)), hi = widen(_mm_loadu_si128(p + 1));
      acc[r] = _mm256_fmadd_ps(lo, lo, acc[r]);
      acc[r] = _mm256_fmadd_ps(hi, hi, acc[r]);
    }
  for (int r = 0; r < NS; ++r) out[r] = norm2_finish_bf16(acc[r], rows[r] + whole, n - whole);
}

inline float norm2_row_f32(const float* x, int64_t n) {
  float s;
  norm2_rows_f32<1>(&x, n, &s);
  return s;
}
inline float norm2_row_bf16(const uint16_t* x, int64_t n) {
  float s;
  norm2_rows_bf16<1>(&x, n, &s);
  return s;
}

}  // namespace fabric::cpu
