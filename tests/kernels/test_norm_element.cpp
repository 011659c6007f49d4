// layer_norm / rms_norm forward's per-element arithmetic (tensor/norm_element.h, the functions
// kernels/cuda/norm_kernels.cu computes) is the CPU's: given the statistics a CPU row computed,
// norm_element gives every output's bits and norm_rstd the row's rstd from its sum, for
// norm_forward_row (float and double: GCC's contraction of its plain loops) and the AVX-512
// norm_forward_row_f32 (explicit fused forms), with and without weight and bias, layer and rms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/norm_forward_row.h"
#include "tensor/norm_element.h"

namespace fabric::cpu {
namespace {

// Values around 3 spread over 2^-10 .. 2^6 with full mantissas: inexact products and sums.
template <typename A>
std::vector<A> values(size_t n, uint32_t seed) {
  std::vector<A> v(n);
  for (A& e : v) {
    seed = seed * 1664525u + 1013904223u;
    const A mag = std::ldexp(A(1), static_cast<int>(seed >> 28) - 10);
    const uint32_t bits = seed * 1664525u + 1013904223u;
    e = A(3) + ((seed >> 8) & 1 ? -mag : mag) * (A(1) + static_cast<A>(bits >> 9) * A(0x1p-23));
  }
  return v;
}

template <typename A>
bool same_bits(A a, A b) {
  return std::memcmp(&a, &b, sizeof(A)) == 0;
}

// Row -> (y, mean, rstd) by the CPU code under test.
template <typename A>
using RowFn = void (*)(const A*, const A*, const A*, A, int64_t, bool, A*, A&, A&);

template <typename A>
void expect_rows_use_shared_element(RowFn<A> row, const std::string& what) {
  const A eps = A(1e-5);
  for (int64_t n : {7, 64, 100, 256, 768, 1000, 2048}) {
    const std::vector<A> w = values<A>(n, 5), b = values<A>(n, 6);
    for (int variant = 0; variant < 8; ++variant) {
      const bool has_w = variant & 1, has_b = variant & 2, rms = variant & 4;
      if (rms && has_b) continue;  // rms_norm has no bias
      SCOPED_TRACE(what + " n " + std::to_string(n) + " weight " + std::to_string(has_w) +
                   " bias " + std::to_string(has_b) + " rms " + std::to_string(rms));
      const std::vector<A> x = values<A>(n, 100 + variant + static_cast<uint32_t>(n));
      std::vector<A> y(n);
      A mean = 0, rstd = 0;
      row(x.data(), has_w ? w.data() : nullptr, has_b ? b.data() : nullptr, eps, n, rms, y.data(),
          mean, rstd);
      const A m = rms ? A(0) : mean;
      // rstd from the row's sum as the CPU forms it (row_dot, or sum_range of squared deviations).
      const A inv_n = A(1) / static_cast<A>(n);
      const A sum = rms ? row_dot(x.data(), x.data(), n)
                        : sum_range<A>(0, n, [&](int64_t j) { return (x[j] - m) * (x[j] - m); });
      EXPECT_TRUE(same_bits(rstd, norm::norm_rstd(sum, inv_n, eps)))
          << rstd << " want " << norm::norm_rstd(sum, inv_n, eps);
      int64_t bad = 0;
      for (int64_t j = 0; j < n; ++j) {
        A want;
        if (has_w && has_b)
          want = norm::norm_element<true, true>(x[j], m, rstd, w[j], b[j]);
        else if (has_w)
          want = norm::norm_element<true, false>(x[j], m, rstd, w[j], A(0));
        else if (has_b)
          want = norm::norm_element<false, true>(x[j], m, rstd, A(0), b[j]);
        else
          want = norm::norm_element<false, false>(x[j], m, rstd, A(0), A(0));
        if (!same_bits(y[j], want) && bad++ < 3)
          ADD_FAILURE() << "element " << j << ": " << y[j] << " want " << want;
      }
      EXPECT_EQ(bad, 0);
    }
  }
}

TEST(NormElementShared, NormForwardRowFloat) {
  expect_rows_use_shared_element<float>(&norm_forward_row<float>, "norm_forward_row<float>");
}

TEST(NormElementShared, NormForwardRowDouble) {
  expect_rows_use_shared_element<double>(&norm_forward_row<double>, "norm_forward_row<double>");
}

TEST(NormElementShared, NormForwardRowF32Avx512) {
  expect_rows_use_shared_element<float>(&norm_forward_row_f32, "norm_forward_row_f32");
}

// The forms themselves, each rounding where its spec says, against float128.
TEST(NormElementShared, FormsRoundAsTheirSpec) {
  using Q = __float128;
  auto R = [](Q v) { return static_cast<float>(v); };
  const std::vector<float> x = values<float>(2048, 7), w = values<float>(2048, 8);
  const std::vector<float> b = values<float>(2048, 9), s = values<float>(2048, 10);
  int64_t bad = 0;
  for (size_t j = 0; j < x.size(); ++j) {
    const float m = 2.9f, rs = s[j] / 3.0f, d = R(Q(x[j]) - Q(m)), u = R(Q(d) * Q(rs));
    bad += !same_bits(norm::norm_element<true, true>(x[j], m, rs, w[j], b[j]),
                      R(Q(u) * Q(w[j]) + Q(b[j])));
    bad += !same_bits(norm::norm_element<true, false>(x[j], m, rs, w[j], 0.0f), R(Q(u) * Q(w[j])));
    bad += !same_bits(norm::norm_element<false, true>(x[j], m, rs, 0.0f, b[j]),
                      R(Q(d) * Q(rs) + Q(b[j])));
    bad += !same_bits(norm::norm_element<false, false>(x[j], m, rs, 0.0f, 0.0f), u);
    const float sum = std::fabs(x[j]) * 37.0f, inv_n = 1.0f / 768.0f;
    bad += !same_bits(norm::norm_rstd(sum, inv_n, 1e-5f),
                      1.0f / std::sqrt(R(Q(sum) * Q(inv_n) + Q(1e-5f))));
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace fabric::cpu
