// CyclicLR: PyTorch's argument handling, its scale policies and get_lr() arithmetic.
#include "optim/cyclic_lr.h"

#include <algorithm>
#include <cmath>

#include "optim/momentum_cycling.h"

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds,
// or the float64 lrs drift from torch's by an ulp.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

CyclicLR::CyclicLR(Optimizer& optimizer, const CyclicOptions& o)
    : LRScheduler(optimizer, "CyclicLR"),
      mode_(o.mode),
      gamma_(o.gamma),
      scale_fn_(o.scale_fn),
      cycle_momentum_(o.cycle_momentum) {
  const size_t n = optimizer.num_param_groups();
  FABRIC_CHECK(!o.base_lr.empty() && !o.max_lr.empty(), ValueError,
               "CyclicLR: base_lr and max_lr are required (one value, or one per parameter group)");
  const std::vector<double> base_lrs = cycling::per_group(o.base_lr, n, "CyclicLR", "base_lr");
  max_lrs_ = cycling::per_group(o.max_lr, n, "CyclicLR", "max_lr");
  // torch divides by step_size_up (0 / 0 at step 0) and by the total size without checking.
  FABRIC_CHECK(o.step_size_up > 0, ValueError,
               "CyclicLR: step_size_up (the steps from base_lr to max_lr) must be > 0, got ",
               o.step_size_up);
  const double step_size_down = o.step_size_down.value_or(o.step_size_up);
  FABRIC_CHECK(
      step_size_down >= 0, ValueError,
      "CyclicLR: step_size_down (the steps from max_lr back to base_lr) must be >= 0, got ",
      step_size_down);
  total_size_ = o.step_size_up + step_size_down;
  step_ratio_ = o.step_size_up / total_size_;
  if (scale_fn_) {
    FABRIC_CHECK(o.scale_mode == "cycle" || o.scale_mode == "iterations", ValueError,
                 "CyclicLR: scale_mode must be 'cycle' or 'iterations', got '", o.scale_mode, "'");
    scale_by_cycle_ = o.scale_mode == "cycle";
  } else {
    FABRIC_CHECK(mode_ == "triangular" || mode_ == "triangular2" || mode_ == "exp_range",
                 ValueError,
                 "CyclicLR: mode is invalid and scale_fn is None (mode must be 'triangular', "
                 "'triangular2' or 'exp_range' without a scale_fn), got '",
                 mode_, "'");
    scale_by_cycle_ = mode_ != "exp_range";  // torch's scale_mode for each mode
  }
  std::vector<double> base_momentums;
  if (cycle_momentum_) {
    use_beta1_ = cycling::momentum_is_beta1(optimizer, "CyclicLR");
    base_momentums = cycling::per_group(o.base_momentum, n, "CyclicLR", "base_momentum");
    max_momentums_ = cycling::per_group(o.max_momentum, n, "CyclicLR", "max_momentum");
  }
  // Only now that every argument is checked: PyTorch's writes into the param groups.
  for (size_t g = 0; g < n; ++g) {
    optimizer.set_lr(g, base_lrs[g]);
    if (cycle_momentum_) set_momentum(g, base_momentums[g]);
  }
  base_momentums_ = base_momentums;
  // torch's first step runs with the initial lrs as base_lrs (base_lr unless an earlier scheduler
  // set them), and only then takes base_lr.
  initial_step();
  base_lrs_ = base_lrs;
}

double CyclicLR::scale(double x) const {
  if (scale_fn_) return scale_fn_(x);
  if (mode_ == "triangular") return 1.;
  if (mode_ == "triangular2") return 1 / std::pow(2., x - 1);
  return std::pow(gamma_, x);
}

void CyclicLR::set_momentum(size_t group, double momentum) const {
  cycling::set_momentum(*optimizer_, group, momentum, use_beta1_);
}

std::vector<double> CyclicLR::get_lr() const {
  const auto e = static_cast<double>(last_epoch_);
  const double cycle = std::floor(1 + e / total_size_);
  const double x = 1. + e / total_size_ - cycle;
  const double scale_factor = x <= step_ratio_ ? x / step_ratio_ : (x - 1) / (step_ratio_ - 1);
  const double amplitude = scale(scale_by_cycle_ ? cycle : e);
  // torch zips its per-group lists with each other and with the groups: groups added after
  // construction keep their lr and momentum.
  std::vector<double> lrs;
  for (size_t g = 0; g < std::min(base_lrs_.size(), max_lrs_.size()); ++g) {
    const double base_height = (max_lrs_[g] - base_lrs_[g]) * scale_factor;
    lrs.push_back(base_lrs_[g] + base_height * amplitude);
  }
  if (cycle_momentum_) {
    const size_t n =
        std::min({base_momentums_.size(), max_momentums_.size(), optimizer_->num_param_groups()});
    std::vector<double> momenta;
    for (size_t g = 0; g < n; ++g) {
      const double base_height = (max_momentums_[g] - base_momentums_[g]) * scale_factor;
      momenta.push_back(max_momentums_[g] - base_height * amplitude);
    }
    cycling::set_momenta(*optimizer_, momenta, use_beta1_);
  }
  return lrs;
}

}  // namespace fabric::optim
