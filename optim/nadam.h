// NAdam with PyTorch 1.13's exact arithmetic (torch.optim.NAdam, single-tensor implementation):
// Adam with Nesterov momentum and a momentum schedule (momentum_decay), and weight decay.
#pragma once
#include <array>

#include "optim/optimizer.h"

namespace fabric::optim {

struct NAdamOptions {
  double lr = 2e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;       // L2: added to the gradient
  double momentum_decay = 4e-3;  // psi: mu_t = beta1 * (1 - 0.5 * 0.96^(t * psi))
};
void validate_options(const NAdamOptions& o);
HyperParams to_hyper_params(const NAdamOptions& o);
void from_hyper_params(const HyperParams& h, NAdamOptions& o);

// One step, in PyTorch's order, each tensor op rounded as torch's CPU op rounds it (float32 and
// float64, bit for bit):
//   step += 1;  mu = beta1 * (1 - 0.5 * 0.96^(step * psi));  mu_next likewise at step + 1
//   mu_product *= mu  (a float32 scalar, as torch's);  mu_product_next = mu_product * mu * mu_next
//   g = g + weight_decay * p;  m and v as Adam's
//   denom = sqrt(v / (1 - beta2^step)) + eps
//   p += (-lr * (1 - mu) / (1 - mu_product)) * g / denom
//   p += (-lr * mu_next / (1 - mu_product_next)) * m / denom
// State per parameter, as PyTorch's state_dict names it: "step" (0-dim float64; PyTorch keeps
// float32), "mu_product" (0-dim float32 on the CPU, as PyTorch's), "exp_avg" and "exp_avg_sq" in
// the parameter's dtype. CPU float32/float64 parameters.
class NAdam : public GroupedOptimizer<NAdamOptions> {
 public:
  NAdam(std::vector<Tensor> params, const NAdamOptions& options = {});
  NAdam(std::vector<Group> groups, const NAdamOptions& defaults = {});

 protected:
  void step_impl() override;
};

}  // namespace fabric::optim
