// PyTorch's CosineAnnealingWarmRestarts (torch 1.13): SGDR's cosine annealing from the base lr to
// eta_min over T_i steps, then a restart at the base lr with the next cycle T_mult times longer
// (T_0, T_0 T_mult, T_0 T_mult^2, ...).
#pragma once
#include <cstdint>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// Closed form in last_epoch (torch's integer step() path): within the current cycle,
//   lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2
// where T_cur counts the steps since the last restart. torch's step(epoch) with a fractional epoch
// (SGDR's within-epoch position) is not offered: its T_cur is not a function of last_epoch, and
// SchedulerState carries last_epoch alone.
class CosineAnnealingWarmRestarts : public LRScheduler {
 public:
  CosineAnnealingWarmRestarts(Optimizer& optimizer, int64_t T_0, int64_t T_mult = 1,
                              double eta_min = 0);

  // The current cycle's length and the steps since its restart (torch's T_i and T_cur).
  int64_t T_i() const { return cycle().length; }
  int64_t T_cur() const { return cycle().position; }

 protected:
  std::vector<double> get_lr() const override;
  bool closed_form() const override { return true; }

 private:
  struct Cycle {
    int64_t length, position;
  };
  // Where last_epoch falls: the integers torch's step() counts one step at a time.
  Cycle cycle() const;

  int64_t t_0_, t_mult_;
  double eta_min_;
};

}  // namespace fabric::optim
