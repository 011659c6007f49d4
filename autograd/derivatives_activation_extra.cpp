// Derivatives of the activations of tensor/ops_activation_extra.cpp, with torch's values at the
// kinks (tensor/activation_extra_kernels.h). The fused ones take their kernel outside grad mode
// and the same formula of recorded ops in grad mode (create_graph), so they differentiate again;
// glu takes its fused kernel the same way (glu_kernels.h); prelu and rrelu are recorded ops
// throughout.
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/activation_extra_attrs.h"
#include "tensor/activation_extra_kernels.h"
#include "tensor/factory.h"
#include "tensor/glu_kernels.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

// grad where `zero` is false, 0 where it is true (selected: 0 even for an infinite grad).
Tensor zero_where(const Tensor& zero, const Tensor& grad) {
  return where(zero, zeros_like(grad), grad);
}

FABRIC_DERIVATIVE(log_sigmoid) {
  Tensor x = saved(rec.inputs[0]);
  return [x](const Grads& g) {
    if (!grad_enabled())
      return Grads{extra_activation_backward(ExtraActivation::log_sigmoid, g[0], x)};
    return Grads{mul(g[0], sigmoid(neg(x)))};  // d/dx log(sigmoid(x)) = sigmoid(-x)
  };
}

// hardshrink and softshrink share torch's shrink_backward: 0 on [-lambd, lambd].
FunctionNode::Backward shrink_derivative(ExtraActivation op, const OpRecord& rec) {
  Tensor x = saved(rec.inputs[0]);
  ExtraActivationParams p;
  p.lambd = attrs_of<ScalarAttrs>(rec).value.to_double();
  return [op, x, p](const Grads& g) {
    if (!grad_enabled()) return Grads{extra_activation_backward(op, g[0], x, p)};
    return Grads{zero_where(logical_and(ge(x, -p.lambd), le(x, p.lambd)), g[0])};
  };
}

FABRIC_DERIVATIVE(hardshrink) { return shrink_derivative(ExtraActivation::hardshrink, rec); }
FABRIC_DERIVATIVE(softshrink) { return shrink_derivative(ExtraActivation::softshrink, rec); }

FABRIC_DERIVATIVE(threshold) {
  Tensor x = saved(rec.inputs[0]);
  ExtraActivationParams p;
  p.threshold = attrs_of<ThresholdAttrs>(rec).threshold.to_double();
  return [x, p](const Grads& g) {
    if (!grad_enabled())
      return Grads{extra_activation_backward(ExtraActivation::threshold, g[0], x, p)};
    return Grads{zero_where(le(x, p.threshold), g[0])};
  };
}

// x > 0 ? g : w * g for x; x > 0 ? 0 : x * g for w, summed over all but the channel dim.
FABRIC_DERIVATIVE(prelu) {
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  return [x, w](const Grads& g) {
    Shape bshape(static_cast<size_t>(x.dim()), 1);
    if (w.numel() != 1) bshape[1] = w.numel();
    const Tensor positive = gt(x, 0.0);
    const Tensor gx = where(positive, g[0], mul(g[0], w.reshape(bshape)));
    const Tensor gw = sum_to(zero_where(positive, mul(g[0], x)), bshape).reshape(w.sizes());
    return Grads{gx, gw};
  };
}

// out = a * sigmoid(b) for the halves a, b of `dim`: g sigmoid(b) for a, g a sigmoid(b)
// (1 - sigmoid(b)) for b; one fused pass outside grad mode, recorded ops in it (glu_kernels.h).
FABRIC_DERIVATIVE(glu) {
  Tensor x = saved(rec.inputs[0]);
  const int64_t dim = attrs_of<DimAttrs>(rec).dim;
  return [x, dim](const Grads& g) {
    return Grads{grad_enabled() ? glu_backward_composed(g[0], x, dim) : glu_backward(g[0], x, dim)};
  };
}

// Training rrelu: the gradient is the drawn slope (1 where x > 0); the noise is no parameter.
FABRIC_DERIVATIVE(rrelu) {
  Tensor noise = saved(rec.inputs[1]);
  return [noise](const Grads& g) { return Grads{mul(g[0], noise), Tensor()}; };
}

}  // namespace
}  // namespace fabric
