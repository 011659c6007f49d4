// Derivatives of log1p, expm1, erf and the rounding ops (tensor/ops_unary.cpp), as torch's
// derivatives.yaml. Each is a composition of recorded ops, so a gradient taken with
// create_graph differentiates again (autograd/double_backward.cpp lists them).
#include <cmath>

#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

FABRIC_DERIVATIVE(log1p) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) { return Grads{div(g[0], add(a, 1.0))}; };
}
// e^x = expm1(x) + 1: the saved output, as torch's (result + 1).
FABRIC_DERIVATIVE(expm1) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) { return Grads{mul(g[0], add(out, 1.0))}; };
}
FABRIC_DERIVATIVE(erf) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) {
    const double two_over_sqrt_pi = 2.0 / std::sqrt(M_PI);
    return Grads{mul(g[0], mul(exp(neg(mul(a, a))), two_over_sqrt_pi))};
  };
}

// Piecewise constant: zero gradient everywhere, the jumps included (torch's zeros_like).
FunctionNode::Backward zero_gradient() {
  return [](const Grads& g) { return Grads{zeros_like(g[0])}; };
}
FABRIC_DERIVATIVE(floor) { return zero_gradient(); }
FABRIC_DERIVATIVE(ceil) { return zero_gradient(); }
FABRIC_DERIVATIVE(round) { return zero_gradient(); }
FABRIC_DERIVATIVE(trunc) { return zero_gradient(); }
FABRIC_DERIVATIVE(sign) { return zero_gradient(); }

}  // namespace
}  // namespace fabric
