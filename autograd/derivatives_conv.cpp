// Derivatives of convolution (conv2d and conv3d, one set of rules) and 2-D pooling, and of their
// gradients as recorded ops (double backward). The default backward calls the fused kernels
// (ops_backward_linalg.h, ops_backward_conv3d.h), which record nothing; in grad mode
// (create_graph) the convolution's gradients are recorded ops instead, and the pool gradients
// record themselves, so the gradient differentiates again. conv_transpose*d is
// conv*d_backward_input, so its rules come from here too.
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/max_pool_double_backward.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_conv3d.h"
#include "tensor/ops_backward_linalg.h"

namespace fabric {
namespace {

// The ops of one convolution rank (conv2d or conv3d): the rules below serve both.
struct ConvOps {
  Tensor (*conv)(const Tensor&, const Tensor&, const Tensor&, std::vector<int64_t>,
                 std::vector<int64_t>, std::vector<int64_t>, int64_t);
  Conv2dGrads (*backward)(const Tensor&, const Tensor&, const Tensor&, const Conv2dAttrs&, bool,
                          bool, bool);
  Tensor (*backward_input)(const Tensor&, const Tensor&, const Shape&, const Conv2dAttrs&);
  Tensor (*backward_weight)(const Tensor&, const Tensor&, const Shape&, const Conv2dAttrs&);

  // The convolution without bias, with attrs' geometry.
  Tensor operator()(const Tensor& x, const Tensor& w, const Conv2dAttrs& a) const {
    return conv(x, w, Tensor(), a.stride, a.padding, a.dilation, a.groups);
  }
};

constexpr ConvOps k2d{&conv2d, &conv2d_backward, &conv2d_backward_input, &conv2d_backward_weight};
constexpr ConvOps k3d{&conv3d, &conv3d_backward, &conv3d_backward_input, &conv3d_backward_weight};

// The bias gradient: g summed over every dim but the channels (N and the spatial dims; an
// unbatched gradient has no N). w_dim = 2 + the number of spatial dims.
// `out_channels`: the bias's length, which a zero-channel input's gradient (torch's empty result
// drops the output channels) does not have: its bias gradient is that many zeros.
Tensor bias_grad(const Tensor& g, int64_t w_dim, int64_t out_channels) {
  const int64_t channels = g.dim() - (w_dim - 2) - 1;
  if (g.size(channels) != out_channels)
    return zeros({out_channels}, {.dtype = g.dtype(), .device = g.device()});
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < g.dim(); ++i)
    if (i != channels) dims.push_back(i);
  return sum(g, dims);
}

FunctionNode::Backward conv_rule(const ConvOps& f, const OpRecord& rec) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_x = rec.inputs[0].requires_grad(), need_w = rec.inputs[1].requires_grad();
  const bool need_b =
      rec.num_inputs > 2 && rec.inputs[2].defined() && rec.inputs[2].requires_grad();
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  return [f, a, x, w, need_x, need_w, need_b](const Grads& g) {
    if (!grad_enabled()) {
      Conv2dGrads r = f.backward(g[0], x, w, a, need_x, need_w, need_b);
      return Grads{r.grad_input, r.grad_weight, r.grad_bias};
    }
    Grads r(3);
    if (need_x) r[0] = f.backward_input(g[0], w, x.sizes(), a);
    if (need_w) r[1] = f.backward_weight(g[0], x, w.sizes(), a);
    if (need_b) r[2] = bias_grad(g[0], w.dim(), w.size(0));
    return r;
  };
}

// gx = backward_input(g, w) is bilinear, <gx, u> = <g, conv(u, w)>: for an upstream u (x's
// shape) d/dg = conv(u, w) and d/dw = backward_weight(g, u).
FunctionNode::Backward conv_backward_input_rule(const ConvOps& f, const OpRecord& rec) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_w = rec.inputs[1].requires_grad();
  Tensor g = need_w ? saved(rec.inputs[0]) : Tensor();
  Tensor w = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape w_shape = rec.inputs[1].sizes();
  return [f, a, g, w, w_shape, need_g, need_w](const Grads& u) {
    // conv_transpose's backward is one torch convolution_backward: its input gradient (a forward
    // convolution here) counts under that name too.
    FlopOpName as_backward("convolution_backward");
    return Grads{need_g ? f(u[0], w, a) : Tensor(),
                 need_w ? f.backward_weight(g, u[0], w_shape, a) : Tensor()};
  };
}

// gw = backward_weight(g, x), <gw, v> = <g, conv(x, v)>: for an upstream v (w's shape) d/dg =
// conv(x, v) and d/dx = backward_input(g, v).
FunctionNode::Backward conv_backward_weight_rule(const ConvOps& f, const OpRecord& rec) {
  Conv2dAttrs a = attrs_of<Conv2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_x = rec.inputs[1].requires_grad();
  Tensor g = need_x ? saved(rec.inputs[0]) : Tensor();
  Tensor x = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape x_shape = rec.inputs[1].sizes();
  return [f, a, g, x, x_shape, need_g, need_x](const Grads& v) {
    return Grads{need_g ? f(x, v[0], a) : Tensor(),
                 need_x ? f.backward_input(g, v[0], x_shape, a) : Tensor()};
  };
}

FABRIC_DERIVATIVE(conv2d) { return conv_rule(k2d, rec); }
FABRIC_DERIVATIVE(conv3d) { return conv_rule(k3d, rec); }
FABRIC_DERIVATIVE(conv2d_backward_input) { return conv_backward_input_rule(k2d, rec); }
FABRIC_DERIVATIVE(conv3d_backward_input) { return conv_backward_input_rule(k3d, rec); }
FABRIC_DERIVATIVE(conv2d_backward_weight) { return conv_backward_weight_rule(k2d, rec); }
FABRIC_DERIVATIVE(conv3d_backward_weight) { return conv_backward_weight_rule(k3d, rec); }

FABRIC_DERIVATIVE(max_pool2d) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  Tensor x = saved(rec.inputs[0]);
  return [a, x](const Grads& g) { return Grads{max_pool2d_backward(g[0], x, a)}; };
}

// One rule for both ranks (autograd/max_pool_double_backward.h).
FABRIC_DERIVATIVE(max_pool2d_backward) {
  return max_pool_backward_rule(rec, 2, &max_pool2d_indices);
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
