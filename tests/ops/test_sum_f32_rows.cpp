// sum() and mean() of float32 over contiguous rows go through row_sum_f32 (kernels/cpu/
// reduce_sum_f32.h): checked bit for bit against sum_range<float>'s cascade, the order that defines
// our float32 sums, on contiguous rows, a column window (rows apart, unaligned starts) and the
// few-long-rows split (64Ki chunks combined pairwise), at 1 and 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/reduce_math.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

std::vector<float> values(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = 99;
  for (float& e : v) {
    s = s * 1664525u + 1013904223u;
    e = ((s >> 9) & 1 ? -1.0f : 1.0f) *
        std::ldexp(1.0f + static_cast<float>(s >> 20) / 4096.0f, static_cast<int>(s >> 28) - 4);
  }
  return v;
}

float cascade(const float* x, int64_t n) {
  return cpu::sum_range<float>(0, n, [x](int64_t i) { return x[i]; });
}

void expect_bits(const Tensor& got_t, const std::vector<float>& want, const std::string& what) {
  const std::vector<float> got = got_t.to_vector<float>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i])) {
      ADD_FAILURE() << what << ": row " << i << " is " << got[i] << ", expected " << want[i];
      return;
    }
}

TEST(SumF32Rows, SumAndMeanAreTheCascadeBitForBit) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (auto [rows, n] : {std::pair<int64_t, int64_t>{37, 2048}, {5, 3001}, {64, 100}}) {
      const std::vector<float> v = values(rows * n);
      const Tensor x = from_vector(v, {rows, n}, {.dtype = DType::float32});
      std::vector<float> want_sum, want_mean;
      for (int64_t r = 0; r < rows; ++r) {
        const float s = cascade(v.data() + r * n, n);
        want_sum.push_back(s);
        want_mean.push_back(s / static_cast<float>(n));
      }
      const std::string what =
          std::to_string(rows) + "x" + std::to_string(n) + " threads=" + std::to_string(threads);
      expect_bits(sum(x, {-1}), want_sum, "sum " + what);
      expect_bits(mean(x, {-1}), want_mean, "mean " + what);
      // A column window: rows n apart, each starting 3 floats in (unaligned loads).
      std::vector<float> want_window;
      for (int64_t r = 0; r < rows; ++r)
        want_window.push_back(cascade(v.data() + r * n + 3, n - 5));
      expect_bits(sum(x.narrow(1, 3, n - 5), {-1}), want_window, "column window " + what);
    }
  }
}

TEST(SumF32Rows, FewLongRows) {
  // 1 row of 200000: chunks of 65536, each a cascade, combined pairwise — on any number of
  // threads (the split is chosen by the shape alone, so the bits do not depend on the threads).
  const int64_t n = 200000, chunk = 1 << 16;
  const std::vector<float> v = values(n);
  std::vector<float> part;
  for (int64_t b = 0; b < n; b += chunk)
    part.push_back(cascade(v.data() + b, std::min(chunk, n - b)));
  for (size_t w = 1; w < part.size(); w *= 2)
    for (size_t k = 0; k + w < part.size(); k += 2 * w) part[k] = part[k] + part[k + w];
  const Tensor x = from_vector(v, {1, n}, {.dtype = DType::float32});
  for (int threads : {1, 2, 3}) {
    OmpThreads scope(threads);
    expect_bits(sum(x, {-1}), {part[0]},
                "sum of one long row in chunks, " + std::to_string(threads) + " threads");
  }
  // Columns: a (200000, 8) sum over dim 0 is one tile of few columns, split into row chunks the
  // same way at any thread count.
  const Tensor c = from_vector(values(n * 8), {n, 8}, {.dtype = DType::float32});
  Tensor one;
  {
    OmpThreads scope(1);
    one = sum(c, {0});
  }
  for (int threads : {2, 3}) {
    OmpThreads scope(threads);
    expect_bits(sum(c, {0}), one.to_vector<float>(),
                "column sum at " + std::to_string(threads) + " threads vs 1");
  }
}

}  // namespace
}  // namespace fabric
