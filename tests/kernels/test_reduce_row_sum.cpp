// The row sums of sum() and mean() (kernels/cpu/reduce_row_sum.h) add in PyTorch 1.13's CPU order:
// checked bit for bit against a scalar transcription of that order (tests/common/
// torch_sum_order.h) at every boundary of it (vectors, the 4-way split, the cascade's steps and
// levels, the scalar tail), from unaligned starts, with infinities, NaN, -0 and subnormals; and
// against torch's own results (sum_torch_rows.h, tools/fixtures/make_sum_rows.py), float16 and
// bfloat16 included.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/reduce_row_sum.h"
#include "tests/common/order_sensitive.h"
#include "tests/common/torch_sum_order.h"
#include "tests/kernels/sum_torch_rows.h"

namespace fabric::cpu {
namespace {

void expect_f32(const float* x, int64_t n, const char* what) {
  const float want = torch_row_sum_reference<float, 8>(x, n), got = row_sum_f32(x, n);
  EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want))
      << what << " n=" << n << ": " << got << " vs torch's order " << want;
}

const std::vector<int64_t> kLengths = {
    0,    1,    3,    4,    5,     7,     8,     9,      31,     32,     33,      49,
    63,   64,   65,   127,  128,   129,   511,   512,    513,    1000,   2047,    2048,
    2049, 8191, 8192, 8193, 16384, 65536, 65537, 131071, 131072, 262145, 1 << 20, (1 << 21) + 77};

TEST(ReduceRowSum, Float32FollowsTorchsOrderAtEveryBoundary) {
  const std::vector<float> v = order_sensitive((1 << 21) + 100, 7);
  for (int64_t n : kLengths)
    for (int64_t off : {0, 1, 13}) expect_f32(v.data() + off, n, off ? "unaligned" : "aligned");
}

TEST(ReduceRowSum, Float64FollowsTorchsOrder) {
  const std::vector<float> f = order_sensitive(300000, 5);
  std::vector<double> v(f.begin(), f.end());
  for (double& e : v) e *= 1.0 + 1e-9 * e;  // low bits a float32 sum would not hold
  for (int64_t n : {0, 1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 1000, 4097, 65536, 299990}) {
    const double want = torch_row_sum_reference<double, 4>(v.data() + 3, n);
    EXPECT_EQ(std::bit_cast<uint64_t>(row_sum_f64(v.data() + 3, n)), std::bit_cast<uint64_t>(want))
        << "n=" << n;
  }
}

uint16_t to_bf16_bits(float f) {  // round to nearest even (no NaN in these sums)
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float bf16_value(uint16_t b) { return bf16_bits_to_float(b); }
uint16_t to_f16_bits(float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); }
float f16_value(uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }

TEST(ReduceRowSum, MatchesTorch) {
  const std::vector<float> v = order_sensitive(131071, 7);
  const std::vector<double> d(v.begin(), v.end());
  std::vector<uint16_t> b(v.size()), h(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    b[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(v[i]) >> 16);
    h[i] = to_f16_bits(v[i] / 8192.0f);
  }
  for (const SumTorchRow& row : kSumTorchRows) {
    const int64_t n = row.n;
    EXPECT_EQ(std::bit_cast<uint32_t>(row_sum_f32(v.data(), n)), row.f32) << "n=" << n;
    EXPECT_EQ(std::bit_cast<uint64_t>(row_sum_f64(d.data(), n)), row.f64) << "n=" << n;
    // Half sums round to their dtype (torch's accumulating store); the mean divides that by the
    // count rounded to the dtype.
    const uint16_t bs = to_bf16_bits(row_sum_bf16(b.data(), n));
    EXPECT_EQ(bs, row.bf16_sum) << "bfloat16 n=" << n;
    EXPECT_EQ(to_bf16_bits(bf16_value(bs) / bf16_value(to_bf16_bits(static_cast<float>(n)))),
              row.bf16_mean)
        << "n=" << n;
    const uint16_t hs = to_f16_bits(row_sum_f16(h.data(), n));
    EXPECT_EQ(hs, row.f16_sum) << "float16 n=" << n;
    EXPECT_EQ(to_f16_bits(f16_value(hs) / f16_value(to_f16_bits(static_cast<float>(n)))),
              row.f16_mean)
        << "n=" << n;
  }
}

TEST(ReduceRowSum, OrderDifferenceIsVisible) {
  // The data must tell orders apart, or the tests above could not fail: a plain left-to-right sum
  // differs from torch's order on it.
  const std::vector<float> v = order_sensitive(20000, 11);
  float seq = 0;
  for (float e : v) seq += e;
  EXPECT_NE(std::bit_cast<uint32_t>(seq), std::bit_cast<uint32_t>(row_sum_f32(v.data(), 20000)));
}

TEST(ReduceRowSum, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t n : {6, 70, 3000}) {
    std::vector<float> v = order_sensitive(static_cast<size_t>(n), 3);
    v[n / 2] = inf;
    expect_f32(v.data(), n, "+inf");
    v[n - 2] = -inf;
    expect_f32(v.data(), n, "+inf and -inf");
    v[n / 2] = std::nanf("");
    expect_f32(v.data(), n, "NaN");
    std::vector<float> zeros(static_cast<size_t>(n), -0.0f);
    expect_f32(zeros.data(), n, "-0");  // torch's sums start at +0: the sum is +0
    EXPECT_FALSE(std::signbit(row_sum_f32(zeros.data(), n)));
    std::vector<float> tiny(static_cast<size_t>(n), std::numeric_limits<float>::denorm_min());
    expect_f32(tiny.data(), n, "subnormal");
  }
}

// float16 and bfloat16 rows: torch's vectors of 16 values folded into 8 float lanes (bfloat16:
// values l and 8 + l; float16: neighbours), at every boundary, from unaligned starts.
TEST(ReduceRowSum, HalfRowsFollowTorchsOrder) {
  std::vector<float> v = order_sensitive(3000, 11);
  std::vector<uint16_t> b(v.size()), f(v.size());
  std::vector<float> wb(v.size()), wf(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    b[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(v[i]) >> 16);
    wb[i] = bf16_value(b[i]);
    f[i] = to_f16_bits(v[i] / 64.0f);  // within float16's range
    wf[i] = f16_value(f[i]);
  }
  for (int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1023, 1024, 1025, 2990}) {
    for (int64_t off : {0, 1, 7}) {
      EXPECT_EQ(std::bit_cast<uint32_t>(row_sum_bf16(b.data() + off, n)),
                std::bit_cast<uint32_t>(torch_bf16_row_sum_reference(wb.data() + off, n)))
          << "bfloat16 n=" << n << " off=" << off;
      EXPECT_EQ(std::bit_cast<uint32_t>(row_sum_f16(f.data() + off, n)),
                std::bit_cast<uint32_t>(torch_f16_row_sum_reference(wf.data() + off, n)))
          << "float16 n=" << n << " off=" << off;
    }
  }
  b[100] = 0x7f80;  // +inf
  EXPECT_TRUE(std::isinf(row_sum_bf16(b.data(), 500)));
  b[200] = 0x7fc0;  // NaN
  EXPECT_TRUE(std::isnan(row_sum_bf16(b.data(), 500)));
}

}  // namespace
}  // namespace fabric::cpu
