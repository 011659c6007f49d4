// PyTorch's CPU float32 sum, replayed: a row is read as vectors of kLanes floats; the vectors are
// summed by row_sum (4 interleaved accumulators, each a multi-level cascade), the scalar tail in
// order, then the lanes onto it. Every step is a float32 add, as Vectorized<float>'s lane-wise add.
#include "precision/torch_cpu_mean.h"

#include <algorithm>
#include <array>
#include <bit>

namespace fabric::precision {
namespace {

constexpr int64_t kLanes = 8;  // Vectorized<float> on PyTorch's AVX2 kernels
using Lanes = std::array<float, kLanes>;

Lanes& operator+=(Lanes& a, const Lanes& b) {
  for (int64_t l = 0; l < kLanes; ++l) a[l] += b[l];
  return a;
}
void accumulate(float& a, const float& b) { a += b; }
void accumulate(Lanes& a, const Lanes& b) { a += b; }

// c10's CeilLog2: 1 up to 2, else floor(log2(x - 1)) + 1.
int64_t ceil_log2(int64_t x) {
  if (x <= 2) return 1;
  return static_cast<int64_t>(std::bit_width(static_cast<uint64_t>(x - 1)));
}

// multi_row_sum: `nrows` interleaved sums of `size` items, each through 4 levels of accumulators
// that carry upwards every 2^level_power items.
template <typename T, int64_t nrows, typename Load>
std::array<T, nrows> multi_row_sum(const Load& load, int64_t size) {
  constexpr int64_t levels = 4;
  const int64_t power = std::max<int64_t>(4, ceil_log2(size) / levels);
  const int64_t step = int64_t{1} << power, mask = step - 1;
  std::array<std::array<T, nrows>, levels> acc{};
  int64_t i = 0;
  while (i + step <= size) {
    for (int64_t j = 0; j < step; ++j, ++i)
      for (int64_t k = 0; k < nrows; ++k) accumulate(acc[0][k], load(i, k));
    for (int64_t j = 1; j < levels; ++j) {
      for (int64_t k = 0; k < nrows; ++k) {
        accumulate(acc[j][k], acc[j - 1][k]);
        acc[j - 1][k] = T{};
      }
      if ((i & (mask << (j * power))) != 0) break;
    }
  }
  for (; i < size; ++i)
    for (int64_t k = 0; k < nrows; ++k) accumulate(acc[0][k], load(i, k));
  for (int64_t j = 1; j < levels; ++j)
    for (int64_t k = 0; k < nrows; ++k) accumulate(acc[0][k], acc[j][k]);
  return acc[0];
}

// row_sum: the row as (-1, 4), its 4 columns summed by multi_row_sum, the rest onto the first.
template <typename T, typename Load>
T row_sum(const Load& load, int64_t size) {
  constexpr int64_t ilp = 4;
  const int64_t rows = size / ilp;
  std::array<T, ilp> partial =
      multi_row_sum<T, ilp>([&](int64_t i, int64_t k) { return load(i * ilp + k); }, rows);
  for (int64_t i = rows * ilp; i < size; ++i) accumulate(partial[0], load(i));
  for (int64_t k = 1; k < ilp; ++k) accumulate(partial[0], partial[k]);
  return partial[0];
}

float torch_cpu_sum_float32(const float* x, int64_t n) {
  if (n < kLanes) return row_sum<float>([&](int64_t i) { return x[i]; }, n);
  const int64_t vectors = n / kLanes;
  const Lanes v = row_sum<Lanes>(
      [&](int64_t i) {
        Lanes l;
        std::copy(x + i * kLanes, x + (i + 1) * kLanes, l.begin());
        return l;
      },
      vectors);
  float total = 0.0f;
  for (int64_t k = vectors * kLanes; k < n; ++k) total += x[k];
  for (int64_t l = 0; l < kLanes; ++l) total += v[l];
  return total;
}

}  // namespace

float torch_cpu_mean_float32(const float* x, int64_t n) {
  if (n <= 0) return 0.0f;
  return torch_cpu_sum_float32(x, n) / static_cast<float>(n);
}

}  // namespace fabric::precision
