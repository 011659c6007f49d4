// Stochastic gradient descent with momentum, dampening, Nesterov momentum, weight decay and
// maximize, with PyTorch's exact update order (torch.optim.SGD, single-tensor implementation).
#pragma once
#include "optim/optimizer.h"

namespace fabric::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0 in the constructor's options
  bool maximize = false;
};
void validate_options(const SGDOptions& o);
HyperParams to_hyper_params(const SGDOptions& o);
void from_hyper_params(const HyperParams& h, SGDOptions& o);

// Per element, with g the gradient (negated when maximize):
//   g += weight_decay * p
//   momentum != 0: buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g;
//                  g = nesterov ? g + momentum * buf : buf
//   (momentum == 0, Nesterov or not: the buffer is neither read nor updated, as in torch)
//   p -= lr * g
// State: "momentum_buffer" (only with momentum != 0).
class SGD : public GroupedOptimizer<SGDOptions> {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options = {});
  SGD(std::vector<Group> groups, const SGDOptions& defaults = {});

 protected:
  void step_impl() override;
};

}  // namespace fabric::optim
