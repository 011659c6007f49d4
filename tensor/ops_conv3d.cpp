// conv3d as torch.nn.functional.conv3d, and its gradient helpers: fused (the default backward)
// or one recorded op per gradient (double backward, conv_transpose3d). Kernels see contiguous
// NCDHW tensors and a Conv3dDesc (conv3d_kernels.h); the checks and messages follow conv2d's.
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/conv3d_kernels.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_conv3d.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// A 1- or 3-element argument (stride, padding, dilation) as (d, h, w).
std::vector<int64_t> triple_arg(const char* op, const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == 3, ValueError, op, ": ", name,
               " must have 1 or 3 elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0], v[0]} : v;
}

Conv2dAttrs conv_attrs(const char* op, const Conv2dAttrs& a) {
  return {triple_arg(op, "stride", a.stride), triple_arg(op, "padding", a.padding),
          triple_arg(op, "dilation", a.dilation), a.groups};
}

void check_float(const char* op, const Tensor& t, const char* what) {
  const DType d = t.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, op, ": ", what, " ", describe(t),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
}

// The geometry of input shape x ((N, C, D, H, W), or (C, D, H, W) with N = 1), weight shape w and
// attrs (three-element), with every argument check of conv3d. Shapes, not tensors: the gradient
// ops know the shape of the operand they compute the gradient of, not its values.
Conv3dDesc conv_desc(const char* op, const Shape& x, const Shape& w, DType dtype,
                     const Conv2dAttrs& a) {
  FABRIC_CHECK(x.size() == 4 || x.size() == 5, ShapeError, op,
               ": expected a 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got ", shape_str(x));
  FABRIC_CHECK(w.size() == 5, ShapeError, op,
               ": weight must be 5-D (out_channels, in_channels/groups, kD, kH, kW), got ",
               shape_str(w));
  const size_t b = x.size() - 4;  // where C is
  Conv3dDesc d;
  d.N = b == 1 ? x[0] : 1;
  d.C = x[b];
  d.OC = w[0];
  d.groups = a.groups;
  d.dtype = dtype;
  for (size_t i = 0; i < 3; ++i) {
    d.in[i] = x[b + 1 + i];
    d.k[i] = w[2 + i];
    d.stride[i] = a.stride[i];
    d.pad[i] = a.padding[i];
    d.dil[i] = a.dilation[i];
  }
  // As torch: an empty batch passes, an empty volume does not.
  FABRIC_CHECK(d.in[0] > 0 && d.in[1] > 0 && d.in[2] > 0, ShapeError, op,
               ": only zero batch or zero channel inputs are supported, got input ", shape_str(x));
  for (size_t i = 0; i < 3; ++i) {
    FABRIC_CHECK(d.stride[i] > 0, ValueError, op, ": stride must be positive, got ",
                 shape_str(a.stride));
    FABRIC_CHECK(d.pad[i] >= 0, ValueError, op, ": padding must be non-negative, got ",
                 shape_str(a.padding));
    FABRIC_CHECK(d.dil[i] > 0, ValueError, op, ": dilation must be positive, got ",
                 shape_str(a.dilation));
  }
  FABRIC_CHECK(d.groups > 0, ValueError, op, ": groups must be positive, got ", d.groups);
  FABRIC_CHECK(d.OC % d.groups == 0, ShapeError, op, ": weight ", shape_str(w), " has ", d.OC,
               " output channels, not divisible by groups=", d.groups);
  FABRIC_CHECK(w[1] > 0 && d.C == w[1] * d.groups, ShapeError, op, ": input ", shape_str(x),
               " has ", d.C, " channels but weight ", shape_str(w), " with groups=", d.groups,
               " expects ", w[1] * d.groups);
  // Checked: a huge padding or dilation would otherwise wrap into a plausible output size.
  Shape padded(3), span(3);
  for (size_t i = 0; i < 3; ++i) {
    span[i] = checked_size_add(checked_size_mul(d.dil[i], d.k[i] - 1, op), 1, op);
    padded[i] = checked_size_add(d.in[i], checked_size_mul(2, d.pad[i], op), op);
  }
  bool fits = true;
  for (size_t i = 0; i < 3; ++i) fits = fits && d.k[i] > 0 && span[i] <= padded[i];
  FABRIC_CHECK(fits, ShapeError, op, ": the padded input ", shape_str(padded), " of ", shape_str(x),
               " is smaller than the dilated kernel ", shape_str(span), " of weight ",
               shape_str(w));
  for (size_t i = 0; i < 3; ++i) d.out[i] = (padded[i] - span[i]) / d.stride[i] + 1;
  return d;
}

