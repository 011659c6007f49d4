// RMSprop with PyTorch 1.13's exact arithmetic (torch.optim.RMSprop, single-tensor implementation):
// momentum, centered, weight decay and maximize, over one fused kernel per parameter.
#pragma once
#include "optim/optimizer.h"

namespace fabric::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;  // smoothing constant of the squared-gradient average
  double eps = 1e-8;
  double weight_decay = 0;  // L2: added to the gradient
  double momentum = 0;
  bool centered =
      false;  // divide by the gradient's estimated variance instead of its raw second moment
  bool maximize = false;
};
void validate_options(const RMSpropOptions& o);
HyperParams to_hyper_params(const RMSpropOptions& o);
void from_hyper_params(const HyperParams& h, RMSpropOptions& o);

// One step, per element (g negated when maximize), in PyTorch's order:
//   g = g + weight_decay * p
//   v = alpha * v + (1 - alpha) * g * g
//   centered: a = alpha * a + (1 - alpha) * g;  avg = sqrt(v - a * a) + eps   else avg = sqrt(v) +
//   eps momentum > 0: b = momentum * b + g / avg;  p -= lr * b                   else p -= lr * g /
//   avg
// State per parameter, as PyTorch's state_dict names it: "step" (0-dim float64), "square_avg",
// "momentum_buffer" (momentum > 0) and "grad_avg" (centered), in the parameter's dtype. A
// momentum buffer or gradient average missing from existing state (momentum or centered switched
// on later, e.g. by OneCycleLR) starts at zero, where PyTorch would raise a KeyError.
class RMSprop : public GroupedOptimizer<RMSpropOptions> {
 public:
  RMSprop(std::vector<Tensor> params, const RMSpropOptions& options = {});
  RMSprop(std::vector<Group> groups, const RMSpropOptions& defaults = {});

 protected:
  void step_impl() override;
};

}  // namespace fabric::optim
