// The derivative of binary_cross_entropy, the one elementwise loss
// (tensor/ops_loss_elementwise.cpp) that records itself rather than its ops: torch 1.13's closed
// forms, whose clamped denominator keeps the input gradient finite at probabilities 0 and 1.
#include <algorithm>

#include "autograd/derivatives.h"
#include "autograd/saved.h"
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
    const Tensor gx =
        finish(div(mul(g[0], sub(x, t)), clamp(mul(one_minus_x, x), eps, std::nullopt)));
    Tensor gt;
    // -logit(x) * grad, unclamped as torch's (infinite at 0 and 1).
    if (need_t) gt = finish(mul(neg(log(div(x, one_minus_x))), g[0]));
    return Grads{gx, gt, Tensor()};
  };
}

}  // namespace
}  // namespace fabric
