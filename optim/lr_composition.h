// Schedulers made of other schedulers on the same optimizer, as PyTorch's SequentialLR (one after
// another, switching at milestones) and ChainedScheduler (all of them every step).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// schedulers[i] runs from milestones[i - 1] on. Building it resets the groups' lrs to their
// initial lrs and restarts schedulers[0] (undoing the first steps the others took when built);
// at each milestone the next scheduler starts at its closed form's step 0 (PyTorch's step(0)):
// e.g. LinearLR warm-up for 5 steps, then CosineAnnealingLR from the base lr. ValueError unless
// there is one milestone fewer than schedulers (non-decreasing) and every scheduler steps
// `optimizer`.
class SequentialLR : public LRScheduler {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<int64_t> milestones);

  void step() override;
  SchedulerState state_dict() const override;
  // The composed schedulers' states come back too (ValueError when their count differs).
  void load_state_dict(const SchedulerState& s) override;
  // Changes nothing (the optimizer's restored lrs stand) and returns false.
  bool reapply() override { return false; }

 protected:
  std::vector<double> get_lr() const override { return last_lr_; }

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<int64_t> milestones_;
};

// Steps every scheduler in order at each step(), so their changes multiply (chainable ones) or
// the last closed-form one wins. ValueError when the list is empty or the schedulers step
// different optimizers.
class ChainedScheduler : public LRScheduler {
 public:
  explicit ChainedScheduler(std::vector<std::shared_ptr<LRScheduler>> schedulers);

  void step() override;
  SchedulerState state_dict() const override;
  void load_state_dict(const SchedulerState& s) override;
  bool reapply() override { return false; }

 protected:
  std::vector<double> get_lr() const override { return last_lr_; }

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
};

}  // namespace fabric::optim
