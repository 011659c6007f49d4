// ReduceLROnPlateau against torch 1.13 itself: for a fixed metric sequence, the groups' lrs after
// every step(metric) and the final state equal torch's exactly (plateau_torch_cases.cpp: min and
// max mode, rel and abs thresholds, cooldown, per-group min_lr, eps), a state saved mid-run
// continues identically, the state carries torch's keys, and bad arguments raise ValueError naming
// them.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <memory>

#include "optim/plateau.h"
#include "optim/sgd.h"
#include "optim_test_util.h"
#include "plateau_torch_cases.h"

namespace fabric::optim {
namespace {
using namespace testing;

std::unique_ptr<SGD> sgd_for(const std::vector<double>& lrs) {
  std::vector<SGD::Group> groups;
  for (double lr : lrs)
    groups.push_back({.params = {param({0.0})}, .options = {.lr = lr, .momentum = 0.9}});
  return std::make_unique<SGD>(std::move(groups));
}

// Steps `s` with metrics [from, to), appending every group's lr after each step.
void run(const PlateauCase& c, ReduceLROnPlateau& s, size_t from, size_t to,
         std::vector<double>& out) {
  for (size_t i = from; i < to; ++i) {
    s.step(c.metrics[i]);
    EXPECT_EQ(s.last_epoch(), static_cast<int64_t>(i + 1)) << c.name;
    for (size_t g = 0; g < c.lrs.size(); ++g) {
      EXPECT_EQ(s.get_last_lr()[g], s.optimizer().lr(g)) << c.name << " " << i;
      out.push_back(s.optimizer().lr(g));
    }
  }
}

TEST(PlateauTorch, SequencesMatchTorch) {
  for (const PlateauCase& c : torch_plateau_cases()) {
    auto opt = sgd_for(c.lrs);
    ReduceLROnPlateau s(*opt, c.options);
    EXPECT_EQ(s.get_last_lr(), c.lrs) << c.name;
    std::vector<double> got;
    run(c, s, 0, c.metrics.size(), got);
    EXPECT_EQ(got, c.expected) << c.name;  // bit for bit: one multiplication per reduction
    EXPECT_EQ(s.best(), c.final_state.best) << c.name;
    EXPECT_EQ(s.num_bad_epochs(), c.final_state.num_bad_epochs) << c.name;
    EXPECT_EQ(s.cooldown_counter(), c.final_state.cooldown_counter) << c.name;
    EXPECT_EQ(s.last_epoch(), c.final_state.last_epoch) << c.name;
  }
}

// Saved after every prefix of the metrics (mid-cooldown, mid-patience), a fresh scheduler on a
// fresh optimizer, as a resumed run builds them, continues as the uninterrupted one.
TEST(PlateauTorch, StateRoundTripContinuesIdentically) {
  for (const PlateauCase& c : torch_plateau_cases()) {
    for (size_t half :
         {size_t{1}, c.metrics.size() / 3, c.metrics.size() / 2, c.metrics.size() - 1}) {
      auto opt = sgd_for(c.lrs);
      ReduceLROnPlateau s(*opt, c.options);
      std::vector<double> got;
      run(c, s, 0, half, got);
      const auto sched_items = s.state_dict().flatten("scheduler.");
      const auto opt_items = opt->state_dict().flatten("optimizer.");

      auto opt2 = sgd_for(c.lrs);
      ReduceLROnPlateau s2(*opt2, c.options);
      opt2->load_state_dict(OptimizerState::unflatten(opt_items, "optimizer."));
      s2.load_state_dict(PlateauState::unflatten(sched_items, "scheduler."));
      EXPECT_EQ(s2.num_bad_epochs(), s.num_bad_epochs()) << c.name;
      EXPECT_EQ(s2.cooldown_counter(), s.cooldown_counter()) << c.name;
      run(c, s2, half, c.metrics.size(), got);
      EXPECT_EQ(got, c.expected) << c.name << " resumed after " << half;
    }
  }
}

// A scheduler built with other arguments takes the saved ones, as torch's load_state_dict (its
// __dict__.update) does: it continues as the saved scheduler would have.
TEST(PlateauTorch, LoadRestoresTheSavedArguments) {
  for (const PlateauCase& c : torch_plateau_cases()) {
    const size_t half = c.metrics.size() / 2;
    auto opt = sgd_for(c.lrs);
    ReduceLROnPlateau s(*opt, c.options);
    std::vector<double> got;
    run(c, s, 0, half, got);
    const auto sched_items = s.state_dict().flatten("scheduler.");
    const auto opt_items = opt->state_dict().flatten("optimizer.");

    auto opt2 = sgd_for(c.lrs);
    ReduceLROnPlateau s2(*opt2,
                         {.mode = c.options.mode == "min" ? "max" : "min",
                          .factor = 0.9,
                          .patience = 50,
                          .threshold = 0.3,
                          .threshold_mode = c.options.threshold_mode == "rel" ? "abs" : "rel",
                          .cooldown = 7,
                          .min_lr = {0.5},
                          .eps = 0.2});
    opt2->load_state_dict(OptimizerState::unflatten(opt_items, "optimizer."));
    s2.load_state_dict(PlateauState::unflatten(sched_items, "scheduler."));
    const PlateauState back = s2.state_dict();
    EXPECT_EQ(back.mode, c.options.mode) << c.name;
    EXPECT_EQ(back.threshold_mode, c.options.threshold_mode) << c.name;
    EXPECT_EQ(back.min_lrs, s.state_dict().min_lrs) << c.name;
    run(c, s2, half, c.metrics.size(), got);
    EXPECT_EQ(got, c.expected) << c.name;
  }
}

// A state saved without the strings (before they were kept): mode follows mode_worse and the
// threshold_mode stays the scheduler's own.
TEST(PlateauTorch, LoadWithoutStringsFollowsModeWorse) {
  auto opt = sgd_for({0.1});
  ReduceLROnPlateau saved(*opt, {.mode = "max", .threshold_mode = "abs"});
  std::vector<std::pair<std::string, Tensor>> items;
  for (auto& [k, t] : saved.state_dict().flatten("s."))
    if (k != "s.mode" && k != "s.threshold_mode") items.emplace_back(k, t);
  ReduceLROnPlateau s(*opt, {.mode = "min"});
  s.load_state_dict(PlateauState::unflatten(items, "s."));
  EXPECT_EQ(s.state_dict().mode, "max");
  EXPECT_EQ(s.state_dict().threshold_mode, "rel");
  EXPECT_TRUE(s.is_better(2.0, 1.0));
}

// torch's state_dict() keys (less verbose), one tensor each.
TEST(PlateauTorch, StateHoldsTorchKeys) {
  auto opt = sgd_for({0.1, 0.2});
  ReduceLROnPlateau s(*opt, {.mode = "max", .patience = 0, .min_lr = {0.05, 0.1}});
  s.step(1.0);
  s.step(0.5);
  std::vector<std::string> keys;
  for (const auto& [k, t] : s.state_dict().flatten("s.")) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "s.factor", "s.min_lrs", "s.patience", "s.cooldown", "s.cooldown_counter",
                      "s.mode", "s.threshold", "s.threshold_mode", "s.best", "s.num_bad_epochs",
                      "s.mode_worse", "s.eps", "s.last_epoch", "s._last_lr"}));
  const PlateauState back = PlateauState::unflatten(s.state_dict().flatten("s."), "s.");
  EXPECT_EQ(back.best, 1.0);
  EXPECT_EQ(back.mode_worse, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(back.mode, "max");
  EXPECT_EQ(back.threshold_mode, "rel");
  EXPECT_EQ(back.min_lrs, (std::vector<double>{0.05, 0.1}));
  EXPECT_EQ(back.last_lr, (std::vector<double>{0.05, 0.1}));  // 0.1 * 0.1 and 0.2 * 0.1 floored
  EXPECT_EQ(back.last_epoch, 2);
}