// torch's conv_flop_count: 2 · (output numel) · (C_in/groups) · prod(kernel), for the forward and
// for the input gradient; the weight gradient's formula takes all input channels.
int64_t conv_flops(const Conv3dDesc& d) { return 2 * d.y_numel() * (d.C / d.groups) * d.k_numel(); }
int64_t conv_weight_grad_flops(const Conv3dDesc& d) { return 2 * d.y_numel() * d.C * d.k_numel(); }

Shape conv_out_shape(const Conv3dDesc& d, bool unbatched) {
  if (unbatched) return {d.OC, d.out[0], d.out[1], d.out[2]};
  return {d.N, d.OC, d.out[0], d.out[1], d.out[2]};
}

// A contiguous copy of x, detached (kernels take plain buffers; the batch dim need not exist).
Tensor plain(const Tensor& x) { return x.detach().contiguous(); }

// The geometry of a gradient: the forward's checks on the shapes, and grad_out must have the
// forward's output shape.
Conv3dDesc conv_grad_desc(const char* op, const Tensor& grad_out, const Shape& x_shape,
                          const Shape& w_shape, DType dtype, const Conv2dAttrs& a) {
  const Conv3dDesc d = conv_desc(op, x_shape, w_shape, dtype, a);
  const Shape out_shape = conv_out_shape(d, x_shape.size() == 4);
  FABRIC_CHECK(grad_out.sizes() == out_shape, ShapeError, op, ": grad_out ",
               shape_str(grad_out.sizes()), " does not match the forward's output shape ",
               shape_str(out_shape));
  return d;
}

// The two operands of a gradient op: defined, one floating dtype, one device.
void check_grad_operands(const char* op, const Tensor& grad_out, const Tensor& other,
                         const char* other_name) {
  FABRIC_CHECK(grad_out.defined() && other.defined(), ValueError, op, ": undefined grad_out or ",
               other_name);
  check_float(op, other, other_name);
  FABRIC_CHECK(grad_out.dtype() == other.dtype(), DTypeError, op, ": grad_out ", describe(grad_out),
               " and ", other_name, " ", describe(other), " must share one dtype");
  FABRIC_CHECK(grad_out.device() == other.device(), DeviceError, op, ": grad_out on ",
               grad_out.device(), ", ", other_name, " on ", other.device());
}

}  // namespace

