// PyTorch's OneCycleLR (1.13): the 1cycle policy of "Super-Convergence" (Smith & Topin, 2017). The
// lr anneals from max_lr / div_factor up to max_lr over the first pct_start of the steps, then down
// to that start / final_div_factor; the momentum (SGD's momentum, or Adam's beta1) cycles the other
// way between max_momentum and base_momentum.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// The per-group values (max_lr, base_momentum, max_momentum) take one value for every group or one
// per group, as PyTorch's float-or-list arguments.
struct OneCycleOptions {
  std::vector<double> max_lr;          // required
  std::optional<int64_t> total_steps;  // or epochs * steps_per_epoch
  std::optional<int64_t> epochs;
  std::optional<int64_t> steps_per_epoch;
  double pct_start = 0.3;  // the fraction of the steps spent increasing the lr, in [0, 1]
  std::string anneal_strategy = "cos";  // cos | linear
  bool cycle_momentum = true;
  std::vector<double> base_momentum = {0.85};
  std::vector<double> max_momentum = {0.95};
  double div_factor = 25;         // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;  // min_lr = initial_lr / final_div_factor
  // Up to max_lr, back down to initial_lr (symmetrically), then to min_lr (fast.ai's schedule is
  // the two-phase default).
  bool three_phase = false;
};

// Closed form in last_epoch: each step sets the lr (and, with cycle_momentum, the momentum) of
// every group for that step. Stepping past total_steps raises ValueError, as in PyTorch.
// Building it sets each group's initial_lr to max_lr / div_factor (it becomes every scheduler's
// base lr on this optimizer) and, with cycle_momentum, its momentum to max_momentum.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, const OneCycleOptions& options);

  int64_t total_steps() const { return total_steps_; }

 protected:
  // Also sets each group's momentum for this step, as PyTorch's get_lr() does.
  std::vector<double> get_lr() const override;
  bool closed_form() const override { return true; }

 private:
  // What a phase anneals between: indices into Group's values.
  enum Point { kInitialLr, kMaxLr, kMinLr, kMaxMomentum, kBaseMomentum };
  struct Phase {
    double end_step;
    Point start_lr, end_lr, start_momentum, end_momentum;
  };
  struct Group {
    double values[5];  // by Point
  };
  double anneal(double start, double end, double pct) const;
  void set_momentum(size_t group, double momentum) const;

  int64_t total_steps_ = 0;
  std::vector<Phase> phases_;
  bool cosine_ = true;
  bool cycle_momentum_ = true;
  bool use_beta1_ = false;  // the optimizer has betas (Adam) rather than momentum (SGD)
  std::vector<Group> groups_;
};

}  // namespace fabric::optim
