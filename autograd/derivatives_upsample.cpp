// Derivatives of interpolate's kernel modes (upsample_nearest1d/2d/3d, upsample_linear1d,
// upsample_bilinear2d, upsample_trilinear3d): the gradient spreads each output's gradient back
// over the inputs it read, with the weights it read them with. First order only: the gradient is
// a plain kernel call, not a recorded op (double_backward.cpp lists none of them). The composed
// modes (nearest-exact, bicubic, area) and pixel_shuffle differentiate through the ops they are
// made of.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/ops_backward_upsample.h"

namespace fabric {
namespace {

FunctionNode::Backward upsample_rule(const OpRecord& rec) {
  UpsampleAttrs a = attrs_of<UpsampleAttrs>(rec);
  return [a](const Grads& g) { return Grads{upsample2d_backward(g[0], a)}; };
}

// A 1-d input ran as planes of height 1: input_shape is (N, C, 1, L), the gradient (N, C, OL).
FunctionNode::Backward upsample1d_rule(const OpRecord& rec) {
  UpsampleAttrs a = attrs_of<UpsampleAttrs>(rec);
  return [a](const Grads& g) {
    const Shape& s = a.input_shape;
    const Tensor g4 = g[0].reshape({s[0], s[1], 1, a.desc.OW});
    return Grads{upsample2d_backward(g4, a).reshape({s[0], s[1], s[3]})};
  };
}

FunctionNode::Backward upsample3d_rule(const OpRecord& rec) {
  Upsample3dAttrs a = attrs_of<Upsample3dAttrs>(rec);
  return [a](const Grads& g) { return Grads{upsample3d_backward(g[0], a)}; };
}

FABRIC_DERIVATIVE(upsample_nearest2d) { return upsample_rule(rec); }
FABRIC_DERIVATIVE(upsample_bilinear2d) { return upsample_rule(rec); }
FABRIC_DERIVATIVE(upsample_nearest1d) { return upsample1d_rule(rec); }
FABRIC_DERIVATIVE(upsample_linear1d) { return upsample1d_rule(rec); }
FABRIC_DERIVATIVE(upsample_nearest3d) { return upsample3d_rule(rec); }
FABRIC_DERIVATIVE(upsample_trilinear3d) { return upsample3d_rule(rec); }

}  // namespace
}  // namespace fabric
