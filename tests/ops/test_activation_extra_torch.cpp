// log_sigmoid, hardshrink, softshrink, threshold, softsign, tanhshrink, prelu, glu, rrelu,
// normalize and local_response_norm against torch 1.13 itself (values and input gradients at
// the kinks, tools/fixtures/make_activation_extra_rows.py), their argument errors, node names and
// training rrelu's drawn slopes (double backward: tests/autograd/test_double_backward.cpp). The
// naive-reference and finite-difference checks are the harness rows of
// op_cases_activation_extra.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/ops/activation_extra_torch_rows.h"

namespace fabric {
namespace {

using activation_extra_fixture::TorchArg;
using activation_extra_fixture::TorchRow;

// |got - want| relative to max(1, |want|); NaN against NaN is exact.
double rel_err(double got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : INFINITY;
  return std::abs(got - want) / std::max(1.0, std::abs(want));
}

TEST(ActivationExtraTorch, ValuesAndGradientsMatchTorch113) {
  for (const TorchRow& r : activation_extra_fixture::torch_rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    std::vector<Tensor> args;
    for (const TorchArg& a : r.args) {
      // from_vector makes (1) of one value: reshape gives 0-d arguments their shape.
      Tensor t = from_vector(a.v, {static_cast<int64_t>(a.v.size())}, {.dtype = DType::float64})
                     .reshape(a.shape)
                     .to(r.dtype);
      t.set_requires_grad(true);
      args.push_back(t);
    }
    const Tensor out = r.call(args);
    ASSERT_EQ(out.sizes(), r.out_shape);
    ASSERT_EQ(out.dtype(), r.dtype);
    // float64: a few ulp (libm in another order, compositions); float32: the AVX-512 exp/log1p
    // and the compositions' roundings.
    const double tol = r.dtype == DType::float64 ? 1e-13 : 2e-6;
    const std::vector<double> got = out.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LE(rel_err(got[i], r.out[i]), tol)
          << "out[" << i << "] " << got[i] << " vs torch " << r.out[i];
    // c_k = 1 + k / 4, as the fixture's.
    const Tensor c =
        add(div(arange(out.numel(), DType::float64), 4.0), 1.0).reshape(out.sizes()).to(r.dtype);
    const std::vector<Tensor> grads = grad({sum(mul(out, c))}, args);
    ASSERT_EQ(grads.size(), r.grads.size());
    for (size_t k = 0; k < grads.size(); ++k) {
      const std::vector<double> g = grads[k].to_vector<double>();
      ASSERT_EQ(g.size(), r.grads[k].size()) << "gradient " << k;
      for (size_t i = 0; i < g.size(); ++i)
        EXPECT_LE(rel_err(g[i], r.grads[k][i]), tol)
            << "d/darg" << k << "[" << i << "] " << g[i] << " vs torch " << r.grads[k][i];
    }
  }
}

// log_sigmoid stays finite far out where exp overflows: -x below, 0 above.
TEST(ActivationExtraTorch, LogSigmoidIsStableInItsTails) {
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = from_vector(std::vector<double>{-1000.0, -60000.0, 1000.0, 60000.0}, {4},
                           {.dtype = DType::float64})
                   .to(dt);
    x.set_requires_grad(true);
    const Tensor y = log_sigmoid(x);
    sum(y).backward();
    const std::vector<double> v = y.to_vector<double>(), g = x.grad().to_vector<double>();
    const std::vector<double> xs = x.detach().to_vector<double>();
    EXPECT_EQ(v[0], xs[0]);
    EXPECT_EQ(v[1], xs[1]);
    EXPECT_EQ(v[2], 0.0);
    EXPECT_EQ(v[3], 0.0);
    // sigmoid(-x): 1 below, 0 above. (Not a {1.0, 1.0, 0.0, 0.0} literal: GCC 12 at -O3
    // -march=native miscompiled that one here into four 1.0s.)
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(g[i], xs[i] < 0 ? 1.0 : 0.0) << "x = " << xs[i];
  }
}

// NaN propagates through the values (softshrink's is 0, as torch's CPU kernel) and passes the
// gradient, as torch's comparisons do.
TEST(ActivationExtraTorch, NaNInputs) {
  const double nan = std::nan("");
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = from_vector(std::vector<double>{nan}, {1}, {.dtype = DType::float64}).to(dt);
    EXPECT_TRUE(std::isnan(log_sigmoid(x).item<double>()));
    EXPECT_TRUE(std::isnan(hardshrink(x).item<double>()));
    EXPECT_TRUE(std::isnan(threshold(x, 0.5, 2.0).item<double>()));
    EXPECT_EQ(softshrink(x).item<double>(), 0.0);
  }
}

