// Adagrad with PyTorch 1.13's exact arithmetic (torch.optim.Adagrad, single-tensor implementation
// for dense gradients): lr decay, weight decay, an initial accumulator value and maximize, over one
// fused kernel per parameter.
#pragma once
#include "optim/optimizer.h"

namespace fabric::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 0;  // L2: added to the gradient
  double initial_accumulator_value = 0;
  double eps = 1e-10;
  bool maximize = false;
};
void validate_options(const AdagradOptions& o);
HyperParams to_hyper_params(const AdagradOptions& o);
void from_hyper_params(const HyperParams& h, AdagradOptions& o);

// One step, per element (g negated when maximize), in PyTorch's order:
//   step += 1;  clr = lr / (1 + (step - 1) * lr_decay)
//   g = g + weight_decay * p
//   sum = sum + g * g
//   p -= clr * g / (sqrt(sum) + eps)
// State per parameter, as PyTorch's: "step" (0-dim float64; PyTorch keeps float32) and "sum" (the
// parameter's dtype). As in PyTorch it exists from construction, sum filled with the constructor's
// initial_accumulator_value (torch 1.13 reads its argument, not a group's own value), so
// state_dict lists every parameter before the first step; a parameter
// that joins later (add_param_group, replace_group_params, a load_state_dict without its state)
// gets the same at its first step, where PyTorch would raise a KeyError.
class Adagrad : public GroupedOptimizer<AdagradOptions> {
 public:
  Adagrad(std::vector<Tensor> params, const AdagradOptions& options = {});
  Adagrad(std::vector<Group> groups, const AdagradOptions& defaults = {});

 protected:
  void step_impl() override;

 private:
  // PyTorch's state["step"] = 0, state["sum"] = full_like(p, initial_accumulator_value).
  void init_state(ParamState& st, const Tensor& param);
  // That state for every parameter of every group: PyTorch creates it in the constructor.
  void init_states();

  double initial_accumulator_value_;  // the constructor's (options or defaults)
};

}  // namespace fabric::optim
