// Schedulers made of other schedulers on the same optimizer, as PyTorch's SequentialLR (one after
// another, switching at milestones) and ChainedScheduler (all of them every step).
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// What SequentialLR and ChainedScheduler share: the schedulers they compose, whose states follow
// the composite's own in its state, and the lrs of the composite's last step as its get_lr().
class ComposedScheduler : public LRScheduler {
 public:
  SchedulerState state_dict() const override;
  // The composed schedulers' states come back too (ValueError when their count differs).
  void load_state_dict(const SchedulerState& s) override;
  // Changes nothing (the optimizer's restored lrs stand) and returns false.
  bool reapply() override { return false; }

 protected:
  // Takes the list by reference so that a subclass can read it (its first optimizer) in the same
  // constructor call that hands it over.
  ComposedScheduler(Optimizer& optimizer, const char* name,
                    std::vector<std::shared_ptr<LRScheduler>>&& schedulers)
      : LRScheduler(optimizer, name), schedulers_(std::move(schedulers)) {}
  std::vector<double> get_lr() const override { return last_lr_; }

  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
};

// schedulers[i] runs from milestones[i - 1] on. Building it resets the groups' lrs to their
// initial lrs and restarts schedulers[0] (undoing the first steps the others took when built);
// at each milestone the next scheduler starts at its closed form's step 0 (PyTorch's step(0)):
// e.g. LinearLR warm-up for 5 steps, then CosineAnnealingLR from the base lr. ValueError unless
// there is one milestone fewer than schedulers (non-decreasing) and every scheduler steps
// `optimizer`.
class SequentialLR : public ComposedScheduler {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<int64_t> milestones);

  void step() override;

 private:
  std::vector<int64_t> milestones_;
};

// Steps every scheduler in order at each step(), so their changes multiply (chainable ones) or
// the last closed-form one wins. ValueError when the list is empty or the schedulers step
// different optimizers.
class ChainedScheduler : public ComposedScheduler {
 public:
  explicit ChainedScheduler(std::vector<std::shared_ptr<LRScheduler>> schedulers);

  void step() override;
};

}  // namespace fabric::optim
