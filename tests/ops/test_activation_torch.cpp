// The parameterised activations against torch 1.13 itself: values and gradients at their kinks
// and thresholds (where torch picks one side: leaky_relu's slope at 0, hardtanh's 0 on its
// bounds, hardswish's middle formula at -3 and 3, hardsigmoid's float 1/6), their argument errors
// and their backward node names. The naive-reference and finite-difference checks are the
// harness rows of op_cases_elementwise.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// One torch 1.13 CPU call: y = F.<op>(x, ...) on these values in `dtype`, then y.sum().backward();
// y and x.grad as printed by tools/fixtures/make_activation_rows.py.
struct ActivationRow {
  const char* name;
  DType dtype;
  std::vector<double> x;
  std::function<Tensor(const Tensor&)> op;
  std::vector<double> y, grad;
};

// clang-format off
const std::vector<ActivationRow>& torch_rows() {
  static const std::vector<ActivationRow> rows = {
      {"leaky_relu/default", DType::float64, {-1.0, 0.0, 1.0}, [](const Tensor& x) { return leaky_relu(x); },
       {-0.01, 0.0, 1.0}, {0.01, 0.01, 1.0}},
      {"leaky_relu/default", DType::float32, {-1.0, 0.0, 1.0}, [](const Tensor& x) { return leaky_relu(x); },
       {-0.009999999776482582, 0.0, 1.0}, {0.009999999776482582, 0.009999999776482582, 1.0}},
      {"leaky_relu/slope0.2", DType::float64, {-2.0, -0.5, 0.0, 0.5, 3.0}, [](const Tensor& x) { return leaky_relu(x, 0.2); },
       {-0.4, -0.1, 0.0, 0.5, 3.0}, {0.2, 0.2, 0.2, 1.0, 1.0}},
      {"leaky_relu/slope0.2", DType::float32, {-2.0, -0.5, 0.0, 0.5, 3.0}, [](const Tensor& x) { return leaky_relu(x, 0.2); },
       {-0.4000000059604645, -0.10000000149011612, 0.0, 0.5, 3.0}, {0.20000000298023224, 0.20000000298023224, 0.20000000298023224, 1.0, 1.0}},
      {"elu/default", DType::float64, {-3.0, -1.0, 0.0, 0.5, 2.0}, [](const Tensor& x) { return elu(x); },
       {-0.950212931632136, -0.6321205588285577, 0.0, 0.5, 2.0}, {0.049787068367863944, 0.36787944117144233, 1.0, 1.0, 1.0}},
      {"elu/default", DType::float32, {-3.0, -1.0, 0.0, 0.5, 2.0}, [](const Tensor& x) { return elu(x); },
       {-0.9502129554748535, -0.6321205496788025, 0.0, 0.5, 2.0}, {0.049787066876888275, 0.3678794503211975, 1.0, 1.0, 1.0}},
      {"elu/alpha0.5", DType::float64, {-3.0, -1.0, 0.0, 0.5, 2.0}, [](const Tensor& x) { return elu(x, 0.5); },
       {-0.475106465816068, -0.31606027941427883, 0.0, 0.5, 2.0}, {0.024893534183931972, 0.18393972058572117, 0.5, 1.0, 1.0}},
      {"elu/alpha0.5", DType::float32, {-3.0, -1.0, 0.0, 0.5, 2.0}, [](const Tensor& x) { return elu(x, 0.5); },
       {-0.47510647773742676, -0.31606027483940125, 0.0, 0.5, 2.0}, {0.024893533438444138, 0.18393972516059875, 0.5, 1.0, 1.0}},
      {"selu", DType::float64, {-2.0, -0.5, 0.0, 1.0, 2.0}, [](const Tensor& x) { return selu(x); },
       {-1.5201664685956948, -0.6917581878028713, 0.0, 1.0507009873554805, 2.101401974710961}, {0.2379328722516818, 1.0663411530445053, 1.7580993408473766, 1.0507009873554805, 1.0507009873554805}},
      {"selu", DType::float32, {-2.0, -0.5, 0.0, 1.0, 2.0}, [](const Tensor& x) { return selu(x); },
       {-1.5201665163040161, -0.6917581558227539, 0.0, 1.0507010221481323, 2.1014020442962646}, {0.23793286085128784, 1.0663411617279053, 1.7580993175506592, 1.0507010221481323, 1.0507010221481323}},
      {"celu/alpha2", DType::float64, {-3.0, -1.0, 0.0, 1.0}, [](const Tensor& x) { return celu(x, 2.0); },
       {-1.5537396797031404, -0.7869386805747332, 0.0, 1.0}, {0.22313016014842982, 0.6065306597126334, 1.0, 1.0}},
      {"celu/alpha2", DType::float32, {-3.0, -1.0, 0.0, 1.0}, [](const Tensor& x) { return celu(x, 2.0); },
       {-1.5537396669387817, -0.7869386672973633, 0.0, 1.0}, {0.22313016653060913, 0.6065306663513184, 1.0, 1.0}},
      {"softplus/default", DType::float64, {-30.0, -2.0, 0.0, 2.0, 19.5, 20.0, 20.5, 30.0}, [](const Tensor& x) { return softplus(x); },
       {9.357622968839737e-14, 0.1269280110429725, 0.6931471805599453, 2.1269280110429727, 19.500000003398267, 20.000000002061153, 20.5, 30.0}, {9.3576229688393e-14, 0.11920292202211755, 0.5, 0.8807970779778824, 0.9999999966017322, 0.9999999979388464, 1.0, 1.0}},
      {"softplus/default", DType::float32, {-30.0, -2.0, 0.0, 2.0, 19.5, 20.0, 20.5, 30.0}, [](const Tensor& x) { return softplus(x); },
       {9.357622912219837e-14, 0.12692800164222717, 0.6931471824645996, 2.1269280910491943, 19.5, 20.0, 20.5, 30.0}, {9.357622912219837e-14, 0.11920291930437088, 0.5, 0.8807970881462097, 1.0, 1.0, 1.0, 1.0}},
      {"softplus/beta2_threshold3", DType::float64, {-1.0, 0.0, 1.4, 1.5, 1.6}, [](const Tensor& x) { return softplus(x, 2.0, 3.0); },
       {0.06346400552148625, 0.34657359027997264, 1.4295164131439857, 1.524293675786871, 1.6}, {0.11920292202211755, 0.5, 0.9426758241011313, 0.9525741268224333, 1.0}},
      {"softplus/beta2_threshold3", DType::float32, {-1.0, 0.0, 1.4, 1.5, 1.6}, [](const Tensor& x) { return softplus(x, 2.0, 3.0); },
       {0.06346400082111359, 0.3465735912322998, 1.4295164346694946, 1.5242936611175537, 1.600000023841858}, {0.11920291930437088, 0.5, 0.9426758289337158, 0.9525741338729858, 1.0}},
      {"hardtanh/default", DType::float64, {-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0}, [](const Tensor& x) { return hardtanh(x); },
       {-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0}, {0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0}},
      {"hardtanh/default", DType::float32, {-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0}, [](const Tensor& x) { return hardtanh(x); },
       {-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0}, {0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0}},
      {"hardtanh/-0.5_2", DType::float64, {-1.0, -0.5, 0.0, 2.0, 3.0}, [](const Tensor& x) { return hardtanh(x, -0.5, 2.0); },
       {-0.5, -0.5, 0.0, 2.0, 2.0}, {0.0, 0.0, 1.0, 0.0, 0.0}},
      {"hardtanh/-0.5_2", DType::float32, {-1.0, -0.5, 0.0, 2.0, 3.0}, [](const Tensor& x) { return hardtanh(x, -0.5, 2.0); },
       {-0.5, -0.5, 0.0, 2.0, 2.0}, {0.0, 0.0, 1.0, 0.0, 0.0}},
      {"relu6", DType::float64, {-1.0, 0.0, 3.0, 6.0, 7.0}, [](const Tensor& x) { return relu6(x); },
       {0.0, 0.0, 3.0, 6.0, 6.0}, {0.0, 0.0, 1.0, 0.0, 0.0}},
      {"relu6", DType::float32, {-1.0, 0.0, 3.0, 6.0, 7.0}, [](const Tensor& x) { return relu6(x); },
       {0.0, 0.0, 3.0, 6.0, 6.0}, {0.0, 0.0, 1.0, 0.0, 0.0}},
      {"mish", DType::float64, {-10.0, -1.0, 0.0, 1.0, 10.0, 30.0}, [](const Tensor& x) { return mish(x); },
       {-0.00045398899185674697, -0.30340146137410895, 0.0, 0.8650983882673103, 9.999999958780672, 30.0}, {-0.0004085797869029919, 0.059216755877395014, 0.6, 1.0490362200997922, 1.0000000783129825, 1.0}},
      {"mish", DType::float32, {-10.0, -1.0, 0.0, 1.0, 10.0, 30.0}, [](const Tensor& x) { return mish(x); },
       {-0.00045398902148008347, -0.3034014403820038, 0.0, 0.8650983572006226, 10.0, 30.0}, {-0.0004085798282176256, 0.059216730296611786, 0.6000000238418579, 1.0490362644195557, 1.0, 1.0}},
      {"hardswish", DType::float64, {-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0}, [](const Tensor& x) { return hardswish(x); },
       {-0.0, -0.0, -0.375, 0.0, 1.125, 3.0, 4.0}, {0.0, -0.5, 0.0, 0.5, 1.0, 1.5, 1.0}},
      {"hardswish", DType::float32, {-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0}, [](const Tensor& x) { return hardswish(x); },
       {-0.0, -0.0, -0.375, 0.0, 1.125, 3.0, 4.0}, {0.0, -0.5, 0.0, 0.5, 1.0, 1.5, 1.0}},
      {"hardsigmoid", DType::float64, {-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0}, [](const Tensor& x) { return hardsigmoid(x); },
       {0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0}, {0.0, 0.0, 0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.0, 0.0}},
      {"hardsigmoid", DType::float32, {-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0}, [](const Tensor& x) { return hardsigmoid(x); },
       {0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0}, {0.0, 0.0, 0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.0, 0.0}},
  };
  return rows;
}
// clang-format on

