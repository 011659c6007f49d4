// ASGD: option checks, hyper-parameter (de)serialisation, the per-element step and the step-size
// and averaging schedules.
#include "optim/asgd.h"

#include <algorithm>
#include <cmath>

#include "optim/cpu_param_loop.h"
#include "optim/hyper_param_fields.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

// Every fusion below is written out (std::fma where torch's op fuses); the compiler must add none.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be.
void validate_options(const ASGDOptions& o) {
  hyper_fields::check_lr("ASGD", o.lr);
  hyper_fields::check_weight_decay("ASGD", o.weight_decay);
}

namespace {
constexpr hyper_fields::Fields<ASGDOptions, 6> kASGDFields = {{
    {"lr", &ASGDOptions::lr},
    {"lambd", &ASGDOptions::lambd},
    {"alpha", &ASGDOptions::alpha},
    {"t0", &ASGDOptions::t0},
    {"weight_decay", &ASGDOptions::weight_decay},
    {"maximize", &ASGDOptions::maximize},
}};
}  // namespace

HyperParams to_hyper_params(const ASGDOptions& o) {
  return hyper_fields::to_hyper_params(kASGDFields, o);
}

void from_hyper_params(const HyperParams& h, ASGDOptions& o) {
  hyper_fields::from_hyper_params(kASGDFields, h, o, "ASGD");
}

ASGD::ASGD(std::vector<Tensor> params, const ASGDOptions& options)
    : GroupedOptimizer("ASGD", std::move(params), options) {}

ASGD::ASGD(std::vector<Group> groups, const ASGDOptions& defaults)
    : GroupedOptimizer("ASGD", std::move(groups), defaults) {}

Tensor ASGD::loaded_state_tensor(int64_t index, const std::string& key, const Tensor& t,
                                 const Tensor& p) const {
  if (key != "eta" && key != "mu") return Optimizer::loaded_state_tensor(index, key, t, p);
  FABRIC_CHECK(t.numel() == 1, ValueError, "ASGD.load_state_dict: state.", index, ".", key,
               " must hold one number, got shape ", shape_str(t.sizes()));
  return scalar_tensor(t.item<double>(), {.dtype = DType::float32});
}

namespace {

// torch's scalars reach its kernels rounded to the tensor's dtype.
template <class T>
void asgd_elements(int64_t n, T* p, const T* grad, T* ax, const ASGDOptions& o, double eta,
                   double mu) {
  const T wd = static_cast<T>(o.weight_decay);
  const T shrink = static_cast<T>(1 - o.lambd * eta), neg_eta = static_cast<T>(-eta);
  const T mu_t = static_cast<T>(mu);
  for (int64_t i = 0; i < n; ++i) {
    T g = o.maximize ? -grad[i] : grad[i];
    if (o.weight_decay != 0) g = std::fma(p[i], wd, g);  // grad.add(param, alpha=wd)
    p[i] = p[i] * shrink;
    p[i] = std::fma(g, neg_eta, p[i]);  // param.add_(grad, alpha=-eta)
    ax[i] = mu != 1 ? T(ax[i] + T(T(p[i] - ax[i]) * mu_t)) : p[i];
  }
}

// A 0-dim float32 CPU state scalar ("eta", "mu"), checked.
float& state_scalar(ParamState& st, const char* key, int64_t index) {
  auto it = st.find(key);
  FABRIC_CHECK(it != st.end() && it->second.defined() && it->second.numel() == 1 &&
                   it->second.dtype() == DType::float32 && it->second.device().is_cpu(),
               ValueError, "ASGD: parameter ", index, " has state without a 0-dim float32 '", key,
               "' on the CPU (was it loaded from another optimizer?)");
  return *static_cast<float*>(it->second.data_ptr());
}

// The same step as tensor ops on any device (cpu_param_loop.h), one per op of torch's step.
void asgd_composed(Tensor p, const Tensor& grad, Tensor ax, const ASGDOptions& o, double eta,
                   double mu) {
  Tensor g = o.maximize ? neg(grad) : grad;
  if (o.weight_decay != 0) g = add(g, p, o.weight_decay);
  mul_(p, 1 - o.lambd * eta);
  add_(p, g, -eta);
  if (mu != 1)
    add_(ax, mul(sub(p, ax), mu));
  else
    ax.copy_(p);
}

}  // namespace

void ASGD::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const ASGDOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const bool loop = param_loop::takes_loop("ASGD", p);  // before any state changes
      ParamState& st = state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      if (fresh) {
        st["eta"] = scalar_tensor(o.lr, {.dtype = DType::float32});
        st["mu"] = scalar_tensor(1.0, {.dtype = DType::float32});
      }
      double& step = step_count(st, idx, fresh);
      float& eta = state_scalar(st, "eta", idx);
      float& mu = state_scalar(st, "mu", idx);
      const Tensor ax = state_buffer(st, "ax", p, idx, fresh);
      step += 1;
      update_in_place(p, [&](const Tensor& target) {
        if (!loop) return asgd_composed(target, grad, ax, o, eta, mu);
        param_loop::dispatch_float_cpu(p, [&](auto zero) {
          using T = decltype(zero);
          asgd_elements<T>(p.numel(), static_cast<T*>(target.data_ptr()),
                           static_cast<const T*>(grad.data_ptr()), static_cast<T*>(ax.data_ptr()),
                           o, eta, mu);
        });
      });
      // Python float arithmetic, then torch.tensor(...)'s float32.
      eta = static_cast<float>(o.lr / std::pow(1 + o.lambd * o.lr * step, o.alpha));
      const double past_t0 = step - o.t0;
      mu = static_cast<float>(1 / (past_t0 > 1 ? past_t0 : 1.0));
    }
  }
}

}  // namespace fabric::optim
