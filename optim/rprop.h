// Rprop with PyTorch 1.13's exact arithmetic (torch.optim.Rprop, single-tensor implementation):
// resilient backpropagation, each element's own step size grown while its gradient keeps its sign
// and shrunk when it flips; only the gradient's sign moves the parameter.
#pragma once
#include <array>

#include "optim/optimizer.h"

namespace fabric::optim {

struct RpropOptions {
  double lr = 1e-2;                               // every element's first step size
  std::array<double, 2> etas = {0.5, 1.2};        // (etaminus, etaplus): 0 < etaminus < 1 < etaplus
  std::array<double, 2> step_sizes = {1e-6, 50};  // (min, max) step size
  bool maximize = false;
};
void validate_options(const RpropOptions& o);
HyperParams to_hyper_params(const RpropOptions& o);
void from_hyper_params(const HyperParams& h, RpropOptions& o);

// One step, per element (g negated when maximize), in PyTorch's order, rounded as torch's CPU ops
// (float32 and float64, bit for bit):
//   step += 1
//   s = sign(g * prev)      -> factor etaplus (s > 0), etaminus (s < 0), 1 (s == 0)
//   step_size = clamp(step_size * factor, min, max)
//   g = 0 where factor == etaminus (the sign flipped: no move, and no flip seen next step)
//   p -= sign(g) * step_size;  prev = g
// State per parameter, as PyTorch's state_dict names it: "step" (0-dim float64; PyTorch keeps a
// Python int), "prev" and "step_size" (lr at first) in the parameter's dtype. CPU float32/float64
// parameters.
class Rprop : public GroupedOptimizer<RpropOptions> {
 public:
  Rprop(std::vector<Tensor> params, const RpropOptions& options = {});
  Rprop(std::vector<Group> groups, const RpropOptions& defaults = {});

 protected:
  void step_impl() override;
};

}  // namespace fabric::optim
