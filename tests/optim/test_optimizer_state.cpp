// Optimizer base behaviour: zero_grad, state_dict layout and flattening, save/load round trips
// (through safetensors bytes) that continue exactly like an uninterrupted run, and load errors.
#include <gtest/gtest.h>

#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"
#include "optim_test_util.h"
#include "tensor/safetensors.h"

namespace fabric::optim {
namespace {
using namespace testing;

std::vector<double> grad_at(int step, size_t n, double scale) {
  std::vector<double> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = scale * std::sin(1.0 + step * 0.7 + static_cast<double>(i));
  return g;
}

TEST(Optimizer, ZeroGradSetToNoneOrZeros) {
  Tensor a = param({1.0, 2.0}), b = param({3.0});
  SGD opt({a, b}, {.lr = 0.1});
  set_grad_values(a, {1.0, 1.0});
  set_grad_values(b, {2.0});
  opt.zero_grad(false);
  ASSERT_TRUE(a.grad().defined());
  expect_close(values(a.grad()), {0.0, 0.0}, 0);
  expect_close(values(b.grad()), {0.0}, 0);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(Optimizer, StateDictLayout) {
  Tensor a = param({1.0, 2.0}), b = param({3.0}), c = param({4.0, 5.0, 6.0});
  Adam opt(std::vector<Adam::Group>{{.params = {a, b}, .options = {.lr = 0.1}},
                                    {.params = {c}, .options = {.lr = 0.2, .amsgrad = true}}});
  set_grad_values(a, {1.0, 1.0});
  set_grad_values(c, {1.0, 1.0, 1.0});  // b has no gradient: no state
  opt.step();
  const OptimizerState sd = opt.state_dict();
  ASSERT_EQ(sd.param_groups.size(), 2u);
  EXPECT_EQ(sd.param_groups[0].params, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(sd.param_groups[1].params, (std::vector<int64_t>{2}));
  EXPECT_EQ(std::get<double>(sd.param_groups[1].options.at("lr")), 0.2);
  EXPECT_EQ(std::get<bool>(sd.param_groups[1].options.at("amsgrad")), true);
  EXPECT_EQ(std::get<std::vector<double>>(sd.param_groups[0].options.at("betas")), (std::vector<double>{0.9, 0.999}));
  ASSERT_EQ(sd.state.size(), 2u);
  EXPECT_EQ(sd.state.count(1), 0u);
  EXPECT_EQ(sd.state.at(0).size(), 3u);  // step, exp_avg, exp_avg_sq
  EXPECT_EQ(sd.state.at(2).size(), 4u);  // + max_exp_avg_sq
  EXPECT_TRUE(sd.state.at(0).at("exp_avg").is_same(opt.state(a)->at("exp_avg")));  // live, not copies

  const auto flat = sd.flatten("optimizer.");
  std::map<std::string, Tensor> by_key(flat.begin(), flat.end());
  ASSERT_TRUE(by_key.count("optimizer.state.0.step"));
  EXPECT_EQ(by_key["optimizer.state.0.step"].dim(), 0);
  EXPECT_EQ(by_key["optimizer.state.0.step"].dtype(), DType::float64);
  EXPECT_TRUE(by_key.count("optimizer.state.2.max_exp_avg_sq"));
  EXPECT_EQ(by_key["optimizer.param_groups.1.lr"].dim(), 0);
  EXPECT_EQ(by_key["optimizer.param_groups.1.lr"].dtype(), DType::float64);
  EXPECT_EQ(by_key["optimizer.param_groups.1.lr"].item<double>(), 0.2);
  EXPECT_EQ(by_key["optimizer.param_groups.0.amsgrad"].dtype(), DType::bool_);
  EXPECT_EQ(by_key["optimizer.param_groups.0.betas"].to_vector<double>(), (std::vector<double>{0.9, 0.999}));
  EXPECT_EQ(by_key["optimizer.param_groups.0.params"].dtype(), DType::int64);
  EXPECT_EQ(by_key["optimizer.param_groups.0.params"].to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));

  const OptimizerState back = OptimizerState::unflatten(flat, "optimizer.");
  EXPECT_EQ(back.param_groups.size(), 2u);
  EXPECT_EQ(back.param_groups[1].params, (std::vector<int64_t>{2}));
  EXPECT_EQ(back.param_groups[1].options, sd.param_groups[1].options);
  EXPECT_EQ(back.state.at(2).size(), 4u);
}

// Saves to safetensors bytes and reads them back, as a checkpoint would.
OptimizerState through_safetensors(const OptimizerState& sd) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(serialize_safetensors(sd.flatten("opt.")));
  SafetensorsFile f = parse_safetensors(bytes);
  std::vector<std::pair<std::string, Tensor>> items(f.tensors.begin(), f.tensors.end());
  return OptimizerState::unflatten(items, "opt.");
}

template <class Make>
void check_resume_matches_uninterrupted(Make make, const char* what) {
  const std::vector<double> init_a = {0.5, -1.0, 2.0}, init_b = {1.5, 0.25};
  // Uninterrupted: 5 steps.
  Tensor a = param(init_a), b = param(init_b);
  auto full = make(a, b);
  for (int s = 0; s < 5; ++s) {
    set_grad_values(a, grad_at(s, 3, 1.0));
    set_grad_values(b, grad_at(s, 2, 0.5));
    full->step();
  }
  // Interrupted after 2 steps, saved, loaded into a fresh optimizer over fresh parameters.
  Tensor a1 = param(init_a), b1 = param(init_b);
  auto first = make(a1, b1);
  for (int s = 0; s < 2; ++s) {
    set_grad_values(a1, grad_at(s, 3, 1.0));
    set_grad_values(b1, grad_at(s, 2, 0.5));
    first->step();
  }
  const OptimizerState saved = through_safetensors(first->state_dict());
  Tensor a2 = param(values(a1)), b2 = param(values(b1));
  auto resumed = make(a2, b2);
  resumed->load_state_dict(saved);
  // The first optimizer keeps stepping: the loaded state must not alias it.
  set_grad_values(a1, grad_at(9, 3, 1.0));
  set_grad_values(b1, grad_at(9, 2, 0.5));
  first->step();
  for (int s = 2; s < 5; ++s) {
    set_grad_values(a2, grad_at(s, 3, 1.0));
    set_grad_values(b2, grad_at(s, 2, 0.5));
    resumed->step();
  }
  expect_close(values(a2), values(a), 0, what);
  expect_close(values(b2), values(b), 0, what);
}

TEST(Optimizer, AdamWResumeMatchesUninterruptedRun) {
  check_resume_matches_uninterrupted(
      [](Tensor a, Tensor b) {
        return std::make_unique<AdamW>(std::vector<AdamW::Group>{{.params = {a}, .options = {.lr = 0.05}},
                                                                 {.params = {b}, .options = {.lr = 0.01, .amsgrad = true}}});
      },
      "AdamW");
}

TEST(Optimizer, SGDResumeMatchesUninterruptedRun) {
  check_resume_matches_uninterrupted(
      [](Tensor a, Tensor b) {
        return std::make_unique<SGD>(std::vector<Tensor>{a, b},
                                     SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
      },
      "SGD");
}

TEST(Optimizer, RMSpropResumeMatchesUninterruptedRun) {
  check_resume_matches_uninterrupted(
      [](Tensor a, Tensor b) {
        return std::make_unique<RMSprop>(std::vector<RMSprop::Group>{
            {.params = {a}, .options = {.lr = 0.05, .momentum = 0.9, .centered = true}},
            {.params = {b}, .options = {.lr = 0.01, .weight_decay = 0.1}}});
      },
      "RMSprop");
}

// Adagrad's state exists before the first step (torch creates it in the constructor): the saved
// state of a parameter never stepped is loaded too.
TEST(Optimizer, AdagradResumeMatchesUninterruptedRun) {
  check_resume_matches_uninterrupted(
      [](Tensor a, Tensor b) {
        return std::make_unique<Adagrad>(
            std::vector<Tensor>{a, b},
            AdagradOptions{.lr = 0.1, .lr_decay = 0.05, .initial_accumulator_value = 0.1});
      },
      "Adagrad");
  Tensor a = param({1.0}), b = param({2.0});
  Adagrad src({a, b}, {.initial_accumulator_value = 0.5});
  Tensor a2 = param({1.0}), b2 = param({2.0});
  Adagrad dst({a2, b2}, {.initial_accumulator_value = 3.0});
  dst.load_state_dict(through_safetensors(src.state_dict()));
  EXPECT_EQ(values(dst.state(b2)->at("sum")), std::vector<double>{0.5});
  EXPECT_EQ(dst.param_groups()[0].options.initial_accumulator_value, 0.5);
}

TEST(Optimizer, LoadTakesHyperParametersAndConvertsStateDtype) {
  Tensor a = param({1.0, 2.0});
  Adam src({a}, {.lr = 0.25, .betas = {0.8, 0.9}});
  set_grad_values(a, {1.0, -1.0});
  src.step();
  Tensor b = param({1.0, 2.0}, DType::float32);
  Adam dst({b}, {.lr = 0.001});
  dst.load_state_dict(src.state_dict());
  EXPECT_EQ(dst.param_groups()[0].options.lr, 0.25);
  EXPECT_EQ(dst.param_groups()[0].options.betas[0], 0.8);
  const ParamState* st = dst.state(b);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->at("exp_avg").dtype(), DType::float32);
  EXPECT_EQ(st->at("step").dtype(), DType::float64);
  EXPECT_FALSE(st->at("exp_avg").storage() == src.state(a)->at("exp_avg").storage());
}

TEST(Optimizer, LoadErrors) {
  Tensor a = param({1.0, 2.0}), b = param({3.0});
  Adam src(std::vector<Adam::Group>{{.params = {a}}, {.params = {b}}});
  set_grad_values(a, {1.0, 1.0});
  set_grad_values(b, {1.0});
  src.step();
  const OptimizerState sd = src.state_dict();

  Tensor c = param({1.0, 2.0}), d = param({3.0});
  Adam one_group({c, d});
  EXPECT_CONTAINS(thrown<ValueError>([&] { one_group.load_state_dict(sd); }),
                  "the state dict has 2 parameter groups but the optimizer has 1");

  Adam wrong_count(std::vector<Adam::Group>{{.params = {c, d}}, {.params = {param({0.0})}}});
  EXPECT_CONTAINS(thrown<ValueError>([&] { wrong_count.load_state_dict(sd); }),
                  "parameter group 0 holds 1 parameters in the state dict but 2 in the optimizer");

  Tensor e = param({1.0, 2.0, 3.0}), f = param({3.0});
  Adam wrong_shape(std::vector<Adam::Group>{{.params = {e}}, {.params = {f}}});
  EXPECT_CONTAINS(thrown<ValueError>([&] { wrong_shape.load_state_dict(sd); }),
                  "has shape (2,) but parameter 0 has shape (3,)");

  // A bad hyper-parameter leaves the optimizer untouched.
  Tensor g = param({1.0, 2.0}), h = param({3.0});
  Adam target(std::vector<Adam::Group>{{.params = {g}, .options = {.lr = 0.5}}, {.params = {h}}});
  OptimizerState bad = sd;
  bad.param_groups[1].options["betas"] = 0.9;
  EXPECT_CONTAINS(thrown<ValueError>([&] { target.load_state_dict(bad); }), "'betas' must be a tuple of 2 numbers");
  EXPECT_EQ(target.param_groups()[0].options.lr, 0.5);
  EXPECT_EQ(target.state(g), nullptr);

  OptimizerState orphan = sd;
  orphan.state[7] = orphan.state.at(0);
  EXPECT_CONTAINS(thrown<ValueError>([&] { target.load_state_dict(orphan); }), "state.7 belongs to no parameter");

  OptimizerState invalid = sd;
  invalid.param_groups[0].options["weight_decay"] = -1.0;
  EXPECT_CONTAINS(thrown<ValueError>([&] { target.load_state_dict(invalid); }),
                  "invalid weight_decay -1");
  invalid = sd;
  invalid.param_groups[0].options["lr"] = std::nan("");
  EXPECT_CONTAINS(thrown<ValueError>([&] { target.load_state_dict(invalid); }),
                  "Adam.load_state_dict: parameter group 0 has lr nan (expected a finite number)");
  EXPECT_EQ(target.param_groups()[0].options.lr, 0.5);
}

// An lr below 0 loads as saved, as in torch: a scheduler may leave one (OneCycleLR with linear
// annealing one step past its end), and a finished run's checkpoint holds it. The constructor
// still refuses it.
TEST(Optimizer, LoadsTheLrASchedulerLeftBelowZero) {
  Tensor a = param({1.0}), b = param({1.0});
  SGD source({a}, {.lr = 0.1, .momentum = 0.9});
  source.set_lr(0, -0.004);
  SGD target({b}, {.lr = 0.1, .momentum = 0.9});
  target.load_state_dict(source.state_dict());
  EXPECT_EQ(target.lr(0), -0.004);
  // OneCycleLR then sets the momentum of the resumed step: the lr is not checked again.
  target.set_group_hyper_params(0, {{"momentum", 0.85}});
  EXPECT_EQ(target.param_groups()[0].options.momentum, 0.85);
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    target.set_group_hyper_params(0, {{"momentum", -1.0}});
                  }),
                  "invalid momentum -1");
  EXPECT_CONTAINS(thrown<ValueError>([&] { SGD({param({1.0})}, {.lr = -0.004}); }),
                  "invalid learning rate -0.004");
}

