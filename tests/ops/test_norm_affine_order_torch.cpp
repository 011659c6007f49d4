// batch_norm (eval and training) and group_norm forward give torch 1.13's bits with and without
// weight and bias (tools/fixtures/make_norm_affine_order_rows.py): the inputs' statistics are
// exact, so the affine map's rounding order alone decides them. torch's orders: batch_norm
// x * alpha + beta, beta = bias - mean * alpha, both fused, a missing bias 0; group_norm with
// weight and/or bias x * scale + shift fused, shift = -scale * mean + bias rounded twice;
// group_norm with neither (x - mean) * rstd.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_norm.h"
#include "tests/ops/norm_affine_order_torch_rows.h"

namespace fabric {
namespace {

using norm_affine_order_fixture::Row;

Tensor from_bits(const std::vector<uint32_t>& b, const Shape& shape) {
  if (b.empty()) return Tensor();  // an absent weight or bias
  std::vector<float> f(b.size());
  std::memcpy(f.data(), b.data(), b.size() * sizeof(float));
  return from_vector(f).reshape(shape);
}

std::vector<uint32_t> bits_of(const Tensor& t) {
  const std::vector<float> f = t.contiguous().reshape({-1}).to_vector<float>();
  std::vector<uint32_t> b(f.size());
  std::memcpy(b.data(), f.data(), f.size() * sizeof(float));
  return b;
}

// The mean of each of `count` equal runs of x, in float64: the fixture's statistics are exact,
// so ours must equal these to the bit for the test to be about the affine map alone.
std::vector<float> run_means(const std::vector<float>& x, int64_t count) {
  const size_t len = x.size() / static_cast<size_t>(count);
  std::vector<float> m(static_cast<size_t>(count));
  for (size_t r = 0; r < m.size(); ++r) {
    double s = 0;
    for (size_t i = 0; i < len; ++i) s += x[r * len + i];
    m[r] = static_cast<float>(s / static_cast<double>(len));
  }
  return m;
}

void check_rows(const char* op) {
  int rows = 0;
  for (const Row& r : norm_affine_order_fixture::rows()) {
    if (std::string(r.op) != op) continue;
    ++rows;
    SCOPED_TRACE(std::string(r.op) + " " + r.name);
    const int64_t N = r.shape[0], C = r.shape[1];
    const Tensor x = from_bits(r.x, r.shape);
    const Tensor w = from_bits(r.weight, {C}), b = from_bits(r.bias, {C});
    Tensor y, mean;
    if (std::string(op) == "group_norm") {
      std::tie(y, mean, std::ignore) = group_norm_with_stats(x, r.groups, w, b, r.eps);
      EXPECT_EQ(mean.reshape({-1}).to_vector<float>(),
                run_means(x.reshape({-1}).to_vector<float>(), N * r.groups));
    } else {
      const bool training = std::string(op) == "batch_norm_train";
      std::tie(y, mean, std::ignore) =
          batch_norm_with_stats(x, from_bits(r.running_mean, {C}), from_bits(r.running_var, {C}), w,
                                b, training, 0.1, r.eps);
      if (training)  // channel c's values, gathered channel-major
        EXPECT_EQ(
            mean.to_vector<float>(),
            run_means(
                x.reshape({N, C, -1}).transpose(0, 1).contiguous().reshape({-1}).to_vector<float>(),
                C));
    }
    EXPECT_EQ(bits_of(y), r.y);
    // The recorded op gives the same bits as the statistics entry point.
    const Tensor y_op =
        std::string(op) == "group_norm"
            ? group_norm(x, r.groups, w, b, r.eps)
            : batch_norm(x, from_bits(r.running_mean, {C}), from_bits(r.running_var, {C}), w, b,
                         std::string(op) == "batch_norm_train", 0.1, r.eps);
    EXPECT_EQ(bits_of(y_op), r.y);
  }
  EXPECT_EQ(rows, 8 + 4 * (std::string(op) == "group_norm"));
}

TEST(NormAffineOrderTorch, BatchNormEvalMatchesTorch113Bits) { check_rows("batch_norm_eval"); }
TEST(NormAffineOrderTorch, BatchNormTrainingMatchesTorch113Bits) { check_rows("batch_norm_train"); }
TEST(NormAffineOrderTorch, GroupNormMatchesTorch113Bits) { check_rows("group_norm"); }

}  // namespace
}  // namespace fabric
