// conv3d, conv_transpose3d and conv_transpose1d against torch 1.13 itself: values and the
// gradients of input, weight and bias (rows of tools/fixtures/make_conv3d_rows.py), torch's
// argument errors, autocast casting once, and the float32/bfloat16 (oneDNN) paths against the
// float64 (direct) one. The naive-reference and finite-difference checks are the harness rows of
// op_cases_conv3d.cpp.
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
#include "tests/ops/conv3d_torch_rows.h"

namespace fabric {
namespace {

// The fixture's values: ((i * mul) % mod - off) / div over the flat index, float64 (exact).
Tensor values(const Shape& shape, int64_t mul, int64_t mod, int64_t off, double div) {
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<double>((static_cast<int64_t>(i) * mul) % mod - off) / div;
  return from_vector(v, shape, {.dtype = DType::float64});
}

void expect_close(const Tensor& got, const std::vector<double>& want, const char* what) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  // Sums of a few dyadic products: exact, or off by an ulp of a different summation order.
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_LE(std::abs(g[i] - want[i]), 1e-12 * std::max(1.0, std::abs(want[i])))
        << what << " " << i << ": " << g[i] << " vs torch " << want[i];
}

Tensor run_row(const conv3d_torch::Row& r, const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::string op = r.op;
  if (op == "conv3d") return conv3d(x, w, b, r.stride, r.padding, r.dilation, r.groups);
  if (op == "conv_transpose3d")
    return conv_transpose3d(x, w, b, r.stride, r.padding, r.output_padding, r.groups, r.dilation);
  return conv_transpose1d(x, w, b, r.stride[0], r.padding[0], r.output_padding[0], r.groups,
                          r.dilation[0]);
}

TEST(Conv3dTorch, ValuesAndGradientsMatchTorch113) {
  for (const conv3d_torch::Row& r : conv3d_torch::rows()) {
    SCOPED_TRACE(std::string(r.op) + "/" + r.name);
    const int64_t out_channels = std::string(r.op) == "conv3d" ? r.w[0] : r.w[1] * r.groups;
    Tensor x = values(r.x, 7, 11, 5, 4), w = values(r.w, 7, 11, 5, 4);
    Tensor b = r.bias ? values({out_channels}, 7, 11, 5, 4) : Tensor();
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    if (b.defined()) b.set_requires_grad(true);
    Tensor y = run_row(r, x, w, b);
    ASSERT_EQ(y.sizes(), r.y_shape);
    y.backward(values(y.sizes(), 5, 13, 6, 8));
    expect_close(y, r.y, "output");
    expect_close(x.grad(), r.grad_x, "input gradient");
    expect_close(w.grad(), r.grad_w, "weight gradient");
    if (b.defined()) expect_close(b.grad(), r.grad_b, "bias gradient");
  }
}

// The oneDNN paths (float32, and bfloat16 through its bf16 primitive or the float32 one)
// against the float64 direct loops on a problem big enough for oneDNN's blocked kernels: the
// forward and the three gradients.
TEST(Conv3dTorch, OneDnnPathsMatchTheFloat64Loops) {
  struct Row {
    DType dtype;
    double tol;
  };
  const Tensor x64 = randn({2, 8, 7, 6, 7}, {.dtype = DType::float64});
  const Tensor w64 = randn({16, 4, 3, 3, 3}, {.dtype = DType::float64});
  const Tensor b64 = randn({16}, {.dtype = DType::float64});
  const Tensor g64 = randn({2, 16, 3, 6, 4}, {.dtype = DType::float64});
  auto run = [&](DType dt) {
    // Fresh leaves: to() may return the float64 tensor itself.
    Tensor x = x64.to(dt).detach(), w = w64.to(dt).detach(), b = b64.to(dt).detach();
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    Tensor y = conv3d(x, w, b, {1, 1, 2}, {0, 1, 1}, {2, 1, 1}, 2);
    y.backward(g64.to(dt));
    return std::vector<Tensor>{y, x.grad(), w.grad(), b.grad()};
  };
  const std::vector<Tensor> want = run(DType::float64);
  for (const Row& r : std::vector<Row>{{DType::float32, 1e-4}, {DType::bfloat16, 6e-2}}) {
    SCOPED_TRACE(dtype_name(r.dtype));
    const std::vector<Tensor> got = run(r.dtype);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].sizes(), want[i].sizes()) << i;
      const std::vector<double> g = got[i].to(DType::float64).to_vector<double>();
      const std::vector<double> e = want[i].to_vector<double>();
      double scale = 1.0;
      for (double v : e) scale = std::max(scale, std::abs(v));
      for (size_t j = 0; j < g.size(); ++j)
        ASSERT_LE(std::abs(g[j] - e[j]), r.tol * scale) << "result " << i << " element " << j;
    }
  }
}

