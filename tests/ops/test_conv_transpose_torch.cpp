// conv_transpose2d (and conv1d) against torch 1.13 itself: values and the
// gradients of input, weight and bias on non-trivial geometries (groups,
// output_padding past the stride under dilation, unbatched), torch's argument
// errors, and autocast casting once. The naive-reference and finite-difference
// checks are the harness rows of op_cases_linalg.cpp, the double backward rows
// in tests/autograd/test_double_backward.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// One torch 1.13 float64 call, y = F.conv_transpose2d(x, w, b, stride, padding,
// output_padding, groups, dilation), then y.backward(g), as printed by
// tools/fixtures/make_conv_transpose_rows.py.
struct ConvTransposeRow {
  const char* name;
  Shape x, w;
  bool bias;
  std::vector<int64_t> stride, padding, output_padding;
  int64_t groups;
  std::vector<int64_t> dilation;
  Shape y_shape;
  std::vector<double> y, grad_x, grad_w, grad_b;
};

// clang-format off
const std::vector<ConvTransposeRow>& torch_rows() {
  static const std::vector<ConvTransposeRow> rows = {
      {"groups_stride_output_padding_dilation", {2, 4, 3, 4}, {4, 3, 3, 2}, true, {2, 1}, {1, 0}, {1, 0}, 2, {1, 2}, {2, 6, 6, 6},
       {-0.25, -1.875, -1.75, -0.9375, -2.1875, 0.25, -2.5, 0.4375, -2.125, -3.25, 0.25, -1.0625, -1.9375, -0.125, -1.25, -3.1875, 0.0, -1.0, 1.0, -3.625, -2.5, 3.25, -0.875, -2.875, -0.1875, -1.8125, -3.5, 0.75, -1.25, -2.9375, -2.4375, -0.75, 1.375, -2.875, -1.6875, -0.0625, 1.875, -0.125, 0.0, 0.0625, -0.8125, 1.25, 1.9375, -1.375, 3.5, 1.5625, 1.125, -2.3125, 0.0625, 1.5, 0.25, -1.0625, 1.25, 1.25, -1.6875, 2.5625, 1.25, -1.375, -2.3125, 1.125, 1.6875, -0.3125, -0.875, 2.625, 1.25, -0.8125, 1.5, 0.0625, 0.5625, 0.375, 0.8125, 2.0625, -2.1875, 0.25, -2.375, 1.75, -2.1875, -0.5, 1.5625, -2.5, -1.1875, 1.5625, -2.125, -0.125, 0.0, -1.6875, 1.75, -1.6875, -0.25, 0.75, -2.3125, 1.1875, 1.5625, -3.9375, -0.3125, 1.0, -1.9375, 0.5, -1.6875, -1.6875, 1.0, -1.4375, 0.625, -1.1875, -2.3125, 1.5625, -0.125, -2.0, 2.25, 0.4375, -0.4375, 3.4375, 1.875, 0.0, 4.0625, 1.8125, -0.0625, 3.5625, -0.375, 2.75, 0.5, 0.75, 3.375, 1.0625, -0.125, 2.125, 1.25, -1.6875, 3.4375, -1.1875, 3.1875, -1.25, 0.8125, 2.4375, 1.0, 0.75, 2.0, 0.125, -0.3125, 1.875, 0.5625, 4.1875, 0.625, 2.0625, 0.875, -1.3125, -1.5625, 1.5625, 1.125, -1.125, 2.1875, 0.5625, -2.9375, 2.625, 1.75, -1.375, -1.0, 0.25, 2.0, 0.3125, -1.0, 0.875, 0.5, -1.8125, 2.125, -0.5625, -1.8125, 2.625, 0.5625, 1.8125, 0.75, -0.25, 1.0, -1.25, -0.5625, 1.25, -0.375, -0.25, 1.0, -0.6875, -1.875, 0.375, 1.4375, -1.6875, -1.6875, 0.5, 0.3125, -0.6875, -4.4375, 1.0, 1.125, -2.75, 0.25, -0.25, -2.125, -1.125, 0.1875, -1.0625, -0.25, -1.9375, 1.5, -1.3125, -2.6875, 1.0, -0.375, -2.25, -1.5625, -1.25, -1.375, 0.8125, -0.8125, 0.625, -0.625, -1.25, 0.0, -2.0625, -1.9375, -0.125, -1.25, -3.1875, 0.0, -1.0, 1.0, -3.625, -2.5, 3.25, -0.875, -2.875, -0.1875, -1.8125, -3.5, 0.75, -1.25, -2.9375, -3.0625, -0.125, 0.5625, -4.6875, -1.3125, 0.8125, -1.875, -0.0625, -0.9375, -2.875, 0.25, -0.75, -0.5, -2.9375, -1.875, 0.75, -2.0625, -1.8125, 0.0625, 1.5, 0.25, -1.0625, 1.25, 1.25, -1.6875, 2.5625, 1.25, -1.375, -2.3125, 1.125, 1.6875, -0.3125, -0.875, 2.625, 1.25, -0.8125, 2.25, -1.0625, 1.0625, 2.5625, 1.125, 1.125, -0.125, 1.3125, 0.0625, -1.25, 1.25, 1.25, -0.125, 1.875, -0.1875, 0.3125, -1.0625, 0.1875, 0.0, -1.6875, 1.75, -1.6875, -0.25, 0.75, -2.3125, 1.1875, 1.5625, -3.9375, -0.3125, 1.0, -1.9375, 0.5, -1.6875, -1.6875, 1.0, -1.4375, 1.375, -2.6875, -2.5625, 3.625, -0.5625, -2.6875, 0.25, -1.4375, 1.75, -1.6875, -0.5, 0.5, -1.125, 0.5, -0.5625, -2.1875, 0.625, 0.125, 0.5, 0.75, 3.375, 1.0625, -0.125, 2.125, 1.25, -1.6875, 3.4375, -1.1875, 3.1875, -1.25, 0.8125, 2.4375, 1.0, 0.75, 2.0, 0.125, 1.1875, 2.375, -0.625, 6.4375, -0.8125, 2.3125, 0.4375, 0.6875, 3.4375, 1.125, 0.0, 2.25, 1.5625, 0.3125, 1.3125, 0.8125, 2.25, 0.25, -1.0, 0.25, 2.0, 0.3125, -1.0, 0.875, 0.5, -1.8125, 2.125, -0.5625, -1.8125, 2.625, 0.5625, 1.8125, 0.75, -0.25, 1.0, -1.25, 0.1875, 2.0, -1.75, -0.3125, 2.1875, -0.9375, -1.3125, -0.0625, 1.5625, -0.125, -1.125, 0.75, -0.1875, -0.4375, 2.875, 0.25, -0.9375, 1.5, 0.25, -0.25, -2.125, -1.125, 0.1875, -1.0625, -0.25, -1.9375, 1.5, -1.3125, -2.6875, 1.0, -0.375, -2.25, -1.5625, -1.25, -1.375, 0.8125, -0.8125, 1.625, -2.875, -1.5625, 1.0625, -2.8125, 0.375, -0.125, -1.6875, -0.6875, 0.5, -0.75, -1.9375, -1.1875, 1.0, -1.0, -2.0625, 0.0},
       {1.6875, -1.40625, -2.0625, 5.40625, -2.84375, 1.53125, 0.625, -3.125, 1.71875, -2.84375, 1.53125, 0.625, -1.9375, -0.28125, 3.0, -2.65625, 4.21875, -2.5625, -1.21875, 3.78125, -2.40625, 4.21875, -2.5625, -1.21875, -1.5625, 0.875, -0.75, -1.5625, 5.0625, -2.9375, 1.65625, -1.0625, -2.375, 5.0625, -2.9375, 1.65625, 1.28125, -1.59375, 1.21875, -0.4375, -2.96875, 2.65625, -1.875, 0.09375, 0.75, -2.96875, 2.65625, -1.875, 3.75, -1.375, -1.625, 1.78125, -3.1875, 3.625, -0.9375, -1.84375, 1.78125, -3.1875, 3.625, -0.9375, -2.09375, -0.4375, 1.21875, -1.59375, 4.0, -2.78125, -0.625, 0.71875, -2.21875, 4.0, -2.78125, -0.625, -1.5625, 3.71875, -1.5625, -1.5625, 2.40625, -3.15625, 4.6875, -1.6875, -0.15625, 2.40625, -3.15625, 4.6875, 1.4375, -2.65625, 3.0, -0.28125, -1.03125, 4.59375, -3.1875, 1.625, -1.375, -1.03125, 4.59375, -3.1875},
       {-0.5625, 0.40625, -0.84375, 1.5625, 2.3125, -0.96875, 0.21875, 2.40625, -0.59375, 1.0, -0.6875, -4.375, 0.59375, 0.34375, 0.0625, 0.4375, -0.84375, 1.5625, 1.59375, -1.28125, 1.3125, 1.0, -3.28125, 1.28125, 1.84375, -2.65625, 0.5625, -0.15625, 0.4375, 1.75, -1.15625, -0.78125, 0.625, -1.71875, 1.3125, 1.0, 0.25, 0.84375, -0.75, 1.09375, -1.71875, -0.28125, 0.78125, -1.46875, 1.5625, 2.59375, -2.25, 1.625, 1.71875, -1.75, 1.03125, 0.03125, -0.75, 1.09375, -1.25, 0.375, 3.4375, 1.34375, 0.8125, -0.0625, 0.375, 0.375, 0.6875, -3.84375, -0.3125, 0.84375, -2.0625, -1.65625, -2.0625, -0.90625, 3.4375, 1.34375},
       {-1.375, 0.125, 0.0, -0.125, 1.375, -0.375}},
      {"output_padding_below_dilation", {1, 2, 3, 3}, {2, 2, 2, 3}, false, {1, 1}, {1, 0}, {1, 2}, 1, {2, 3}, {1, 2, 4, 11},
       {-1.3125, -0.5625, 1.5625, 0.375, 0.375, -1.0, 0.0, -0.75, 1.9375, 0.0, 0.0, -2.5, 0.1875, 0.8125, -0.5, 0.6875, -0.1875, 1.5, -1.5625, 0.875, 0.0, 0.0, 1.6875, 0.1875, -0.625, -0.0625, 0.4375, -1.125, -0.4375, -0.6875, 1.8125, 0.0, 0.0, 1.3125, -0.1875, -1.0, 0.0625, 0.5625, -1.0, -0.5, -0.75, 1.75, 0.0, 0.0, 1.25, 0.25, -0.75, -0.5, 0.5, -1.25, -0.875, -0.625, 1.6875, 0.0, 0.0, -0.125, 0.4375, -1.0625, -0.875, 0.9375, 0.6875, 1.125, -1.3125, 1.75, 0.0, 0.0, 0.8125, 0.3125, -0.875, -0.9375, 0.5625, -1.375, -1.3125, -0.5625, 1.5625, 0.0, 0.0, 0.6875, 0.1875, -1.0, -0.5625, 0.9375, -1.0, -1.125, -0.375, 1.75, 0.0, 0.0},
       {-0.90625, -0.90625, 0.3125, 1.03125, 1.46875, 0.28125, 0.15625, -1.84375, 1.03125, 0.5625, 0.25, 0.34375, 0.28125, -0.625, -1.53125, -1.15625, 1.59375, 0.28125},
       {-0.96875, -0.78125, 0.625, 1.78125, 1.25, -0.5, -0.65625, -0.875, 0.53125, 1.03125, 1.71875, 1.1875, -0.71875, -0.28125, -1.875, 0.375, 1.4375, 1.28125, 1.5, -0.5, -2.09375, -1.78125, 0.5, 1.5625},
       {}},
      {"unbatched", {3, 2, 3}, {3, 2, 2, 2}, true, {2, 2}, {0, 1}, {1, 0}, 1, {1, 1}, {2, 5, 4},
       {-0.625, -1.5, -1.5, -0.5625, -4.5625, -1.5, -0.125, -0.75, 0.1875, -0.75, -2.0625, 0.1875, -0.875, -1.3125, 0.125, -0.5625, -1.25, -1.25, -1.25, -1.25, 0.8125, 0.25, 0.25, 0.8125, 1.0, 1.625, 0.25, -2.8125, -0.875, -0.125, 0.625, 0.4375, 0.8125, 1.375, 0.0625, -3.0625, 0.5, 0.5, 0.5, 0.5},
       {-0.5, -0.1875, 0.46875, -0.375, 0.6875, 0.40625, -1.0, 0.4375, 0.5625, -1.09375, 0.8125, 0.625, -1.15625, -0.3125, 1.0, -1.125, -0.4375, 0.84375},
       {0.46875, 0.5625, -0.375, 0.0, -1.3125, 0.1875, 0.28125, -0.375, 0.96875, -1.375, -0.8125, 0.34375, -1.4375, 0.71875, 0.03125, -0.40625, -0.9375, -1.25, 1.15625, 0.34375, 2.21875, 0.21875, -0.5625, 0.59375},
       {-0.25, -0.5}},
  };
  return rows;
}
// clang-format on