TEST(Optimizer, UnflattenErrors) {
  const Tensor x = scalar_tensor(1.0, {.dtype = DType::float64});
  EXPECT_CONTAINS(thrown<ValueError>([&] { OptimizerState::unflatten({{"statex.0.step", x}}); }),
                  "key 'statex.0.step' is neither");
  EXPECT_CONTAINS(thrown<ValueError>([&] { OptimizerState::unflatten({{"state.a.step", x}}); }), "is neither");
  EXPECT_CONTAINS(thrown<ValueError>([&] { OptimizerState::unflatten({{"param_groups.1.lr", x}}); }),
                  "parameter group 0 is missing");
  EXPECT_CONTAINS(thrown<ValueError>([&] { OptimizerState::unflatten({{"param_groups.0.lr", x}}); }),
                  "param_groups.0.params is missing");
  EXPECT_CONTAINS(thrown<ValueError>([&] { OptimizerState::unflatten({{"param_groups.0.params", x}}); }),
                  "must be a 1-D integer tensor");
  // Keys outside the prefix are ignored.
  EXPECT_TRUE(OptimizerState::unflatten({{"model.weight", x}}, "optimizer.").param_groups.empty());
}

TEST(Optimizer, StateDtypeMismatchAfterCastIsReported) {
  Tensor a = param({1.0, 2.0});
  Adam opt({a});
  set_grad_values(a, {1.0, 1.0});
  opt.step();
  a.set_data(a.detach().to(DType::float32));
  set_grad_values(a, {1.0, 1.0});
  EXPECT_CONTAINS(thrown<DTypeError>([&] { opt.step(); }), "state 'exp_avg' of parameter 0 has dtype float64");
}

}  // namespace
}  // namespace fabric::optim
