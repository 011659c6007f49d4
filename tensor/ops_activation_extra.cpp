// The activations of torch.nn.functional added beside ops_activation.cpp's: log_sigmoid,
// hardshrink, softshrink and threshold (fused kernels, tensor/activation_extra_kernels.h), glu
// (one fused pass, tensor/glu_kernels.h) and prelu (a composition on detached tensors), each
// recorded as one node of its own so autocast and autograd see torch's op, rrelu (a drawn slope
// per negative element while training; eval is leaky_relu), and softsign/tanhshrink
// (compositions, as torch's Python writes them).
#include "tensor/activation_extra_attrs.h"
#include "tensor/activation_extra_kernels.h"
#include "tensor/activation_kernels.h"
#include "tensor/autocast.h"
#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"
#include "tensor/glu_kernels.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/shape.h"

namespace fabric {

FABRIC_DEFINE_STUB(extra_activation_stub, ExtraActivationFn);
FABRIC_DEFINE_STUB(extra_activation_backward_stub, ExtraActivationFn);

namespace {

Tensor extra_activation(OpId id, const char* name, ExtraActivation op,
                        const ExtraActivationParams& params, const Tensor& a_in,
                        const void* attrs) {
  Tensor a = a_in;
  apply_autocast(id, {&a});
  check_floating_operand(name, a);
  Tensor out = empty_like_operands(a.sizes(), {.dtype = a.dtype(), .device = a.device()}, {&a});
  if (out.numel() > 0) {
    const StridedLoop loop = make_strided_loop(name, out, {&a});
    extra_activation_stub(out.device())(op, params, loop);
  }
  record_op(id, {a}, {&out}, attrs);
  return out;
}

// prelu's weight shaped to broadcast against x: its C slopes along dim 1, or its one slope.
Shape prelu_weight_shape(const Tensor& x, const Tensor& weight) {
  Shape s(static_cast<size_t>(x.dim()), 1);
  if (weight.numel() != 1) s[1] = weight.numel();
  return s;
}

}  // namespace

Tensor extra_activation_backward(ExtraActivation op, const Tensor& grad, const Tensor& x,
                                 const ExtraActivationParams& params) {
  check_floating_operand("activation_backward", x);
  const Tensor g = grad.dtype() == x.dtype() ? grad : grad.to(x.dtype());
  Tensor out = empty_like_operands(x.sizes(), {.dtype = x.dtype(), .device = x.device()}, {&g, &x});
  if (out.numel() == 0) return out;
  const StridedLoop loop = make_strided_loop("activation_backward", out, {&g, &x});
  extra_activation_backward_stub(out.device())(op, params, loop);
  return out;
}

Tensor log_sigmoid(const Tensor& a) {
  return extra_activation(OpId::log_sigmoid, "log_sigmoid", ExtraActivation::log_sigmoid, {}, a,
                          nullptr);
}

Tensor hardshrink(const Tensor& a, const Scalar& lambd) {
  const ScalarAttrs attrs{lambd};
  ExtraActivationParams p;
  p.lambd = lambd.to_double();
  return extra_activation(OpId::hardshrink, "hardshrink", ExtraActivation::hardshrink, p, a,
                          &attrs);
}

Tensor softshrink(const Tensor& a, const Scalar& lambd) {
  ExtraActivationParams p;
  p.lambd = lambd.to_double();
  FABRIC_CHECK(p.lambd >= 0, ValueError,
               "softshrink: lambda must be greater or equal to 0, but found to be ", p.lambd, ".");
  const ScalarAttrs attrs{lambd};
  return extra_activation(OpId::softshrink, "softshrink", ExtraActivation::softshrink, p, a,
                          &attrs);
}

Tensor threshold(const Tensor& a, const Scalar& thresh, const Scalar& value) {
  const ThresholdAttrs attrs{thresh, value};
  ExtraActivationParams p;
  p.threshold = thresh.to_double();
  p.value = value.to_double();
  return extra_activation(OpId::threshold, "threshold", ExtraActivation::threshold, p, a, &attrs);
}

// Compositions: their input is checked in their own name (abs's or sub's would say the rest). As
// torch, an integer input gives a floating result and a bool one is refused.
static void check_composite_operand(const char* op, const Tensor& a) {
  check_elementwise_operand(op, a);
  FABRIC_CHECK(a.dtype() != DType::bool_, DTypeError, op,
               ": bool tensors are not supported (cast with .to(float32) first)");
}

Tensor softsign(const Tensor& a) {
  check_composite_operand("softsign", a);
  return div(a, add(abs(a), 1.0));
}

Tensor tanhshrink(const Tensor& a) {
  check_composite_operand("tanhshrink", a);
  return sub(a, tanh(a));
}

Tensor prelu(const Tensor& x_in, const Tensor& weight_in) {
  Tensor x = x_in, weight = weight_in;
  apply_autocast(OpId::prelu, {&x, &weight});
  check_floating_operand("prelu", x);
  FABRIC_CHECK(weight.defined(), ValueError, "prelu: got an undefined weight");
  FABRIC_CHECK(weight.dtype() == x.dtype(), DTypeError,
               "prelu: expects weight of the input's dtype ", dtype_name(x.dtype()), ", got ",
               dtype_name(weight.dtype()));
  FABRIC_CHECK(weight.device() == x.device(), DeviceError,
               "prelu: expects weight on the input's device ", x.device().str(), ", got ",
               weight.device().str());
  FABRIC_CHECK(
      weight.dim() <= 1, ShapeError,
      "prelu: Expected `weight` to be a scalar or 1D tensor, but got ndim = ", weight.dim());
  // torch 1.13: the channels are dim 1, or one channel for a 1-D (or 0-dim) input.
  const int64_t channels = x.dim() >= 2 ? x.size(1) : 1;
  FABRIC_CHECK(weight.numel() == 1 || weight.numel() == channels, ShapeError,
               "prelu: Mismatch of parameter numbers and input channel size. Found parameter "
               "numbers = ",
               weight.numel(), " and channel size = ", channels, " (input shape ",
               shape_str(x.sizes()), ")");
  // Composed on detached tensors, so that only the one prelu node below is recorded.
  const Tensor xd = x.detach(), wd = weight.detach().reshape(prelu_weight_shape(x, weight));
  Tensor out = where(gt(xd, 0.0), xd, mul(xd, wd));
  record_op(OpId::prelu, {x, weight}, {&out}, nullptr, "PreluBackward0");
  return out;
}

Tensor glu(const Tensor& x_in, int64_t dim) {
  Tensor x = x_in;
  apply_autocast(OpId::glu, {&x});
  check_floating_operand("glu", x);
  FABRIC_CHECK(x.dim() > 0, ShapeError,
               "glu: does not support scalars because halving size must be even");
  dim = wrap_dim(dim, x.dim(), "glu");
  const int64_t n = x.size(dim);
  FABRIC_CHECK(n % 2 == 0, ShapeError, "glu: Halving dimension must be even, but dimension ", dim,
               " is size ", n, " (input shape ", shape_str(x.sizes()), ")");
  Tensor out = glu_halves(x.detach(), dim);
  const DimAttrs attrs{dim};
  record_op(OpId::glu, {x}, {&out}, &attrs, "GluBackward0");
  return out;
}

Tensor rrelu(const Tensor& a_in, const Scalar& lower, const Scalar& upper, bool training,
             Generator* gen) {
  Tensor a = a_in;
  apply_autocast(OpId::rrelu, {&a});
  check_floating_operand("rrelu", a);
  const double lo = lower.to_double(), hi = upper.to_double();
  FABRIC_CHECK(lo <= hi, ValueError,
               "rrelu: Lower bound should be less than or equal to the upper bound, got lower=", lo,
               ", upper=", hi);
  if (!training) {
    // torch's eval rrelu is leaky_relu with the mean slope, under rrelu's node name.
    const Scalar slope = (lo + hi) / 2;
    const LeakyReluAttrs attrs{slope};
    ActivationParams p;
    p.negative_slope = slope.to_double();
    Tensor out = empty(a.sizes(), {.dtype = a.dtype(), .device = a.device()});
    if (out.numel() > 0) {
      const StridedLoop loop = make_strided_loop("rrelu", out, {&a});
      activation_stub(out.device())(ActivationOp::leaky_relu, p, loop);
    }
    record_op(OpId::leaky_relu, {a}, {&out}, &attrs, "RreluWithNoiseBackward0");
    return out;
  }
  // The noise torch's rrelu_with_noise keeps: a slope from U(lower, upper) where x <= 0, else 1;
  // drawn in float32 whatever a's dtype (uniform bits are not fp16-resolution limited), then
  // rounded to a's dtype so that out and the gradient use the same slope.
  const Tensor xd = a.detach();
  const Tensor u = rand(a.sizes(), {.dtype = DType::float32, .device = a.device()}, gen);
  const Tensor slopes = add(mul(u, hi - lo), lo).to(a.dtype());
  const Tensor noise = where(le(xd, 0.0), slopes, ones_like(xd));
  Tensor out = mul(xd, noise);
  record_op(OpId::rrelu, {a, noise}, {&out}, nullptr, "RreluWithNoiseBackward0");
  return out;
}

}  // namespace fabric