// The fixture's values: ((i * mul) % mod - off) / div over the flat index,
// float64 (exact).
Tensor values(const Shape& shape, int64_t mul, int64_t mod, int64_t off, double div) {
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<double>((static_cast<int64_t>(i) * mul) % mod - off) / div;
  return from_vector(v, shape, {.dtype = DType::float64});
}

void expect_close(const Tensor& got, const std::vector<double>& want, const char* what) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  // Sums of a few dyadic products: exact, or off by an ulp of a different
  // summation order.
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_LE(std::abs(g[i] - want[i]), 1e-12 * std::max(1.0, std::abs(want[i])))
        << what << " " << i << ": " << g[i] << " vs torch " << want[i];
}

TEST(ConvTransposeTorch, ValuesAndGradientsMatchTorch113) {
  for (const ConvTransposeRow& r : torch_rows()) {
    SCOPED_TRACE(r.name);
    Tensor x = values(r.x, 7, 11, 5, 4), w = values(r.w, 7, 11, 5, 4);
    Tensor b = r.bias ? values({r.w[1] * r.groups}, 7, 11, 5, 4) : Tensor();
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    if (b.defined()) b.set_requires_grad(true);
    Tensor y =
        conv_transpose2d(x, w, b, r.stride, r.padding, r.output_padding, r.groups, r.dilation);
    ASSERT_EQ(y.sizes(), r.y_shape);
    y.backward(values(y.sizes(), 5, 13, 6, 8));
    expect_close(y, r.y, "output");
    expect_close(x.grad(), r.grad_x, "input gradient");
    expect_close(w.grad(), r.grad_w, "weight gradient");
    if (b.defined()) expect_close(b.grad(), r.grad_b, "bias gradient");
  }
}

