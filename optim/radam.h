// RAdam with PyTorch 1.13's exact arithmetic (torch.optim.RAdam, single-tensor implementation):
// Adam whose adaptive term is switched on, and rectified, once the variance estimate is
// trustworthy (rho_t > 5), and weight decay.
#pragma once
#include <array>

#include "optim/optimizer.h"

namespace fabric::optim {

struct RAdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;  // L2: added to the gradient
};
void validate_options(const RAdamOptions& o);
HyperParams to_hyper_params(const RAdamOptions& o);
void from_hyper_params(const HyperParams& h, RAdamOptions& o);

// One step, in PyTorch's order, each tensor op rounded as torch's CPU op rounds it (float32 and
// float64, bit for bit):
//   step += 1;  bc1 = 1 - beta1^step;  bc2 = 1 - beta2^step
//   g = g + weight_decay * p;  m and v as Adam's
//   rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 * step * beta2^step / bc2
//   rho_t > 5:  rect = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
//               p -= m / bc1 * lr * (sqrt(bc2) / (sqrt(v) + eps)) * rect
//   otherwise:  p -= m / bc1 * lr
// State per parameter, as PyTorch's state_dict names it: "step" (0-dim float64; PyTorch keeps
// float32), "exp_avg" and "exp_avg_sq" in the parameter's dtype. CPU float32/float64 parameters.
class RAdam : public GroupedOptimizer<RAdamOptions> {
 public:
  RAdam(std::vector<Tensor> params, const RAdamOptions& options = {});
  RAdam(std::vector<Group> groups, const RAdamOptions& defaults = {});

 protected:
  void step_impl() override;
};

}  // namespace fabric::optim
