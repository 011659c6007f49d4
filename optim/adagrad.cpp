// Adagrad: option checks, hyper-parameter (de)serialisation, the state PyTorch creates at
// construction and the step over the fused kernel.
#include "optim/adagrad.h"

#include "tensor/factory.h"
#include "tensor/optim_kernels.h"

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const AdagradOptions& o) {
  FABRIC_CHECK(o.lr >= 0, ValueError, "Adagrad: invalid learning rate ", o.lr,
               " (expected lr >= 0)");
  FABRIC_CHECK(o.lr_decay >= 0, ValueError, "Adagrad: invalid lr_decay ", o.lr_decay,
               " (expected lr_decay >= 0)");
  FABRIC_CHECK(o.weight_decay >= 0, ValueError, "Adagrad: invalid weight_decay ", o.weight_decay,
               " (expected weight_decay >= 0)");
  FABRIC_CHECK(o.initial_accumulator_value >= 0, ValueError,
               "Adagrad: invalid initial_accumulator_value ", o.initial_accumulator_value,
               " (expected initial_accumulator_value >= 0)");
  FABRIC_CHECK(o.eps >= 0, ValueError, "Adagrad: invalid epsilon ", o.eps, " (expected eps >= 0)");
}

HyperParams to_hyper_params(const AdagradOptions& o) {
  return {{"lr", o.lr},
          {"lr_decay", o.lr_decay},
          {"eps", o.eps},
          {"weight_decay", o.weight_decay},
          {"initial_accumulator_value", o.initial_accumulator_value},
          {"maximize", o.maximize}};
}

void from_hyper_params(const HyperParams& h, AdagradOptions& o) {
  read_hyper_param(h, "lr", o.lr, "Adagrad");
  read_hyper_param(h, "lr_decay", o.lr_decay, "Adagrad");
  read_hyper_param(h, "eps", o.eps, "Adagrad");
  read_hyper_param(h, "weight_decay", o.weight_decay, "Adagrad");
  read_hyper_param(h, "initial_accumulator_value", o.initial_accumulator_value, "Adagrad");
  read_hyper_param(h, "maximize", o.maximize, "Adagrad");
}

Adagrad::Adagrad(std::vector<Tensor> params, const AdagradOptions& options)
    : GroupedOptimizer("Adagrad", options) {
  FABRIC_CHECK(!params.empty(), ValueError, "Adagrad: got an empty parameter list");
  add_param_group(std::move(params));
  for (const Tensor& p : groups_.front().params)
    init_state(state_for(p), p, groups_.front().options);
}

Adagrad::Adagrad(std::vector<Group> groups, const AdagradOptions& defaults)
    : GroupedOptimizer("Adagrad", defaults) {
  FABRIC_CHECK(!groups.empty(), ValueError, "Adagrad: got an empty list of parameter groups");
  for (Group& g : groups) add_param_group(std::move(g));
  for (const Group& g : groups_) {
    for (const Tensor& p : g.params) init_state(state_for(p), p, g.options);
  }
}

void Adagrad::init_state(ParamState& st, const Tensor& param, const AdagradOptions& o) {
  st["step"] = scalar_tensor(0.0, {.dtype = DType::float64});
  st["sum"] = full(param.sizes(), o.initial_accumulator_value,
                   {.dtype = param.dtype(), .device = param.device()});
}

void Adagrad::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const AdagradOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const AdagradStepFn kernel = adagrad_step_stub(p.device());  // before any state changes
      ParamState& st = state_for(p);
      if (st.empty()) init_state(st, p, o);
      double& step = step_count(st, idx, false);
      const Tensor sum = state_buffer(st, "sum", p, idx, false);
      step += 1;
      const AdagradKernelArgs args{.lr = o.lr,
                                   .lr_decay = o.lr_decay,
                                   .eps = o.eps,
                                   .weight_decay = o.weight_decay,
                                   .step = step,
                                   .maximize = o.maximize};
      update_in_place(p, [&](const Tensor& target) {
        kernel(p.dtype(), p.numel(), target.data_ptr(), grad.data_ptr(), sum.data_ptr(), args);
      });
    }
  }
}

}  // namespace fabric::optim
