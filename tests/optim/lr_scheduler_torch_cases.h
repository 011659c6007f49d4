// torch 1.13's lr sequences for test_lr_scheduler_torch.cpp: one row per scheduler and argument
// set, generated with torch 1.13 in float64 (SGD with momentum 0.9, one parameter group per lr;
// get_last_lr() after construction, then after each step) and pasted with 17 significant digits.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim::testing {

using Sched = std::shared_ptr<LRScheduler>;
using Scheds = std::vector<Sched>;

// Sets group 0's lr by hand before step `step` (chainable schedules carry it on).
struct Poke {
  int step = -1;
  double lr = 0;
};

struct TorchCase {
  const char* name;
  std::vector<double> lrs;  // one parameter group each
  std::function<Sched(Optimizer&)> make;
  int steps;
  Poke poke;
  // (steps + 1, groups): get_last_lr() after construction, then after each step.
  std::vector<double> expected;
};

const std::vector<TorchCase>& torch_lr_cases();

}  // namespace fabric::optim::testing
