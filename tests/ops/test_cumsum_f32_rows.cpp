// cumsum of float32 along the last dim runs one fused pass per row (kernels/cpu/reduce.cpp): the
// running sum in double, each prefix rounded to float32 (torch's CPU loop, acc_type double).
// Checked bit for bit against that loop on rows of odd lengths, with values whose float32 running
// sum would drift, infinities and NaNs, at 1 and 2 threads; strided and non-last-dim inputs (other
// paths) must agree with it too.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

// rows x n float32 values: mostly 0.1-ish steps (a float32 accumulator drifts away from the
// double one after a few thousand), the odd 1e7 and -1e7, and in row 1 an inf and a NaN.
Tensor sample(int64_t rows, int64_t n) {
  std::vector<float> v(static_cast<size_t>(rows * n));
  uint32_t x = 12345;
  for (float& e : v) {
    x = x * 1664525u + 1013904223u;
    e = (x >> 24) == 7 ? 1e7f : (x >> 24) == 9 ? -1e7f : 0.1f + static_cast<float>(x >> 20) * 1e-5f;
  }
  if (rows > 1 && n > 3) {
    v[static_cast<size_t>(n + 1)] = std::numeric_limits<float>::infinity();
    v[static_cast<size_t>(n + 3)] = std::nanf("");
  }
  return from_vector(v, {rows, n}, {.dtype = DType::float32});
}

std::vector<float> reference(const Tensor& x) {
  const int64_t rows = x.size(0), n = x.size(1);
  const std::vector<float> v = x.to_vector<float>();
  std::vector<float> out(v.size());
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      acc += v[r * n + i];
      out[r * n + i] = static_cast<float>(acc);
    }
  }
  return out;
}

void expect_bits(const Tensor& got_t, const std::vector<float>& want, const std::string& what) {
  const std::vector<float> got = got_t.to_vector<float>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool same = (std::isnan(got[i]) && std::isnan(want[i])) || got[i] == want[i];
    if (!same || std::signbit(got[i]) != std::signbit(want[i])) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", expected " << want[i];
      return;
    }
  }
}

TEST(CumsumF32Rows, TorchsDoubleAccumulatedLoopBitForBit) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (int64_t n : {1, 7, 1000, 4099}) {
      const int64_t rows = n < 100 ? 3 : 37;  // 37 x 4099: large enough to split between threads
      const Tensor x = sample(rows, n);
      const std::string what = "n=" + std::to_string(n) + " threads=" + std::to_string(threads);
      const Tensor y = cumsum(x, -1);
      EXPECT_EQ(y.dtype(), DType::float32) << what;
      expect_bits(y, reference(x), what);
    }
  }
}

TEST(CumsumF32Rows, OtherLayoutsAgree) {
  const Tensor x = sample(29, 513);
  const std::vector<float> want = reference(x);
  // A transposed view scanned along dim 0 (made contiguous by the op, then the tiled path).
  expect_bits(cumsum(x.t(), 0).t().contiguous(), want, "dim 0 of the transpose");
  // A strided input along the last dim.
  expect_bits(cumsum(x.t().contiguous().t(), 1), want, "strided rows");
}

}  // namespace
}  // namespace fabric
