// Gradient clipping by total norm and by value (torch.nn.utils.clip_grad_norm_/clip_grad_value_).
#include "optim/clip_grad.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric::optim {

Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite, std::optional<bool> /*foreach*/) {
  NoGradGuard no_grad;
  FABRIC_CHECK(!std::isnan(norm_type), ValueError, "clip_grad_norm_: norm_type is NaN");
  std::vector<Tensor> grads;
  for (const Tensor& p : parameters) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) return scalar_tensor(0.0, {.dtype = DType::float32});

  std::vector<Tensor> norms;
  DType dt = grads[0].dtype();
  for (const Tensor& g : grads) {
    FABRIC_CHECK(is_floating(g.dtype()), DTypeError, "clip_grad_norm_: a gradient has dtype ", dtype_name(g.dtype()),
                 " (expected a floating dtype)");
    dt = promote_types(dt, g.dtype());
    // An empty gradient adds nothing to a p-norm (and has no inf norm to compute).
    if (g.numel() > 0) norms.push_back(norm(g.detach(), norm_type));
  }
  Tensor total;
  if (norms.empty()) {
    total = scalar_tensor(0.0, {.dtype = dt});
  } else {
    for (Tensor& n : norms) n = n.to(dt);
    total = norm(stack(norms), norm_type);
  }
  return scale_by_clip_coefficient(grads, total, max_norm, norm_type, error_if_nonfinite);
}

Tensor scale_by_clip_coefficient(const std::vector<Tensor>& grads, const Tensor& total, double max_norm,
                                 double norm_type, bool error_if_nonfinite) {
  NoGradGuard no_grad;
  if (error_if_nonfinite) {
    const double t = total.item<double>();
    FABRIC_CHECK(std::isfinite(t), ValueError, "clip_grad_norm_: the total norm of order ", norm_type,
                 " for gradients from `parameters` is non-finite (", t,
                 "), so it cannot be clipped. To scale the gradients by the non-finite norm anyway, set "
                 "error_if_nonfinite = false");
  }
  // torch's `max_norm / (total_norm + 1e-6)` is Tensor.__rdiv__: reciprocal, then times max_norm
  // (a division rounds differently in about a quarter of float32 cases), and max_norm as a scalar
  // operand, so that one past a half dtype's range overflows the coefficient to inf (clamped to 1)
  // rather than failing to make a tensor of it.
  const Tensor coef =
      clamp(mul(reciprocal(add(total, 1e-6)), Scalar(max_norm)), std::nullopt, Scalar(1.0));
  for (Tensor g : grads) mul_(g, coef);
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value, std::optional<bool> /*foreach*/) {
  NoGradGuard no_grad;
  for (const Tensor& p : parameters) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    g.copy_(clamp(g, Scalar(-clip_value), Scalar(clip_value)));
  }
}

}  // namespace fabric::optim
