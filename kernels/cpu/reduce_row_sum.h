// The row sum of sum() and mean() over a contiguous run, in PyTorch 1.13's CPU order
// (SumKernel.cpp's cascade_sum as Debian's python3-torch runs it: its AVX2 kernels), so that a
// row of up to kSplit values (reduce.cpp) gets torch's bits exactly:
//   - a row shorter than one vector: row_sum over the values;
//   - otherwise row_sum over the row's whole vectors (8 float lanes, 4 double; a float16 or
//     bfloat16 vector is 16 values folded into 8 float lanes), then a scalar sum of the tail, then
//     the lanes added to it one by one, lowest first;
//   - row_sum(size) reads its items as a (size / 4, 4) array: four running sums (multi_row_sum, a
//     4-level cascade that carries every 2^p items, p = max(4, ceil_log2(size / 4) / 4)), the
//     remaining items into the first, then ((s0 + s1) + s2) + s3.
// tests/kernels/test_reduce_row_sum.cpp holds them to a scalar transcription of that order
// (tests/common/torch_sum_order.h) and to torch's own results.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace fabric::cpu {

// torch's utils::CeilLog2: 1 for x <= 2.
inline int64_t torch_ceil_log2(int64_t x) {
  return x <= 2 ? 1 : 64 - __builtin_clzll(static_cast<uint64_t>(x - 1));
}

// multi_row_sum with four columns: item(i, k) is column k of row i, i < rows.
template <typename V, typename Add, typename Item>
inline void cascade_columns4(int64_t rows, V zero, Add add, Item item, V out[4]) {
  constexpr int kLevels = 4;
  const int64_t power = std::max<int64_t>(4, torch_ceil_log2(rows) / kLevels);
  const int64_t step = int64_t{1} << power, mask = step - 1;
  V acc[kLevels][4];
  for (auto& level : acc)
    for (V& v : level) v = zero;
  int64_t i = 0;
  while (i + step <= rows) {
    for (int64_t j = 0; j < step; ++j, ++i)
      for (int k = 0; k < 4; ++k) acc[0][k] = add(acc[0][k], item(i, k));
    for (int j = 1; j < kLevels; ++j) {
      for (int k = 0; k < 4; ++k) {
        acc[j][k] = add(acc[j][k], acc[j - 1][k]);
        acc[j - 1][k] = zero;
      }
      if ((i & (mask << (j * power))) != 0) break;  // i is already past the block, as torch's
    }
  }
  for (; i < rows; ++i)
    for (int k = 0; k < 4; ++k) acc[0][k] = add(acc[0][k], item(i, k));
  for (int j = 1; j < kLevels; ++j)
    for (int k = 0; k < 4; ++k) acc[0][k] = add(acc[0][k], acc[j][k]);
  for (int k = 0; k < 4; ++k) out[k] = acc[0][k];
}

// torch's row_sum over items item(0 .. size - 1).
template <typename V, typename Add, typename Item>
inline V cascade_row(int64_t size, V zero, Add add, Item item) {
  const int64_t rows = size / 4;
  V s[4];
  cascade_columns4(
      rows, zero, add, [&item](int64_t r, int k) { return item(4 * r + k); }, s);
  for (int64_t i = rows * 4; i < size; ++i) s[0] = add(s[0], item(i));
  for (int k = 1; k < 4; ++k) s[0] = add(s[0], s[k]);
  return s[0];
}

// vectorized_inner_sum / scalar_inner_sum for one row of n values: `vec(i)` is the vector of L
// lanes made of values [W i, W i + W), `one(i)` value i (both in the compute type S).
template <typename S, int L, int W, typename V, typename Add, typename Vec, typename One>
inline S torch_inner_sum(int64_t n, V zero, Add add, Vec vec, One one) {
  const auto plus = [](S a, S b) { return a + b; };
  if (n < W) return cascade_row(n, S(0), plus, one);
  const int64_t whole = n / W;
  const V lanes = cascade_row(whole, zero, add, vec);
  S r = 0;
  for (int64_t i = whole * W; i < n; ++i) r += one(i);
  S part[L];
  std::memcpy(part, &lanes, sizeof(part));
  for (int j = 0; j < L; ++j) r += part[j];
  return r;
}

// A functor, not a function: a function pointer as Add is not inlined, and the sum ran 8x slower.
struct Add8 {
  __m256 operator()(__m256 a, __m256 b) const { return _mm256_add_ps(a, b); }
};

inline float row_sum_f32(const float* x, int64_t n) {
  return torch_inner_sum<float, 8, 8>(
      n, _mm256_setzero_ps(), Add8{}, [x](int64_t i) { return _mm256_loadu_ps(x + 8 * i); },
      [x](int64_t i) { return x[i]; });
}

inline double row_sum_f64(const double* x, int64_t n) {
  return torch_inner_sum<double, 4, 4>(
      n, _mm256_setzero_pd(), [](__m256d a, __m256d b) { return _mm256_add_pd(a, b); },
      [x](int64_t i) { return _mm256_loadu_pd(x + 4 * i); }, [x](int64_t i) { return x[i]; });
}

// bfloat16 bits widened to float32 exactly (the high half of the float's bits).
inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A bfloat16 row: torch loads 16 values as two float vectors (values 0-7 and 8-15) and adds
// them lane-wise; the tail and short rows are summed as float values. The caller rounds the sum
// to bfloat16, as torch's accumulating store.
inline float row_sum_bf16(const uint16_t* x, int64_t n) {
  const auto widen = [](__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  };
  return torch_inner_sum<float, 8, 16>(
      n, _mm256_setzero_ps(), Add8{},
      [x, widen](int64_t i) {
        const auto* p = reinterpret_cast<const __m128i*>(x + 16 * i);
        return _mm256_add_ps(widen(_mm_loadu_si128(p)), widen(_mm_loadu_si128(p + 1)));
      },
      [x](int64_t i) { return bf16_bits_to_float(x[i]); });
}

// A float16 row: torch loads 16 values and folds neighbours into 8 float lanes, lane j being
// (0 + value 2j) + value 2j + 1 (load_reduce_vec); the rest as for bfloat16.
inline float row_sum_f16(const uint16_t* x, int64_t n) {
  return torch_inner_sum<float, 8, 16>(
      n, _mm256_setzero_ps(), Add8{},
      [x](int64_t i) {
        const auto* p = reinterpret_cast<const __m128i*>(x + 16 * i);
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(p));      // values 0-7
        const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(p + 1));  // values 8-15
        // Even and odd values, each in the order 0, 2, 8, 10, 4, 6, 12, 14 (per 128-bit half),
        // then put in value order by moving 64-bit pairs.
        const __m256 even = _mm256_shuffle_ps(lo, hi, 0x88), odd = _mm256_shuffle_ps(lo, hi, 0xDD);
        const auto order = [](__m256 v) {
          return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
        };
        return _mm256_add_ps(_mm256_add_ps(_mm256_setzero_ps(), order(even)), order(odd));
      },
      [x](int64_t i) {
        return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(x[i]))));
      });
}

}  // namespace fabric::cpu