// torch's argument errors, each naming the op and the offending argument.
TEST(ConvTransposeTorch, ErrorsAsTorch) {
  struct Row {
    std::string what;
    std::function<void()> call;
    std::vector<std::string> message;
  };
  const Tensor x = zeros({1, 4, 5, 5}), w = zeros({4, 3, 3, 3});
  const std::vector<Row> rows = {
      {"output_padding not below stride or dilation",
       [&] { conv_transpose2d(x, w, Tensor(), {2}, {0}, {2}); },
       {"conv_transpose2d", "output padding must be smaller than either stride or dilation",
        "output_padding 2, stride 2, dilation 1"}},
      {"output_padding in width only",
       [&] {
         conv_transpose2d(x, w, Tensor(), {2, 1}, {0}, {0, 1}, 1, {1, 1});
       },
       {"conv_transpose2d", "output padding must be smaller", "(width)"}},
      {"input channels",
       [&] {
         conv_transpose2d(zeros({1, 3, 5, 5}), w);
       },
       {"conv_transpose2d", "(1, 3, 5, 5) has 3 channels", "expects 4"}},
      {"groups divide the weight's input channels",
       [&] {
         conv_transpose2d(zeros({1, 3, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {1}, {0}, {0}, 2);
       },
       {"conv_transpose2d", "not divisible by groups=2"}},
      {"weight rank",
       [&] {
         conv_transpose2d(x, zeros({4, 3, 3}));
       },
       {"conv_transpose2d", "weight must be 4-D (in_channels, out_channels/groups, kH, kW)"}},
      {"input rank",
       [&] {
         conv_transpose2d(zeros({4, 5}), w);
       },
       {"conv_transpose2d", "3-D (C, H, W) or 4-D (N, C, H, W)", "(4, 5)"}},
      {"bias size",
       [&] { conv_transpose2d(x, w, zeros({4})); },
       {"conv_transpose2d", "bias (4,)", "3 elements"}},
      {"output too small",
       [&] {
         conv_transpose2d(zeros({1, 4, 1, 1}), w, Tensor(), {1}, {2});
       },
       {"conv_transpose2d", "(1 x 1)", "(-1 x -1)", "too small"}},
      {"negative padding",
       [&] { conv_transpose2d(x, w, Tensor(), {1}, {-1}); },
       {"conv_transpose2d", "padding must be non-negative"}},
      {"dtype mix",
       [&] {
         conv_transpose2d(x, zeros({4, 3, 3, 3}, {.dtype = DType::float64}));
       },
       {"conv_transpose2d", "float32", "float64"}},
      {"conv1d channels",
       [&] {
         conv1d(zeros({2, 4, 9}), zeros({2, 3, 3}));
       },
       {"conv1d", "(2, 4, 9) has 4 channels", "expects 3"}},
      {"conv1d input rank",
       [&] {
         conv1d(zeros({2, 4, 9, 1}), zeros({2, 4, 3}));
       },
       {"conv1d", "2-D (C, L) or 3-D (N, C, L)"}},
      {"conv1d weight rank",
       [&] {
         conv1d(zeros({2, 4, 9}), zeros({2, 4, 3, 1}));
       },
       {"conv1d", "weight must be 3-D"}},
      {"conv1d kernel longer than the padded input",
       [&] {
         conv1d(zeros({1, 2, 4}), zeros({3, 2, 4}), Tensor(), 1, 0, 2);
       },
       {"conv1d", "padded input length (4)", "dilated kernel (7)"}},
      {"conv1d groups",
       [&] {
         conv1d(zeros({1, 4, 8}), zeros({3, 2, 3}), Tensor(), 1, 0, 1, 2);
       },
       {"conv1d", "not divisible by groups=2"}},
      {"conv1d dtype mix",
       [&] {
         conv1d(zeros({1, 2, 8}), zeros({3, 2, 3}, {.dtype = DType::float64}));
       },
       {"conv1d: input (1, 2, 8) float32 and weight (3, 2, 3) float64"}},
      {"conv1d stride",
       [&] {
         conv1d(zeros({1, 2, 8}), zeros({3, 2, 3}), Tensor(), 0);
       },
       {"conv1d", "stride must be positive"}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    std::string msg;
    try {
      r.call();
      ADD_FAILURE() << "no exception thrown";
    } catch (const Error& e) {
      msg = e.what();
    }
    for (const std::string& part : r.message) EXPECT_CONTAINS(msg, part);
  }
}

// Under CPU autocast both ops cast their operands to bfloat16 once; the conv2d
// / gradient op inside then finds them cast, so the result is exactly the op on
// the cast tensors.
TEST(ConvTransposeTorch, AutocastCastsOnceAsTheOpOnCastInputs) {
  struct Row {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)> op;
    Shape x, w, b;
  };
  const std::vector<Row> rows = {
      {"conv1d",
       [](const Tensor& x, const Tensor& w, const Tensor& b) { return conv1d(x, w, b, 2, 1); },
       {2, 3, 9},
       {4, 3, 3},
       {4}},
      {"conv_transpose2d",
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose2d(x, w, b, {2}, {1}, {1});
       },
       {2, 3, 4, 4},
       {3, 2, 3, 3},
       {2}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    const Tensor x = randn(r.x), w = randn(r.w), b = randn(r.b);
    autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
    const Tensor got = r.op(x, w, b);
    autocast_exit(DeviceType::cpu);
    const Tensor want = r.op(x.to(DType::bfloat16), w.to(DType::bfloat16), b.to(DType::bfloat16));
    ASSERT_EQ(got.dtype(), DType::bfloat16);
    EXPECT_EQ(got.to_vector<float>(), want.to_vector<float>());
  }
}

}  // namespace
}  // namespace fabric
