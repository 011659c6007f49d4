// Derivatives of convolution and pooling, and of their gradients as recorded ops (double
// backward). The default backward calls the fused kernels (ops_backward_linalg.h), which record
// nothing; in grad mode (create_graph) conv2d's gradients are recorded ops instead, and the pool
// gradients record themselves, so the gradient differentiates again.
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"

namespace fabric {
namespace {

// conv2d without bias, with attrs' geometry.
Tensor conv(const Tensor& x, const Tensor& w, const Conv2dAttrs& a) {
  return conv2d(x, w, Tensor(), a.stride, a.padding, a.dilation, a.groups);
}

FABRIC_DERIVATIVE(conv2d) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_x = rec.inputs[0].requires_grad(), need_w = rec.inputs[1].requires_grad();
  const bool need_b =
      rec.num_inputs > 2 && rec.inputs[2].defined() && rec.inputs[2].requires_grad();
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  return [a, x, w, need_x, need_w, need_b](const Grads& g) {
    if (!grad_enabled()) {
      Conv2dGrads r = conv2d_backward(g[0], x, w, a, need_x, need_w, need_b);
      return Grads{r.grad_input, r.grad_weight, r.grad_bias};
    }
    Grads r(3);
    if (need_x) r[0] = conv2d_backward_input(g[0], w, x.sizes(), a);
    if (need_w) r[1] = conv2d_backward_weight(g[0], x, w.sizes(), a);
    // Over N, OH, OW: an unbatched (OC, OH, OW) gradient has no N.
    if (need_b) r[2] = g[0].dim() == 4 ? sum(g[0], {0, 2, 3}) : sum(g[0], {1, 2});
    return r;
  };
}

// gx = conv2d_backward_input(g, w) is bilinear, <gx, u> = <g, conv2d(u, w)>: for an upstream u
// (x's shape) d/dg = conv2d(u, w) and d/dw = conv2d_backward_weight(g, u).
FABRIC_DERIVATIVE(conv2d_backward_input) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_w = rec.inputs[1].requires_grad();
  Tensor g = need_w ? saved(rec.inputs[0]) : Tensor();
  Tensor w = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape w_shape = rec.inputs[1].sizes();
  return [a, g, w, w_shape, need_g, need_w](const Grads& u) {
    return Grads{need_g ? conv(u[0], w, a) : Tensor(),
                 need_w ? conv2d_backward_weight(g, u[0], w_shape, a) : Tensor()};
  };
}

// gw = conv2d_backward_weight(g, x), <gw, v> = <g, conv2d(x, v)>: for an upstream v (w's shape)
// d/dg = conv2d(x, v) and d/dx = conv2d_backward_input(g, v).
FABRIC_DERIVATIVE(conv2d_backward_weight) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_x = rec.inputs[1].requires_grad();
  Tensor g = need_x ? saved(rec.inputs[0]) : Tensor();
  Tensor x = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape x_shape = rec.inputs[1].sizes();
  return [a, g, x, x_shape, need_g, need_x](const Grads& v) {
    return Grads{need_g ? conv(x, v[0], a) : Tensor(),
                 need_x ? conv2d_backward_input(g, v[0], x_shape, a) : Tensor()};
  };
}

FABRIC_DERIVATIVE(max_pool2d) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  Tensor x = saved(rec.inputs[0]);
  return [a, x](const Grads& g) { return Grads{max_pool2d_backward(g[0], x, a)}; };
}

// max_pool2d_backward(g, x) routes g[o] to the first maximum of window o: linear in g, so d/dg
// gathers the upstream u at those positions (torch's max_pool_double_backward); piecewise constant
// in x, so d/dx is zeros, as in torch (defined: the engine hands x's producer what it gets).
FABRIC_DERIVATIVE(max_pool2d_backward) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_x = rec.inputs[1].requires_grad();
  Tensor x = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape g_shape = rec.inputs[0].sizes(), x_shape = rec.inputs[1].sizes();
  const TensorOptions x_opts{.dtype = rec.inputs[1].dtype(), .device = rec.inputs[1].device()};
  return [a, x, g_shape, x_shape, x_opts, need_g, need_x](const Grads& u) {
    Grads r{Tensor(), need_x ? zeros(x_shape, x_opts) : Tensor()};
    if (!need_g) return r;
    // Per (H, W) plane: positions (planes, OH * OW) into u's (planes, H * W).
    const int64_t hw = x.size(-2) * x.size(-1), ohw = g_shape.end()[-2] * g_shape.end()[-1];
    const int64_t planes = x.numel() / hw;
    Tensor at = max_pool2d_indices(x, a).reshape({planes, ohw});
    r[0] = gather(u[0].reshape({planes, hw}), 1, at).reshape(g_shape);
    return r;
  };
}

FABRIC_DERIVATIVE(avg_pool2d) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  Shape shape = rec.inputs[0].sizes();
  return [a, shape](const Grads& g) { return Grads{avg_pool2d_backward(g[0], shape, a)}; };
}

// avg_pool2d_backward(g) is linear in g and avg_pool2d's adjoint: d/dg = avg_pool2d(u), with the
// same count_include_pad divisors.
FABRIC_DERIVATIVE(avg_pool2d_backward) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  return [a](const Grads& u) { return Grads{avg_pool2d(u[0], a.kernel, a.stride, a.padding)}; };
}

FABRIC_DERIVATIVE(adaptive_avg_pool2d) {
  Shape shape = rec.inputs[0].sizes();
  return [shape](const Grads& g) { return Grads{adaptive_avg_pool2d_backward(g[0], shape)}; };
}

// adaptive_avg_pool2d_backward(g) is linear in g and adaptive_avg_pool2d's adjoint (each window
// shares its gradient by the divisor it averaged with): d/dg = adaptive_avg_pool2d(u) to g's size.
FABRIC_DERIVATIVE(adaptive_avg_pool2d_backward) {
  const Shape& g = rec.inputs[0].sizes();
  std::vector<int64_t> out_size{g.end()[-2], g.end()[-1]};
  return [out_size](const Grads& u) { return Grads{adaptive_avg_pool2d(u[0], out_size)}; };
}

}  // namespace
}  // namespace fabric
