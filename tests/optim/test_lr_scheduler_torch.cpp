// PyTorch's LR schedulers against torch 1.13 itself: each scheduler's get_last_lr() sequence (after
// construction, then after every step) equals the one torch's step() gives
// (lr_scheduler_torch_cases.cpp), a scheduler state saved mid-run continues identically, OneCycleLR
// cycles SGD's momentum and Adam's beta1 as torch does, and bad arguments raise ValueError naming
// them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>

#include "lr_scheduler_torch_cases.h"
#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/cyclic_lr.h"
#include "optim/lr_composition.h"
#include "optim/lr_decay.h"
#include "optim/lr_warm_restarts.h"
#include "optim/multiplicative_lr.h"
#include "optim/one_cycle_lr.h"
#include "optim/sgd.h"
#include "optim_test_util.h"
#include "warm_restarts_epoch_cases.h"

namespace fabric::optim {
namespace {
using namespace testing;

std::unique_ptr<SGD> sgd_for(const std::vector<double>& lrs) {
  std::vector<SGD::Group> groups;
  for (double lr : lrs)
    groups.push_back({.params = {param({0.0})}, .options = {.lr = lr, .momentum = 0.9}});
  return std::make_unique<SGD>(std::move(groups));
}

// Steps `s` from step `from` (its number of steps so far) to `to`, appending get_last_lr() after
// each step; the optimizer's lrs must equal it.
void run(const TorchCase& c, LRScheduler& s, int from, int to, std::vector<double>& out) {
  for (int i = from; i < to; ++i) {
    if (c.poke.step == i) s.optimizer().set_lr(0, c.poke.lr);
    s.step();
    for (size_t g = 0; g < c.lrs.size(); ++g)
      EXPECT_EQ(s.optimizer().lr(g), s.get_last_lr()[g]) << c.name << " " << i;
    out.insert(out.end(), s.get_last_lr().begin(), s.get_last_lr().end());
  }
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

TEST(LRSchedulerTorch, SequencesMatchTorch) {
  double worst = 0;
  for (const TorchCase& c : torch_lr_cases()) {
    auto opt = sgd_for(c.lrs);
    Sched s = c.make(*opt);
    std::vector<double> got = s->get_last_lr();
    run(c, *s, 0, c.steps, got);
    expect_close(got, c.expected, 1e-15, c.name);
    worst = std::max(worst, max_abs_difference(got, c.expected));
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", worst);
  RecordProperty("max_abs_difference", text);  // in the --gtest_output=xml report
}

TEST(LRSchedulerTorch, StateRoundTripContinuesIdentically) {
  for (const TorchCase& c : torch_lr_cases()) {
    const int half = c.steps / 2 + 1;
    auto opt = sgd_for(c.lrs);
    Sched s = c.make(*opt);
    std::vector<double> first;
    run(c, *s, 0, half, first);
    const auto sched_items = s->state_dict().flatten("scheduler.");
    const auto opt_items = opt->state_dict().flatten("optimizer.");
    std::vector<double> rest_a;
    run(c, *s, half, c.steps, rest_a);

    // A fresh optimizer and scheduler, as a resumed run builds them, then the saved state.
    auto opt2 = sgd_for(c.lrs);
    Sched s2 = c.make(*opt2);
    opt2->load_state_dict(OptimizerState::unflatten(opt_items, "optimizer."));
    s2->load_state_dict(SchedulerState::unflatten(sched_items, "scheduler."));
    EXPECT_EQ(s2->last_epoch(), half) << c.name;
    std::vector<double> rest_b;
    run(c, *s2, half, c.steps, rest_b);
    EXPECT_EQ(rest_b, rest_a) << c.name;
    const std::vector<double> torch_rest(
        c.expected.begin() + static_cast<std::ptrdiff_t>((half + 1) * c.lrs.size()),
        c.expected.end());
    expect_close(rest_b, torch_rest, 1e-15, c.name);
  }
}

TEST(LRSchedulerTorch, CompositeStateMustHoldItsSchedulers) {
  auto opt = sgd_for({0.1});
  SequentialLR seq(
      *opt,
      {std::make_shared<ConstantLR>(*opt, 0.5, 2), std::make_shared<ExponentialLR>(*opt, 0.9)},
      {3});
  SchedulerState st = seq.state_dict();
  ASSERT_EQ(st.schedulers.size(), 2u);
  EXPECT_EQ(st.schedulers[1].last_epoch, -1);  // its milestone has not come
  SchedulerState one = st;
  one.schedulers.pop_back();
  EXPECT_CONTAINS(thrown<ValueError>([&] { seq.load_state_dict(one); }),
                  "holds 1 schedulers' states but this SequentialLR composes 2");
  ExponentialLR plain(*opt, 0.5);
  EXPECT_CONTAINS(thrown<ValueError>([&] { plain.load_state_dict(st); }),
                  "ExponentialLR composes none");
  // The nested keys: the composite's own under the prefix, each scheduler's under _schedulers.<i>.
  const auto items = st.flatten("s.");
  EXPECT_EQ(items.size(), 9u);
  EXPECT_EQ(items[3].first, "s._schedulers.0.last_epoch");
  EXPECT_EQ(items[8].first, "s._schedulers.1._last_lr");
  EXPECT_EQ(SchedulerState::unflatten(items, "s.").schedulers.size(), 2u);
}

// OneCycleLR sets the momentum of each step (torch 1.13, max_lr 0.1, total_steps 20, steps 0..20).
TEST(LRSchedulerTorch, OneCycleCyclesMomentumAndBeta1) {
  struct Case {
    const char* name;
    OneCycleOptions options;
    std::vector<double> expected;
  };
  const std::vector<Case> cases = {
      {"two-phase cos",
       {.max_lr = {0.1}, .total_steps = 20},
       {0.94999999999999996, 0.94045084971874737, 0.91545084971874735, 0.88454915028125258,
        0.85954915028125256, 0.84999999999999998, 0.8512536043909088,  0.85495155660487898,
        0.86090842587659844, 0.86882550990706331, 0.87830581304412203, 0.88887395330218422,
        0.89999999999999991, 0.91112604669781572, 0.9216941869558779,  0.93117449009293662,
        0.9390915741234015,  0.94504844339512095, 0.94874639560909113, 0.94999999999999996,
        0.94874639560909113}},
      {"three-phase linear, momentum 0.8 to 0.9",
       {.max_lr = {0.1},
        .total_steps = 20,
        .anneal_strategy = "linear",
        .base_momentum = {0.8},
        .max_momentum = {0.9},
        .three_phase = true},
       {0.90000000000000002, 0.88,
        0.85999999999999999, 0.84000000000000008,
        0.82000000000000006, 0.80000000000000004,
        0.82000000000000006, 0.84000000000000008,
        0.85999999999999999, 0.88,
        0.90000000000000002, 0.90000000000000002,
        0.90000000000000002, 0.90000000000000002,
        0.90000000000000002, 0.90000000000000002,
        0.90000000000000002, 0.90000000000000002,
        0.90000000000000002, 0.90000000000000002,
        0.90000000000000002}},
  };
  for (const Case& c : cases) {
    Tensor a = param({0.0}), b = param({0.0});
    SGD sgd({a}, {.lr = 0.1, .momentum = 0.9});
    Adam adam({b}, {.lr = 0.1, .betas = {0.9, 0.999}});
    OneCycleLR s1(sgd, c.options), s2(adam, c.options);
    std::vector<double> momentum, beta1;
    for (int i = 0; i <= 20; ++i) {
      if (i > 0) s1.step(), s2.step();
      momentum.push_back(std::get<double>(sgd.group_hyper_params(0).at("momentum")));
      beta1.push_back(adam.param_groups()[0].options.betas[0]);
      EXPECT_EQ(adam.param_groups()[0].options.betas[1], 0.999) << c.name;
    }
    expect_close(momentum, c.expected, 1e-15, c.name);
    expect_close(beta1, c.expected, 1e-15, c.name);
  }
  // Without cycle_momentum the momentum is left alone.
  Tensor p = param({0.0});
  SGD sgd({p}, {.lr = 0.1, .momentum = 0.5});
  OneCycleLR s(sgd, {.max_lr = {0.1}, .total_steps = 10, .cycle_momentum = false});
  s.step();
  EXPECT_EQ(sgd.param_groups()[0].options.momentum, 0.5);
}

// CyclicLR sets the momentum of each step (torch 1.13: SGD with momentum 0.9 and lr 0.1, steps
// 0..12; torch 1.13 takes no betas there, so Adam's beta1 is held to the same sequence, as
// OneCycleLR's).
TEST(LRSchedulerTorch, CyclicCyclesMomentumAndBeta1) {
  struct Case {
    const char* name;
    CyclicOptions options;
    std::vector<double> expected;
  };
  const std::vector<Case> cases = {
      {"triangular2",
       {.base_lr = {0.01},
        .max_lr = {0.1},
        .step_size_up = 2,
        .step_size_down = 3,
        .mode = "triangular2"},
       {0.90000000000000002, 0.85000000000000009, 0.80000000000000004, 0.83333333333333337,
        0.8666666666666667, 0.90000000000000002, 0.875, 0.85000000000000009, 0.8666666666666667,
        0.8833333333333333, 0.90000000000000002, 0.88750000000000007, 0.875}},
      {"exp_range, momentum 0.85 to 0.95",
       {.base_lr = {0.01},
        .max_lr = {0.1},
        .step_size_up = 3,
        .mode = "exp_range",
        .gamma = 0.9,
        .base_momentum = {0.85},
        .max_momentum = {0.95}},
       {0.94999999999999996, 0.91999999999999993, 0.89600000000000002, 0.87709999999999999,
        0.90625999999999995, 0.93031699999999995, 0.94999999999999996, 0.93405676999999998,
        0.92130218600000002, 0.91125795109999996, 0.92675477066, 0.93953964679699997,
        0.94999999999999996}},
  };
  for (const Case& c : cases) {
    Tensor a = param({0.0}), b = param({0.0});
    SGD sgd({a}, {.lr = 0.1, .momentum = 0.9});
    Adam adam({b}, {.lr = 0.1, .betas = {0.9, 0.999}});
    CyclicLR s1(sgd, c.options), s2(adam, c.options);
    std::vector<double> momentum, beta1;
    for (int i = 0; i <= 12; ++i) {
      if (i > 0) s1.step(), s2.step();
      momentum.push_back(std::get<double>(sgd.group_hyper_params(0).at("momentum")));
      beta1.push_back(adam.param_groups()[0].options.betas[0]);
      EXPECT_EQ(adam.param_groups()[0].options.betas[1], 0.999) << c.name;
    }
    EXPECT_EQ(momentum, c.expected) << c.name;
    EXPECT_EQ(beta1, c.expected) << c.name;
  }
  // Without cycle_momentum the momentum is left alone, and an optimizer without any is fine.
  Tensor p = param({0.0});
  SGD sgd({p}, {.lr = 0.1});
  CyclicLR s(sgd, {.base_lr = {0.01}, .max_lr = {0.1}, .step_size_up = 2, .cycle_momentum = false});
  s.step();
  EXPECT_EQ(sgd.param_groups()[0].options.momentum, 0.0);
  EXPECT_NEAR(sgd.lr(0), 0.055, 1e-15);
}

TEST(LRSchedulerTorch, OneCycleStopsAtTotalSteps) {
  Tensor p = param({0.0});
  SGD sgd({p}, {.lr = 0.1, .momentum = 0.9});
  OneCycleLR s(sgd, {.max_lr = {0.1}, .epochs = 2, .steps_per_epoch = 3});
  EXPECT_EQ(s.total_steps(), 6);
  for (int i = 0; i < 6; ++i) s.step();  // step 6 == total_steps is still allowed, as in torch
  EXPECT_CONTAINS(thrown<ValueError>([&] { s.step(); }),
                  "tried to step 8 times. The specified number of total steps is 6");
}

// torch's T_i and T_cur after each step (T_0 2, T_mult 3: cycles of 2, 6, 18 steps), also after a
// load.
TEST(LRSchedulerTorch, WarmRestartsCycles) {
  Tensor p = param({0.0});
  SGD sgd({p}, {.lr = 1.0});
  CosineAnnealingWarmRestarts s(sgd, 2, 3);
  std::vector<int64_t> t_i;
  std::vector<double> t_cur;
  for (int i = 0; i < 10; ++i, s.step()) t_i.push_back(s.T_i()), t_cur.push_back(s.T_cur());
  EXPECT_EQ(t_i, (std::vector<int64_t>{2, 2, 6, 6, 6, 6, 6, 6, 18, 18}));
  EXPECT_EQ(t_cur, (std::vector<double>{0, 1, 0, 1, 2, 3, 4, 5, 0, 1}));
  Tensor q = param({0.0});
  SGD sgd2({q}, {.lr = 1.0});
  CosineAnnealingWarmRestarts s2(sgd2, 2, 3);
  s2.load_state_dict(s.state_dict());
  EXPECT_EQ(s2.T_i(), 18);
  EXPECT_EQ(s2.T_cur(), 2);
}

// step(epoch) with fractional epochs between plain steps: the lrs, T_cur and T_i after each call
// equal torch's (warm_restarts_epoch_cases.cpp), and a state saved after any call (a fractional
// T_cur included) continues identically in a fresh scheduler built with the same arguments.
TEST(LRSchedulerTorch, WarmRestartsFractionalEpochsMatchTorch) {
  auto call = [](CosineAnnealingWarmRestarts& s, const std::optional<double>& epoch) {
    if (epoch) {
      s.step(*epoch);
    } else {
      s.step();
    }
  };
  for (const WarmRestartsEpochCase& c : torch_warm_restarts_epoch_cases()) {
    auto opt = sgd_for(c.lrs);
    CosineAnnealingWarmRestarts s(*opt, c.t_0, c.t_mult, c.eta_min);
    std::vector<double> got, t_cur;
    std::vector<int64_t> t_i;
    for (size_t i = 0; i < c.calls.size(); ++i) {
      call(s, c.calls[i]);
      got.insert(got.end(), s.get_last_lr().begin(), s.get_last_lr().end());
      t_cur.push_back(s.T_cur());
      t_i.push_back(s.T_i());
      if (c.calls[i]) EXPECT_EQ(s.last_epoch(), static_cast<int64_t>(std::floor(*c.calls[i])));

      // Saved here, resumed in a fresh scheduler: the rest of the calls give the same lrs.
      auto opt2 = sgd_for(c.lrs);
      CosineAnnealingWarmRestarts s2(*opt2, c.t_0, c.t_mult, c.eta_min);
      s2.load_state_dict(SchedulerState::unflatten(s.state_dict().flatten("s."), "s."));
      EXPECT_EQ(s2.T_cur(), s.T_cur()) << c.name << " " << i;
      EXPECT_EQ(s2.T_i(), s.T_i()) << c.name << " " << i;
      for (size_t j = i + 1; j < c.calls.size(); ++j) {
        call(s2, c.calls[j]);
        for (size_t g = 0; g < c.lrs.size(); ++g)
          EXPECT_EQ(s2.get_last_lr()[g], c.expected[j * c.lrs.size() + g])
              << c.name << " saved after " << i << ", call " << j;
      }
    }
    EXPECT_EQ(got, c.expected) << c.name;
    EXPECT_EQ(t_cur, c.t_cur) << c.name;
    EXPECT_EQ(t_i, c.t_i) << c.name;
  }
  auto opt = sgd_for({0.1});
  CosineAnnealingWarmRestarts s(*opt, 3);
  EXPECT_CONTAINS(thrown<ValueError>([&] { s.step(-0.5); }),
                  "CosineAnnealingWarmRestarts.step: expected non-negative epoch, but got -0.5");
}

// The step after the last extrapolates a linear anneal as torch's does: the lr goes below 0 and
// Adam's beta1 to 1 (torch 1.13: max_lr 0.01, 4 steps, pct_start 0.5). Adam refuses a beta1 of 1,
// so it keeps the last step's; the step must not throw (a 4-step fabric-train run did).
TEST(LRSchedulerTorch, OneCycleLinearStepsPastTheEnd) {
  Tensor p = param({0.0});
  Adam adam({p}, {.lr = 0.01});
  OneCycleLR s(adam,
               {.max_lr = {0.01}, .total_steps = 4, .pct_start = 0.5, .anneal_strategy = "linear"});
  for (int i = 0; i < 4; ++i) s.step();
  EXPECT_EQ(adam.lr(0), -0.0049999399999999996);
  EXPECT_EQ(adam.param_groups()[0].options.betas[0], 0.94999999999999996);  // torch: 1
}

// A later scheduler on the same optimizer takes the first one's initial lr as its base (torch's
// param_group['initial_lr']), not the lr the first one has set since.
TEST(LRSchedulerTorch, SchedulersShareTheInitialLr) {
  Tensor p = param({0.0});
  SGD sgd({p}, {.lr = 1.0});
  LinearLR warmup(sgd, 0.1, 1.0, 5);
  EXPECT_EQ(sgd.lr(0), 0.1);
  CosineAnnealingLR cosine(sgd, 10);
  EXPECT_EQ(cosine.base_lrs(), std::vector<double>{1.0});
  EXPECT_EQ(sgd.initial_lr(0), 1.0);
  // OneCycleLR sets it to max_lr / div_factor.
  OneCycleLR one(sgd, {.max_lr = {2.0}, .total_steps = 10, .cycle_momentum = false});
  EXPECT_EQ(sgd.initial_lr(0), 0.08);
  EXPECT_EQ(one.base_lrs(), std::vector<double>{0.08});
}

// Bad arguments: ValueError naming the argument and what it must be (PyTorch's checks, messages
// after torch's; nothing is written into the optimizer).
TEST(LRSchedulerTorch, ArgumentErrors) {
  Tensor a = param({0.0}), b = param({0.0});
  SGD opt(std::vector<SGD::Group>{{.params = {a}, .options = {.lr = 0.1, .momentum = 0.9}},
                                  {.params = {b}, .options = {.lr = 0.2, .momentum = 0.9}}});
  SGD other({param({0.0})}, {.lr = 0.1});
  const std::vector<std::pair<std::function<void()>, const char*>> cases = {
      {[&] { LinearLR(opt, 0.0); },
       "LinearLR: start_factor (the starting multiplicative factor) must be in "
       "(0, 1], got 0"},
      {[&] { LinearLR(opt, 1.5); },
       "start_factor (the starting multiplicative "
       "factor) must be in (0, 1], got 1.5"},
      {[&] { LinearLR(opt, 0.5, -0.1); },
       "LinearLR: end_factor (the ending multiplicative factor) must be in [0, "
       "1], got -0.1"},
      {[&] { LinearLR(opt, 0.5, 1.0, 0); }, "LinearLR: total_iters must be >= 1, got 0"},
      {[&] { CosineAnnealingLR(opt, 0); },
       "CosineAnnealingLR: T_max (the steps to eta_min) must be >= 1, got 0"},
      {[&] { PolynomialLR(opt, 0); }, "PolynomialLR: total_iters must be >= 1, got 0"},
      {[&] { CosineAnnealingWarmRestarts(opt, 0); },
       "CosineAnnealingWarmRestarts: expected positive integer T_0 (the first cycle's steps), but "
       "got 0"},
      {[&] { CosineAnnealingWarmRestarts(opt, 3, 0); },
       "CosineAnnealingWarmRestarts: expected integer T_mult >= 1 (each cycle's length over the "
       "last one's), but got 0"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .total_steps = 0}); },
       "OneCycleLR: expected positive integer total_steps, but got 0"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}}); },
       "you must define either total_steps OR (epochs AND steps_per_epoch)"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .epochs = 2}); },
       "you must define either total_steps OR (epochs AND steps_per_epoch)"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .epochs = -1, .steps_per_epoch = 3}); },
       "expected positive integer epochs, but got -1"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .epochs = 2, .steps_per_epoch = 0}); },
       "expected positive integer steps_per_epoch, but got 0"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .total_steps = 10, .pct_start = 1.5}); },
       "expected float between 0 and 1 pct_start, but got 1.5"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .total_steps = 10, .pct_start = -0.1}); },
       "expected float between 0 and 1 pct_start, but got -0.1"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .total_steps = 10, .anneal_strategy = "cosine"}); },
       "anneal_strategy must be one of 'cos' or 'linear', instead got "
       "'cosine'"},
      {[&] {
         OneCycleLR(opt, {.max_lr = {0.1, 0.2, 0.3}, .total_steps = 10});
       },
       "OneCycleLR: expected 2 values for max_lr (one per parameter group) or "
       "one for all, got 3"},
      {[&] { OneCycleLR(opt, {.max_lr = {}, .total_steps = 10}); },
       "OneCycleLR: max_lr is required"},
      {[&] {
         OneCycleLR(opt, {.max_lr = {0.1}, .total_steps = 10, .max_momentum = {0.9, 0.9, 0.9}});
       },
       "expected 2 values for max_momentum"},
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .total_steps = 10, .base_momentum = {}}); },
       "expected 2 values for base_momentum"},
      // pct_start * total_steps == 1: the warm-up phase spans no steps (torch: ZeroDivisionError).
      {[&] { OneCycleLR(opt, {.max_lr = {0.1}, .total_steps = 10, .pct_start = 0.1}); },
       "OneCycleLR: phase 1 spans no steps (it starts and ends at step 0)"},
      {[&] { CyclicLR(opt, {.max_lr = {0.1}}); },
       "CyclicLR: base_lr and max_lr are required (one value, or one per parameter group)"},
      {[&] {
         CyclicLR(opt, {.base_lr = {0.01, 0.01, 0.01}, .max_lr = {0.1}});
       },
       "CyclicLR: expected 2 values for base_lr (one per parameter group) or one for all, got 3"},
      {[&] { CyclicLR(opt, {.base_lr = {0.01}, .max_lr = {0.1}, .step_size_up = 0}); },
       "CyclicLR: step_size_up (the steps from base_lr to max_lr) must be > 0, got 0"},
      {[&] { CyclicLR(opt, {.base_lr = {0.01}, .max_lr = {0.1}, .step_size_down = -1}); },
       "CyclicLR: step_size_down (the steps from max_lr back to base_lr) must be >= 0, got -1"},
      {[&] { CyclicLR(opt, {.base_lr = {0.01}, .max_lr = {0.1}, .mode = "triangle"}); },
       "CyclicLR: mode is invalid and scale_fn is None (mode must be 'triangular', 'triangular2' "
       "or 'exp_range' without a scale_fn), got 'triangle'"},
      {[&] {
         CyclicLR(opt, {.base_lr = {0.01},
                        .max_lr = {0.1},
                        .scale_fn = [](double) { return 1.0; },
                        .scale_mode = "epochs"});
       },
       "CyclicLR: scale_mode must be 'cycle' or 'iterations', got 'epochs'"},
      {[&] {
         CyclicLR(opt, {.base_lr = {0.01}, .max_lr = {0.1}, .max_momentum = {0.9, 0.9, 0.9}});
       },
       "CyclicLR: expected 2 values for max_momentum"},
      {[&] {
         Tensor q = param({0.0});
         Adagrad adagrad({q}, {.lr = 0.1});
         CyclicLR(adagrad, {.base_lr = {0.01}, .max_lr = {0.1}});
       },
       "CyclicLR: optimizer Adagrad must support momentum (a 'momentum' or 'betas' "
       "hyper-parameter) with cycle_momentum enabled"},
      {[&] { MultiplicativeLR(opt, MultiplicativeLR::Lambda{}); },
       "MultiplicativeLR: the lr lambda is empty"},
      {[&] {
         MultiplicativeLR(opt, std::vector<MultiplicativeLR::Lambda>{[](int64_t) { return 0.9; }});
       },
       "MultiplicativeLR: expected 2 lr_lambdas (one per parameter group), but got 1"},
      {[&] {
         MultiplicativeLR(
             opt, std::vector<MultiplicativeLR::Lambda>{[](int64_t) { return 0.9; }, nullptr});
       },
       "MultiplicativeLR: the lr lambda of group 1 is empty"},
      {[&] { SequentialLR(opt, {std::make_shared<ExponentialLR>(opt, 0.9)}, {2}); },
       "SequentialLR expects number of schedulers provided to be one more than "
       "the number of milestone points, but got number of schedulers 1 and the "
       "number of milestones to be equal to 1"},
      {[&] { SequentialLR(opt, {}, {}); },
       "but got number of schedulers 0 and the number of milestones to be "
       "equal to 0"},
      {[&] {
         SequentialLR(opt,
                      {std::make_shared<ExponentialLR>(opt, 0.9),
                       std::make_shared<ExponentialLR>(other, 0.9)},
                      {2});
       },
       "SequentialLR expects all schedulers to belong to the same optimizer, "
       "but got schedulers at index 1 to be different than the optimizer "
       "passed in"},
      {[&] {
         SequentialLR(
             opt,
             {std::make_shared<ExponentialLR>(opt, 0.9), std::make_shared<ExponentialLR>(opt, 0.9),
              std::make_shared<ExponentialLR>(opt, 0.9)},
             {5, 3});
       },
       "SequentialLR: the milestones must be non-decreasing, got [5, 3]"},
      {[&] { SequentialLR(opt, {nullptr}, {}); }, "SequentialLR: scheduler 0 is null"},
      {[&] { ChainedScheduler({}); },
       "ChainedScheduler: expected at least one scheduler, got none"},
      {[&] {
         ChainedScheduler({std::make_shared<ExponentialLR>(opt, 0.9),
                           std::make_shared<ExponentialLR>(other, 0.9)});
       },
       "ChainedScheduler expects all schedulers to belong to the same "
       "optimizer, but got schedulers at index 0 and 1 to be different"},
  };
  for (const auto& [fn, message] : cases) {
    opt.set_lr(0, 0.1);
    const std::string got = thrown<ValueError>(fn);
    EXPECT_NE(got.find(message), std::string::npos) << "expected: " << message << "\ngot: " << got;
  }
  // A failed CyclicLR leaves the lr and the momentum as they were.
  Tensor d = param({0.0});
  SGD kept({d}, {.lr = 0.3, .momentum = 0.5});
  EXPECT_THROW(CyclicLR(kept, {.base_lr = {0.01}, .max_lr = {0.1}, .mode = "x"}), ValueError);
  EXPECT_EQ(kept.lr(0), 0.3);
  EXPECT_EQ(kept.param_groups()[0].options.momentum, 0.5);
  // A failed OneCycleLR leaves the momentum and the initial lr as they were.
  Tensor c = param({0.0});
  SGD fresh({c}, {.lr = 0.3, .momentum = 0.5});
  EXPECT_THROW(OneCycleLR(fresh, {.max_lr = {0.1}, .total_steps = 10, .pct_start = 2.0}),
               ValueError);
  EXPECT_EQ(fresh.param_groups()[0].options.momentum, 0.5);
  EXPECT_FALSE(fresh.initial_lr(0).has_value());
}

}  // namespace
}  // namespace fabric::optim