// |got - want| relative to max(1, |want|).
double rel_err(double got, double want) {
  return std::abs(got - want) / std::max(1.0, std::abs(want));
}

TEST(ActivationTorch, ValuesAndGradientsMatchTorch113) {
  for (const ActivationRow& r : torch_rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    Tensor x =
        from_vector(r.x, {static_cast<int64_t>(r.x.size())}, {.dtype = DType::float64}).to(r.dtype);
    x.set_requires_grad(true);
    const Tensor y = r.op(x);
    ASSERT_EQ(y.dtype(), r.dtype);
    sum(y).backward();
    // float64: a few ulp (libm's exp/log1p/tanh in other orders); float32: the AVX-512
    // polynomials are within a few ulp of torch's.
    const double tol = r.dtype == DType::float64 ? 1e-14 : 1e-6;
    const std::vector<double> got_y = y.to_vector<double>(), got_g = x.grad().to_vector<double>();
    ASSERT_EQ(got_y.size(), r.y.size());
    ASSERT_EQ(got_g.size(), r.grad.size());
    for (size_t i = 0; i < r.x.size(); ++i) {
      EXPECT_LE(rel_err(got_y[i], r.y[i]), tol)
          << "value at x = " << r.x[i] << ": " << got_y[i] << " vs torch " << r.y[i];
      EXPECT_LE(rel_err(got_g[i], r.grad[i]), tol)
          << "gradient at x = " << r.x[i] << ": " << got_g[i] << " vs torch " << r.grad[i];
    }
  }
}

