// PyTorch's CosineAnnealingWarmRestarts (torch 1.13): SGDR's cosine annealing from the base lr to
// eta_min over T_i steps, then a restart at the base lr with the next cycle T_mult times longer
// (T_0, T_0 T_mult, T_0 T_mult^2, ...).
#pragma once
#include <cstdint>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// Within the current cycle,
//   lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2
// where T_cur counts the steps since the last restart. step() advances T_cur by one (restarting
// when it reaches T_i); step(epoch) places it at a fractional epoch (SGDR's within-epoch
// position, torch's step(epoch)), from which step() goes on. The state carries T_i and T_cur.
class CosineAnnealingWarmRestarts : public LRScheduler {
 public:
  CosineAnnealingWarmRestarts(Optimizer& optimizer, int64_t T_0, int64_t T_mult = 1,
                              double eta_min = 0);

  using LRScheduler::step;
  void step() override;
  // torch's step(epoch): T_cur and T_i for `epoch` (>= 0; ValueError otherwise), last_epoch =
  // floor(epoch), then the lrs.
  void step(double epoch);

  // The current cycle's length and the (possibly fractional) steps since its restart.
  int64_t T_i() const { return t_i_; }
  double T_cur() const { return t_cur_; }

  SchedulerState state_dict() const override;
  // Also restores T_i and T_cur; a state without them (saved before they were kept) has the
  // values last_epoch's integer steps give.
  void load_state_dict(const SchedulerState& s) override;

 protected:
  std::vector<double> get_lr() const override;
  bool closed_form() const override { return true; }
  void step_to(int64_t epoch) override;

 private:
  // Sets T_i and T_cur for `epoch` as torch's step(epoch) does.
  void place(double epoch);

  int64_t t_0_, t_mult_;
  double eta_min_;
  int64_t t_i_;
  double t_cur_ = -1;  // torch's T_cur = last_epoch before the first step
};

}  // namespace fabric::optim
