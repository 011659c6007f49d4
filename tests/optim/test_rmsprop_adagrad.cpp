// RMSprop and Adagrad beyond torch's numbers (test_adaptive_optim_torch.cpp has those): argument
// checks, the state each keeps and when it appears, state turned on later, bf16 parameters, and
// skipped parameters.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/adagrad.h"
#include "optim/rmsprop.h"
#include "optim_test_util.h"

namespace fabric::optim {
namespace {
using namespace testing;

TEST(RMSpropAdagrad, OptionErrorsNameTheArgumentAndItsRange) {
  const double nan = std::nan("");
  const struct {
    std::function<void(Tensor)> make;
    const char* message;
  } cases[] = {
      {[](Tensor p) { RMSprop({p}, {.lr = -1}); },
       "RMSprop: invalid learning rate -1 (expected lr >= 0)"},
      {[](Tensor p) { RMSprop({p}, {.alpha = -0.5}); },
       "RMSprop: invalid alpha -0.5 (expected alpha >= 0)"},
      {[](Tensor p) { RMSprop({p}, {.eps = -1e-8}); },
       "RMSprop: invalid epsilon -1e-08 (expected eps >= 0)"},
      {[](Tensor p) { RMSprop({p}, {.weight_decay = -1}); },
       "invalid weight_decay -1 (expected weight_decay >= 0)"},
      {[](Tensor p) { RMSprop({p}, {.momentum = -0.9}); },
       "invalid momentum -0.9 (expected momentum >= 0)"},
      {[nan](Tensor p) { RMSprop({p}, {.lr = nan}); }, "RMSprop: invalid learning rate nan"},
      {[](Tensor) { RMSprop(std::vector<Tensor>{}, {}); }, "RMSprop: got an empty parameter list"},
      {[](Tensor p) { Adagrad({p}, {.lr = -1}); },
       "Adagrad: invalid learning rate -1 (expected lr >= 0)"},
      {[](Tensor p) { Adagrad({p}, {.lr_decay = -0.1}); },
       "Adagrad: invalid lr_decay -0.1 (expected lr_decay >= 0)"},
      {[](Tensor p) { Adagrad({p}, {.weight_decay = -1}); },
       "invalid weight_decay -1 (expected weight_decay >= 0)"},
      {[](Tensor p) { Adagrad({p}, {.initial_accumulator_value = -1}); },
       "Adagrad: invalid initial_accumulator_value -1 (expected initial_accumulator_value >= 0)"},
      {[](Tensor p) { Adagrad({p}, {.eps = -1}); },
       "Adagrad: invalid epsilon -1 (expected eps >= 0)"},
      {[nan](Tensor p) { Adagrad({p}, {.lr_decay = nan}); }, "Adagrad: invalid lr_decay nan"},
      {[](Tensor) { Adagrad(std::vector<Tensor>{}, {}); }, "Adagrad: got an empty parameter list"},
  };
  for (const auto& c : cases) {
    EXPECT_CONTAINS(thrown<ValueError>([&] { c.make(param({1.0})); }), c.message);
  }
  // A bad value given to a group later is refused too, and changes nothing.
  Tensor p = param({1.0});
  RMSprop opt({p});
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    opt.set_group_hyper_params(0, {{"alpha", -1.0}});
                  }),
                  "invalid alpha");
  EXPECT_EQ(opt.param_groups()[0].options.alpha, 0.99);
}

TEST(RMSpropAdagrad, DefaultsAreTorchs) {
  Tensor p = param({1.0});
  const RMSpropOptions r = RMSprop({p}).defaults();
  EXPECT_EQ(r.lr, 1e-2);
  EXPECT_EQ(r.alpha, 0.99);
  EXPECT_EQ(r.eps, 1e-8);
  EXPECT_EQ(r.weight_decay, 0);
  EXPECT_EQ(r.momentum, 0);
  EXPECT_FALSE(r.centered);
  EXPECT_FALSE(r.maximize);
  Tensor q = param({1.0});
  const AdagradOptions a = Adagrad({q}).defaults();
  EXPECT_EQ(a.lr, 1e-2);
  EXPECT_EQ(a.lr_decay, 0);
  EXPECT_EQ(a.weight_decay, 0);
  EXPECT_EQ(a.initial_accumulator_value, 0);
  EXPECT_EQ(a.eps, 1e-10);
  EXPECT_FALSE(a.maximize);
}

