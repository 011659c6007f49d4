// row_sum_f32 (kernels/cpu/reduce_sum_f32.h), the float32 row sum of sum() and mean(), must give
// sum_range<float>'s bits (the cascade order that defines our float32 sums) for every length: the
// one-level path, each cascade level's carries, the scalar tail, unaligned starts, and values whose
// sum depends on the order (magnitudes 1e-3 to 1e7 of both signs), plus infinities, NaN and -0.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/reduce_math.h"
#include "kernels/cpu/reduce_sum_f32.h"
#include "tests/common/order_sensitive.h"

namespace fabric::cpu {
namespace {

float reference(const float* x, int64_t n) {
  return sum_range<float>(0, n, [x](int64_t i) { return x[i]; });
}

void expect_same_bits(const float* x, int64_t n, const char* what) {
  const float want = reference(x, n), got = row_sum_f32(x, n);
  EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want))
      << what << " n=" << n << ": " << got << " vs sum_range's " << want;
}

TEST(ReduceSumF32, SumRangesBitsAtEveryCascadeLevel) {
  // Level 1 carries every 1024 values, level 2 every 16Ki, 3 every 256Ki, 4 every 4Mi.
  const std::vector<float> v = order_sensitive((4 << 20) + 3 * 1024 + 200, 7);
  for (int64_t n : {0,
                    1,
                    5,
                    63,
                    64,
                    65,
                    1000,
                    1023,
                    1024,
                    1025,
                    1087,
                    1088,
                    2048,
                    2111,
                    16383,
                    16384,
                    16448,
                    16449,
                    100000,
                    262144,
                    262144 + 1024 + 9,
                    (4 << 20) + 1024 + 63,
                    (4 << 20) + 3 * 1024 + 137}) {
    for (int64_t off : {0, 1, 13})
      expect_same_bits(v.data() + off, n, off ? "unaligned" : "aligned");
  }
}

TEST(ReduceSumF32, OrderDifferenceIsVisible) {
  // The data must tell orders apart, or the test above could not fail: a plain left-to-right sum
  // differs from the cascade's on it.
  const std::vector<float> v = order_sensitive(20000, 11);
  float seq = 0;
  for (float e : v) seq += e;
  EXPECT_NE(std::bit_cast<uint32_t>(seq), std::bit_cast<uint32_t>(row_sum_f32(v.data(), 20000)));
}

TEST(ReduceSumF32, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t n : {70, 3000}) {
    std::vector<float> v = order_sensitive(static_cast<size_t>(n), 3);
    v[17] = inf;
    expect_same_bits(v.data(), n, "+inf");
    v[n - 2] = -inf;  // in the tail for n = 70, in a group for n = 3000
    expect_same_bits(v.data(), n, "+inf and -inf");
    v[17] = std::nanf("");
    expect_same_bits(v.data(), n, "NaN");
    std::vector<float> zeros(static_cast<size_t>(n), -0.0f);
    expect_same_bits(zeros.data(), n, "-0");
    std::vector<float> tiny(static_cast<size_t>(n), std::numeric_limits<float>::denorm_min());
    expect_same_bits(tiny.data(), n, "subnormal");
  }
}

// row_sum_bf16 widens a bfloat16 row as it reads it: the bits of row_sum_f32 over the row
// converted first (the reducer's old path: gather into float32 scratch, then fold), at every
// length around the short-row cut (32), the lane groups and the first cascade level, from
// unaligned starts, and with infinities and NaN.
TEST(ReduceSumF32, Bfloat16RowsGiveTheConvertedRowsBits) {
  std::vector<float> v = order_sensitive(3000, 11);
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    h[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(v[i]) >> 16);
  std::vector<float> widened(h.size());
  for (size_t i = 0; i < h.size(); ++i) widened[i] = bf16_bits_to_float(h[i]);
  for (int64_t n : {0, 1, 31, 32, 33, 63, 64, 65, 1023, 1024, 1025, 2048, 2999}) {
    for (int64_t off : {0, 1, 7}) {
      if (off + n > static_cast<int64_t>(h.size())) continue;
      const float want = n < 32 ? [&] {
        float r = 0;
        for (int64_t i = 0; i < n; ++i) r += widened[off + i];
        return r;
      }()
                                : row_sum_f32(widened.data() + off, n);
      const float got = row_sum_bf16(h.data() + off, n);
      EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want))
          << "n=" << n << " off=" << off;
    }
  }
  h[100] = 0x7f80;  // +inf
  EXPECT_TRUE(std::isinf(row_sum_bf16(h.data(), 500)));
  h[200] = 0x7fc0;  // NaN
  EXPECT_TRUE(std::isnan(row_sum_bf16(h.data(), 500)));
}

}  // namespace
}  // namespace fabric::cpu
