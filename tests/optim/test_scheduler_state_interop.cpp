// Scheduler and optimizer states as torch 1.13 writes and reads them: a SequentialLR state has no
// base_lrs and a ChainedScheduler's no last_epoch either; a ReduceLROnPlateau saved before its
// first step has no _last_lr; OneCycleLR keeps max_lr, min_lr, max_momentum and base_momentum in
// the optimizer's param groups (torch's OneCycleLR reads them back from there).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "optim/lr_composition.h"
#include "optim/lr_decay.h"
#include "optim/lr_scheduler.h"
#include "optim/one_cycle_lr.h"
#include "optim/plateau.h"
#include "optim/sgd.h"
#include "optim_test_util.h"

namespace fabric::optim {
namespace {

using Items = std::vector<std::pair<std::string, Tensor>>;
using testing::param;

Items without(const Items& items, const std::vector<std::string>& keys) {
  Items out;
  for (const auto& item : items)
    if (std::find(keys.begin(), keys.end(), item.first) == keys.end()) out.push_back(item);
  return out;
}

TEST(SchedulerStateInterop, ComposedStatesWithoutTheirOwnCountersLoad) {
  for (const bool chained : {false, true}) {
    SCOPED_TRACE(chained ? "ChainedScheduler" : "SequentialLR");
    const auto build = [&](SGD& opt) -> std::unique_ptr<LRScheduler> {
      auto a = std::make_shared<StepLR>(opt, 2, 0.5);
      auto b = std::make_shared<ExponentialLR>(opt, 0.9);
      if (chained)
        return std::make_unique<ChainedScheduler>(std::vector<std::shared_ptr<LRScheduler>>{a, b});
      return std::make_unique<SequentialLR>(opt, std::vector<std::shared_ptr<LRScheduler>>{a, b},
                                            std::vector<int64_t>{3});
    };
    Tensor p = param({1.0});
    SGD opt({p}, {.lr = 1.0});
    auto s = build(opt);
    for (int i = 0; i < 4; ++i) s->step();
    // torch's state: SequentialLR has last_epoch but no base_lrs; ChainedScheduler neither.
    std::vector<std::string> absent = {"s.base_lrs"};
    if (chained) absent.push_back("s.last_epoch");
    const Items torch_like = without(s->state_dict().flatten("s."), absent);
    const auto opt_flat = opt.state_dict().flatten();
    s->step();
    const double expected = opt.lr(0);

    Tensor q = param({1.0});
    SGD opt2({q}, {.lr = 1.0});
    auto s2 = build(opt2);
    opt2.load_state_dict(OptimizerState::unflatten(opt_flat));
    s2->load_state_dict(SchedulerState::unflatten(torch_like, "s."));
    s2->step();
    EXPECT_EQ(opt2.lr(0), expected);
  }
}

TEST(SchedulerStateInterop, APlateauStateSavedBeforeItsFirstStepLoads) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 0.1});
  ReduceLROnPlateau fresh(opt, {.patience = 0});
  const Items torch_like = without(fresh.state_dict().flatten("p."), {"p._last_lr"});
  ReduceLROnPlateau loaded(opt, {.patience = 0});
  loaded.load_state_dict(PlateauState::unflatten(torch_like, "p."));
  EXPECT_EQ(loaded.get_last_lr(), std::vector<double>{0.1});
  loaded.step(1.0);
  loaded.step(2.0);  // worse: reduced at once (patience 0)
  EXPECT_DOUBLE_EQ(opt.lr(0), 0.01);
}

TEST(SchedulerStateInterop, OneCycleKeepsTorchsGroupKeysInTheOptimizerState) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 0.1, .momentum = 0.9});
  OneCycleLR s(opt, {.max_lr = {0.5}, .total_steps = 10});
  const OptimizerState sd = opt.state_dict();
  const HyperParams& group = sd.param_groups.at(0).options;
  for (const char* key : {"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"})
    EXPECT_TRUE(group.contains(key)) << key;
  double max_lr = 0, min_lr = 0, base_momentum = 0;
  read_hyper_param(group, "max_lr", max_lr, "test");
  read_hyper_param(group, "min_lr", min_lr, "test");
  read_hyper_param(group, "base_momentum", base_momentum, "test");
  EXPECT_EQ(max_lr, 0.5);
  EXPECT_EQ(min_lr, 0.5 / 25 / 1e4);  // torch: initial_lr / final_div_factor
  EXPECT_EQ(base_momentum, 0.85);
  // They travel through a save and a load.
  Tensor q = param({1.0});
  SGD opt2({q}, {.lr = 0.1, .momentum = 0.9});
  opt2.load_state_dict(OptimizerState::unflatten(sd.flatten()));
  EXPECT_TRUE(opt2.state_dict().param_groups.at(0).options.contains("max_momentum"));
}

}  // namespace
}  // namespace fabric::optim
