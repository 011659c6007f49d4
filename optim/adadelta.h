// Adadelta with PyTorch 1.13's exact arithmetic (torch.optim.Adadelta, single-tensor
// implementation): weight decay and maximize.
#pragma once
#include "optim/optimizer.h"

namespace fabric::optim {

struct AdadeltaOptions {
  double lr = 1.0;   // scales the delta before it is applied
  double rho = 0.9;  // smoothing constant of both running averages
  double eps = 1e-6;
  double weight_decay = 0;  // L2: added to the gradient
  bool maximize = false;
};
void validate_options(const AdadeltaOptions& o);
HyperParams to_hyper_params(const AdadeltaOptions& o);
void from_hyper_params(const HyperParams& h, AdadeltaOptions& o);

// One step, per element (g negated when maximize), in PyTorch's order, each line rounded as
// torch's CPU op rounds it (float32 and float64, bit for bit):
//   g = g + weight_decay * p                        (grad.add(param, alpha=wd): one fma)
//   v = rho * v + (1 - rho) * g * g                 (square_avg.mul_(rho).addcmul_(g, g, 1 - rho))
//   delta = sqrt(acc + eps) / sqrt(v + eps) * g
//   acc = rho * acc + (1 - rho) * delta * delta
//   p -= lr * delta                                 (param.add_(delta, alpha=-lr): one fma)
// State per parameter, as PyTorch's state_dict names it: "step" (0-dim float64; PyTorch keeps a
// Python int), "square_avg" and "acc_delta" in the parameter's dtype. CPU float32/float64
// parameters.
class Adadelta : public GroupedOptimizer<AdadeltaOptions> {
 public:
  Adadelta(std::vector<Tensor> params, const AdadeltaOptions& options = {});
  Adadelta(std::vector<Group> groups, const AdadeltaOptions& defaults = {});

 protected:
  void step_impl() override;
};

}  // namespace fabric::optim
