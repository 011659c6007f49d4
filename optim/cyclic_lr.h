// PyTorch's CyclicLR (torch 1.13): the cyclical learning rate policy of "Cyclical Learning Rates
// for Training Neural Networks" (Smith, 2017). The lr goes from base_lr up to max_lr over
// step_size_up steps and back down over step_size_down, each cycle's amplitude scaled by a policy
// (triangular: constant, triangular2: halved every cycle, exp_range: gamma^step, or a scale_fn);
// the momentum (SGD's momentum, or Adam-like optimizers' beta1) cycles the other way between
// max_momentum and base_momentum.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// The per-group values (base_lr, max_lr, base_momentum, max_momentum) take one value for every
// group or one per group, as PyTorch's float-or-list arguments.
struct CyclicOptions {
  std::vector<double> base_lr;  // required: the cycle's lower bound (and each group's lr now)
  std::vector<double> max_lr;   // required: the upper bound (reached as far as the scale allows)
  double step_size_up = 2000;   // steps from base_lr up to max_lr, > 0
  std::optional<double> step_size_down;  // steps back down, >= 0; step_size_up when unset
  std::string mode = "triangular";       // triangular | triangular2 | exp_range (without scale_fn)
  double gamma = 1.0;                    // exp_range's scale: gamma^step
  // A custom amplitude scale in place of mode's, called with the cycle number (scale_mode cycle,
  // from 1) or the step (iterations); mode is then ignored.
  std::function<double(double)> scale_fn;
  std::string scale_mode = "cycle";  // cycle | iterations: what scale_fn is called with
  bool cycle_momentum = true;
  std::vector<double> base_momentum = {0.8};  // the momentum at max_lr
  std::vector<double> max_momentum = {0.9};   // the momentum at base_lr
};

// Closed form in last_epoch (torch treats it as the batch index): each step sets the lr (and, with
// cycle_momentum, the momentum) of every group. Building it sets each group's lr to base_lr and,
// with cycle_momentum, its momentum to base_momentum, as torch does; the base_lrs are base_lr.
class CyclicLR : public LRScheduler {
 public:
  // ValueError naming a bad argument (an unknown mode without scale_fn, a per-group count that
  // is neither 1 nor the group count, step sizes out of range, cycle_momentum on an optimizer
  // without momentum or betas); nothing is written into the optimizer then.
  CyclicLR(Optimizer& optimizer, const CyclicOptions& options);

 protected:
  // Also sets each group's momentum for this step, as PyTorch's get_lr() does.
  std::vector<double> get_lr() const override;
  bool closed_form() const override { return true; }

 private:
  double scale(double x) const;
  void set_momentum(size_t group, double momentum) const;

  std::vector<double> max_lrs_, base_momentums_, max_momentums_;
  double total_size_, step_ratio_;
  std::string mode_;
  double gamma_;
  std::function<double(double)> scale_fn_;
  bool scale_by_cycle_;
  bool cycle_momentum_;
  bool use_beta1_ = false;  // the optimizer has betas (Adam) rather than momentum (SGD)
};

}  // namespace fabric::optim
