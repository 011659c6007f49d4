// Derivatives of interpolate (upsample_nearest2d, upsample_bilinear2d): the gradient spreads each
// output's gradient back over the inputs it read, with the weights it read them with. First order
// only: the gradient is a plain kernel call, not a recorded op (double_backward.cpp lists neither).
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/ops_backward_upsample.h"

namespace fabric {
namespace {

FunctionNode::Backward upsample_rule(const OpRecord& rec) {
  UpsampleAttrs a = attrs_of<UpsampleAttrs>(rec);
  return [a](const Grads& g) { return Grads{upsample2d_backward(g[0], a)}; };
}

FABRIC_DERIVATIVE(upsample_nearest2d) { return upsample_rule(rec); }
FABRIC_DERIVATIVE(upsample_bilinear2d) { return upsample_rule(rec); }

}  // namespace
}  // namespace fabric
