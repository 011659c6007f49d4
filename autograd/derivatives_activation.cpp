// Derivatives of the parameterised activations (tensor/ops_activation.cpp), with torch's values
// at the kinks (tensor/activation_backward.h lists them). Outside grad mode the fused kernel;
// in grad mode (create_graph) the same formula of recorded ops, so it differentiates again.
#include <optional>

#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

// torch's hardsigmoid_backward multiplies by the float constant 1.0f / 6.0f, in float64 too.
constexpr double kHardsigmoidSlope = static_cast<double>(1.0f / 6.0f);

FABRIC_DERIVATIVE(leaky_relu) {
  Tensor a = saved(rec.inputs[0]);
  const Scalar slope = attrs_of<LeakyReluAttrs>(rec).negative_slope;
  return [a, slope](const Grads& g) {
    if (grad_enabled()) return Grads{where(gt(a, 0.0), g[0], mul(g[0], slope))};
    ActivationParams p;
    p.negative_slope = slope.to_double();
    return Grads{activation_backward(ActGrad::leaky_relu, g[0], a, p)};
  };
}

FABRIC_DERIVATIVE(elu) {
  Tensor a = saved(rec.inputs[0]);
  const EluAttrs& e = attrs_of<EluAttrs>(rec);
  ActivationParams p;
  p.alpha = e.alpha.to_double();
  p.scale = e.scale.to_double();
  p.input_scale = e.input_scale.to_double();
  return [a, p](const Grads& g) {
    if (!grad_enabled()) return Grads{activation_backward(ActGrad::elu, g[0], a, p)};
    // exp of min(x, 0): the branch where() drops must not overflow to inf, whose zero gradient
    // would make a NaN in the second derivative.
    Tensor neg_branch = mul(mul(g[0], p.input_scale * p.alpha * p.scale),
                            exp(mul(clamp(a, std::nullopt, 0.0), p.input_scale)));
    return Grads{where(le(a, 0.0), neg_branch, mul(g[0], p.scale))};
  };
}

FABRIC_DERIVATIVE(softplus) {
  Tensor a = saved(rec.inputs[0]);
  const SoftplusAttrs& s = attrs_of<SoftplusAttrs>(rec);
  ActivationParams p;
  p.beta = s.beta.to_double();
  p.threshold = s.threshold.to_double();
  return [a, p](const Grads& g) {
    if (!grad_enabled()) return Grads{activation_backward(ActGrad::softplus, g[0], a, p)};
    Tensor t = mul(a, p.beta);
    return Grads{where(gt(t, p.threshold), g[0], mul(g[0], sigmoid(t)))};
  };
}

FABRIC_DERIVATIVE(hardtanh) {
  Tensor a = saved(rec.inputs[0]);
  const HardtanhAttrs& h = attrs_of<HardtanhAttrs>(rec);
  ActivationParams p;
  p.min_val = h.min_val.to_double();
  p.max_val = h.max_val.to_double();
  return [a, p](const Grads& g) {
    if (!grad_enabled()) return Grads{activation_backward(ActGrad::hardtanh, g[0], a, p)};
    Tensor outside = logical_or(le(a, p.min_val), ge(a, p.max_val));
    return Grads{where(outside, zeros_like(g[0]), g[0])};
  };
}

FABRIC_DERIVATIVE(mish) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) {
    if (!grad_enabled()) return Grads{activation_backward(ActGrad::mish, g[0], a)};
    // tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), sp = softplus(x)
    Tensor t = tanh(softplus(a));
    Tensor sech2 = add(neg(mul(t, t)), 1.0);
    return Grads{mul(g[0], add(t, mul(mul(a, sigmoid(a)), sech2)))};
  };
}

FABRIC_DERIVATIVE(hardswish) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) {
    if (!grad_enabled()) return Grads{activation_backward(ActGrad::hardswish, g[0], a)};
    Tensor middle = mul(g[0], add(div(a, 3.0), 0.5));
    return Grads{where(lt(a, -3.0), zeros_like(g[0]), where(le(a, 3.0), middle, g[0]))};
  };
}

FABRIC_DERIVATIVE(hardsigmoid) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) {
    if (!grad_enabled()) return Grads{activation_backward(ActGrad::hardsigmoid, g[0], a)};
    Tensor inside = logical_and(gt(a, -3.0), lt(a, 3.0));
    return Grads{where(inside, mul(g[0], kHardsigmoidSlope), zeros_like(g[0]))};
  };
}

}  // namespace
}  // namespace fabric
