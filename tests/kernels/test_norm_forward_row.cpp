// norm_forward_row_f32 (kernels/cpu/norm_forward_row.h), the AVX-512 row of float32 layer_norm /
// rms_norm forward, must give norm_forward_row<float>'s bits (the plain loops that define the
// row) in every output: y, mean, rstd, for row lengths on and off the lane-sum path (multiples of
// 64 up to 1024) and with masked tails, with and without weight and bias, under rms, for rows
// staged from float32, bfloat16 and float16 inputs, and on values whose sums depend on the order
// of the additions, and on values whose variance and mean square are near eps.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/norm_forward_row.h"
#include "tests/common/same_bits.h"

namespace fabric::cpu {
namespace {

// Wide: values from 2^-10 to 2^21 of both signs around an offset (a mean far from zero), whose
// sums depend on the order of the additions and whose squares are inexact (so a square rounded
// before its addition shows in a sum the large values dominate). Narrow: 2^-7 +- 2^-8 with full
// mantissas, so that sum(x^2) / n and the variance are near eps and the rounding of each square
// (fused into the addition or not) and of var + eps shows in rstd. Passed through `dt` and back, as
// norm.cpp stages a row.
std::vector<float> order_sensitive(size_t n, uint32_t seed, DType dt, bool narrow = false) {
  std::vector<float> v(n);
  for (float& e : v) {
    seed = seed * 1664525u + 1013904223u;
    if (narrow) {
      e = 0x1p-7f + 0x1p-8f * (static_cast<float>(seed >> 8) * 0x1p-23f - 1.0f);
      continue;
    }
    const float mag = std::ldexp(1.0f, static_cast<int>(seed >> 27) - 10);
    const uint32_t bits = seed * 1664525u + 1013904223u;  // a full mantissa: inexact squares
    e = 3.0f + ((seed >> 8) & 1 ? -mag : mag) * (1.0f + static_cast<float>(bits >> 9) * 0x1p-23f);
  }
  if (dt != DType::float32) {
    std::vector<uint16_t> half(n);
    convert(DType::float32, v.data(), dt, half.data(), static_cast<int64_t>(n));
    convert(dt, half.data(), DType::float32, v.data(), static_cast<int64_t>(n));
  }
  return v;
}

struct Outputs {
  std::vector<float> y, mean, rstd;
};

template <bool kF32>
Outputs run_rows(int64_t n, int rows, bool weight, bool bias, bool rms, DType dt, bool narrow,
                 uint32_t seed) {
  Outputs o;
  const std::vector<float> w = order_sensitive(n, seed + 1, dt);
  const std::vector<float> b = order_sensitive(n, seed + 2, dt);
  std::vector<float> y(n);
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> x = order_sensitive(n, seed + 10 + r, dt, narrow);
    float mean = -1.0f, rstd = -1.0f;
    const float* wp = weight ? w.data() : nullptr;
    const float* bp = bias ? b.data() : nullptr;
    if constexpr (kF32) {
      norm_forward_row_f32(x.data(), wp, bp, 1e-5f, n, rms, y.data(), mean, rstd);
    } else {
      norm_forward_row<float>(x.data(), wp, bp, 1e-5f, n, rms, y.data(), mean, rstd);
    }
    o.y.insert(o.y.end(), y.begin(), y.end());
    o.mean.push_back(mean);
    o.rstd.push_back(rstd);
  }
  return o;
}

TEST(NormForwardRowF32, SameBitsAsTheDefinition) {
  for (int64_t n : {1, 5, 15, 16, 17, 63, 64, 100, 128, 256, 320, 768, 1000, 1024, 1088, 2048}) {
    for (DType dt : {DType::float32, DType::bfloat16, DType::float16}) {
      for (int variant = 0; variant < 12; ++variant) {
        const bool rms = variant % 6 >= 4, weight = variant % 2 == 0;
        const bool bias = !rms && variant % 6 < 2, narrow = variant >= 6;
        const std::string what = "n=" + std::to_string(n) + " " + std::string(dtype_name(dt)) +
                                 (rms ? " rms" : " layer") + (weight ? " weight" : "") +
                                 (bias ? " bias" : "") + (narrow ? " narrow" : " wide");
        const uint32_t seed = 7 + variant + 100 * static_cast<uint32_t>(dt);
        const Outputs want = run_rows<false>(n, 3, weight, bias, rms, dt, narrow, seed);
        const Outputs got = run_rows<true>(n, 3, weight, bias, rms, dt, narrow, seed);
        expect_same_bits(got.y, want.y, what + " y");
        expect_same_bits(got.mean, want.mean, what + " mean");
        expect_same_bits(got.rstd, want.rstd, what + " rstd");
      }
    }
  }
}

TEST(NormForwardRowF32, DataTellsSumOrdersApart) {
  // The lane sums must be order-sensitive on this data, or a wrong lane order could pass: the
  // row_sum of the definition differs from a left-to-right sum.
  const int64_t n = 256;
  const std::vector<float> a = order_sensitive(n, 20, DType::float32);
  float seq = 0;
  for (int64_t j = 0; j < n; ++j) seq += a[j];
  EXPECT_NE(std::bit_cast<uint32_t>(seq), std::bit_cast<uint32_t>(row_sum(a.data(), n)));
}

}  // namespace
}  // namespace fabric::cpu
