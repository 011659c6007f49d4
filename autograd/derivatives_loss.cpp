// The derivatives of binary_cross_entropy and binary_cross_entropy_with_logits, the elementwise
// losses (tensor/ops_loss_elementwise.cpp) that record themselves rather than their ops: torch
// 1.13's closed forms, finite at probabilities 0 and 1 and at infinite logits.
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

// torch 1.13's binary_cross_entropy_with_logits_backward and ..._target_backward
// (FunctionsManual.cpp), op for op in their order so the rounding is torch's:
//   input:  (sigmoid(x) - t) * g, or with pos_weight ((pw * t + 1 - t) * sigmoid(x) - pw * t) * g
//   target: -x * g, or with pos_weight (log_sigmoid(-x) - log_sigmoid(x) * pw) * g
// each then times weight and, for "mean", divided by numel. Made of recorded ops, so a gradient
// taken with create_graph differentiates again (to the exact second derivative).
FABRIC_DERIVATIVE(binary_cross_entropy_with_logits) {
  const LossAttrs& a = attrs_of<LossAttrs>(rec);
  const Tensor x = saved(rec.inputs[0]), t = saved(rec.inputs[1]);
  const Tensor w = saved(rec.inputs[2]), pw = saved(rec.inputs[3]);
  const bool need_x = rec.inputs[0].requires_grad(), need_t = rec.inputs[1].requires_grad();
  // No weight or pos_weight gradient: the op refuses one that requires grad while recording.
  const double divisor = a.reduction == "mean" ? static_cast<double>(x.numel()) : 1.0;
  return [x, t, w, pw, need_x, need_t, divisor](const Grads& g) {
    auto finish = [&](Tensor d) {
      if (w.defined()) d = mul(d, w);
      return divisor == 1.0 ? d : div(d, divisor);
    };
    Tensor gx, gt;
    if (need_x) {
      if (pw.defined()) {
        const Tensor pw_t = mul(pw, t);
        gx = mul(sub(mul(sub(add(pw_t, 1), t), sigmoid(x)), pw_t), g[0]);
      } else {
        gx = mul(sub(sigmoid(x), t), g[0]);
      }
      gx = finish(gx);
    }
    if (need_t) {
      gt = pw.defined() ? mul(sub(log_sigmoid(neg(x)), mul(log_sigmoid(x), pw)), g[0])
                        : mul(neg(x), g[0]);
      gt = finish(gt);
    }
    return Grads{gx, gt, Tensor(), Tensor()};
  };
}

}  // namespace
}  // namespace fabric
