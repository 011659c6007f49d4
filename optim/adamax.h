// Adamax with PyTorch 1.13's exact arithmetic (torch.optim.Adamax, single-tensor implementation):
// Adam with the infinity norm in place of the second moment, weight decay and maximize.
#pragma once
#include <array>

#include "optim/optimizer.h"

namespace fabric::optim {

struct AdamaxOptions {
  double lr = 2e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;  // L2: added to the gradient
  bool maximize = false;
};
void validate_options(const AdamaxOptions& o);
HyperParams to_hyper_params(const AdamaxOptions& o);
void from_hyper_params(const HyperParams& h, AdamaxOptions& o);

// One step, per element (g negated when maximize), in PyTorch's order, each line rounded as
// torch's CPU op rounds it (float32 and float64, bit for bit):
//   step += 1
//   g = g + weight_decay * p                       (grad.add(param, alpha=wd): one fma)
//   m = beta1 * m + (1 - beta1) * g                (exp_avg.mul_(beta1).add_(g, alpha=1 - beta1))
//   u = max(beta2 * u, |g| + eps)                  (torch.cat + amax; NaN wins)
//   p += (-lr / (1 - beta1^step)) * m / u          (param.addcdiv_)
// State per parameter, as PyTorch's state_dict names it: "step" (0-dim float64; PyTorch keeps
// float32), "exp_avg" and "exp_inf" in the parameter's dtype. CPU float32/float64 parameters.
class Adamax : public GroupedOptimizer<AdamaxOptions> {
 public:
  Adamax(std::vector<Tensor> params, const AdamaxOptions& options = {});
  Adamax(std::vector<Group> groups, const AdamaxOptions& defaults = {});

 protected:
  void step_impl() override;
};

}  // namespace fabric::optim
