// OneCycleLR: PyTorch's argument checks and messages, its phase table and annealing arithmetic.
#include "optim/one_cycle_lr.h"

#include <cmath>
#include <numbers>

#include "optim/momentum_cycling.h"

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds,
// or the float64 lrs drift from torch's by an ulp.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {
namespace {

// The phases' end steps as torch computes them (floats: pct_start * total_steps need not be
// whole). Out of line because GCC 12 still fused these in the constructor despite the pragma
// above: pct_start * total - 1 must round twice, as in Python (0.1 * 10 - 1 is 0 there, and that
// phase has no steps; fused it is 5.6e-17).
[[gnu::noinline]] std::vector<double> phase_end_steps(double pct_start, int64_t total_steps,
                                                      bool three_phase) {
  const double total = static_cast<double>(total_steps);
  if (three_phase) return {pct_start * total - 1, 2 * pct_start * total - 2, total - 1};
  return {pct_start * total - 1, total - 1};
}

}  // namespace

OneCycleLR::OneCycleLR(Optimizer& optimizer, const OneCycleOptions& o)
    : LRScheduler(optimizer, "OneCycleLR") {
  if (o.total_steps) {
    FABRIC_CHECK(*o.total_steps > 0, ValueError,
                 "OneCycleLR: expected positive integer total_steps, but got ", *o.total_steps);
    total_steps_ = *o.total_steps;
  } else {
    FABRIC_CHECK(o.epochs && o.steps_per_epoch, ValueError,
                 "OneCycleLR: you must define either total_steps OR (epochs AND steps_per_epoch)");
    FABRIC_CHECK(*o.epochs > 0, ValueError,
                 "OneCycleLR: expected positive integer epochs, but got ", *o.epochs);
    FABRIC_CHECK(*o.steps_per_epoch > 0, ValueError,
                 "OneCycleLR: expected positive integer steps_per_epoch, but got ",
                 *o.steps_per_epoch);
    total_steps_ = *o.epochs * *o.steps_per_epoch;
  }
  FABRIC_CHECK(o.pct_start >= 0 && o.pct_start <= 1, ValueError,
               "OneCycleLR: expected float between 0 and 1 pct_start, but got ", o.pct_start);
  FABRIC_CHECK(o.anneal_strategy == "cos" || o.anneal_strategy == "linear", ValueError,
               "OneCycleLR: anneal_strategy must be one of 'cos' or 'linear', instead got '",
               o.anneal_strategy, "'");
  cosine_ = o.anneal_strategy == "cos";
  const std::vector<double> ends = phase_end_steps(o.pct_start, total_steps_, o.three_phase);
  if (o.three_phase) {
    phases_ = {{ends[0], kInitialLr, kMaxLr, kMaxMomentum, kBaseMomentum},
               {ends[1], kMaxLr, kInitialLr, kBaseMomentum, kMaxMomentum},
               {ends[2], kInitialLr, kMinLr, kMaxMomentum, kMaxMomentum}};
  } else {
    phases_ = {{ends[0], kInitialLr, kMaxLr, kMaxMomentum, kBaseMomentum},
               {ends[1], kMaxLr, kMinLr, kBaseMomentum, kMaxMomentum}};
  }

  const size_t n = optimizer.num_param_groups();
  FABRIC_CHECK(!o.max_lr.empty(), ValueError,
               "OneCycleLR: max_lr is required (one value, or one per parameter group)");
  const std::vector<double> max_lrs = cycling::per_group(o.max_lr, n, "OneCycleLR", "max_lr");
  cycle_momentum_ = o.cycle_momentum;
  std::vector<double> max_momentums(n), base_momentums(n);
  if (cycle_momentum_) {
    use_beta1_ = cycling::momentum_is_beta1(optimizer, "OneCycleLR");
    max_momentums = cycling::per_group(o.max_momentum, n, "OneCycleLR", "max_momentum");
    base_momentums = cycling::per_group(o.base_momentum, n, "OneCycleLR", "base_momentum");
  }
  for (size_t g = 0; g < n; ++g) {
    const double initial_lr = max_lrs[g] / o.div_factor;
    groups_.push_back({{initial_lr, max_lrs[g], initial_lr / o.final_div_factor, max_momentums[g],
                        base_momentums[g]}});
  }
  // Only now that every argument is checked: PyTorch's writes into the param groups.
  for (size_t g = 0; g < n; ++g) {
    optimizer.set_initial_lr(g, groups_[g].values[kInitialLr]);
    // And the rest of what torch's OneCycleLR keeps in the group, for torch to resume from.
    optimizer.set_scheduled_group_value(g, "max_lr", groups_[g].values[kMaxLr]);
    optimizer.set_scheduled_group_value(g, "min_lr", groups_[g].values[kMinLr]);
    if (cycle_momentum_) {
      optimizer.set_scheduled_group_value(g, "max_momentum", max_momentums[g]);
      optimizer.set_scheduled_group_value(g, "base_momentum", base_momentums[g]);
      set_momentum(g, max_momentums[g]);
    }
  }
  initial_step();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (cosine_) {
    const double cos_out = std::cos(std::numbers::pi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

void OneCycleLR::set_momentum(size_t group, double momentum) const {
  cycling::set_momentum(*optimizer_, group, momentum, use_beta1_);
}

std::vector<double> OneCycleLR::get_lr() const {
  const int64_t step_num = last_epoch_;
  FABRIC_CHECK(step_num <= total_steps_, ValueError, "OneCycleLR: tried to step ", step_num + 1,
               " times. The specified number of total steps is ", total_steps_);
  // torch anneals every group between the values it keeps in the group; one added after
  // construction has none of them (torch: KeyError 'initial_lr').
  const size_t groups = optimizer_->num_param_groups();
  FABRIC_CHECK(groups <= groups_.size(), ValueError, "OneCycleLR.step: the optimizer has ", groups,
               " parameter groups but the scheduler was built for ", groups_.size(),
               "; a group added afterwards has no initial_lr, max_lr and min_lr to anneal between "
               "(build the scheduler after adding it)");
  const auto step = static_cast<double>(step_num);
  std::vector<double> lrs, momenta;
  // Everything is computed before the momenta are written: a step that throws changes nothing.
  for (size_t g = 0; g < groups; ++g) {
    const double* v = groups_[g].values;
    double start_step = 0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& phase = phases_[i];
      if (step <= phase.end_step || i + 1 == phases_.size()) {
        // PyTorch divides by zero here (ZeroDivisionError).
        FABRIC_CHECK(phase.end_step != start_step, ValueError, "OneCycleLR: phase ", i + 1,
                     " spans no steps (it starts and ends at step ", start_step,
                     "); choose another pct_start or total_steps");
        const double pct = (step - start_step) / (phase.end_step - start_step);
        lrs.push_back(anneal(v[phase.start_lr], v[phase.end_lr], pct));
        if (cycle_momentum_) {
          double momentum = anneal(v[phase.start_momentum], v[phase.end_momentum], pct);
          // The step after the last (step_num == total_steps, which torch allows) extrapolates a
          // linear anneal: Adam's beta1 may reach 1 there, which torch writes unchecked and no
          // step uses, but Adam refuses. It keeps the last step's beta1 then.
          if (use_beta1_ && step_num == total_steps_ && momentum >= 1)
            momentum = cycling::momentum_of(*optimizer_, g, use_beta1_);
          momenta.push_back(momentum);
        }
        break;
      }
      start_step = phase.end_step;
    }
  }
  if (cycle_momentum_) cycling::set_momenta(*optimizer_, momenta, use_beta1_);
  return lrs;
}

}  // namespace fabric::optim
