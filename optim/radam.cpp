// RAdam: option checks, hyper-parameter (de)serialisation, the rectification and the per-element
// step.
#include "optim/radam.h"

#include <cmath>

#include "optim/cpu_param_loop.h"
#include "optim/hyper_param_fields.h"
#include "tensor/ops.h"

// Every fusion below is written out (std::fma where torch's op fuses); the compiler must add none.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const RAdamOptions& o) {
  hyper_fields::check_lr("RAdam", o.lr);
  hyper_fields::check_eps("RAdam", o.eps);
  hyper_fields::check_betas("RAdam", o.betas);
  hyper_fields::check_weight_decay("RAdam", o.weight_decay);
}

namespace {
constexpr hyper_fields::Fields<RAdamOptions, 4> kRAdamFields = {{
    {"lr", &RAdamOptions::lr},
    {"betas", &RAdamOptions::betas},
    {"eps", &RAdamOptions::eps},
    {"weight_decay", &RAdamOptions::weight_decay},
}};
}  // namespace

HyperParams to_hyper_params(const RAdamOptions& o) {
  return hyper_fields::to_hyper_params(kRAdamFields, o);
}

void from_hyper_params(const HyperParams& h, RAdamOptions& o) {
  hyper_fields::from_hyper_params(kRAdamFields, h, o, "RAdam");
}

RAdam::RAdam(std::vector<Tensor> params, const RAdamOptions& options)
    : GroupedOptimizer("RAdam", std::move(params), options) {}

RAdam::RAdam(std::vector<Group> groups, const RAdamOptions& defaults)
    : GroupedOptimizer("RAdam", std::move(groups), defaults) {}

namespace {

// The step's scalars, in torch's Python float arithmetic.
struct RAdamScalars {
  double bias_correction1, sqrt_bias_correction2;
  bool rectified;  // rho_t > 5
  double rect;
};

RAdamScalars radam_scalars(const RAdamOptions& o, double step) {
  const double beta2 = o.betas[1];
  const double bc2 = 1 - std::pow(beta2, step);
  const double rho_inf = 2 / (1 - beta2) - 1;
  const double rho_t = rho_inf - 2 * step * std::pow(beta2, step) / bc2;
  RAdamScalars s{.bias_correction1 = 1 - std::pow(o.betas[0], step),
                 .sqrt_bias_correction2 = std::sqrt(bc2),
                 .rectified = rho_t > 5.,
                 .rect = 0};
  if (s.rectified)
    s.rect =
        std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
  return s;
}

// torch's scalars reach its kernels rounded to the tensor's dtype; T(...) marks each rounding.
template <class T>
void radam_elements(int64_t n, T* p, const T* grad, T* m, T* v, const RAdamOptions& o,
                    const RAdamScalars& s) {
  const T wd = static_cast<T>(o.weight_decay), eps = static_cast<T>(o.eps);
  const T beta1 = static_cast<T>(o.betas[0]), keep1 = static_cast<T>(1 - o.betas[0]);
  const T beta2 = static_cast<T>(o.betas[1]), keep2 = static_cast<T>(1 - o.betas[1]);
  const T bc1 = static_cast<T>(s.bias_correction1), lr = static_cast<T>(o.lr);
  const T sqrt_bc2 = static_cast<T>(s.sqrt_bias_correction2), rect = static_cast<T>(s.rect);
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (o.weight_decay != 0) g = std::fma(p[i], wd, g);
    m[i] = std::fma(g, keep1, T(m[i] * beta1));
    v[i] = std::fma(T(keep2 * g), g, T(v[i] * beta2));
    T update = T(T(m[i] / bc1) * lr);  // bias_corrected_exp_avg * lr
    if (s.rectified) {
      // math.sqrt(bc2) / tensor is torch's __rtruediv__: tensor.reciprocal() * scalar.
      const T adaptive_lr = T(T(T(1) / T(std::sqrt(v[i]) + eps)) * sqrt_bc2);
      update = T(T(update * adaptive_lr) * rect);
    }
    p[i] = T(p[i] - update);  // param.add_(update, alpha=-1.0): one rounding
  }
}

// The same step as tensor ops on any device (cpu_param_loop.h), one per op of torch's step.
void radam_composed(Tensor p, const Tensor& grad, Tensor m, Tensor v, const RAdamOptions& o,
                    const RAdamScalars& s) {
  const Tensor g = o.weight_decay != 0 ? add(grad, p, o.weight_decay) : grad;
  param_loop::adam_moments_(m, v, g, o.betas[0], o.betas[1]);
  Tensor update = mul(div(m, s.bias_correction1), o.lr);
  if (s.rectified) {
    const Tensor adaptive_lr = mul(reciprocal(add(sqrt(v), o.eps)), s.sqrt_bias_correction2);
    update = mul(mul(update, adaptive_lr), s.rect);
  }
  sub_(p, update);
}

}  // namespace

void RAdam::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const RAdamOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const bool loop = param_loop::takes_loop("RAdam", p);  // before any state changes
      ParamState& st = state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      double& step = step_count(st, idx, fresh);
      const Tensor exp_avg = state_buffer(st, "exp_avg", p, idx, fresh);
      const Tensor exp_avg_sq = state_buffer(st, "exp_avg_sq", p, idx, fresh);
      step += 1;
      const RAdamScalars s = radam_scalars(o, step);
      update_in_place(p, [&](const Tensor& target) {
        if (!loop) return radam_composed(target, grad, exp_avg, exp_avg_sq, o, s);
        param_loop::dispatch_float_cpu(p, [&](auto zero) {
          using T = decltype(zero);
          radam_elements<T>(
              p.numel(), static_cast<T*>(target.data_ptr()), static_cast<const T*>(grad.data_ptr()),
              static_cast<T*>(exp_avg.data_ptr()), static_cast<T*>(exp_avg_sq.data_ptr()), o, s);
        });
      });
    }
  }
}

}  // namespace fabric::optim