// Which state keys each configuration keeps, as torch's state_dict shows them.
TEST(RMSpropAdagrad, StateKeysFollowTheOptions) {
  const struct {
    RMSpropOptions options;
    std::vector<std::string> keys;
  } cases[] = {
      {{}, {"square_avg", "step"}},
      {{.momentum = 0.9}, {"momentum_buffer", "square_avg", "step"}},
      {{.centered = true}, {"grad_avg", "square_avg", "step"}},
      {{.momentum = 0.5, .centered = true}, {"grad_avg", "momentum_buffer", "square_avg", "step"}},
  };
  for (const auto& c : cases) {
    Tensor p = param({1.0, -2.0}), unused = param({3.0});
    RMSprop opt({p, unused}, c.options);
    EXPECT_EQ(opt.state(p), nullptr) << "lazy, as torch";
    set_grad_values(p, {0.5, 0.25});
    opt.step();
    std::vector<std::string> keys;
    for (const auto& [k, t] : *opt.state(p)) keys.push_back(k);
    EXPECT_EQ(keys, c.keys);
    EXPECT_EQ(opt.state(unused), nullptr) << "a parameter without a gradient is skipped";
    EXPECT_EQ(values(unused), std::vector<double>{3.0});
  }
}

// torch creates Adagrad's state in the constructor: state_dict lists every parameter at once.
// The sums start from the constructor's initial_accumulator_value, a group's own value or not:
// torch 1.13's __init__ reads its argument (fabric filled each group's, which torch does not).
TEST(RMSpropAdagrad, AdagradStateExistsFromConstruction) {
  Tensor a = param({1.0, 2.0}), b = param({3.0});
  Adagrad opt(
      std::vector<Adagrad::Group>{{.params = {a}, .options = {.initial_accumulator_value = 0.25}},
                                  {.params = {b}, .options = {.initial_accumulator_value = 2.0}}},
      {.initial_accumulator_value = 0.5});
  const OptimizerState sd = opt.state_dict();
  ASSERT_EQ(sd.state.size(), 2u);
  EXPECT_EQ(sd.state.at(0).at("step").item<double>(), 0.0);
  EXPECT_EQ(sd.state.at(0).at("step").dtype(), DType::float64);
  EXPECT_EQ(values(sd.state.at(0).at("sum")), (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(values(sd.state.at(1).at("sum")), (std::vector<double>{0.5}));
  // Only stepped parameters count steps.
  set_grad_values(b, {1.0});
  opt.step();
  EXPECT_EQ(opt.state(a)->at("step").item<double>(), 0.0);
  EXPECT_EQ(opt.state(b)->at("step").item<double>(), 1.0);
  EXPECT_EQ(values(opt.state(b)->at("sum")), (std::vector<double>{1.5}));
}

// torch 1.13: Adagrad([{params: [a], lr: .1, initial_accumulator_value: 3}, {params: [b], lr: .1}],
// lr=.1, initial_accumulator_value=1), every gradient 1: both parameters take the same steps.
TEST(RMSpropAdagrad, AdagradGroupsStartFromTheConstructorsAccumulatorAsTorch) {
  Tensor a = param({1.0}), b = param({1.0});
  Adagrad opt(
      std::vector<Adagrad::Group>{
          {.params = {a}, .options = {.lr = 0.1, .initial_accumulator_value = 3.0}},
          {.params = {b}, .options = {.lr = 0.1}}},
      {.lr = 0.1, .initial_accumulator_value = 1.0});
  const std::vector<double> torch_steps = {0.9292893218863453, 0.871554294970716,
                                           0.821554294973216};
  for (double want : torch_steps) {
    set_grad_values(a, {1.0});
    set_grad_values(b, {1.0});
    opt.step();
    EXPECT_EQ(values(a), (std::vector<double>{want}));
    EXPECT_EQ(values(b), (std::vector<double>{want}));
  }
}

// Parameters that arrive after construction (add_param_group; a sharding strategy's
// replace_group_params) get torch's initial state at their first step.
TEST(RMSpropAdagrad, AdagradInitialisesLateParametersAtTheirFirstStep) {
  Tensor a = param({1.0});
  Adagrad opt({a}, {.lr = 0.1, .initial_accumulator_value = 1.0});
  Tensor b = param({1.0});
  opt.add_param_group({b});
  EXPECT_EQ(opt.state(b), nullptr);
  set_grad_values(a, {1.0});
  set_grad_values(b, {1.0});
  opt.step();
  EXPECT_EQ(values(opt.state(b)->at("sum")), (std::vector<double>{2.0}));
  EXPECT_EQ(values(b), values(a)) << "the same update as a parameter known from the start";
  Tensor c = param({1.0});
  opt.replace_group_params(1, {c});
  set_grad_values(c, {1.0});
  opt.step();
  EXPECT_EQ(values(opt.state(c)->at("sum")), (std::vector<double>{2.0}));
}

// Momentum or centering switched on after the first step (by hand or by OneCycleLR's momentum
// cycling) starts its buffer at zero; torch would raise a KeyError.
TEST(RMSpropAdagrad, RMSpropBuffersSwitchedOnLaterStartAtZero) {
  Tensor p = param({1.0});
  RMSprop opt({p}, {.lr = 0.1});
  set_grad_values(p, {0.5});
  opt.step();
  opt.set_group_hyper_params(0, {{"momentum", 0.9}, {"centered", true}});
  set_grad_values(p, {0.25});
  opt.step();
  // Each buffer holds exactly this step's contribution: (1 - alpha) * g, and g / avg.
  const ParamState& st = *opt.state(p);
  EXPECT_EQ(values(st.at("grad_avg"))[0], 0.25 * (1 - 0.99));
  const double ga = values(st.at("grad_avg"))[0], sq = values(st.at("square_avg"))[0];
  EXPECT_EQ(values(st.at("momentum_buffer"))[0], 0.25 / (std::sqrt(std::fma(-ga, ga, sq)) + 1e-8));
}

TEST(RMSpropAdagrad, StateFromAnotherOptimizerIsRefused) {
  Tensor p = param({1.0});
  Adagrad ada({p});
  set_grad_values(p, {1.0});
  ada.step();
  Tensor q = param({1.0});
  RMSprop rms({q});
  rms.load_state_dict(ada.state_dict());  // hyper-parameters it does not know are left alone
  set_grad_values(q, {1.0});
  EXPECT_CONTAINS(thrown<ValueError>([&] { rms.step(); }),
                  "RMSprop: parameter 0 has state but no 'square_avg'");
}

// bf16 parameters keep bf16 state and follow the float32 run closely.
TEST(RMSpropAdagrad, Bfloat16ParametersTrackFloat32) {
  for (const bool ada : {false, true}) {
    Tensor p16 = param({1.0, -0.5, 2.0}, DType::bfloat16), p32 = param(values(p16), DType::float32);
    std::unique_ptr<Optimizer> o16, o32;
    if (ada) {
      o16 = std::make_unique<Adagrad>(std::vector<Tensor>{p16}, AdagradOptions{.lr = 0.05});
      o32 = std::make_unique<Adagrad>(std::vector<Tensor>{p32}, AdagradOptions{.lr = 0.05});
    } else {
      o16 = std::make_unique<RMSprop>(std::vector<Tensor>{p16},
                                      RMSpropOptions{.momentum = 0.9, .centered = true});
      o32 = std::make_unique<RMSprop>(std::vector<Tensor>{p32},
                                      RMSpropOptions{.momentum = 0.9, .centered = true});
    }
    for (int s = 0; s < 4; ++s) {
      const std::vector<double> g = {0.1 * (s + 1), -0.3, 0.05 * s};
      set_grad_values(p16, g);
      set_grad_values(p32, g);
      o16->step();
      o32->step();
    }
    expect_close(values(p16), values(p32), 2e-2, ada ? "Adagrad bf16" : "RMSprop bf16");
    for (const auto& [k, t] : *o16->state(p16))
      if (k != "step") EXPECT_EQ(t.dtype(), DType::bfloat16) << k;
  }
}

}  // namespace
}  // namespace fabric::optim
