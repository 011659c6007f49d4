// Rprop: option checks, hyper-parameter (de)serialisation and the per-element step.
#include "optim/rprop.h"

#include <algorithm>
#include <cmath>

#include "optim/cpu_param_loop.h"
#include "optim/hyper_param_fields.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

// Every rounding below is torch's; the compiler must add no fusion.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

// PyTorch's checks (`not 0.0 <= x` also refuses NaN), with what each argument may be; torch does
// not check the step sizes, which clamp would apply in a surprising way when min > max.
void validate_options(const RpropOptions& o) {
  hyper_fields::check_lr("Rprop", o.lr);
  FABRIC_CHECK(o.etas[0] > 0 && o.etas[0] < 1 && o.etas[1] > 1, ValueError,
               "Rprop: invalid eta values: ", o.etas[0], ", ", o.etas[1],
               " (expected 0 < etaminus < 1 < etaplus)");
  FABRIC_CHECK(o.step_sizes[0] >= 0 && o.step_sizes[0] <= o.step_sizes[1], ValueError,
               "Rprop: invalid step sizes: ", o.step_sizes[0], ", ", o.step_sizes[1],
               " (expected 0 <= min <= max)");
}

namespace {
constexpr hyper_fields::Fields<RpropOptions, 4> kRpropFields = {{
    {"lr", &RpropOptions::lr},
    {"etas", &RpropOptions::etas},
    {"step_sizes", &RpropOptions::step_sizes},
    {"maximize", &RpropOptions::maximize},
}};
}  // namespace

HyperParams to_hyper_params(const RpropOptions& o) {
  return hyper_fields::to_hyper_params(kRpropFields, o);
}

void from_hyper_params(const HyperParams& h, RpropOptions& o) {
  hyper_fields::from_hyper_params(kRpropFields, h, o, "Rprop");
}

Rprop::Rprop(std::vector<Tensor> params, const RpropOptions& options)
    : GroupedOptimizer("Rprop", std::move(params), options) {}

Rprop::Rprop(std::vector<Group> groups, const RpropOptions& defaults)
    : GroupedOptimizer("Rprop", std::move(groups), defaults) {}

namespace {

// torch.sign: 0 for 0 and NaN.
template <class T>
T sign_of(T x) {
  return static_cast<T>((T(0) < x) - (x < T(0)));
}

// torch's scalars reach its kernels rounded to the tensor's dtype.
template <class T>
void rprop_elements(int64_t n, T* p, const T* grad, T* prev, T* step_size, const RpropOptions& o) {
  const T etaminus = static_cast<T>(o.etas[0]), etaplus = static_cast<T>(o.etas[1]);
  const T lo = static_cast<T>(o.step_sizes[0]), hi = static_cast<T>(o.step_sizes[1]);
  for (int64_t i = 0; i < n; ++i) {
    T g = o.maximize ? -grad[i] : grad[i];
    const T s = sign_of(T(g * prev[i]));
    const T factor = s > 0 ? etaplus : s < 0 ? etaminus : T(1);
    const T size = step_size[i] * factor;
    step_size[i] = std::isnan(size) ? size : std::min(std::max(size, lo), hi);
    if (factor == etaminus) g = 0;
    p[i] = p[i] + T(T(T(-1) * sign_of(g)) * step_size[i]);  // param.addcmul_(..., value=-1)
    prev[i] = g;
  }
}

// The same step as tensor ops on any device (cpu_param_loop.h), one per op of torch's step.
void rprop_composed(Tensor p, const Tensor& grad, Tensor prev, Tensor step_size,
                    const RpropOptions& o) {
  Tensor g = o.maximize ? neg(grad) : grad;
  const Tensor s = sign(mul(g, prev));
  const Tensor factor = where(gt(s, 0), full_like(s, o.etas[1]),
                              where(lt(s, 0), full_like(s, o.etas[0]), ones_like(s)));
  step_size.copy_(clamp(mul(step_size, factor), o.step_sizes[0], o.step_sizes[1]));
  g = where(eq(factor, o.etas[0]), zeros_like(g), g);
  p.copy_(addcmul(p, sign(g), step_size, -1));
  prev.copy_(g);
}

}  // namespace

void Rprop::step_impl() {
  int64_t index = 0;
  for (Group& group : groups_) {
    const RpropOptions& o = group.options;
    for (const Tensor& p : group.params) {
      const int64_t idx = index++;
      const Tensor grad = prepared_grad(p, idx);
      if (!grad.defined()) continue;
      const bool loop = param_loop::takes_loop("Rprop", p);  // before any state changes
      ParamState& st = state_for(p);
      const bool fresh = st.empty();  // PyTorch's lazy state initialisation
      double& step = step_count(st, idx, fresh);
      const Tensor prev = state_buffer(st, "prev", p, idx, fresh);
      const Tensor step_size = state_buffer(st, "step_size", p, idx, fresh);
      step += 1;
      if (!loop) {
        if (fresh) Tensor(step_size).fill_(o.lr);
        update_in_place(
            p, [&](const Tensor& target) { rprop_composed(target, grad, prev, step_size, o); });
        continue;
      }
      param_loop::dispatch_float_cpu(p, [&](auto zero) {
        using T = decltype(zero);
        T* sizes = static_cast<T*>(step_size.data_ptr());
        if (fresh) std::fill(sizes, sizes + p.numel(), static_cast<T>(o.lr));
        update_in_place(p, [&](const Tensor& target) {
          rprop_elements<T>(p.numel(), static_cast<T*>(target.data_ptr()),
                            static_cast<const T*>(grad.data_ptr()),
                            static_cast<T*>(prev.data_ptr()), sizes, o);
        });
      });
    }
  }
}

}  // namespace fabric::optim
