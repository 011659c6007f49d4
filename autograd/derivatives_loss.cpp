// The derivative of binary_cross_entropy, the one elementwise loss
// (tensor/ops_loss_elementwise.cpp) that records itself rather than its ops: torch 1.13's closed
// forms, whose clamped denominator keeps the input gradient finite at probabilities 0 and 1.
#include <algorithm>

#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

FABRIC_DERIVATIVE(binary_cross_entropy) {
  const LossAttrs& a = attrs_of<LossAttrs>(rec);
  const Tensor x = saved(rec.inputs[0]), t = saved(rec.inputs[1]), w = saved(rec.inputs[2]);
  const bool need_t = rec.inputs[1].requires_grad();
  // No weight gradient: the op refuses a weight that requires grad while recording, as torch.
  const double divisor =
      a.reduction == "mean" ? static_cast<double>(std::max<int64_t>(1, x.numel())) : 1.0;
  return [x, t, w, need_t, divisor](const Grads& g) {
    const Tensor wx = w.defined() ? w.to(x.dtype()) : Tensor();
    // Weighted and averaged as torch does, in its order (bitwise-equal rounding).
    auto finish = [&](Tensor d) {
      if (wx.defined()) d = mul(d, wx);
      return divisor == 1.0 ? d : div(d, divisor);
    };
    const Tensor one_minus_x = add(neg(x), 1);  // +0 at x == 1, so logit(1) is +inf
    // grad * (x - t) / max((1 - x) * x, EPSILON): finite everywhere on [0, 1]. torch's EPSILON
    // is the float 1e-12 (9.99999996e-13 as a double).
    const double eps = static_cast<double>(1e-12f);
    const Tensor clamped = clamp(mul(one_minus_x, x), eps, std::nullopt);
    Tensor gx;
    if (!grad_enabled()) {
      gx = finish(div(mul(g[0], sub(x, t)), clamped));  // torch's order, grad * (x - t) first
    } else {
      // create_graph: the clamp's derivative is 0 where it bites (x(1-x) < eps: a saturated
      // probability), which made the second derivative g / eps ~ 1e12. Differentiated instead by
      // torch's binary_cross_entropy_double_backward formulas: d/dx (x^2 - 2xt + t) / ((x+eps)^2
      // (1-x+eps)^2), d/dt -1 / ((x+eps)(1-x+eps)). Each enters as (v - v.detach()) * formula,
      // zero in value, so the gradient's value is g * (x - t) / max(x(1-x), eps) as above.
      const Tensor q = div(sub(x, t), clamped).detach();
      const Tensor xe = add(x, eps), ome = add(one_minus_x, eps);
      const Tensor hx =
          div(add(sub(mul(x, x), mul(mul(x, t), 2.0)), t), mul(mul(xe, xe), mul(ome, ome)));
      const Tensor ht = neg(div(ones_like(x), mul(xe, ome)));
      Tensor d = add(mul(q, g[0]), mul(mul(sub(x, x.detach()), hx), g[0]));
      if (t.requires_grad()) d = add(d, mul(mul(sub(t, t.detach()), ht), g[0]));
      gx = finish(d);
    }
    Tensor gt;
    // -logit(x) * grad, unclamped as torch's (infinite at 0 and 1).
    if (need_t) gt = finish(mul(neg(log(div(x, one_minus_x))), g[0]));
    return Grads{gx, gt, Tensor()};
  };
}

}  // namespace
}  // namespace fabric