// Every op refuses integer tensors, naming itself and the dtype (torch: "not implemented for
// 'Long'").
TEST(ActivationTorch, IntegerTensorsAreRefused) {
  const Tensor i =
      from_vector(std::vector<double>{1, -2}, {2}, {.dtype = DType::float64}).to(DType::int64);
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> ops = {
      {"leaky_relu", [](const Tensor& t) { return leaky_relu(t); }},
      {"elu", [](const Tensor& t) { return elu(t); }},
      {"selu", [](const Tensor& t) { return selu(t); }},
      {"celu", [](const Tensor& t) { return celu(t); }},
      {"softplus", [](const Tensor& t) { return softplus(t); }},
      {"hardtanh", [](const Tensor& t) { return hardtanh(t); }},
      {"relu6", [](const Tensor& t) { return relu6(t); }},  // names itself (it runs as hardtanh)
      {"mish", [](const Tensor& t) { return mish(t); }},
      {"hardswish", [](const Tensor& t) { return hardswish(t); }},
      {"hardsigmoid", [](const Tensor& t) { return hardsigmoid(t); }},
  };
  for (const auto& [name, op] : ops) {
    const std::string msg = thrown<DTypeError>([&] { op(i); });
    EXPECT_CONTAINS(msg,
                    name + ": expects a float64, float32, float16 or bfloat16 tensor, got int64");
  }
}

TEST(ActivationTorch, CeluRefusesAlphaZero) {
  const Tensor x = zeros({3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { celu(x, 0.0); }), "celu: alpha cannot be 0");
}

// hardtanh with min_val > max_val is clamp's max_val everywhere (torch's functional checks
// nothing).
TEST(ActivationTorch, HardtanhMinAboveMaxGivesMax) {
  const Tensor x = from_vector(std::vector<double>{-3, 0, 3}, {3}, {.dtype = DType::float32});
  EXPECT_EQ(hardtanh(x, 2.0, 1.0).to_vector<double>(), (std::vector<double>{1, 1, 1}));
}

