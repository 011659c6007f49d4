// The parameterised activation modules of torch.nn: their reprs as torch 1.13 prints them, their
// outputs against the functional ops, their option checks and their make_activation names.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

struct ModuleRow {
  std::shared_ptr<Module> module;
  std::string repr;  // str(torch.nn.<Module>(...)) in torch 1.13
  std::function<Tensor(const Tensor&)> functional;
};

TEST(ActivationModules, ReprsAndOutputsMatchTorch) {
  const std::vector<ModuleRow> rows = {
      {make<LeakyReLU>(), "LeakyReLU(negative_slope=0.01)",
       [](const Tensor& x) { return leaky_relu(x); }},
      {make<LeakyReLU>({.negative_slope = 0.2}), "LeakyReLU(negative_slope=0.2)",
       [](const Tensor& x) { return leaky_relu(x, 0.2); }},
      {make<ELU>(), "ELU(alpha=1.0)", [](const Tensor& x) { return elu(x); }},
      {make<ELU>({.alpha = 0.5}), "ELU(alpha=0.5)", [](const Tensor& x) { return elu(x, 0.5); }},
      {make<SELU>(), "SELU()", [](const Tensor& x) { return selu(x); }},
      {make<CELU>(), "CELU(alpha=1.0)", [](const Tensor& x) { return celu(x); }},
      {make<CELU>({.alpha = 2.5}), "CELU(alpha=2.5)", [](const Tensor& x) { return celu(x, 2.5); }},
      {make<Softplus>(), "Softplus(beta=1, threshold=20)",
       [](const Tensor& x) { return softplus(x); }},
      {make<Softplus>({.beta = 0.5, .threshold = 10}), "Softplus(beta=0.5, threshold=10)",
       [](const Tensor& x) { return softplus(x, 0.5, 10.0); }},
      {make<Hardtanh>(), "Hardtanh(min_val=-1.0, max_val=1.0)",
       [](const Tensor& x) { return hardtanh(x); }},
      {make<Hardtanh>({.min_val = -0.5, .max_val = 2}), "Hardtanh(min_val=-0.5, max_val=2.0)",
       [](const Tensor& x) { return hardtanh(x, -0.5, 2.0); }},
      {make<ReLU6>(), "ReLU6()", [](const Tensor& x) { return relu6(x); }},
      {make<Mish>(), "Mish()", [](const Tensor& x) { return mish(x); }},
      {make<Hardswish>(), "Hardswish()", [](const Tensor& x) { return hardswish(x); }},
      {make<Hardsigmoid>(), "Hardsigmoid()", [](const Tensor& x) { return hardsigmoid(x); }},
  };
  const Tensor x = mul(randn({4, 5}), 3.0);
  for (const ModuleRow& r : rows) {
    EXPECT_EQ(r.module->str(), r.repr);
    EXPECT_EQ(r.module->forward(x).to_vector<float>(), r.functional(x).to_vector<float>())
        << r.repr;
  }
}

// torch.nn.Hardtanh asserts max_val > min_val; CELU's alpha of 0 would divide by zero.
TEST(ActivationModules, OptionChecks) {
  EXPECT_CONTAINS(thrown<ValueError>([] { Hardtanh({.min_val = 1, .max_val = 1}); }),
                  "Hardtanh: max_val must be greater than min_val, got min_val=1, max_val=1");
  EXPECT_CONTAINS(thrown<ValueError>([] { CELU({.alpha = 0}); }), "CELU: alpha cannot be 0");
}

// The config names (fabric-train's model.activation) give the module with torch's defaults.
TEST(ActivationModules, MakeActivationNames) {
  const std::vector<std::pair<std::string, std::string>> names = {
      {"leaky_relu", "LeakyReLU(negative_slope=0.01)"},
      {"elu", "ELU(alpha=1.0)"},
      {"selu", "SELU()"},
      {"celu", "CELU(alpha=1.0)"},
      {"softplus", "Softplus(beta=1, threshold=20)"},
      {"hardtanh", "Hardtanh(min_val=-1.0, max_val=1.0)"},
      {"relu6", "ReLU6()"},
      {"mish", "Mish()"},
      {"hardswish", "Hardswish()"},
      {"hardsigmoid", "Hardsigmoid()"},
  };
  for (const auto& [name, repr] : names) EXPECT_EQ(make_activation(name)->str(), repr) << name;
  EXPECT_CONTAINS(thrown<ValueError>([] { make_activation("swish"); }),
                  "leaky_relu, elu, selu, celu, softplus, hardtanh, relu6, mish, hardswish or "
                  "hardsigmoid");
}

}  // namespace
}  // namespace fabric::nn
