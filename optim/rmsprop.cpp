// RMSprop: option checks, hyper-parameter (de)serialisation and the step over the fused kernel.
#include "optim/rmsprop.h"

#include "optim/hyper_param_fields.h"
#include "tensor/optim_kernels.h"

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const RMSpropOptions& o) {
  hyper_fields::check_lr("RMSprop", o.lr);
  hyper_fields::check_eps("RMSprop", o.eps);
  hyper_fields::check_non_negative("RMSprop", "momentum", o.momentum);
  hyper_fields::check_weight_decay("RMSprop", o.weight_decay);
  hyper_fields::check_non_negative("RMSprop", "alpha", o.alpha);
}

namespace {
constexpr hyper_fields::Fields<RMSpropOptions, 7> kRMSpropFields = {{
    {"lr", &RMSpropOptions::lr},
    {"momentum", &RMSpropOptions::momentum},
    {"alpha", &RMSpropOptions::alpha},
    {"eps", &RMSpropOptions::eps},
    {"centered", &RMSpropOptions::centered},
    {"weight_decay", &RMSpropOptions::weight_decay},
    {"maximize", &RMSpropOptions::maximize},
}};
}  // namespace

HyperParams to_hyper_params(const RMSpropOptions& o) {
  return hyper_fields::to_hyper_params(kRMSpropFields, o);
}

void from_hyper_params(const HyperParams& h, RMSpropOptions& o) {
  hyper_fields::from_hyper_params(kRMSpropFields, h, o, "RMSprop");
}

RMSprop::RMSprop(std::vector<Tensor> params, const RMSpropOptions& options)
    : GroupedOptimizer("RMSprop", std::move(params), options) {}

RMSprop::RMSprop(std::vector<Group> groups, const RMSpropOptions& defaults)
    : GroupedOptimizer("RMSprop", std::move(groups), defaults) {}

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
