// ASGD with PyTorch 1.13's exact arithmetic (torch.optim.ASGD, single-tensor implementation):
// averaged stochastic gradient descent (Polyak and Juditsky, 1992): SGD with a decaying step size
// eta that also keeps a running average of the parameters (ax), averaging from step t0 on.
#pragma once
#include "optim/optimizer.h"

namespace fabric::optim {

struct ASGDOptions {
  double lr = 1e-2;
  double lambd = 1e-4;      // decay term: eta = lr / (1 + lambd * lr * step)^alpha
  double alpha = 0.75;      // power of eta's decay
  double t0 = 1e6;          // the step at which averaging starts
  double weight_decay = 0;  // L2: added to the gradient
  bool maximize = false;
};
void validate_options(const ASGDOptions& o);
HyperParams to_hyper_params(const ASGDOptions& o);
void from_hyper_params(const HyperParams& h, ASGDOptions& o);

// One step, per element (g negated when maximize), in PyTorch's order, rounded as torch's CPU ops
// (float32 and float64, bit for bit):
//   step += 1
//   g = g + weight_decay * p                  (one fma)
//   p = p * (1 - lambd * eta);  p = p - eta * g   (the second one fma)
//   ax = ax + (p - ax) * mu, or ax = p while mu is 1
// then, per parameter: eta = lr / (1 + lambd * lr * step)^alpha, mu = 1 / max(1, step - t0), each
// rounded to float32 as torch's scalar tensors hold them.
// State per parameter, as PyTorch's state_dict names it: "step" (0-dim float64; PyTorch keeps
// float32), "eta" and "mu" (0-dim float32 on the CPU, as PyTorch's), "ax" in the parameter's
// dtype. CPU float32/float64 parameters.
class ASGD : public GroupedOptimizer<ASGDOptions> {
 public:
  ASGD(std::vector<Tensor> params, const ASGDOptions& options = {});
  ASGD(std::vector<Group> groups, const ASGDOptions& defaults = {});

 protected:
  void step_impl() override;
  // "eta" and "mu" are 0-dim float32 CPU scalars, whatever the parameter's shape.
  Tensor loaded_state_tensor(int64_t index, const std::string& key, const Tensor& saved,
                             const Tensor& param) const override;
};

}  // namespace fabric::optim
