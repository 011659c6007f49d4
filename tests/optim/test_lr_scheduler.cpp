// LR schedulers: the lr sequences of StepLR, ConstantLR, LambdaLR, linear warm-up and cosine with
// warm-up and a minimum, against hand-computed values, and scheduler state round trips.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/lr_scheduler.h"
#include "optim/sgd.h"
#include "optim_test_util.h"

namespace fabric::optim {
namespace {
using namespace testing;

// The lr after construction, then after each of `steps` step() calls.
std::vector<double> sequence(LRScheduler& s, int steps, size_t group = 0) {
  std::vector<double> out = {s.optimizer().lr(group)};
  EXPECT_EQ(s.get_last_lr().at(group), out.back());
  for (int i = 0; i < steps; ++i) {
    s.step();
    out.push_back(s.optimizer().lr(group));
    EXPECT_EQ(s.get_last_lr().at(group), out.back());
  }
  return out;
}

TEST(LRScheduler, StepLR) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 1.0});
  StepLR s(opt, 2, 0.5);
  EXPECT_EQ(s.last_epoch(), 0);
  expect_close(sequence(s, 6), {1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125}, 1e-15);
  EXPECT_EQ(s.last_epoch(), 6);
  EXPECT_THROW(StepLR(opt, 0), ValueError);
}

TEST(LRScheduler, StepLRIsChainableLikePyTorch) {
  // PyTorch's StepLR multiplies the group's current lr, so a manual change carries on.
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 1.0});
  StepLR s(opt, 1, 0.5);
  opt.set_lr(0, 4.0);
  s.step();
  EXPECT_EQ(opt.lr(0), 2.0);
}

TEST(LRScheduler, ConstantLR) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 0.8});
  ConstantLR s(opt, 0.5, 3);
  expect_close(sequence(s, 5), {0.4, 0.4, 0.4, 0.8, 0.8, 0.8}, 1e-15);
  Tensor q = param({1.0});
  SGD constant({q}, {.lr = 0.3});
  ConstantLR c(constant, 1.0);
  expect_close(sequence(c, 7), std::vector<double>(8, 0.3), 1e-15);
  EXPECT_THROW(ConstantLR(constant, -0.1), ValueError);  // torch takes 0 (see ConstantLRFactorZero)
  EXPECT_THROW(ConstantLR(constant, 1.5), ValueError);
}

TEST(LRScheduler, LambdaLRPerGroup) {
  Tensor a = param({1.0}), b = param({1.0});
  SGD opt(std::vector<SGD::Group>{{.params = {a}, .options = {.lr = 1.0}}, {.params = {b}, .options = {.lr = 0.1}}});
  LambdaLR s(opt, {[](int64_t e) { return 1.0 / (1.0 + static_cast<double>(e)); },
                   [](int64_t e) { return std::pow(0.5, static_cast<double>(e)); }});
  EXPECT_EQ(s.get_last_lr(), (std::vector<double>{1.0, 0.1}));
  s.step();
  s.step();
  expect_close(s.get_last_lr(), {1.0 / 3, 0.025}, 1e-15);
  EXPECT_EQ(opt.lr(1), s.get_last_lr()[1]);
  EXPECT_THROW(LambdaLR(opt, std::vector<LambdaLR::Lambda>{[](int64_t) { return 1.0; }}), ValueError);
}

TEST(LRScheduler, LinearWarmup) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 2.0});
  LinearWarmup s(opt, 4);
  expect_close(sequence(s, 6), {0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0}, 1e-15);
}

TEST(LRScheduler, CosineWithWarmupAndMinimum) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 1.0});
  CosineWithWarmup s(opt, 4, 12, 0.1);
  const std::vector<double> lrs = sequence(s, 20);
  // Warm-up: 0, 1/4, 2/4, 3/4; then cos from 1 at step 4 down to 0.1 at step 12; then 0.1.
  EXPECT_EQ(lrs[0], 0.0);
  EXPECT_NEAR(lrs[1], 0.25, 1e-15);
  EXPECT_NEAR(lrs[3], 0.75, 1e-15);
  EXPECT_NEAR(lrs[4], 1.0, 1e-15);
  // Step 6: a quarter of the decay, cos(pi/4) = sqrt(1/2).
  EXPECT_NEAR(lrs[6], 0.1 + 0.45 * (1 + std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(lrs[8], 0.55, 1e-15);  // half-way: the mean of 1 and 0.1
  EXPECT_NEAR(lrs[10], 0.1 + 0.45 * (1 - std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(lrs[12], 0.1, 1e-15);
  EXPECT_EQ(lrs[13], 0.1);
  EXPECT_EQ(lrs[20], 0.1);
  for (int i = 5; i <= 12; ++i) EXPECT_LT(lrs[i], lrs[i - 1]) << i;
  EXPECT_THROW(CosineWithWarmup(opt, 1, 5, -1.0), ValueError);
  EXPECT_THROW(CosineWithWarmup(opt, -1, 5, 0.0), ValueError);
}

TEST(LRScheduler, CosineWarmupLongerThanTheRunKeepsItsLength) {
  // As transformers' get_cosine_schedule_with_warmup: a run shorter than its warm-up ends inside it
  // (the warm-up is not squeezed into the run, so a run extended later goes on along the same
  // line).
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 1.0});
  CosineWithWarmup s(opt, 8, 4, 0.0);
  expect_close(sequence(s, 5), {0.0, 0.125, 0.25, 0.375, 0.5, 0.625}, 1e-15);
}

TEST(LRScheduler, CosineWithoutWarmupStartsAtBase) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 0.5});
  CosineWithWarmup s(opt, 0, 2, 0.0);
  expect_close(sequence(s, 3), {0.5, 0.25, 0.0, 0.0}, 1e-15);
}

TEST(LRScheduler, StateRoundTripResumesTheSequence) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 1.0});
  CosineWithWarmup s(opt, 3, 10, 0.01);
  for (int i = 0; i < 5; ++i) s.step();
  const auto flat = s.state_dict().flatten("sched.");
  const auto opt_flat = opt.state_dict().flatten();
  s.step();
  const double expected = opt.lr(0);

  Tensor q = param({1.0});
  SGD opt2({q}, {.lr = 1.0});
  CosineWithWarmup s2(opt2, 3, 10, 0.01);
  opt2.load_state_dict(OptimizerState::unflatten(opt_flat));
  s2.load_state_dict(SchedulerState::unflatten(flat, "sched."));
  EXPECT_EQ(s2.last_epoch(), 5);
  EXPECT_EQ(opt2.lr(0), s2.get_last_lr()[0]);
  s2.step();
  EXPECT_EQ(opt2.lr(0), expected);

  SchedulerState bad = s.state_dict();
  bad.base_lrs.push_back(1.0);
  EXPECT_CONTAINS(thrown<ValueError>([&] { s2.load_state_dict(bad); }), "2 base lrs but the optimizer has 1");
  EXPECT_CONTAINS(thrown<ValueError>([&] { SchedulerState::unflatten(flat); }), "key 'last_epoch' is missing");
}

}  // namespace
}  // namespace fabric::optim