// Argument errors are fabric::Errors naming the op and what was expected.
TEST(ActivationExtraTorch, ArgumentErrors) {
  const Tensor x23 = zeros({2, 3});
  // The compositions name themselves, not the op they are built from.
  EXPECT_CONTAINS(thrown<ValueError>([&] { softsign(Tensor()); }),
                  "softsign: got an undefined tensor");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { softsign(zeros({2}, {.dtype = DType::bool_})); }),
                  "softsign: bool");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { tanhshrink(zeros({2}, {.dtype = DType::bool_})); }),
                  "tanhshrink: bool");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { relu6(zeros({2}, {.dtype = DType::int64})); }),
                  "relu6: expects");
  EXPECT_EQ(softsign(ones({2}, {.dtype = DType::int64})).dtype(), DType::float32);  // as torch's
  EXPECT_CONTAINS(thrown<ShapeError>([&] { glu(x23); }),
                  "glu: Halving dimension must be even, but dimension 1 is size 3");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { glu(zeros({})); }), "glu: does not support scalars");
  EXPECT_CONTAINS(thrown<IndexError>([&] { glu(x23, 5); }), "glu");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { prelu(x23, zeros({4})); }),
                  "prelu: Mismatch of parameter numbers and input channel size. Found parameter "
                  "numbers = 4 and channel size = 3");
  // A 1-D input has one channel in torch 1.13: only a single slope fits it.
  EXPECT_CONTAINS(thrown<ShapeError>([&] { prelu(zeros({4}), zeros({4})); }),
                  "Found parameter numbers = 4 and channel size = 1");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    prelu(x23, zeros({1, 3}));
                  }),
                  "prelu: Expected `weight` to be a scalar or 1D tensor, but got ndim = 2");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { prelu(x23, zeros({3}, {.dtype = DType::float64})); }),
                  "prelu: expects weight of the input's dtype float32, got float64");
  EXPECT_CONTAINS(thrown<ValueError>([&] { softshrink(x23, -1.0); }),
                  "softshrink: lambda must be greater or equal to 0, but found to be -1");
  EXPECT_CONTAINS(thrown<ValueError>([&] { rrelu(x23, 0.5, 0.1, true); }),
                  "rrelu: Lower bound should be less than or equal to the upper bound");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { local_response_norm(x23, 2); }),
                  "local_response_norm: Expected 3D or higher dimensionality input (got 2 "
                  "dimensions)");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    local_response_norm(zeros({1, 2, 3}), 0);
                  }),
                  "local_response_norm: size must be positive, got 0");
  const Tensor i = zeros({2}, {.dtype = DType::int64});
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> ops = {
      {"log_sigmoid", [](const Tensor& t) { return log_sigmoid(t); }},
      {"hardshrink", [](const Tensor& t) { return hardshrink(t); }},
      {"softshrink", [](const Tensor& t) { return softshrink(t); }},
      {"threshold", [](const Tensor& t) { return threshold(t, 0.0, 1.0); }},
      {"rrelu", [](const Tensor& t) { return rrelu(t); }},
      {"glu", [](const Tensor& t) { return glu(t); }},
      {"prelu", [](const Tensor& t) { return prelu(t, zeros({1}, {.dtype = DType::int64})); }},
  };
  for (const auto& [name, op] : ops)
    EXPECT_CONTAINS(thrown<DTypeError>([&] { op(i); }),
                    name + ": expects a float64, float32, float16 or bfloat16 tensor, got int64");
}

// normalize, local_response_norm and dist are compositions: a non-float input is refused in their
// own name and the caller's shape, not norm's, sub's or avg_pool2d's reshaped (N, 1, C, L).
TEST(ActivationExtraTorch, CompositionsRefuseNonFloatInputsInTheirOwnName) {
  const Tensor i3 = zeros({2, 3, 4}, {.dtype = DType::int64});
  const Tensor i = zeros({3}, {.dtype = DType::int64}), b = zeros({3}, {.dtype = DType::bool_});
  const std::string lrn_supported =
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16";
  const std::string dist_expects =
      "dist: expected floating-point operands (float64/float32/float16/bfloat16), got ";
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] {
         normalize(zeros({2, 3}, {.dtype = DType::int64}));
       },
       "normalize: expected a float64/float32/float16/bfloat16 input, got int64 of shape (2, 3)"},
      {[&] { normalize(b); },
       "normalize: expected a float64/float32/float16/bfloat16 input, got bool of shape (3,)"},
      {[&] { local_response_norm(i3, 2); },
       "local_response_norm: input (2, 3, 4) int64" + lrn_supported},
      {[&] {
         local_response_norm(zeros({1, 2, 3, 3}, {.dtype = DType::bool_}), 2);
       },
       "local_response_norm: input (1, 2, 3, 3) bool" + lrn_supported},
      {[&] { dist(i, i); }, dist_expects + "int64 (3,) and int64 (3,)"},
      {[&] { dist(b, b); }, dist_expects + "bool (3,) and bool (3,)"},
      {[&] { dist(b, zeros({3})); }, dist_expects + "bool (3,) and float32 (3,)"},
  };
  for (const auto& [call, message] : cases) {
    SCOPED_TRACE(message);
    EXPECT_CONTAINS(thrown<DTypeError>(call), message);
  }
  // What torch takes stays taken: an empty LRN input of any dtype, an integer operand of dist
  // beside a float one.
  EXPECT_EQ(local_response_norm(zeros({0, 3, 4}, {.dtype = DType::int64}), 2).numel(), 0);
  EXPECT_EQ(dist(i, ones({3})).item<float>(), std::sqrt(3.0f));
}

