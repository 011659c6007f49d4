// sum() and mean() of float32 over contiguous rows go through row_sum_f32 (kernels/cpu/
// reduce_row_sum.h): checked bit for bit against torch's order (tests/common/torch_sum_order.h),
// on contiguous rows, a column window (rows apart, unaligned starts) and the few-long-rows split
// (64Ki chunks combined pairwise), at 1 and 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"
#include "tests/common/order_sensitive.h"
#include "tests/common/torch_sum_order.h"
#include "tests/kernels/sum_torch_rows.h"

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

float torch_sum(const float* x, int64_t n) { return torch_row_sum_reference<float, 8>(x, n); }

void expect_bits(const Tensor& got_t, const std::vector<float>& want, const std::string& what) {
  const std::vector<float> got = got_t.to_vector<float>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i])) {
      ADD_FAILURE() << what << ": row " << i << " is " << got[i] << ", expected " << want[i];
      return;
    }
}

TEST(SumF32Rows, SumAndMeanFollowTorchsOrderBitForBit) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (auto [rows, n] :
         {std::pair<int64_t, int64_t>{37, 2048}, {5, 3001}, {64, 100}, {300, 49}, {100, 5}}) {
      const std::vector<float> v = values(rows * n);
      const Tensor x = from_vector(v, {rows, n}, {.dtype = DType::float32});
      std::vector<float> want_sum, want_mean;
      for (int64_t r = 0; r < rows; ++r) {
        const float s = torch_sum(v.data() + r * n, n);
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
        want_window.push_back(torch_sum(v.data() + r * n + 3, n - 5));
      expect_bits(sum(x.narrow(1, 3, n - 5), {-1}), want_window, "column window " + what);
    }
  }
}

// sum() and mean() of one contiguous row give torch 1.13's bits (one thread) in every float dtype:
// float16/bfloat16 sums rounded to the dtype, their means that divided by the count rounded to it.
TEST(SumF32Rows, SumAndMeanMatchTorchInEveryFloatDtype) {
  const std::vector<float> v = order_sensitive(131071, 7);
  std::vector<float> cut(v.size()), small(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    cut[i] = std::bit_cast<float>(std::bit_cast<uint32_t>(v[i]) & 0xFFFF0000u);
    small[i] = v[i] / 8192.0f;
  }
  auto bits16 = [](const Tensor& t) {
    const Tensor u = t.contiguous();
    uint16_t b;
    std::memcpy(&b, u.data_ptr(), 2);
    return b;
  };
  for (const SumTorchRow& row : kSumTorchRows) {
    const int64_t n = row.n;
    const std::string at = "n=" + std::to_string(n);
    const Tensor f = from_vector(std::vector<float>(v.begin(), v.begin() + n), {1, n});
    EXPECT_EQ(std::bit_cast<uint32_t>(sum(f, {1}).item<float>()), row.f32) << at;
    EXPECT_EQ(std::bit_cast<uint32_t>(sum(f).item<float>()), row.f32) << at;
    EXPECT_EQ(std::bit_cast<uint32_t>(mean(f, {1}).item<float>()),
              std::bit_cast<uint32_t>(std::bit_cast<float>(row.f32) / static_cast<float>(n)))
        << at;
    EXPECT_EQ(std::bit_cast<uint64_t>(sum(f.to(DType::float64), {1}).item<double>()), row.f64)
        << at;
    const Tensor b =
        from_vector(std::vector<float>(cut.begin(), cut.begin() + n), {1, n}).to(DType::bfloat16);
    EXPECT_EQ(bits16(sum(b, {1})), row.bf16_sum) << "bfloat16 " << at;
    EXPECT_EQ(bits16(mean(b, {1})), row.bf16_mean) << "bfloat16 " << at;
    const Tensor h = from_vector(std::vector<float>(small.begin(), small.begin() + n), {1, n})
                         .to(DType::float16);
    EXPECT_EQ(bits16(sum(h, {1})), row.f16_sum) << "float16 " << at;
    EXPECT_EQ(bits16(mean(h, {1})), row.f16_mean) << "float16 " << at;
  }
}

// Many evenly spaced float16/bfloat16 rows (a path of their own in reduce.cpp) sum and average in
// torch's order: the float sum rounded to the dtype, the mean that over the rounded count.
TEST(SumF32Rows, HalfRowsSumAndMeanFollowTorchsOrder) {
  for (DType dt : {DType::bfloat16, DType::float16}) {
    for (int threads : {1, 2}) {
      OmpThreads scope(threads);
      for (auto [rows, n] : {std::pair<int64_t, int64_t>{300, 49}, {64, 100}, {3000, 7}}) {
        std::vector<float> v = values(rows * n);
        for (float& e : v) e /= 16.0f;  // float16's range
        const Tensor x = from_vector(v, {rows, n}).to(dt);
        const std::vector<float> w = x.to(DType::float32).to_vector<float>();  // as rounded
        const auto round = [dt](float f) { return from_vector(std::vector<float>{f}, {1}).to(dt); };
        const auto row_sum = [&](int64_t r, int64_t b, int64_t len) {
          const float* p = w.data() + r * n + b;
          return dt == DType::bfloat16 ? torch_bf16_row_sum_reference(p, len)
                                       : torch_f16_row_sum_reference(p, len);
        };
        std::vector<float> want_sum, want_mean, want_window;
        for (int64_t r = 0; r < rows; ++r) {
          const Tensor s = round(row_sum(r, 0, n));
          want_sum.push_back(s.to(DType::float32).item<float>());
          want_mean.push_back(
              div(s, round(static_cast<float>(n))).to(DType::float32).item<float>());
          want_window.push_back(round(row_sum(r, 2, n - 3)).to(DType::float32).item<float>());
        }
        const std::string what = std::string(dtype_name(dt)) + " " + std::to_string(rows) + "x" +
                                 std::to_string(n) + " threads=" + std::to_string(threads);
        expect_bits(sum(x, {-1}).to(DType::float32), want_sum, "sum " + what);
        expect_bits(mean(x, {-1}).to(DType::float32), want_mean, "mean " + what);
        expect_bits(sum(x.narrow(1, 2, n - 3), {1}).to(DType::float32), want_window,
                    "column window " + what);
      }
    }
  }
}

TEST(SumF32Rows, FewLongRows) {
  // 1 row of 200000: chunks of 65536, each in torch's order, combined pairwise — on any number of
  // threads (the split is chosen by the shape alone, so the bits do not depend on the threads).
  const int64_t n = 200000, chunk = 1 << 16;
  const std::vector<float> v = values(n);
  std::vector<float> part;
  for (int64_t b = 0; b < n; b += chunk)
    part.push_back(torch_sum(v.data() + b, std::min(chunk, n - b)));
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
