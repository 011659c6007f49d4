// NAdam, RAdam, Adamax, Adadelta, Rprop and ASGD: torch 1.13's trajectories (optim2_torch_cases.*)
// bit for bit in float64 and float32 over two parameter groups with their own options, a checkpoint
// round trip that continues identically, torch's param_groups keys and defaults, and argument
// errors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>

#include "optim/cpu_param_loop.h"
#include "optim2_torch_cases.h"
#include "optim_bf16_torch_rows.h"
#include "optim_test_util.h"
#include "tensor/ops.h"

namespace fabric::optim {
namespace {
using namespace testing;

const Optim2Inputs& inputs_for(DType dt) {
  for (const Optim2Inputs& in : optim2_inputs())
    if (in.dtype == dt) return in;
  throw std::runtime_error("no torch inputs for this dtype");
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

std::vector<Tensor> fresh_params(const Optim2Inputs& in) {
  return {param(in.init[0], in.dtype), param(in.init[1], in.dtype)};
}

void step_with(Optimizer& opt, const std::vector<Tensor>& ps, const Optim2Inputs& in, size_t s) {
  for (size_t k = 0; k < ps.size(); ++k) set_grad_values(ps[k], in.grads[s][k]);
  opt.step();
}

void expect_rows_match_torch() {
  ASSERT_EQ(optim2_rows().size(), 36u);
  for (const Optim2Row& row : optim2_rows()) {
    const Optim2Inputs& in = inputs_for(row.dtype);
    const std::vector<Tensor> ps = fresh_params(in);
    auto opt = row.make(ps);
    for (size_t s = 0; s < in.grads.size(); ++s) {
      step_with(*opt, ps, in, s);
      for (size_t k = 0; k < ps.size(); ++k)
        expect_bitwise(values(ps[k]), row.params[k][s],
                       detail::cat(row.name, " param ", k, " after step ", s + 1));
    }
    for (size_t k = 0; k < ps.size(); ++k) {
      const ParamState* st = opt->state(ps[k]);
      ASSERT_NE(st, nullptr) << row.name;
      EXPECT_EQ(st->at("step").item<double>(), row.step) << row.name;
      EXPECT_EQ(st->size(), row.state[k].size() + 1) << row.name << ": the state keys are torch's";
      for (const auto& [key, want] : row.state[k]) {
        ASSERT_TRUE(st->count(key)) << row.name << " has no state '" << key << "'";
        // NAdam's mu_product and ASGD's eta and mu are float32 scalars whatever the parameter's
        // dtype, as torch's.
        const bool scalar = key == "mu_product" || key == "eta" || key == "mu";
        EXPECT_EQ(st->at(key).dtype(), scalar ? DType::float32 : row.dtype)
            << row.name << " " << key;
        expect_bitwise(values(st->at(key)), want, detail::cat(row.name, " state ", key));
      }
    }
  }
}

TEST(Optim2Torch, StepsMatchTorchBitForBit) { expect_rows_match_torch(); }

// The tensor-op step that parameters on CUDA (or in bfloat16/float16) take, run on the CPU's
// float32/float64 rows: one op per torch op, so torch's trajectories bit for bit as well.
TEST(Optim2Torch, TensorOpStepsMatchTorchBitForBit) {
  param_loop::compose_everywhere = true;
  expect_rows_match_torch();
  param_loop::compose_everywhere = false;
}

// bfloat16 parameters (refused until 2026-12-05) take the tensor-op step: each op rounds to
// bfloat16, as torch's single-tensor step on bfloat16 tensors; it stays near float32's path.
TEST(Optim2Torch, Bfloat16ParametersTakeTheTensorOpStep) {
  for (const Optim2Row& row : optim2_rows()) {
    if (row.dtype != DType::float32) continue;
    const Optim2Inputs& in = inputs_for(row.dtype);
    const std::vector<Tensor> ps = fresh_params(in);
    std::vector<Tensor> half;
    for (const Tensor& q : ps)
      half.push_back(q.detach().to(DType::bfloat16).set_requires_grad(true));
    auto opt = row.make(ps);
    auto opt_half = row.make(half);
    for (size_t s = 0; s < in.grads.size(); ++s) {
      step_with(*opt, ps, in, s);
      for (size_t k = 0; k < half.size(); ++k)
        set_grad(half[k], from_vector<double>(in.grads[s][k], half[k].sizes()).to(DType::bfloat16));
      opt_half->step();
    }
    for (size_t k = 0; k < ps.size(); ++k) {
      EXPECT_EQ(half[k].dtype(), DType::bfloat16) << row.name;
      const Tensor diff = abs(sub(half[k].to(DType::float32), ps[k]));
      EXPECT_LE(amax(diff).item<double>(), 0.05 * (1 + amax(abs(ps[k])).item<double>()))
          << row.name;
    }
  }
}

// bfloat16 bit patterns as the (exact) float64 values fabric's tensors take and give.
std::vector<double> bf16_values(const std::vector<uint16_t>& bits) {
  std::vector<double> out;
  for (uint16_t b : bits) out.push_back(std::bit_cast<float>(static_cast<uint32_t>(b) << 16));
  return out;
}

// bfloat16 NAdam and Adamax against torch 1.13 (optim_bf16_torch_rows.h), every step and the final
// state bit for bit: their param.addcdiv_ rounds once (float32 inside), as torch's CPU kernel.
TEST(Optim2Torch, Bfloat16NAdamAdamaxMatchTorchBitForBit) {
  ASSERT_EQ(bf16_optim_rows().size(), 6u);
  for (const Bf16OptimRow& row : bf16_optim_rows()) {
    const Tensor p = param(bf16_values(kBf16OptimInit), DType::bfloat16);
    auto opt = row.make(p);
    for (size_t s = 0; s < kBf16OptimGrads.size(); ++s) {
      set_grad_values(p, bf16_values(kBf16OptimGrads[s]));
      opt->step();
      expect_bitwise(values(p), bf16_values(row.params[s]),
                     detail::cat(row.name, " after step ", s + 1));
    }
    const ParamState* st = opt->state(p);
    ASSERT_NE(st, nullptr) << row.name;
    EXPECT_EQ(st->size(), row.state.size() + 1) << row.name << ": the state keys are torch's";
    for (const auto& [key, want] : row.state) {
      ASSERT_TRUE(st->count(key)) << row.name << " has no state '" << key << "'";
      expect_bitwise(values(st->at(key)), want, detail::cat(row.name, " state ", key));
    }
  }
}

// The reported element: a bfloat16 Adamax step whose update, rounded after each of mul, div and
// add, landed one ulp off torch's 0.09716796875.
TEST(Optim2Torch, Bfloat16AdamaxUpdateRoundsOnce) {
  const Tensor p = param({0.10683343549595714}, DType::bfloat16);
  Adamax opt({p}, {.lr = 0.01, .weight_decay = 0.1});
  set_grad_values(p, {0.0});
  opt.step();
  EXPECT_EQ(values(p)[0], 0.09716796875);
}

// float16, which torch 1.13's CPU addcdiv refuses, rounds Adamax's update once as bfloat16 does:
// the parameter is float16(p + (value * exp_avg) / exp_inf) in float32 from the stored state.
TEST(Optim2Torch, Float16AdamaxUpdateRoundsOnce) {
  const Optim2Inputs& in = inputs_for(DType::float32);
  const std::vector<double> start =
      from_vector<double>(in.init[0]).to(DType::float16).to_vector<double>();
  const Tensor p = param(start, DType::float16);
  const AdamaxOptions o{.lr = 0.05, .betas = {0.8, 0.5}, .eps = 0.5};
  Adamax opt({p}, o);
  set_grad_values(p, in.grads[0][0]);
  opt.step();
  const std::vector<double> m = values(opt.state(p)->at("exp_avg"));
  const std::vector<double> u = values(opt.state(p)->at("exp_inf"));
  const auto value = static_cast<float>(-o.lr / (1 - o.betas[0]));
  std::vector<float> want;
  for (size_t i = 0; i < start.size(); ++i) {
    want.push_back(static_cast<float>(start[i]) +
                   (value * static_cast<float>(m[i])) / static_cast<float>(u[i]));
  }
  expect_bitwise(values(p), from_vector<float>(want).to(DType::float16).to_vector<double>(),
                 "float16 Adamax");
}

// An optimizer of the row's kind over `ps` with every option at its default: load_state_dict has
// to bring back each group's options as well as the state.
std::unique_ptr<Optimizer> with_defaults(const std::string& name, const std::vector<Tensor>& ps) {
  const std::string kind = name.substr(0, name.find('_'));
  if (kind == "nadam") return two_groups<NAdam>(ps, NAdamOptions{}, NAdamOptions{});
  if (kind == "radam") return two_groups<RAdam>(ps, RAdamOptions{}, RAdamOptions{});
  if (kind == "adamax") return two_groups<Adamax>(ps, AdamaxOptions{}, AdamaxOptions{});
  if (kind == "adadelta") return two_groups<Adadelta>(ps, AdadeltaOptions{}, AdadeltaOptions{});
  if (kind == "rprop") return two_groups<Rprop>(ps, RpropOptions{}, RpropOptions{});
  if (kind == "asgd") return two_groups<ASGD>(ps, ASGDOptions{}, ASGDOptions{});
  throw std::runtime_error("no optimizer named " + kind);
}

// Three steps, a checkpoint through flatten/unflatten (copies, as a file would hold), then a fresh
// optimizer with default options and fresh parameters takes it and continues torch's trajectory.
TEST(Optim2Torch, StateDictRoundTripContinuesIdentically) {
  constexpr size_t kBefore = 3;
  for (const Optim2Row& row : optim2_rows()) {
    const Optim2Inputs& in = inputs_for(row.dtype);
    const std::vector<Tensor> ps = fresh_params(in);
    auto opt = row.make(ps);
    for (size_t s = 0; s < kBefore; ++s) step_with(*opt, ps, in, s);
    std::vector<std::pair<std::string, Tensor>> saved;
    for (const auto& [key, t] : opt->state_dict().flatten("optimizer."))
      saved.emplace_back(key, t.clone());
    const std::vector<Tensor> resumed = {param(values(ps[0]), row.dtype),
                                         param(values(ps[1]), row.dtype)};
    auto next = with_defaults(row.name, resumed);
    next->load_state_dict(OptimizerState::unflatten(saved, "optimizer."));
    for (size_t g = 0; g < 2; ++g)
      EXPECT_EQ(next->group_hyper_params(g), opt->group_hyper_params(g)) << row.name;
    for (size_t s = kBefore; s < in.grads.size(); ++s) {
      step_with(*next, resumed, in, s);
      for (size_t k = 0; k < resumed.size(); ++k)
        expect_bitwise(values(resumed[k]), row.params[k][s],
                       detail::cat(row.name, " resumed param ", k, " after step ", s + 1));
    }
  }
}

// torch 1.13's param_groups keys (less foreach, a Python-only switch) and defaults.
TEST(Optim2Torch, ParamGroupKeysAndDefaultsAreTorchs) {
  const struct {
    const char* name;
    std::function<std::unique_ptr<Optimizer>(Tensor)> make;
    HyperParams want;
  } cases[] = {
      {"NAdam",
       [](Tensor p) { return std::make_unique<NAdam>(std::vector<Tensor>{p}); },
       {{"betas", std::vector<double>{0.9, 0.999}},
        {"eps", 1e-8},
        {"lr", 2e-3},
        {"momentum_decay", 4e-3},
        {"weight_decay", 0.0}}},
      {"RAdam",
       [](Tensor p) { return std::make_unique<RAdam>(std::vector<Tensor>{p}); },
       {{"betas", std::vector<double>{0.9, 0.999}},
        {"eps", 1e-8},
        {"lr", 1e-3},
        {"weight_decay", 0.0}}},
      {"Adamax",
       [](Tensor p) { return std::make_unique<Adamax>(std::vector<Tensor>{p}); },
       {{"betas", std::vector<double>{0.9, 0.999}},
        {"eps", 1e-8},
        {"lr", 2e-3},
        {"maximize", false},
        {"weight_decay", 0.0}}},
      {"Adadelta",
       [](Tensor p) { return std::make_unique<Adadelta>(std::vector<Tensor>{p}); },
       {{"eps", 1e-6}, {"lr", 1.0}, {"maximize", false}, {"rho", 0.9}, {"weight_decay", 0.0}}},
      {"Rprop",
       [](Tensor p) { return std::make_unique<Rprop>(std::vector<Tensor>{p}); },
       {{"etas", std::vector<double>{0.5, 1.2}},
        {"lr", 1e-2},
        {"maximize", false},
        {"step_sizes", std::vector<double>{1e-6, 50}}}},
      {"ASGD",
       [](Tensor p) { return std::make_unique<ASGD>(std::vector<Tensor>{p}); },
       {{"alpha", 0.75},
        {"lambd", 1e-4},
        {"lr", 1e-2},
        {"maximize", false},
        {"t0", 1e6},
        {"weight_decay", 0.0}}},
  };
  for (const auto& c : cases) {
    auto opt = c.make(param({1.0}));
    EXPECT_EQ(opt->state_dict().param_groups.at(0).options, c.want) << c.name;
    EXPECT_STREQ(opt->name(), c.name);
  }
}

TEST(Optim2Torch, OptionErrorsNameTheArgumentAndItsRange) {
  const double nan = std::nan("");
  const struct {
    std::function<void(Tensor)> make;
    const char* message;
  } cases[] = {
      {[](Tensor p) { NAdam({p}, {.lr = -1}); },
       "NAdam: invalid learning rate -1 (expected lr >= 0)"},
      {[](Tensor p) {
         NAdam({p}, {.betas = {1.0, 0.999}});
       },
       "NAdam: invalid beta parameter at index 0: 1 (expected 0 <= beta < 1)"},
      {[](Tensor p) { NAdam({p}, {.eps = -1}); }, "NAdam: invalid epsilon -1 (expected eps >= 0)"},
      {[](Tensor p) { NAdam({p}, {.momentum_decay = -0.1}); },
       "NAdam: invalid momentum_decay -0.1 (expected momentum_decay >= 0)"},
      {[](Tensor p) {
         RAdam({p}, {.betas = {0.9, -0.5}});
       },
       "RAdam: invalid beta parameter at index 1: -0.5 (expected 0 <= beta < 1)"},
      {[](Tensor p) { RAdam({p}, {.weight_decay = -1}); },
       "RAdam: invalid weight_decay -1 (expected weight_decay >= 0)"},
      {[nan](Tensor p) { RAdam({p}, {.lr = nan}); }, "RAdam: invalid learning rate nan"},
      {[](Tensor p) { Adamax({p}, {.eps = -1e-8}); },
       "Adamax: invalid epsilon -1e-08 (expected eps >= 0)"},
      {[](Tensor p) {
         Adamax({p}, {.betas = {0.9, 1.5}});
       },
       "Adamax: invalid beta parameter at index 1: 1.5 (expected 0 <= beta < 1)"},
      {[](Tensor p) { Adadelta({p}, {.rho = 1.5}); },
       "Adadelta: invalid rho 1.5 (expected 0 <= rho <= 1)"},
      {[nan](Tensor p) { Adadelta({p}, {.rho = nan}); }, "Adadelta: invalid rho nan"},
      {[](Tensor p) { Adadelta({p}, {.lr = -1}); },
       "Adadelta: invalid learning rate -1 (expected lr >= 0)"},
      {[](Tensor) { Adadelta(std::vector<Tensor>{}, {}); },
       "Adadelta: got an empty parameter list"},
      {[](Tensor) { NAdam(std::vector<NAdam::Group>{}, {}); },
       "NAdam: got an empty list of parameter groups"},
      {[](Tensor p) { Rprop({p}, {.lr = -0.1}); },
       "Rprop: invalid learning rate -0.1 (expected lr >= 0)"},
      {[](Tensor p) {
         Rprop({p}, {.etas = {0.5, 1.0}});
       },
       "Rprop: invalid eta values: 0.5, 1 (expected 0 < etaminus < 1 < etaplus)"},
      {[](Tensor p) {
         Rprop({p}, {.etas = {0.0, 1.2}});
       },
       "Rprop: invalid eta values: 0, 1.2"},
      {[](Tensor p) {
         Rprop({p}, {.step_sizes = {1.0, 0.5}});
       },
       "Rprop: invalid step sizes: 1, 0.5 (expected 0 <= min <= max)"},
      {[](Tensor) { Rprop(std::vector<Tensor>{}, {}); }, "Rprop: got an empty parameter list"},
      {[](Tensor p) { ASGD({p}, {.lr = -1}); },
       "ASGD: invalid learning rate -1 (expected lr >= 0)"},
      {[](Tensor p) { ASGD({p}, {.weight_decay = -0.5}); },
       "ASGD: invalid weight_decay -0.5 (expected weight_decay >= 0)"},
      {[](Tensor) { ASGD(std::vector<ASGD::Group>{}, {}); },
       "ASGD: got an empty list of parameter groups"},
  };
  for (const auto& c : cases) {
    EXPECT_CONTAINS(thrown<ValueError>([&] { c.make(param({1.0})); }), c.message);
  }
  // rho = 1 and rho = 0 are torch's bounds, both allowed.
  EXPECT_NO_THROW(Adadelta({param({1.0})}, {.rho = 1.0}));
  EXPECT_NO_THROW(Adadelta({param({1.0})}, {.rho = 0.0}));
}

// A NAdam checkpoint whose mu_product is not one number is refused on load, naming it.
TEST(Optim2Torch, NAdamMuProductMustBeOneNumber) {
  Tensor p = param({1.0, 2.0});
  NAdam opt({p});
  set_grad_values(p, {0.5, 0.5});
  opt.step();
  OptimizerState sd = opt.state_dict();
  sd.state.at(0)["mu_product"] = from_vector<double>({1.0, 1.0});
  NAdam other({param({1.0, 2.0})});
  EXPECT_CONTAINS(thrown<ValueError>([&] { other.load_state_dict(sd); }),
                  "state.0.mu_product must hold one number");
}

// ASGD checkpoints whose eta or mu is not one number are refused on load, naming it; a state
// without them (another optimizer's) is refused at the step.
TEST(Optim2Torch, ASGDScalarsMustBeOneNumber) {
  for (const char* key : {"eta", "mu"}) {
    Tensor p = param({1.0, 2.0});
    ASGD opt({p});
    set_grad_values(p, {0.5, 0.5});
    opt.step();
    OptimizerState sd = opt.state_dict();
    sd.state.at(0)[key] = from_vector<double>({1.0, 1.0});
    ASGD other({param({1.0, 2.0})});
    EXPECT_CONTAINS(thrown<ValueError>([&] { other.load_state_dict(sd); }),
                    detail::cat("state.0.", key, " must hold one number"));
  }
  Tensor p = param({1.0, 2.0});
  Adamax adamax({p});
  set_grad_values(p, {0.5, 0.5});
  adamax.step();
  ASGD asgd({p});
  asgd.load_state_dict(adamax.state_dict());
  EXPECT_CONTAINS(thrown<ValueError>([&] { asgd.step(); }),
                  "ASGD: parameter 0 has state without a 0-dim float32 'eta'");
}

}  // namespace
}  // namespace fabric::optim
