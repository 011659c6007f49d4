// Adadelta: option checks, hyper-parameter (de)serialisation and the per-element step.
#include "optim/adadelta.h"

#include <cmath>

#include "optim/cpu_param_loop.h"
#include "optim/hyper_param_fields.h"
#include "tensor/ops.h"

// Every fusion below is written out (std::fma where torch's op fuses); the compiler must add none.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const AdadeltaOptions& o) {
  hyper_fields::check_lr("Adadelta", o.lr);
  FABRIC_CHECK(o.rho >= 0 && o.rho <= 1, ValueError, "Adadelta: invalid rho ", o.rho,
               " (expected 0 <= rho <= 1)");
  hyper_fields::check_eps("Adadelta", o.eps);
  hyper_fields::check_weight_decay("Adadelta", o.weight_decay);
}

namespace {
constexpr hyper_fields::Fields<AdadeltaOptions, 5> kAdadeltaFields = {{
    {"lr", &AdadeltaOptions::lr},
    {"rho", &AdadeltaOptions::rho},
    {"eps", &AdadeltaOptions::eps},
    {"weight_decay", &AdadeltaOptions::weight_decay},
    {"maximize", &AdadeltaOptions::maximize},
}};
}  // namespace

HyperParams to_hyper_params(const AdadeltaOptions& o) {
  return hyper_fields::to_hyper_params(kAdadeltaFields, o);
}

void from_hyper_params(const HyperParams& h, AdadeltaOptions& o) {
  hyper_fields::from_hyper_params(kAdadeltaFields, h, o, "Adadelta");
}

Adadelta::Adadelta(std::vector<Tensor> params, const AdadeltaOptions& options)
    : GroupedOptimizer("Adadelta", std::move(params), options) {}

Adadelta::Adadelta(std::vector<Group> groups, const AdadeltaOptions& defaults)
    : GroupedOptimizer("Adadelta", std::move(groups), defaults) {}

namespace {

// torch's scalars reach its kernels rounded to the tensor's dtype; T(...) marks each rounding.
template <class T>
void adadelta_elements(int64_t n, T* p, const T* grad, T* v, T* acc, const AdadeltaOptions& o) {
  const T wd = static_cast<T>(o.weight_decay), rho = static_cast<T>(o.rho);
  const T keep = static_cast<T>(1 - o.rho), eps = static_cast<T>(o.eps);
  const T neg_lr = static_cast<T>(-o.lr);
  for (int64_t i = 0; i < n; ++i) {
    T g = o.maximize ? -grad[i] : grad[i];
    if (o.weight_decay != 0) g = std::fma(p[i], wd, g);
    v[i] = std::fma(T(keep * g), g, T(v[i] * rho));  // addcmul: fma(value * t1, t2, self)
    const T std_dev = std::sqrt(T(v[i] + eps));
    const T delta = T(T(std::sqrt(T(acc[i] + eps)) / std_dev) * g);
    acc[i] = std::fma(T(keep * delta), delta, T(acc[i] * rho));
    p[i] = std::fma(delta, neg_lr, p[i]);
  }
}

// The same step as tensor ops on any device (cpu_param_loop.h), one per op of torch's step.
void adadelta_composed(Tensor p, const Tensor& grad, Tensor v, Tensor acc,
                       const AdadeltaOptions& o) {
  Tensor g = o.maximize ? neg(grad) : grad;
  if (o.weight_decay != 0) g = add(g, p, o.weight_decay);
  mul_(v, o.rho);
  v.copy_(addcmul(v, g, g, 1 - o.rho));
  const Tensor std_dev = sqrt(add(v, o.eps));
  const Tensor delta = mul(div(sqrt(add(acc, o.eps)), std_dev), g);
  mul_(acc, o.rho);
  acc.copy_(addcmul(acc, delta, delta, 1 - o.rho));
  add_(p, delta, -o.lr);
}

}  // namespace

void Adadelta::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const AdadeltaOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const bool loop = param_loop::takes_loop("Adadelta", p);  // before any state changes
      ParamState& st = state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      double& step = step_count(st, idx, fresh);
      const Tensor square_avg = state_buffer(st, "square_avg", p, idx, fresh);
      const Tensor acc_delta = state_buffer(st, "acc_delta", p, idx, fresh);
      step += 1;
      update_in_place(p, [&](const Tensor& target) {
        if (!loop) return adadelta_composed(target, grad, square_avg, acc_delta, o);
        param_loop::dispatch_float_cpu(p, [&](auto zero) {
          using T = decltype(zero);
          adadelta_elements<T>(
              p.numel(), static_cast<T*>(target.data_ptr()), static_cast<const T*>(grad.data_ptr()),
              static_cast<T*>(square_avg.data_ptr()), static_cast<T*>(acc_delta.data_ptr()), o);
        });
      });
    }
  }
}

}  // namespace fabric::optim
