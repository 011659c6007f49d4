// Softmax2d: bit for bit softmax(x, -3), and against torch 1.13 (tests/nn/softmax2d_torch_rows.h)
// outputs and input gradients of (N, C, H, W) and (C, H, W) inputs in float32 and float64 within
// 1e-6 (our softmax kernel, not this layer, rounds some elements differently from torch's);
// its repr, empty state_dict and torch's error for other ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "nn/softmax_layers.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/common/same_bits.h"
#include "tests/common/tensor_from_bits.h"
#include "tests/nn/softmax2d_torch_rows.h"

namespace fabric::nn {
namespace {

namespace fx = softmax2d_fixture;

using test::from_bits;

// Within 1e-6 (float32) or 1e-14 (float64) of torch's values, relative to the larger of the
// element and the tensor's largest magnitude (the gradient's cancellation is relative to that).
void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double tol = got.dtype() == DType::float64 ? 1e-14 : 1e-6;
  const auto g = got.to(DType::float64).contiguous().reshape({-1}).to_vector<double>();
  const auto w = want.to(DType::float64).contiguous().reshape({-1}).to_vector<double>();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], w[i], tol * std::max(scale, std::abs(w[i]))) << what << " element " << i;
}

TEST(Softmax2d, MatchesTorch) {
  ASSERT_EQ(fx::rows().size(), 5u);
  auto layer = make<Softmax2d>();
  for (const fx::Row& row : fx::rows()) {
    SCOPED_TRACE(row.name);
    const DType dtype = std::string(row.name).ends_with("_f64") ? DType::float64 : DType::float32;
    Tensor x = from_bits(row.x, row.x_shape, dtype);
    x.set_requires_grad(true);
    const Tensor y = (*layer)(x);
    expect_close(y, from_bits(row.y, row.x_shape, dtype), "output");
    y.backward(from_bits(row.g, row.x_shape, dtype));
    expect_close(x.grad(), from_bits(row.dx, row.x_shape, dtype), "input gradient");
  }
}

TEST(Softmax2d, IsSoftmaxOverTheChannels) {
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{3, 4, 5}}) {
    SCOPED_TRACE(shape_str(shape));
    Tensor x = randn(shape);
    x.set_requires_grad(true);
    const Tensor y = (*make<Softmax2d>())(x);
    expect_same_bits(y, softmax(x, static_cast<int64_t>(shape.size()) - 3), "output");
    const Tensor g = randn(shape);
    y.backward(g);
    Tensor twin = x.detach();
    twin.set_requires_grad(true);
    softmax(twin, -3).backward(g);
    expect_same_bits(x.grad(), twin.grad(), "input gradient");
  }
}

TEST(Softmax2d, ReprStateAndTorchError) {
  auto layer = make<Softmax2d>();
  EXPECT_EQ(layer->str(), "Softmax2d()");
  EXPECT_TRUE(layer->state_dict().empty());
  // torch: AssertionError "Softmax2d requires a 3D or 4D tensor as input".
  for (const Shape& shape : {Shape{}, Shape{2}, Shape{2, 3}, Shape{1, 2, 3, 4, 5}}) {
    SCOPED_TRACE(shape_str(shape));
    EXPECT_CONTAINS(thrown<ShapeError>([&] { (*layer)(zeros(shape)); }),
                    "Softmax2d requires a 3D or 4D tensor as input, got a " +
                        std::to_string(shape.size()) + "D tensor");
  }
  EXPECT_CONTAINS(thrown<ValueError>([&] { (*layer)(Tensor()); }), "undefined");
}

}  // namespace
}  // namespace fabric::nn
