// A plain scalar transcription of PyTorch 1.13's CPU row sum (SumKernel.cpp, AVX2 build: 8 float
// or 4 double lanes; 16 float16/bfloat16 values fold into 8 float lanes), the order kernels/cpu/
// reduce_row_sum.h claims: the tests hold the
// kernel to it for every length and to torch's own results (tools/fixtures/make_sum_rows.py).
#pragma once
#include <array>
#include <cstdint>

namespace fabric {

// multi_row_sum of a (rows, 4) array of lane groups, item(i, k, lane); then row_sum's fold.
template <typename S, int L, typename Item>
std::array<S, L> torch_cascade_reference(int64_t size, Item item) {
  const int64_t rows = size / 4;
  int64_t log2 = 1;
  if (rows > 2)
    while ((int64_t{1} << log2) < rows) ++log2;
  const int64_t power = log2 / 4 > 4 ? log2 / 4 : 4;
  const int64_t step = int64_t{1} << power, mask = step - 1;
  S acc[4][4][L] = {};
  auto add_to = [](S* a, const S* b) {
    for (int l = 0; l < L; ++l) a[l] += b[l];
  };
  S v[L];
  int64_t i = 0;
  for (; i + step <= rows;) {
    for (int64_t j = 0; j < step; ++j, ++i)
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < L; ++l) v[l] = item(4 * i + k, l);
        add_to(acc[0][k], v);
      }
    for (int j = 1; j < 4; ++j) {
      for (int k = 0; k < 4; ++k) {
        add_to(acc[j][k], acc[j - 1][k]);
        for (int l = 0; l < L; ++l) acc[j - 1][k][l] = 0;
      }
      if ((i & (mask << (j * power))) != 0) break;
    }
  }
  for (; i < rows; ++i)
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < L; ++l) v[l] = item(4 * i + k, l);
      add_to(acc[0][k], v);
    }
  for (int j = 1; j < 4; ++j)
    for (int k = 0; k < 4; ++k) add_to(acc[0][k], acc[j][k]);
  for (int64_t r = rows * 4; r < size; ++r) {
    for (int l = 0; l < L; ++l) v[l] = item(r, l);
    add_to(acc[0][0], v);
  }
  for (int k = 1; k < 4; ++k) add_to(acc[0][0], acc[0][k]);
  std::array<S, L> out;
  for (int l = 0; l < L; ++l) out[l] = acc[0][0][l];
  return out;
}

// torch's sum of n values: vectors of L lanes over W values each, lane(i, l) being lane l of
// vector i, one(i) value i (in the compute type S).
template <typename S, int L, int W, typename Lane, typename One>
S torch_inner_sum_reference(int64_t n, Lane lane, One one) {
  if (n < W) return torch_cascade_reference<S, 1>(n, [&one](int64_t i, int) { return one(i); })[0];
  const int64_t whole = n / W;
  const std::array<S, L> lanes = torch_cascade_reference<S, L>(whole, lane);
  S r = 0;
  for (int64_t i = whole * W; i < n; ++i) r += one(i);
  for (int l = 0; l < L; ++l) r += lanes[l];
  return r;
}

// A float32 (L = 8) or float64 (L = 4) row.
template <typename S, int L>
S torch_row_sum_reference(const S* x, int64_t n) {
  return torch_inner_sum_reference<S, L, L>(
      n, [x](int64_t i, int l) { return x[L * i + l]; }, [x](int64_t i) { return x[i]; });
}

// A bfloat16 row, given as its float values: lane l of vector i is value 16i + l plus 16i + 8 + l.
inline float torch_bf16_row_sum_reference(const float* x, int64_t n) {
  return torch_inner_sum_reference<float, 8, 16>(
      n, [x](int64_t i, int l) { return x[16 * i + l] + x[16 * i + 8 + l]; },
      [x](int64_t i) { return x[i]; });
}

// A float16 row, given as its float values: lane l of vector i is (0 + value 16i + 2l) + the next.
inline float torch_f16_row_sum_reference(const float* x, int64_t n) {
  return torch_inner_sum_reference<float, 8, 16>(
      n, [x](int64_t i, int l) { return (0.0f + x[16 * i + 2 * l]) + x[16 * i + 2 * l + 1]; },
      [x](int64_t i) { return x[i]; });
}

}  // namespace fabric