Tensor conv3d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
              std::vector<int64_t> stride, std::vector<int64_t> padding,
              std::vector<int64_t> dilation, int64_t groups) {
  const char* op = "conv3d";
  Tensor x = x_in, w = w_in, bias = bias_in;
  apply_autocast(OpId::conv3d, {&x, &w, &bias});
  FABRIC_CHECK(x.defined() && w.defined(), ValueError, "conv3d: undefined input or weight");
  check_float(op, x, "input");
  FABRIC_CHECK(w.dtype() == x.dtype(), DTypeError, "conv3d: input ", describe(x), " and weight ",
               describe(w), " must have the same dtype");
  FABRIC_CHECK(x.device() == w.device(), DeviceError, "conv3d: input on ", x.device(),
               ", weight on ", w.device());
  if (bias.defined()) {
    FABRIC_CHECK(bias.dtype() == x.dtype(), DTypeError, "conv3d: bias ", describe(bias),
                 " must have the input's dtype ", dtype_name(x.dtype()));
    FABRIC_CHECK(bias.dim() == 1 && w.dim() >= 1 && bias.size(0) == w.size(0), ShapeError,
                 "conv3d: bias ", describe(bias),
                 " must be 1-D with one element per output "
                 "channel of weight ",
                 shape_str(w.sizes()));
    FABRIC_CHECK(bias.device() == x.device(), DeviceError, "conv3d: bias on ", bias.device(),
                 ", input on ", x.device());
  }
  const Conv2dAttrs attrs = conv_attrs(op, {stride, padding, dilation, groups});
  const Conv3dDesc d = conv_desc(op, x.sizes(), w.sizes(), x.dtype(), attrs);
  Tensor out = empty(conv_out_shape(d, x.dim() == 4), {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = plain(x), wc = plain(w);
    Tensor bc = bias.defined() ? plain(bias) : Tensor();
    conv3d_forward_stub(x.device())(d, xc.data_ptr(), wc.data_ptr(),
                                    bc.defined() ? bc.data_ptr() : nullptr, out.data_ptr());
  }
  if (counting_flops()) report_flops("convolution", conv_flops(d));
  record_op(OpId::conv3d, {x, w, bias}, {&out}, &attrs, "ConvolutionBackward0");
  return out;
}

Conv2dGrads conv3d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                            const Conv2dAttrs& attrs, bool need_input, bool need_weight,
                            bool need_bias) {
  const char* op = "conv3d_backward";
  FABRIC_CHECK(grad_out.defined() && x.defined() && weight.defined(), ValueError, op,
               ": undefined argument");
  check_float(op, x, "input");
  FABRIC_CHECK(grad_out.dtype() == x.dtype() && weight.dtype() == x.dtype(), DTypeError, op,
               ": grad_out ", describe(grad_out), ", input ", describe(x), " and weight ",
               describe(weight), " must share one dtype");
  const Conv2dAttrs a = conv_attrs(op, attrs);
  const Conv3dDesc d = conv_grad_desc(op, grad_out, x.sizes(), weight.sizes(), x.dtype(), a);
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  Conv2dGrads g;
  Tensor dy = plain(grad_out);
  const bool empty_problem = dy.numel() == 0;
  if (need_input) {
    g.grad_input = empty_problem ? zeros(x.sizes(), opts) : empty(x.sizes(), opts);
    if (!empty_problem && x.numel() > 0) {
      Tensor wc = plain(weight);
      conv3d_backward_data_stub(x.device())(d, dy.data_ptr(), wc.data_ptr(),
                                            g.grad_input.data_ptr());
    }
  }
  if (need_weight || need_bias) {
    if (need_weight)
      g.grad_weight = empty_problem ? zeros(weight.sizes(), opts) : empty(weight.sizes(), opts);
    if (need_bias) g.grad_bias = empty_problem ? zeros({d.OC}, opts) : empty({d.OC}, opts);
    if (!empty_problem) {
      Tensor xc = plain(x);
      conv3d_backward_weights_stub(x.device())(d, dy.data_ptr(), xc.data_ptr(),
                                               need_weight ? g.grad_weight.data_ptr() : nullptr,
                                               need_bias ? g.grad_bias.data_ptr() : nullptr);
    }
  }
  if (counting_flops())
    report_flops("convolution_backward",
                 (need_input ? conv_flops(d) : 0) + (need_weight ? conv_weight_grad_flops(d) : 0));
  return g;
}

Tensor conv3d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dAttrs& attrs) {
  const char* op = "conv3d_backward_input";
  check_grad_operands(op, grad_out, weight, "weight");
  const Conv2dAttrs a = conv_attrs(op, attrs);
  const Conv3dDesc d = conv_grad_desc(op, grad_out, input_shape, weight.sizes(), weight.dtype(), a);
  const TensorOptions opts{.dtype = weight.dtype(), .device = weight.device()};
  Tensor dx;
  if (grad_out.numel() == 0 || numel_of(input_shape) == 0) {
    dx = zeros(input_shape, opts);
  } else {
    dx = empty(input_shape, opts);
    Tensor dy = plain(grad_out), wc = plain(weight);
    conv3d_backward_data_stub(dx.device())(d, dy.data_ptr(), wc.data_ptr(), dx.data_ptr());
  }
  if (counting_flops()) report_flops("convolution_backward", conv_flops(d));
  record_op(OpId::conv3d_backward_input, {grad_out, weight}, {&dx}, &a);
  return dx;
}

Tensor conv3d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dAttrs& attrs) {
  const char* op = "conv3d_backward_weight";
  check_grad_operands(op, grad_out, x, "input");
  const Conv2dAttrs a = conv_attrs(op, attrs);
  const Conv3dDesc d = conv_grad_desc(op, grad_out, x.sizes(), weight_shape, x.dtype(), a);
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  Tensor dw;
  if (grad_out.numel() == 0) {
    dw = zeros(weight_shape, opts);
  } else {
    dw = empty(weight_shape, opts);
    Tensor dy = plain(grad_out), xc = plain(x);
    conv3d_backward_weights_stub(dw.device())(d, dy.data_ptr(), xc.data_ptr(), dw.data_ptr(),
                                              nullptr);
  }
  if (counting_flops()) report_flops("convolution_backward", conv_weight_grad_flops(d));
  record_op(OpId::conv3d_backward_weight, {grad_out, x}, {&dw}, &a);
  return dw;
}

}  // namespace fabric
