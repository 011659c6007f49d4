// RMSprop, Adagrad, Adam, AdamW and SGD against torch 1.13 (adaptive_optim_torch_cases.*): every
// argument set in float64 and float32, the parameter after each of several steps and the final
// state, bit for bit; and the param_groups keys under torch's names.
#include <gtest/gtest.h>

#include <bit>
#include <memory>

#include "adaptive_optim_torch_cases.h"
#include "optim_test_util.h"

namespace fabric::optim {
namespace {
using namespace testing;

const TorchOptimInputs& inputs_for(DType dt) {
  for (const TorchOptimInputs& in : torch_optim_inputs())
    if (in.dtype == dt) return in;
  throw std::runtime_error("no torch inputs for this dtype");
}

std::unique_ptr<Optimizer> make(const TorchOptimCase& c, const Tensor& p) {
  const std::string kind = c.optimizer;
  const std::vector<Tensor> params{p};
  if (kind == "rmsprop") return std::make_unique<RMSprop>(params, c.rmsprop);
  if (kind == "adagrad") return std::make_unique<Adagrad>(params, c.adagrad);
  if (kind == "adam") return std::make_unique<Adam>(params, c.adam);
  if (kind == "adamw") return std::make_unique<AdamW>(params, c.adamw);
  if (kind == "sgd") return std::make_unique<SGD>(params, c.sgd);
  throw std::runtime_error("no optimizer named " + kind);
}

// Bit for bit (float32 values are exact in the float64 vectors); the first few differences named.
void expect_bitwise(const std::vector<double>& got, const std::vector<double>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size() && reported < 3; ++i) {
    if (std::bit_cast<uint64_t>(got[i]) != std::bit_cast<uint64_t>(want[i])) {
      ADD_FAILURE() << what << " [" << i << "]: " << std::hexfloat << got[i] << " vs torch "
                    << want[i];
      ++reported;
    }
  }
}

TEST(AdaptiveOptimTorch, StepsMatchTorchBitForBit) {
  ASSERT_EQ(torch_optim_cases().size(), 64u);
  for (const TorchOptimCase& c : torch_optim_cases()) {
    const TorchOptimInputs& in = inputs_for(c.dtype);
    Tensor p = param(in.init, c.dtype);
    auto opt = make(c, p);
    ASSERT_EQ(c.params.size(), in.grads.size()) << c.name;
    for (size_t s = 0; s < in.grads.size(); ++s) {
      set_grad_values(p, in.grads[s]);
      opt->step();
      expect_bitwise(values(p), c.params[s], detail::cat(c.name, " param after step ", s + 1));
    }
    const ParamState* st = opt->state(p);
    if (c.state.empty() && !c.step) {  // SGD without momentum: torch keeps momentum_buffer None
      EXPECT_TRUE(st == nullptr || st->empty()) << c.name << " keeps state torch has not";
      continue;
    }
    ASSERT_NE(st, nullptr) << c.name;
    if (c.step) EXPECT_EQ(st->at("step").item<double>(), *c.step) << c.name;
    EXPECT_EQ(st->size(), c.state.size() + (c.step ? 1 : 0))
        << c.name << ": the state keys are torch's";
    for (const auto& [key, want] : c.state) {
      ASSERT_TRUE(st->count(key)) << c.name << " has no state '" << key << "'";
      EXPECT_EQ(st->at(key).dtype(), c.dtype) << c.name << " " << key;
      expect_bitwise(values(st->at(key)), want, detail::cat(c.name, " state ", key));
    }
  }
}

// torch 1.13's param_groups keys, less foreach and differentiable (Python-only switches).
TEST(AdaptiveOptimTorch, ParamGroupKeysAreTorchs) {
  const struct {
    const char* name;
    std::function<std::unique_ptr<Optimizer>(Tensor)> make;
    std::vector<std::string> keys;
  } cases[] = {
      {"RMSprop",
       [](Tensor p) { return std::make_unique<RMSprop>(std::vector<Tensor>{p}); },
       {"alpha", "centered", "eps", "lr", "maximize", "momentum", "weight_decay"}},
      {"Adagrad",
       [](Tensor p) { return std::make_unique<Adagrad>(std::vector<Tensor>{p}); },
       {"eps", "initial_accumulator_value", "lr", "lr_decay", "maximize", "weight_decay"}},
  };
  for (const auto& c : cases) {
    auto opt = c.make(param({1.0}));
    const OptimizerState sd = opt->state_dict();
    std::vector<std::string> keys;
    for (const auto& [k, v] : sd.param_groups.at(0).options) keys.push_back(k);
    EXPECT_EQ(keys, c.keys) << c.name;
    EXPECT_STREQ(opt->name(), c.name);
  }
}

}  // namespace
}  // namespace fabric::optim
