// The activation layers of nn/activation_extra.h: reprs as torch 1.13 prints them, outputs
// against the functional ops, PReLU's key, init and gradient, RReLU's train/eval forms. Their
// values against torch are the op rows of tests/ops/test_activation_extra_torch.cpp.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

struct ModuleRow {
  std::shared_ptr<Module> module;
  std::string repr;  // str(torch.nn.<Module>(...)) in torch 1.13
  std::function<Tensor(const Tensor&)> functional;
};

TEST(ActivationExtraModules, ReprsAndOutputsMatchTorch) {
  const std::vector<ModuleRow> rows = {
      {make<PReLU>(), "PReLU(num_parameters=1)",
       [](const Tensor& x) { return prelu(x, full({1}, 0.25)); }},
      {make<PReLU>({.num_parameters = 4, .init = -0.5}), "PReLU(num_parameters=4)",
       [](const Tensor& x) { return prelu(x, full({4}, -0.5)); }},
      {make<GLU>(), "GLU(dim=-1)", [](const Tensor& x) { return glu(x); }},
      {make<GLU>({.dim = 0}), "GLU(dim=0)", [](const Tensor& x) { return glu(x, 0); }},
      {make<LogSigmoid>(), "LogSigmoid()", [](const Tensor& x) { return log_sigmoid(x); }},
      {make<Hardshrink>(), "Hardshrink(0.5)", [](const Tensor& x) { return hardshrink(x); }},
      {make<Hardshrink>({.lambd = 1}), "Hardshrink(1.0)",
       [](const Tensor& x) { return hardshrink(x, 1.0); }},
      {make<Softshrink>(), "Softshrink(0.5)", [](const Tensor& x) { return softshrink(x); }},
      {make<Softshrink>({.lambd = 0.3}), "Softshrink(0.3)",
       [](const Tensor& x) { return softshrink(x, 0.3); }},
      {make<Softsign>(), "Softsign()", [](const Tensor& x) { return softsign(x); }},
      {make<Tanhshrink>(), "Tanhshrink()", [](const Tensor& x) { return tanhshrink(x); }},
      {make<Threshold>({.threshold = 0.1, .value = 20}), "Threshold(threshold=0.1, value=20.0)",
       [](const Tensor& x) { return threshold(x, 0.1, 20.0); }},
      {make<RReLU>(), "RReLU(lower=0.125, upper=0.3333333333333333)",
       [](const Tensor& x) { return rrelu(x); }},
      {make<RReLU>({.lower = 0.1, .upper = 0.3}), "RReLU(lower=0.1, upper=0.3)",
       [](const Tensor& x) { return rrelu(x, 0.1, 0.3); }},
      {make<LocalResponseNorm>({.size = 2}), "LocalResponseNorm(2, alpha=0.0001, beta=0.75, k=1.0)",
       [](const Tensor& x) { return local_response_norm(x, 2); }},
      {make<LocalResponseNorm>({.size = 3, .alpha = 1e-3, .beta = 0.5, .k = 2}),
       "LocalResponseNorm(3, alpha=0.001, beta=0.5, k=2.0)",
       [](const Tensor& x) { return local_response_norm(x, 3, 1e-3, 0.5, 2.0); }},
  };
  const Tensor x = mul(randn({4, 4, 2}), 3.0);
  for (const ModuleRow& r : rows) {
    EXPECT_EQ(r.module->str(), r.repr);
    r.module->eval();  // RReLU: its deterministic form
    EXPECT_EQ(r.module->forward(x).to_vector<float>(), r.functional(x).to_vector<float>())
        << r.repr;
  }
}

// Options print as Python's repr of a float: positional for exponents in [-4, 16), else
// scientific with a two-digit signed exponent (torch 1.13's strings).
TEST(ActivationExtraModules, ReprsFormatFloatsAsPython) {
  const std::vector<std::pair<std::shared_ptr<Module>, std::string>> rows = {
      {make<Hardshrink>({.lambd = 1e-5}), "Hardshrink(1e-05)"},
      {make<Softshrink>({.lambd = 0.00012}), "Softshrink(0.00012)"},
      {make<Threshold>({.threshold = 1e16, .value = 123456.789}),
       "Threshold(threshold=1e+16, value=123456.789)"},
      {make<Threshold>({.threshold = -2.5e-7, .value = 1e15}),
       "Threshold(threshold=-2.5e-07, value=1000000000000000.0)"},
      {make<RReLU>({.lower = 0.1, .upper = 1e-20}), "RReLU(lower=0.1, upper=1e-20)"},
  };
  for (const auto& [m, repr] : rows) EXPECT_EQ(m->str(), repr);
}

// PReLU: one parameter "weight" of num_parameters slopes, all init; its gradient sums over all
// but the channel dim (torch's x <= 0 ? x * g : 0).
TEST(ActivationExtraModules, PReLUWeightKeyInitAndGradient) {
  PReLU m({.num_parameters = 3, .init = 0.2});
  EXPECT_EQ(m.state_dict().keys(), (std::vector<std::string>{"weight"}));
  EXPECT_EQ(m.weight.sizes(), (Shape{3}));
  EXPECT_TRUE(m.weight.requires_grad());
  EXPECT_EQ(m.weight.to_vector<float>(), (std::vector<float>{0.2f, 0.2f, 0.2f}));
  const Tensor x = from_vector<float>({-1, 2, -3, 4, -5, 6, 1, -2, 3, -4, 5, -6}, {2, 3, 2});
  sum(m.forward(x)).backward();
  // Each channel's negative elements, summed over the batch and the last dim.
  EXPECT_EQ(m.weight.grad().to_vector<float>(), (std::vector<float>{-1 - 2, -3 - 4, -5 - 6}));
  m.weight.detach().fill_(1.0);
  m.reset_parameters();
  EXPECT_EQ(m.weight.to_vector<float>(), (std::vector<float>{0.2f, 0.2f, 0.2f}));
}

// RReLU follows train/eval: random slopes in [lower, upper] while training (drawn from its
// generator), leaky_relu with their mean in eval.
TEST(ActivationExtraModules, RReLUTrainAndEval) {
  Generator gen(3);
  RReLU m({.lower = 0.2, .upper = 0.4, .generator = &gen});
  const Tensor x = full({1000}, -1.0);
  m.train();
  const std::vector<float> y = m.forward(x).to_vector<float>();
  float lo = 0, hi = -1;
  for (float v : y) {
    EXPECT_LE(v, -0.2f + 1e-6f);
    EXPECT_GE(v, -0.4f - 1e-6f);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_LT(hi - lo, 0.2f + 1e-6f);
  EXPECT_GT(hi - lo, 0.15f);  // the slopes vary
  m.eval();
  for (float v : m.forward(x).to_vector<float>()) EXPECT_FLOAT_EQ(v, -0.3f);
}

}  // namespace
}  // namespace fabric::nn
