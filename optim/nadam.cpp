// NAdam: option checks, hyper-parameter (de)serialisation, the momentum schedule and the
// per-element step.
#include "optim/nadam.h"

#include <cmath>

#include "optim/cpu_param_loop.h"
#include "optim/hyper_param_fields.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

// Every fusion below is written out (std::fma where torch's op fuses); the compiler must add none.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const NAdamOptions& o) {
  hyper_fields::check_lr("NAdam", o.lr);
  hyper_fields::check_eps("NAdam", o.eps);
  hyper_fields::check_betas("NAdam", o.betas);
  hyper_fields::check_weight_decay("NAdam", o.weight_decay);
  hyper_fields::check_non_negative("NAdam", "momentum_decay", o.momentum_decay);
}

namespace {
constexpr hyper_fields::Fields<NAdamOptions, 5> kNAdamFields = {{
    {"lr", &NAdamOptions::lr},
    {"betas", &NAdamOptions::betas},
    {"eps", &NAdamOptions::eps},
    {"weight_decay", &NAdamOptions::weight_decay},
    {"momentum_decay", &NAdamOptions::momentum_decay},
}};
}  // namespace

HyperParams to_hyper_params(const NAdamOptions& o) {
  return hyper_fields::to_hyper_params(kNAdamFields, o);
}

void from_hyper_params(const HyperParams& h, NAdamOptions& o) {
  hyper_fields::from_hyper_params(kNAdamFields, h, o, "NAdam");
}

NAdam::NAdam(std::vector<Tensor> params, const NAdamOptions& options)
    : GroupedOptimizer("NAdam", std::move(params), options) {}

NAdam::NAdam(std::vector<Group> groups, const NAdamOptions& defaults)
    : GroupedOptimizer("NAdam", std::move(groups), defaults) {}

namespace {

// The step's scalars, computed as torch's Python code and float32 scalar tensor compute them.
struct NAdamScalars {
  double bias_correction2, grad_scale, avg_scale;
  float mu_product;  // the new state value
};

NAdamScalars nadam_scalars(const NAdamOptions& o, double step, float mu_product) {
  const double beta1 = o.betas[0];
  const double mu = beta1 * (1. - 0.5 * std::pow(0.96, step * o.momentum_decay));
  const double mu_next = beta1 * (1. - 0.5 * std::pow(0.96, (step + 1) * o.momentum_decay));
  // mu_product is a float32 tensor: each product with a Python float rounds to float32.
  const float product = mu_product * static_cast<float>(mu);
  const float product_next =
      static_cast<float>(product * static_cast<float>(mu)) * static_cast<float>(mu_next);
  return {.bias_correction2 = 1 - std::pow(o.betas[1], step),
          .grad_scale = -o.lr * (1. - mu) / (1. - static_cast<double>(product)),
          .avg_scale = -o.lr * mu_next / (1. - static_cast<double>(product_next)),
          .mu_product = product};
}

// torch's scalars reach its kernels rounded to the tensor's dtype; T(...) marks each rounding.
template <class T>
void nadam_elements(int64_t n, T* p, const T* grad, T* m, T* v, const NAdamOptions& o,
                    const NAdamScalars& s) {
  const T wd = static_cast<T>(o.weight_decay), eps = static_cast<T>(o.eps);
  const T beta1 = static_cast<T>(o.betas[0]), keep1 = static_cast<T>(1 - o.betas[0]);
  const T beta2 = static_cast<T>(o.betas[1]), keep2 = static_cast<T>(1 - o.betas[1]);
  const T bc2 = static_cast<T>(s.bias_correction2);
  const T grad_scale = static_cast<T>(s.grad_scale), avg_scale = static_cast<T>(s.avg_scale);
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (o.weight_decay != 0) g = std::fma(p[i], wd, g);
    m[i] = std::fma(g, keep1, T(m[i] * beta1));
    v[i] = std::fma(T(keep2 * g), g, T(v[i] * beta2));
    const T denom = T(std::sqrt(T(v[i] / bc2)) + eps);
    T pi = T(p[i] + T(T(grad_scale * g) / denom));  // param.addcdiv_(grad, denom, value=...)
    p[i] = T(pi + T(T(avg_scale * m[i]) / denom));  // param.addcdiv_(exp_avg, denom, value=...)
  }
}

// The same step as tensor ops on any device (cpu_param_loop.h), one per op of torch's step.
void nadam_composed(Tensor p, const Tensor& grad, Tensor m, Tensor v, const NAdamOptions& o,
                    const NAdamScalars& s) {
  const Tensor g = o.weight_decay != 0 ? add(grad, p, o.weight_decay) : grad;
  param_loop::adam_moments_(m, v, g, o.betas[0], o.betas[1]);
  const Tensor denom = add(sqrt(div(v, s.bias_correction2)), o.eps);
  param_loop::addcdiv_(p, g, denom, s.grad_scale);
  param_loop::addcdiv_(p, m, denom, s.avg_scale);
}

}  // namespace

void NAdam::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const NAdamOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const bool loop = param_loop::takes_loop("NAdam", p);  // before any state changes
      ParamState& st = state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      if (fresh) st["mu_product"] = scalar_tensor(1.0, {.dtype = DType::float32});
      double& step = step_count(st, idx, fresh);
      auto mu_it = st.find("mu_product");
      FABRIC_CHECK(mu_it != st.end() && mu_it->second.defined() && mu_it->second.numel() == 1 &&
                       mu_it->second.dtype() == DType::float32 && mu_it->second.device().is_cpu(),
                   ValueError, "NAdam: parameter ", idx,
                   " has state without a 0-dim float32 'mu_product' on the CPU (was it loaded "
                   "from another optimizer?)");
      const Tensor exp_avg = state_buffer(st, "exp_avg", p, idx, fresh);
      const Tensor exp_avg_sq = state_buffer(st, "exp_avg_sq", p, idx, fresh);
      step += 1;
      float* mu_product = static_cast<float*>(mu_it->second.data_ptr());
      const NAdamScalars s = nadam_scalars(o, step, *mu_product);
      *mu_product = s.mu_product;
      update_in_place(p, [&](const Tensor& target) {
        if (!loop) return nadam_composed(target, grad, exp_avg, exp_avg_sq, o, s);
        param_loop::dispatch_float_cpu(p, [&](auto zero) {
          using T = decltype(zero);
          nadam_elements<T>(
              p.numel(), static_cast<T*>(target.data_ptr()), static_cast<const T*>(grad.data_ptr()),
              static_cast<T*>(exp_avg.data_ptr()), static_cast<T*>(exp_avg_sq.data_ptr()), o, s);
        });
      });
    }
  }
}

}  // namespace fabric::optim
