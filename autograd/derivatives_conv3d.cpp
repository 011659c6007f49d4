// Derivatives of conv3d and of its gradients as recorded ops (double backward), as conv2d's in
// derivatives_conv.cpp: the default backward calls the fused kernels (conv3d_backward), which
// record nothing; in grad mode (create_graph) the gradients are recorded ops instead, so the
// gradient differentiates again. conv_transpose3d is conv3d_backward_input, so its rules come
// from here too.
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_conv3d.h"

namespace fabric {
namespace {

// conv3d without bias, with attrs' geometry.
Tensor conv(const Tensor& x, const Tensor& w, const Conv2dAttrs& a) {
  return conv3d(x, w, Tensor(), a.stride, a.padding, a.dilation, a.groups);
}

FABRIC_DERIVATIVE(conv3d) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_x = rec.inputs[0].requires_grad(), need_w = rec.inputs[1].requires_grad();
  const bool need_b =
      rec.num_inputs > 2 && rec.inputs[2].defined() && rec.inputs[2].requires_grad();
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  return [a, x, w, need_x, need_w, need_b](const Grads& g) {
    if (!grad_enabled()) {
      Conv2dGrads r = conv3d_backward(g[0], x, w, a, need_x, need_w, need_b);
      return Grads{r.grad_input, r.grad_weight, r.grad_bias};
    }
    Grads r(3);
    if (need_x) r[0] = conv3d_backward_input(g[0], w, x.sizes(), a);
    if (need_w) r[1] = conv3d_backward_weight(g[0], x, w.sizes(), a);
    // Over N, OD, OH, OW: an unbatched (OC, OD, OH, OW) gradient has no N.
    if (need_b) r[2] = g[0].dim() == 5 ? sum(g[0], {0, 2, 3, 4}) : sum(g[0], {1, 2, 3});
    return r;
  };
}

// gx = conv3d_backward_input(g, w) is bilinear, <gx, u> = <g, conv3d(u, w)>: for an upstream u
// (x's shape) d/dg = conv3d(u, w) and d/dw = conv3d_backward_weight(g, u).
FABRIC_DERIVATIVE(conv3d_backward_input) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_w = rec.inputs[1].requires_grad();
  Tensor g = need_w ? saved(rec.inputs[0]) : Tensor();
  Tensor w = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape w_shape = rec.inputs[1].sizes();
  return [a, g, w, w_shape, need_g, need_w](const Grads& u) {
    return Grads{need_g ? conv(u[0], w, a) : Tensor(),
                 need_w ? conv3d_backward_weight(g, u[0], w_shape, a) : Tensor()};
  };
}

// gw = conv3d_backward_weight(g, x), <gw, v> = <g, conv3d(x, v)>: for an upstream v (w's shape)
// d/dg = conv3d(x, v) and d/dx = conv3d_backward_input(g, v).
FABRIC_DERIVATIVE(conv3d_backward_weight) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_x = rec.inputs[1].requires_grad();
  Tensor g = need_x ? saved(rec.inputs[0]) : Tensor();
  Tensor x = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape x_shape = rec.inputs[1].sizes();
  return [a, g, x, x_shape, need_g, need_x](const Grads& v) {
    return Grads{need_g ? conv(x, v[0], a) : Tensor(),
                 need_x ? conv3d_backward_input(g, v[0], x_shape, a) : Tensor()};
  };
}

}  // namespace
}  // namespace fabric