// torch's argument errors, each naming the op, the offending argument and the shapes.
TEST(Conv3dTorch, ErrorsAsTorch) {
  struct Row {
    std::string what;
    std::function<void()> call;
    std::vector<std::string> message;
  };
  const Tensor x = zeros({1, 4, 5, 5, 5}), w = zeros({6, 4, 3, 3, 3}), wt = zeros({4, 3, 3, 3, 3});
  const std::vector<Row> rows = {
      {"conv3d input rank",
       [&] {
         conv3d(zeros({4, 5, 5}), w);
       },
       {"conv3d", "4-D (C, D, H, W) or 5-D (N, C, D, H, W)", "(4, 5, 5)"}},
      {"conv3d weight rank",
       [&] {
         conv3d(x, zeros({6, 4, 3, 3}));
       },
       {"conv3d", "weight must be 5-D", "(6, 4, 3, 3)"}},
      {"conv3d channels",
       [&] {
         conv3d(zeros({1, 3, 5, 5, 5}), w);
       },
       {"conv3d", "(1, 3, 5, 5, 5) has 3 channels", "expects 4"}},
      {"conv3d groups",
       [&] {
         conv3d(x, zeros({3, 2, 3, 3, 3}), Tensor(), {1}, {0}, {1}, 2);
       },
       {"conv3d", "(3, 2, 3, 3, 3)", "not divisible by groups=2"}},
      {"conv3d kernel larger than the padded input",
       [&] { conv3d(x, w, Tensor(), {1}, {0}, {3}); },
       {"conv3d", "padded input (5, 5, 5)", "dilated kernel (7, 7, 7)"}},
      {"conv3d bias size", [&] { conv3d(x, w, zeros({4})); }, {"conv3d", "bias (4,)"}},
      {"conv3d stride elements",
       [&] {
         conv3d(x, w, Tensor(), {1, 1});
       },
       {"conv3d", "stride must have 1 or 3 elements"}},
      {"conv3d dtype mix",
       [&] {
         conv3d(x, zeros({6, 4, 3, 3, 3}, {.dtype = DType::float64}));
       },
       {"conv3d", "float32", "float64"}},
      {"conv_transpose3d output_padding not below stride or dilation",
       [&] {
         conv_transpose3d(x, wt, Tensor(), {2}, {0}, {1, 1, 2});
       },
       {"conv_transpose3d", "output padding must be smaller than either stride or dilation",
        "output_padding 2, stride 2, dilation 1", "(width)"}},
      {"conv_transpose3d channels",
       [&] {
         conv_transpose3d(zeros({1, 3, 5, 5, 5}), wt);
       },
       {"conv_transpose3d", "(1, 3, 5, 5, 5) has 3 channels", "expects 4"}},
      {"conv_transpose3d groups",
       [&] {
         conv_transpose3d(zeros({1, 3, 2, 2, 2}), zeros({3, 2, 2, 2, 2}), Tensor(), {1}, {0}, {0},
                          2);
       },
       {"conv_transpose3d", "not divisible by groups=2"}},
      {"conv_transpose3d input rank",
       [&] {
         conv_transpose3d(zeros({4, 5, 5}), wt);
       },
       {"conv_transpose3d", "4-D (C, D, H, W) or 5-D (N, C, D, H, W)"}},
      {"conv_transpose3d weight rank",
       [&] {
         conv_transpose3d(x, zeros({4, 3, 3, 3}));
       },
       {"conv_transpose3d", "weight must be 5-D"}},
      {"conv_transpose3d output too small",
       [&] {
         conv_transpose3d(zeros({1, 4, 1, 1, 1}), wt, Tensor(), {1}, {2});
       },
       {"conv_transpose3d", "(-1, -1, -1)", "too small"}},
      {"conv_transpose3d bias size",
       [&] { conv_transpose3d(x, wt, zeros({4})); },
       {"conv_transpose3d", "bias (4,)", "3 elements"}},
      {"conv_transpose1d output_padding not below stride or dilation",
       [&] {
         conv_transpose1d(zeros({1, 4, 5}), zeros({4, 3, 3}), Tensor(), 2, 0, 2);
       },
       {"conv_transpose1d", "output padding must be smaller than either stride or dilation",
        "output_padding 2, stride 2, dilation 1"}},
      {"conv_transpose1d channels",
       [&] {
         conv_transpose1d(zeros({1, 3, 5}), zeros({4, 3, 3}));
       },
       {"conv_transpose1d", "(1, 3, 5) has 3 channels", "expects 4"}},
      {"conv_transpose1d groups",
       [&] {
         conv_transpose1d(zeros({1, 3, 5}), zeros({3, 2, 3}), Tensor(), 1, 0, 0, 2);
       },
       {"conv_transpose1d", "not divisible by groups=2"}},
      {"conv_transpose1d input rank",
       [&] {
         conv_transpose1d(zeros({1, 4, 5, 5}), zeros({4, 3, 3}));
       },
       {"conv_transpose1d", "2-D (C, L) or 3-D (N, C, L)", "(1, 4, 5, 5)"}},
      {"conv_transpose1d weight rank",
       [&] {
         conv_transpose1d(zeros({1, 4, 5}), zeros({4, 3, 3, 1}));
       },
       {"conv_transpose1d", "weight must be 3-D"}},
      {"conv_transpose1d output too small",
       [&] {
         conv_transpose1d(zeros({1, 4, 1}), zeros({4, 3, 1}), Tensor(), 1, 1);
       },
       {"conv_transpose1d", "output length (-1)", "too small"}},
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

// Under CPU autocast each op casts its operands to bfloat16 once (policy lower) and gives
// bfloat16: exactly the op on the cast tensors.
TEST(Conv3dTorch, AutocastCastsOnceToBFloat16) {
  struct Row {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)> op;
    Shape x, w, b;
  };
  const std::vector<Row> rows = {
      {"conv3d",
       [](const Tensor& x, const Tensor& w, const Tensor& b) { return conv3d(x, w, b, {2}, {1}); },
       {2, 3, 5, 5, 5},
       {4, 3, 3, 3, 3},
       {4}},
      {"conv_transpose3d",
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose3d(x, w, b, {2}, {1}, {1});
       },
       {2, 3, 3, 3, 3},
       {3, 2, 3, 3, 3},
       {2}},
      {"conv_transpose1d",
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose1d(x, w, b, 2, 1, 1);
       },
       {2, 3, 6},
       {3, 2, 3},
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