// elu/selu/celu's negative side is alpha · expm1(x) (torch's vectorised kernel calls Sleef's
// expm1f): exp(x) - 1 lost ~6e-4 relative at x = -1e-4 in float32. Inputs of every magnitude, 64 of
// them so the AVX-512 body runs, within 2 ulp of float64's.
TEST(ActivationTorch, EluNegativeSideIsExpm1AccurateInFloat32) {
  std::vector<double> xs;
  for (int i = 0; i < 64; ++i) xs.push_back(-std::ldexp(1.0, -24 + i / 2) * (i % 2 ? 1.5 : 1.0));
  const Tensor x = from_vector(xs, {64}, {.dtype = DType::float64}).to(DType::float32);
  const std::vector<double> xf = x.to_vector<double>();
  const std::vector<double> y = elu(x).to_vector<double>(), ys = selu(x).to_vector<double>();
  const double selu_coef = 1.6732632423543772848170429916717 * 1.0507009873554804934193349852946;
  for (size_t i = 0; i < xf.size(); ++i) {
    const double want = std::expm1(xf[i]);
    EXPECT_LE(std::fabs(y[i] - want), 2 * std::ldexp(std::fabs(want), -23)) << "elu x=" << xf[i];
    EXPECT_LE(std::fabs(ys[i] - selu_coef * want), 3 * std::ldexp(std::fabs(selu_coef * want), -23))
        << "selu x=" << xf[i];
  }
}

TEST(ActivationTorch, NaNPropagates) {
  const double nan = std::nan("");
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    const Tensor x = from_vector(std::vector<double>{nan}, {1}, {.dtype = DType::float64}).to(dt);
    for (const Tensor& y : {leaky_relu(x), elu(x), selu(x), celu(x), softplus(x), hardtanh(x),
                            relu6(x), mish(x), hardswish(x), hardsigmoid(x)})
      EXPECT_TRUE(std::isnan(y.to_vector<double>()[0])) << dtype_name(dt);
  }
}

// relu's gradient is selected, as torch's threshold_backward: where the output is <= 0 an inf or
// NaN incoming gradient gives 0, not NaN (g * 0); a NaN output passes the gradient. An lp_pool
// window of zeros (pow's infinite gradient at 0 meets relu's zero) has a zero input gradient.
TEST(ActivationTorch, ReluSelectsTheGradient) {
  const double inf = INFINITY, nan = std::nan("");
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    for (const bool create_graph : {false, true}) {
      Tensor x = from_vector(std::vector<double>{0.0, 0.5, -0.5, nan}, {4}).to(dt);
      x.set_requires_grad(true);
      const Tensor g = from_vector(std::vector<double>{nan, inf, inf, 2.0}, {4}).to(dt);
      const Tensor dx = grad({relu(x)}, {x}, {g}, std::nullopt, create_graph)[0];
      const std::vector<double> v = dx.to_vector<double>();
      EXPECT_EQ(v[0], 0.0);
      EXPECT_EQ(v[1], inf);
      EXPECT_EQ(v[2], 0.0);
      EXPECT_EQ(v[3], 2.0);
    }
  }
  Tensor x = from_vector(std::vector<double>{0, 0, 0, 0, 1, 2, 3, 4}, {1, 1, 8});
  x.set_requires_grad(true);
  sum(lp_pool1d(x, 2.0, 2)).backward();
  const std::vector<double> dx = x.grad().to_vector<double>();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(dx[i], 0.0) << i;
  EXPECT_NEAR(dx[4], 1.0 / std::sqrt(5.0), 1e-15);  // torch: 0.4472
}

// The backward nodes carry torch's names (selu is an elu, relu6 a hardtanh, as in torch).
TEST(ActivationTorch, NodeNamesAreTorchs) {
  Tensor x = zeros({2});
  x.set_requires_grad(true);
  const std::vector<std::pair<Tensor, std::string>> cases = {
      {leaky_relu(x), "LeakyReluBackward0"},
      {elu(x), "EluBackward0"},
      {selu(x), "EluBackward0"},
      {celu(x), "CeluBackward0"},
      {softplus(x), "SoftplusBackward0"},
      {hardtanh(x), "HardtanhBackward0"},
      {relu6(x), "HardtanhBackward0"},
      {mish(x), "MishBackward0"},
      {hardswish(x), "HardswishBackward0"},
      {hardsigmoid(x), "HardsigmoidBackward0"},
  };
  for (const auto& [y, name] : cases) EXPECT_EQ(grad_fn_name(y), name);
}

}  // namespace
}  // namespace fabric