// Bad arguments and states: ValueError naming what is wrong; nothing is written into the optimizer.
TEST(PlateauTorch, ArgumentAndStateErrors) {
  auto opt = sgd_for({0.1, 0.2});
  auto other = sgd_for({0.1});
  ReduceLROnPlateau min_mode(*opt, {});
  ReduceLROnPlateau one_group(*other, {.mode = "max"});
  PlateauState two_groups = min_mode.state_dict();
  const std::vector<std::pair<std::function<void()>, const char*>> cases = {
      {[&] { ReduceLROnPlateau(*opt, {.mode = "minimum"}); },
       "ReduceLROnPlateau: mode must be 'min' (the metric should fall) or 'max' (rise), got "
       "'minimum'"},
      {[&] { ReduceLROnPlateau(*opt, {.threshold_mode = "relative"}); },
       "ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got 'relative'"},
      {[&] { ReduceLROnPlateau(*opt, {.factor = 1.0}); },
       "ReduceLROnPlateau: factor (the lr's multiplier at a reduction) must be in [0, 1), got 1"},
      {[&] { ReduceLROnPlateau(*opt, {.factor = -0.5}); }, "must be in [0, 1), got -0.5"},
      {[&] { ReduceLROnPlateau(*opt, {.patience = -1}); },
       "ReduceLROnPlateau: patience must be >= 0, got -1"},
      {[&] { ReduceLROnPlateau(*opt, {.cooldown = -2}); },
       "ReduceLROnPlateau: cooldown must be >= 0, got -2"},
      {[&] { ReduceLROnPlateau(*opt, {.threshold = -1e-4}); },
       "ReduceLROnPlateau: threshold must be >= 0, got -0.0001"},
      {[&] { ReduceLROnPlateau(*opt, {.eps = -1}); },
       "ReduceLROnPlateau: eps must be >= 0, got -1"},
      {[&] {
         ReduceLROnPlateau(*opt, {.min_lr = {0.1, 0.2, 0.3}});
       },
       "ReduceLROnPlateau: expected 2 min_lrs (one per parameter group) or one for all, got 3"},
      {[&] { ReduceLROnPlateau(*opt, {.min_lr = {}}); }, "expected 2 min_lrs"},
      {[&] {
         ReduceLROnPlateau(*opt, {.min_lr = {0.0, -0.1}});
       },
       "ReduceLROnPlateau: min_lr of group 1 must be >= 0, got -0.1"},
      {[&] {
         PlateauState bad = one_group.state_dict();
         bad.mode_worse = std::numeric_limits<double>::infinity();
         one_group.load_state_dict(bad);
       },
       "ReduceLROnPlateau.load_state_dict: mode_worse inf is not mode 'max''s worst metric (-inf)"},
      {[&] {
         PlateauState bad = two_groups;
         bad.factor = 2;
         min_mode.load_state_dict(bad);
       },
       "ReduceLROnPlateau.load_state_dict: factor (the lr's multiplier at a reduction) must be in "
       "[0, 1), got 2"},
      {[&] {
         PlateauState bad = two_groups;
         bad.threshold_mode = "relative";
         min_mode.load_state_dict(bad);
       },
       "ReduceLROnPlateau.load_state_dict: threshold_mode must be 'rel' or 'abs', got 'relative'"},
      {[&] {
         PlateauState bad = two_groups;
         bad.min_lrs = {0.1, 0.2, 0.3};
         min_mode.load_state_dict(bad);
       },
       "ReduceLROnPlateau.load_state_dict: expected 2 min_lrs (one per parameter group)"},
      {[&] {
         ReduceLROnPlateau max_one(*other, {});
         max_one.load_state_dict(two_groups);
       },
       "the state has 2 last lrs but the optimizer has 1 parameter groups"},
      {[&] {
         PlateauState bad = two_groups;
         bad.num_bad_epochs = -3;
         min_mode.load_state_dict(bad);
       },
       "num_bad_epochs (-3), cooldown_counter (0) and last_epoch (0) must be >= 0"},
      {[&] { PlateauState::unflatten(min_mode.state_dict().flatten("a."), "b."); },
       "PlateauState::unflatten: key 'b.factor' is missing (not a ReduceLROnPlateau's state?)"},
  };
  for (const auto& [fn, message] : cases) {
    const std::string got = thrown<ValueError>(fn);
    EXPECT_NE(got.find(message), std::string::npos) << "expected: " << message << "\ngot: " << got;
  }
  EXPECT_EQ(opt->lr(0), 0.1);
  EXPECT_EQ(opt->lr(1), 0.2);
}

}  // namespace
}  // namespace fabric::optim
