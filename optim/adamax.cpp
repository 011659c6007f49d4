// Adamax: option checks, hyper-parameter (de)serialisation and the per-element step.
#include "optim/adamax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "optim/cpu_param_loop.h"
#include "optim/hyper_param_fields.h"
#include "tensor/ops.h"

// Every fusion below is written out (std::fma where torch's op fuses); the compiler must add none.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const AdamaxOptions& o) {
  hyper_fields::check_lr("Adamax", o.lr);
  hyper_fields::check_eps("Adamax", o.eps);
  hyper_fields::check_betas("Adamax", o.betas);
  hyper_fields::check_weight_decay("Adamax", o.weight_decay);
}

namespace {
constexpr hyper_fields::Fields<AdamaxOptions, 5> kAdamaxFields = {{
    {"lr", &AdamaxOptions::lr},
    {"betas", &AdamaxOptions::betas},
    {"eps", &AdamaxOptions::eps},
    {"weight_decay", &AdamaxOptions::weight_decay},
    {"maximize", &AdamaxOptions::maximize},
}};
}  // namespace

HyperParams to_hyper_params(const AdamaxOptions& o) {
  return hyper_fields::to_hyper_params(kAdamaxFields, o);
}

void from_hyper_params(const HyperParams& h, AdamaxOptions& o) {
  hyper_fields::from_hyper_params(kAdamaxFields, h, o, "Adamax");
}

Adamax::Adamax(std::vector<Tensor> params, const AdamaxOptions& options)
    : GroupedOptimizer("Adamax", std::move(params), options) {}

Adamax::Adamax(std::vector<Group> groups, const AdamaxOptions& defaults)
    : GroupedOptimizer("Adamax", std::move(groups), defaults) {}

namespace {

// torch's scalars reach its kernels rounded to the tensor's dtype.
template <class T>
void adamax_elements(int64_t n, T* p, const T* grad, T* m, T* u, const AdamaxOptions& o,
                     double step) {
  const T wd = static_cast<T>(o.weight_decay);
  const T beta1 = static_cast<T>(o.betas[0]), keep1 = static_cast<T>(1 - o.betas[0]);
  const T beta2 = static_cast<T>(o.betas[1]), eps = static_cast<T>(o.eps);
  const double clr = o.lr / (1 - std::pow(o.betas[0], step));  // Python float arithmetic
  const T neg_clr = static_cast<T>(-clr);
  for (int64_t i = 0; i < n; ++i) {
    T g = o.maximize ? -grad[i] : grad[i];
    if (o.weight_decay != 0) g = std::fma(p[i], wd, g);
    m[i] = std::fma(g, keep1, T(m[i] * beta1));
    const T decayed = u[i] * beta2;
    const T bound = std::abs(g) + eps;
    // amax propagates NaN from either side.
    u[i] = std::isnan(decayed) || std::isnan(bound) ? std::numeric_limits<T>::quiet_NaN()
                                                    : std::max(decayed, bound);
    const T scaled = neg_clr * m[i];
    p[i] = p[i] + T(scaled / u[i]);
  }
}

// The same step as tensor ops on any device (cpu_param_loop.h), one per op of torch's step.
void adamax_composed(Tensor p, const Tensor& grad, Tensor m, Tensor u, const AdamaxOptions& o,
                     double step) {
  Tensor g = o.maximize ? neg(grad) : grad;
  if (o.weight_decay != 0) g = add(g, p, o.weight_decay);
  mul_(m, o.betas[0]);
  add_(m, g, 1 - o.betas[0]);
  u.copy_(maximum(mul(u, o.betas[1]), add(abs(g), o.eps)));  // amax propagates NaN
  const double clr = o.lr / (1 - std::pow(o.betas[0], step));
  param_loop::addcdiv_(p, m, u, -clr);
}

}  // namespace

void Adamax::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const AdamaxOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const bool loop = param_loop::takes_loop("Adamax", p);  // before any state changes
      ParamState& st = state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      double& step = step_count(st, idx, fresh);
      const Tensor exp_avg = state_buffer(st, "exp_avg", p, idx, fresh);
      const Tensor exp_inf = state_buffer(st, "exp_inf", p, idx, fresh);
      step += 1;
      update_in_place(p, [&](const Tensor& target) {
        if (!loop) return adamax_composed(target, grad, exp_avg, exp_inf, o, step);
        param_loop::dispatch_float_cpu(p, [&](auto zero) {
          using T = decltype(zero);
          adamax_elements<T>(
              p.numel(), static_cast<T*>(target.data_ptr()), static_cast<const T*>(grad.data_ptr()),
              static_cast<T*>(exp_avg.data_ptr()), static_cast<T*>(exp_inf.data_ptr()), o, step);
        });
      });
    }
  }
}

}  // namespace fabric::optim
