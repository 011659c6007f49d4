// Adam and AdamW with PyTorch's exact arithmetic order (torch.optim.Adam/AdamW, single-tensor
// implementation), amsgrad and maximize, over one fused kernel per parameter.
#pragma once
#include <array>

#include "optim/optimizer.h"

namespace fabric::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;  // L2: added to the gradient
  bool amsgrad = false;
  bool maximize = false;
};

// AdamW differs only in the default weight decay and in decoupling it from the gradient.
struct AdamWOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay
  bool amsgrad = false;
  bool maximize = false;
};

void validate_options(const AdamOptions& o);
void validate_options(const AdamWOptions& o);
HyperParams to_hyper_params(const AdamOptions& o);
HyperParams to_hyper_params(const AdamWOptions& o);
void from_hyper_params(const HyperParams& h, AdamOptions& o);
void from_hyper_params(const HyperParams& h, AdamWOptions& o);

// One step, per element (g negated when maximize), in this order:
//   step += 1
//   AdamW: p *= 1 - lr * wd            Adam: g = g + wd * p
//   m = beta1 * m + (1 - beta1) * g                (m.mul_(beta1).add_(g, alpha=1 - beta1))
//   v = beta2 * v + (1 - beta2) * g * g            (v.mul_(beta2).addcmul_(g, g, value=1 - beta2);
//                                                   amsgrad: vmax = max(vmax, v), used below)
//   p -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// rounded as torch 1.13's CPU ops round them (bit for bit in float64 and float32; see
// kernels/cpu/optim_fused.cpp).
// State per parameter: "step" (0-dim float64), "exp_avg", "exp_avg_sq", and "max_exp_avg_sq"
// with amsgrad, in the parameter's dtype.
template <class Options, bool kDecoupled>
class AdamFamily : public GroupedOptimizer<Options> {
 public:
  using Group = ParamGroup<Options>;
  AdamFamily(std::vector<Tensor> params, const Options& options);
  AdamFamily(std::vector<Group> groups, const Options& defaults);

 protected:
  void step_impl() override;
};

extern template class AdamFamily<AdamOptions, false>;
extern template class AdamFamily<AdamWOptions, true>;

class Adam : public AdamFamily<AdamOptions, false> {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options = {}) : AdamFamily(std::move(params), options) {}
  Adam(std::vector<Group> groups, const AdamOptions& defaults = {}) : AdamFamily(std::move(groups), defaults) {}
};

class AdamW : public AdamFamily<AdamWOptions, true> {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& options = {}) : AdamFamily(std::move(params), options) {}
  AdamW(std::vector<Group> groups, const AdamWOptions& defaults = {}) : AdamFamily(std::move(groups), defaults) {}
};

}  // namespace fabric::optim