// A 0-dim input is normalized over its one implicit dim, as torch: x / max(|x|, eps), dims -1 and
// 0 both name it; the gradient of -3 / 3 is 0 (torch prints tensor(-1.) and tensor(0.)).
TEST(ActivationExtraTorch, NormalizeOfAZeroDimTensor) {
  Tensor x = full({}, -3.0f);
  x.set_requires_grad(true);
  Tensor y = normalize(x, 2.0, -1);
  y.backward();
  EXPECT_EQ(y.sizes(), Shape{});
  EXPECT_EQ(y.item<float>(), -1.0f);
  EXPECT_EQ(x.grad().item<float>(), 0.0f);
  EXPECT_EQ(normalize(full({}, 0.0f), 2.0, 0).item<float>(), 0.0f);
  EXPECT_EQ(normalize(full({}, 2.0f), 1.0, 0).item<float>(), 1.0f);
  EXPECT_CONTAINS(thrown<IndexError>([] { normalize(full({}, 2.0f), 2.0, 1); }),
                  "normalize: dim 1 out of range for a tensor of 0 dims (expected in [-1, 0])");
}

// The backward nodes carry torch's names (rrelu's eval form is a leaky_relu underneath).
TEST(ActivationExtraTorch, NodeNamesAreTorchs) {
  Tensor x = zeros({2, 4});
  x.set_requires_grad(true);
  Tensor w = full({4}, 0.25);
  w.set_requires_grad(true);
  const std::vector<std::pair<Tensor, std::string>> cases = {
      {log_sigmoid(x), "LogSigmoidBackward0"},
      {hardshrink(x), "HardshrinkBackward0"},
      {softshrink(x), "SoftshrinkBackward0"},
      {threshold(x, 0.0, 1.0), "ThresholdBackward0"},
      {prelu(x, w), "PreluBackward0"},
      {glu(x), "GluBackward0"},
      {rrelu(x), "RreluWithNoiseBackward0"},
      {rrelu(x, 0.1, 0.3, true), "RreluWithNoiseBackward0"},
  };
  for (const auto& [y, name] : cases) EXPECT_EQ(grad_fn_name(y), name);
}

// Under CPU autocast prelu runs in the lower precision (torch's lower list) with its gradient
// back in each input's dtype; the rest keep their input's dtype.
TEST(ActivationExtraTorch, PreluLowersUnderCpuAutocast) {
  Tensor x = randn({2, 3, 4});
  Tensor w = full({3}, 0.25);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  {
    CpuAutocast region(DType::bfloat16);
    const Tensor y = prelu(x, w);
    EXPECT_EQ(y.dtype(), DType::bfloat16);
    EXPECT_EQ(log_sigmoid(x).dtype(), DType::float32);
    EXPECT_EQ(glu(x).dtype(), DType::float32);
    sum(y).backward();
  }
  EXPECT_EQ(x.grad().dtype(), DType::float32);
  EXPECT_EQ(w.grad().dtype(), DType::float32);
}

// Training rrelu: every negative element's slope within [lower, upper], positives kept, the
// gradient the drawn slope; the slopes vary, and one seed draws the same ones again.
TEST(ActivationExtraTorch, RreluTrainingDrawsSlopes) {
  const double lower = 0.1, upper = 0.3;
  for (DType dt : {DType::float64, DType::float32}) {
    SCOPED_TRACE(dtype_name(dt));
    Generator gen(11);
    Tensor x = sub(rand({4000}, {.dtype = dt}, &gen), 0.5);
    x.set_requires_grad(true);
    Generator draw(5);
    const Tensor y = rrelu(x, lower, upper, true, &draw);
    sum(y).backward();
    const std::vector<double> xs = x.detach().to_vector<double>(), ys = y.to_vector<double>(),
                              gs = x.grad().to_vector<double>();
    double lo_seen = 1, hi_seen = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (xs[i] > 0) {
        EXPECT_EQ(ys[i], xs[i]);
        EXPECT_EQ(gs[i], 1.0);
        continue;
      }
      EXPECT_GE(gs[i], lower - 1e-7);
      EXPECT_LE(gs[i], upper + 1e-7);
      EXPECT_NEAR(ys[i], xs[i] * gs[i], 1e-7 * std::abs(xs[i]) + 1e-300);
      lo_seen = std::min(lo_seen, gs[i]);
      hi_seen = std::max(hi_seen, gs[i]);
    }
    EXPECT_LT(lo_seen, lower + 0.01);  // ~2000 draws cover the range
    EXPECT_GT(hi_seen, upper - 0.01);
    Generator again(5);
    EXPECT_EQ(rrelu(x.detach(), lower, upper, true, &again).to_vector<double>(), ys);
  }
}

}  // namespace
}  // namespace fabric
