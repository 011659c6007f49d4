// RMSprop: option checks, hyper-parameter (de)serialisation and the step over the fused kernel.
#include "optim/rmsprop.h"

#include "tensor/optim_kernels.h"

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const RMSpropOptions& o) {
  FABRIC_CHECK(o.lr >= 0, ValueError, "RMSprop: invalid learning rate ", o.lr,
               " (expected lr >= 0)");
  FABRIC_CHECK(o.eps >= 0, ValueError, "RMSprop: invalid epsilon ", o.eps, " (expected eps >= 0)");
  FABRIC_CHECK(o.momentum >= 0, ValueError, "RMSprop: invalid momentum ", o.momentum,
               " (expected momentum >= 0)");
  FABRIC_CHECK(o.weight_decay >= 0, ValueError, "RMSprop: invalid weight_decay ", o.weight_decay,
               " (expected weight_decay >= 0)");
  FABRIC_CHECK(o.alpha >= 0, ValueError, "RMSprop: invalid alpha ", o.alpha,
               " (expected alpha >= 0)");
}

HyperParams to_hyper_params(const RMSpropOptions& o) {
  return {{"lr", o.lr},
          {"momentum", o.momentum},
          {"alpha", o.alpha},
          {"eps", o.eps},
          {"centered", o.centered},
          {"weight_decay", o.weight_decay},
          {"maximize", o.maximize}};
}

void from_hyper_params(const HyperParams& h, RMSpropOptions& o) {
  read_hyper_param(h, "lr", o.lr, "RMSprop");
  read_hyper_param(h, "momentum", o.momentum, "RMSprop");
  read_hyper_param(h, "alpha", o.alpha, "RMSprop");
  read_hyper_param(h, "eps", o.eps, "RMSprop");
  read_hyper_param(h, "centered", o.centered, "RMSprop");
  read_hyper_param(h, "weight_decay", o.weight_decay, "RMSprop");
  read_hyper_param(h, "maximize", o.maximize, "RMSprop");
}

RMSprop::RMSprop(std::vector<Tensor> params, const RMSpropOptions& options)
    : GroupedOptimizer("RMSprop", options) {
  FABRIC_CHECK(!params.empty(), ValueError, "RMSprop: got an empty parameter list");
  add_param_group(std::move(params));
}

RMSprop::RMSprop(std::vector<Group> groups, const RMSpropOptions& defaults)
    : GroupedOptimizer("RMSprop", defaults) {
  FABRIC_CHECK(!groups.empty(), ValueError, "RMSprop: got an empty list of parameter groups");
  for (Group& g : groups) add_param_group(std::move(g));
}

void RMSprop::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const RMSpropOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const RmspropStepFn kernel = rmsprop_step_stub(p.device());  // before any state changes
      ParamState& st = state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      double& step = step_count(st, idx, fresh);
      const Tensor square_avg = state_buffer(st, "square_avg", p, idx, fresh);
      Tensor momentum_buffer, grad_avg;
      if (o.momentum > 0) momentum_buffer = state_buffer(st, "momentum_buffer", p, idx, true);
      if (o.centered) grad_avg = state_buffer(st, "grad_avg", p, idx, true);
      step += 1;
      const RmspropKernelArgs args{.lr = o.lr,
                                   .alpha = o.alpha,
                                   .eps = o.eps,
                                   .weight_decay = o.weight_decay,
                                   .momentum = o.momentum,
                                   .centered = o.centered,
                                   .maximize = o.maximize};
      update_in_place(p, [&](const Tensor& target) {
        kernel(p.dtype(), p.numel(), target.data_ptr(), grad.data_ptr(), square_avg.data_ptr(),
               grad_avg.defined() ? grad_avg.data_ptr() : nullptr,
               momentum_buffer.defined() ? momentum_buffer.data_ptr() : nullptr, args);
      });
    }
  }
}

}  // namespace fabric::optim
