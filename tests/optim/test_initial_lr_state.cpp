// A scheduler's initial_lr travels with the optimizer's state, as torch's param_group['initial_lr']
// does: a scheduler built after load_state_dict takes the saved base lr, not the lr reached so far.
// Expected values are torch 1.13's (SGD lr 0.1, LambdaLR 0.9^epoch for 5 steps, save, load into a
// fresh SGD, then LambdaLR(0.5): torch's lr is 0.05).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "optim/lr_scheduler.h"
#include "optim/sgd.h"
#include "optim_test_util.h"

namespace fabric::optim {
namespace {
using namespace testing;

OptimizerState decayed_sgd_state() {
  SGD sgd({param({1.0})}, {.lr = 0.1});
  LambdaLR decay(sgd, [](int64_t epoch) { return std::pow(0.9, static_cast<double>(epoch)); });
  for (int i = 0; i < 5; ++i) decay.step();
  return sgd.state_dict();
}

TEST(InitialLrState, SavedAndTakenBySchedulersBuiltAfterALoad) {
  const auto items = decayed_sgd_state().flatten();
  bool saved = false;
  for (const auto& [key, t] : items) {
    if (key == "param_groups.0.initial_lr") saved = t.item<double>() == 0.1;
  }
  EXPECT_TRUE(saved) << "param_groups.0.initial_lr = 0.1 missing from the flattened state";

  SGD resumed({param({1.0})}, {.lr = 0.1});
  resumed.load_state_dict(OptimizerState::unflatten(items));
  EXPECT_EQ(resumed.initial_lr(0), 0.1);
  LambdaLR half(resumed, [](int64_t) { return 0.5; });
  EXPECT_EQ(resumed.lr(0), 0.05);  // torch 1.13: 0.05; the lr reached (0.059049) * 0.5 before
}

TEST(InitialLrState, AStateWithoutOneLeavesNone) {
  OptimizerState sd = decayed_sgd_state();
  sd.param_groups[0].options.erase("initial_lr");
  SGD sgd({param({1.0})}, {.lr = 0.1});
  LambdaLR constant(sgd, [](int64_t) { return 1.0; });
  ASSERT_EQ(sgd.initial_lr(0), 0.1);
  sgd.load_state_dict(sd);  // torch replaces the group by the saved one, initial_lr and all
  EXPECT_FALSE(sgd.initial_lr(0).has_value());
}

TEST(InitialLrState, NonFiniteIsRefusedChangingNothing) {
  OptimizerState sd = decayed_sgd_state();
  sd.param_groups[0].options["initial_lr"] = std::numeric_limits<double>::infinity();
  SGD sgd({param({1.0})}, {.lr = 0.3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { sgd.load_state_dict(sd); }),
                  "param_groups.0.initial_lr");
  EXPECT_EQ(sgd.lr(0), 0.3);
  EXPECT_FALSE(sgd.initial_lr(0).has_value());
}

}  // namespace
}  // namespace fabric::optim
