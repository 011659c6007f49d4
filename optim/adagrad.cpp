// Adagrad: option checks, hyper-parameter (de)serialisation, the state PyTorch creates at
// construction and the step over the fused kernel.
#include "optim/adagrad.h"

#include "optim/hyper_param_fields.h"
#include "tensor/factory.h"
#include "tensor/optim_kernels.h"

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const AdagradOptions& o) {
  hyper_fields::check_lr("Adagrad", o.lr);
  hyper_fields::check_non_negative("Adagrad", "lr_decay", o.lr_decay);
  hyper_fields::check_weight_decay("Adagrad", o.weight_decay);
  hyper_fields::check_non_negative("Adagrad", "initial_accumulator_value",
                                   o.initial_accumulator_value);
  hyper_fields::check_eps("Adagrad", o.eps);
}

namespace {
constexpr hyper_fields::Fields<AdagradOptions, 6> kAdagradFields = {{
    {"lr", &AdagradOptions::lr},
    {"lr_decay", &AdagradOptions::lr_decay},
    {"eps", &AdagradOptions::eps},
    {"weight_decay", &AdagradOptions::weight_decay},
    {"initial_accumulator_value", &AdagradOptions::initial_accumulator_value},
    {"maximize", &AdagradOptions::maximize},
}};
}  // namespace

HyperParams to_hyper_params(const AdagradOptions& o) {
  return hyper_fields::to_hyper_params(kAdagradFields, o);
}

void from_hyper_params(const HyperParams& h, AdagradOptions& o) {
  hyper_fields::from_hyper_params(kAdagradFields, h, o, "Adagrad");
}

Adagrad::Adagrad(std::vector<Tensor> params, const AdagradOptions& options)
    : GroupedOptimizer("Adagrad", std::move(params), options),
      initial_accumulator_value_(options.initial_accumulator_value) {
  init_states();
}

Adagrad::Adagrad(std::vector<Group> groups, const AdagradOptions& defaults)
    : GroupedOptimizer("Adagrad", std::move(groups), defaults),
      initial_accumulator_value_(defaults.initial_accumulator_value) {
  init_states();
}

void Adagrad::init_states() {
  for (const Group& g : groups_) {
    for (const Tensor& p : g.params) init_state(state_for(p), p);
  }
}

void Adagrad::init_state(ParamState& st, const Tensor& param) {
  st["step"] = scalar_tensor(0.0, {.dtype = DType::float64});
  st["sum"] = full(param.sizes(), initial_accumulator_value_,
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
      if (st.empty()) init_state(st, p);
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
