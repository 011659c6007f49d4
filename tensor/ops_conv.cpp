// Convolution and pooling ops (NCHW, PyTorch's semantics and argument checks) and their gradient
// helpers for autograd, fused (the default backward) or one recorded op per gradient (double
// backward). Kernels see contiguous tensors and a geometry struct (conv_kernels.h).
#include <algorithm>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/conv_kernels.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"

namespace fabric {
namespace {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// A 1- or 2-element argument (stride, padding, ...) as (h, w).
std::vector<int64_t> pair_arg(const char* op, const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == 2, ValueError, op, ": ", name,
               " must have 1 or 2 elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0]} : v;
}

void check_float(const char* op, const Tensor& t, const char* what) {
  const DType d = t.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, op, ": ", what, " ", describe(t),
      " has an unsupported dtype; supported: float64, float32, bfloat16, "
      "float16");
}

// A view without recording (internal reshapes of unbatched inputs).
Tensor raw_view(const Tensor& t, Shape sizes) {
  return Tensor::from_storage(t.storage(), t.dtype(), sizes, contiguous_strides(sizes),
                              t.storage_offset());
}

// The conv geometry of an input of shape x ((N, C, H, W), or (C, H, W) with N = 1), a weight of
// shape w and attrs, with every argument check of conv2d. Shapes, not tensors: the gradient ops
// know the shape of the operand they compute the gradient of, not its values.
Conv2dDesc conv_desc(const char* op, const Shape& x, const Shape& w, DType dtype,
                     const Conv2dAttrs& a) {
  FABRIC_CHECK(x.size() == 3 || x.size() == 4, ShapeError, op,
               ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got ", shape_str(x));
  FABRIC_CHECK(w.size() == 4, ShapeError, op,
               ": weight must be 4-D (out_channels, in_channels/groups, kH, kW), got ",
               shape_str(w));
  const size_t b = x.size() - 3;  // where C is
  Conv2dDesc d;
  d.N = b == 1 ? x[0] : 1;
  d.C = x[b];
  d.H = x[b + 1];
  d.W = x[b + 2];
  d.OC = w[0];
  d.KH = w[2];
  d.KW = w[3];
  d.stride_h = a.stride[0];
  d.stride_w = a.stride[1];
  d.pad_h = a.padding[0];
  d.pad_w = a.padding[1];
  d.dil_h = a.dilation[0];
  d.dil_w = a.dilation[1];
  d.groups = a.groups;
  d.dtype = dtype;
  // As PyTorch: an empty batch passes, an empty image does not (padding would otherwise make an
  // output out of no pixels).
  FABRIC_CHECK(d.H > 0 && d.W > 0, ShapeError, op,
               ": only zero batch or zero channel inputs are supported, got input ", shape_str(x));
  FABRIC_CHECK(d.stride_h > 0 && d.stride_w > 0, ValueError, op, ": stride must be positive, got ",
               shape_str(a.stride));
  FABRIC_CHECK(d.pad_h >= 0 && d.pad_w >= 0, ValueError, op, ": padding must be non-negative, got ",
               shape_str(a.padding));
  FABRIC_CHECK(d.dil_h > 0 && d.dil_w > 0, ValueError, op, ": dilation must be positive, got ",
               shape_str(a.dilation));
  FABRIC_CHECK(d.groups > 0, ValueError, op, ": groups must be positive, got ", d.groups);
  FABRIC_CHECK(d.OC % d.groups == 0, ShapeError, op, ": weight ", shape_str(w), " has ", d.OC,
               " output channels, not divisible by groups=", d.groups);
  FABRIC_CHECK(w[1] > 0 && d.C == w[1] * d.groups, ShapeError, op, ": input ", shape_str(x),
               " has ", d.C, " channels but weight ", shape_str(w), " with groups=", d.groups,
               " expects ", w[1] * d.groups);
  // Checked: a huge padding or dilation would otherwise wrap into a plausible output size.
  const int64_t eh = checked_size_add(checked_size_mul(d.dil_h, d.KH - 1, op), 1, op);
  const int64_t ew = checked_size_add(checked_size_mul(d.dil_w, d.KW - 1, op), 1, op);
  const int64_t ph = checked_size_add(d.H, checked_size_mul(2, d.pad_h, op), op);
  const int64_t pw = checked_size_add(d.W, checked_size_mul(2, d.pad_w, op), op);
  FABRIC_CHECK(d.KH > 0 && d.KW > 0 && eh <= ph && ew <= pw, ShapeError, op, ": the padded input (",
               ph, " x ", pw, ") of ", shape_str(x), " is smaller than the dilated kernel (", eh,
               " x ", ew, ") of weight ", shape_str(w));
  d.OH = (ph - eh) / d.stride_h + 1;
  d.OW = (pw - ew) / d.stride_w + 1;
  return d;
}

// torch's conv_flop_count: 2 · (output numel) · (C_in/groups) · prod(kernel), for the forward and
// for the input gradient (a transposed convolution of grad_out: the same products).
int64_t conv_flops(const Conv2dDesc& d) {
  return 2 * d.N * d.OC * d.OH * d.OW * (d.C / d.groups) * d.KH * d.KW;
}

// torch's count for the weight gradient, conv(xᵀ, grad_outᵀ): its formula takes the product of
// all input and output channels, so with groups it is `groups` times the forward's.
int64_t conv_weight_grad_flops(const Conv2dDesc& d) {
  return 2 * d.N * d.OC * d.OH * d.OW * d.C * d.KH * d.KW;
}

// conv2d's output shape for d: unbatched when the input was.
Shape conv_out_shape(const Conv2dDesc& d, bool unbatched) {
  if (unbatched) return {d.OC, d.OH, d.OW};
  return {d.N, d.OC, d.OH, d.OW};
}

Conv2dAttrs conv_attrs(const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                       const std::vector<int64_t>& dilation, int64_t groups) {
  return {pair_arg("conv2d", "stride", stride), pair_arg("conv2d", "padding", padding),
          pair_arg("conv2d", "dilation", dilation), groups};
}

// x as (N, C, H, W): unbatched (C, H, W) inputs get N = 1.
Tensor batched(const char* op, const Tensor& x) {
  FABRIC_CHECK(x.dim() == 3 || x.dim() == 4, ShapeError, op,
               ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got ", describe(x));
  Tensor c = x.detach().contiguous();
  return x.dim() == 4 ? c : raw_view(c, {1, x.size(0), x.size(1), x.size(2)});
}

struct PoolSetup {
  Pool2dAttrs attrs;
  Pool2dDesc desc;
  Shape out_shape;
};

PoolSetup pool_setup(const char* op, const Shape& shape, DType dtype,
                     const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                     const std::vector<int64_t>& padding) {
  FABRIC_CHECK(dtype == DType::float32 || dtype == DType::float64 || dtype == DType::bfloat16 ||
                   dtype == DType::float16,
               DTypeError, op, ": input ", shape_str(shape), " ", dtype_name(dtype),
               " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  const int64_t nd = static_cast<int64_t>(shape.size());
  FABRIC_CHECK(nd == 3 || nd == 4, ShapeError, op,
               ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got ", shape_str(shape), " ",
               dtype_name(dtype));
  // As PyTorch: every size but a 4-D input's batch must be non-zero.
  FABRIC_CHECK(std::all_of(shape.begin() + (nd == 4 ? 1 : 0), shape.end(), [](int64_t n) { return n > 0; }),
               ShapeError, op,
               ": expected a 3-D or 4-D (batch mode) input with non-zero sizes but an optional zero batch, "
               "got ", shape_str(shape));
  PoolSetup s;
  s.attrs.kernel = pair_arg(op, "kernel_size", kernel);
  s.attrs.stride = stride.empty() ? s.attrs.kernel : pair_arg(op, "stride", stride);
  s.attrs.padding = pair_arg(op, "padding", padding);
  const auto& k = s.attrs.kernel;
  const auto& st = s.attrs.stride;
  const auto& p = s.attrs.padding;
  FABRIC_CHECK(k[0] > 0 && k[1] > 0, ValueError, op, ": kernel_size must be positive, got ",
               shape_str(k));
  FABRIC_CHECK(st[0] > 0 && st[1] > 0, ValueError, op, ": stride must be positive, got ",
               shape_str(st));
  FABRIC_CHECK(p[0] >= 0 && p[1] >= 0 && p[0] <= k[0] / 2 && p[1] <= k[1] / 2, ValueError, op,
               ": pad should be at most half of the kernel size, but got padding ", shape_str(p),
               " for kernel_size ", shape_str(k));
  const int64_t H = shape[nd - 2], W = shape[nd - 1];
  // 2 * p <= kernel_size fits; adding it to a huge H may not.
  const int64_t ph = checked_size_add(H, 2 * p[0], op), pw = checked_size_add(W, 2 * p[1], op);
  FABRIC_CHECK(ph >= k[0] && pw >= k[1], ShapeError, op, ": output size is too small: input ",
               shape_str(shape), " with kernel_size ", shape_str(k), ", stride ", shape_str(st),
               ", padding ", shape_str(p));
  const int64_t OH = (ph - k[0]) / st[0] + 1, OW = (pw - k[1]) / st[1] + 1;
  const int64_t planes = nd == 4 ? shape[0] * shape[1] : shape[0];
  s.desc = {planes, H, W, OH, OW, k[0], k[1], st[0], st[1], p[0], p[1], dtype};
  s.out_shape = shape;
  s.out_shape[nd - 2] = OH;
  s.out_shape[nd - 1] = OW;
  return s;
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
              std::vector<int64_t> stride, std::vector<int64_t> padding,
              std::vector<int64_t> dilation, int64_t groups) {
  Tensor x = x_in, w = w_in, bias = bias_in;
  apply_autocast(OpId::conv2d, {&x, &w, &bias});
  FABRIC_CHECK(x.defined() && w.defined(), ValueError, "conv2d: undefined input or weight");
  check_float("conv2d", x, "input");
  FABRIC_CHECK(w.dtype() == x.dtype(), DTypeError, "conv2d: input ", describe(x), " and weight ",
               describe(w), " must have the same dtype");
  FABRIC_CHECK(w.dim() == 4, ShapeError,
               "conv2d: weight must be 4-D (out_channels, in_channels/groups, kH, kW), got ",
               describe(w));
  FABRIC_CHECK(x.device() == w.device(), DeviceError, "conv2d: input on ", x.device(),
               ", weight on ", w.device());
  if (bias.defined()) {
    FABRIC_CHECK(bias.dtype() == x.dtype(), DTypeError, "conv2d: bias ", describe(bias),
                 " must have the input's dtype ", dtype_name(x.dtype()));
    FABRIC_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), ShapeError, "conv2d: bias ",
                 describe(bias), " must be 1-D with ", w.size(0), " elements (weight ",
                 shape_str(w.sizes()), ")");
    FABRIC_CHECK(bias.device() == x.device(), DeviceError, "conv2d: bias on ", bias.device(),
                 ", input on ", x.device());
  }
  const Conv2dAttrs attrs = conv_attrs(stride, padding, dilation, groups);
  Tensor x4 = batched("conv2d", x);
  const Conv2dDesc d = conv_desc("conv2d", x.sizes(), w.sizes(), x.dtype(), attrs);
  Tensor out = empty(conv_out_shape(d, x.dim() == 3), {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor wc = w.detach().contiguous();
    Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
    conv2d_forward_stub(x.device())(d, x4.data_ptr(), wc.data_ptr(),
                                    bc.defined() ? bc.data_ptr() : nullptr, out.data_ptr());
  }
  if (counting_flops()) report_flops("convolution", conv_flops(d));
  record_op(OpId::conv2d, {x, w, bias}, {&out}, &attrs, "ConvolutionBackward0");
  return out;
}

Tensor max_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding) {
  FABRIC_CHECK(x.defined(), ValueError, "max_pool2d: undefined input");
  PoolSetup s = pool_setup("max_pool2d", x.sizes(), x.dtype(), kernel, stride, padding);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    max_pool2d_forward_stub(x.device())(s.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::max_pool2d, {x}, {&out}, &s.attrs, "MaxPool2DWithIndicesBackward0");
  return out;
}

Tensor avg_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding) {
  FABRIC_CHECK(x.defined(), ValueError, "avg_pool2d: undefined input");
  PoolSetup s = pool_setup("avg_pool2d", x.sizes(), x.dtype(), kernel, stride, padding);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    avg_pool2d_forward_stub(x.device())(s.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::avg_pool2d, {x}, {&out}, &s.attrs, "AvgPool2DBackward0");
  return out;
}

// ---- gradient helpers ---------------------------------------------------------------------

namespace {

// The geometry of a conv2d gradient: the forward's checks on the shapes, and grad_out must have
// the forward's output shape.
Conv2dDesc conv_grad_desc(const char* op, const Tensor& grad_out, const Shape& x_shape,
                          const Shape& w_shape, DType dtype, const Conv2dAttrs& a) {
  const Conv2dDesc d = conv_desc(op, x_shape, w_shape, dtype, a);
  const Shape out_shape = conv_out_shape(d, x_shape.size() == 3);
  FABRIC_CHECK(grad_out.sizes() == out_shape, ShapeError, op, ": grad_out ",
               shape_str(grad_out.sizes()), " does not match the forward's output shape ",
               shape_str(out_shape));
  return d;
}

// The two operands of a conv2d gradient: defined, one floating dtype, one device.
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

Conv2dGrads conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                            const Conv2dAttrs& attrs, bool need_input, bool need_weight,
                            bool need_bias) {
  const char* op = "conv2d_backward";
  FABRIC_CHECK(grad_out.defined() && x.defined() && weight.defined(), ValueError, op,
               ": undefined argument");
  check_float(op, x, "input");
  FABRIC_CHECK(grad_out.dtype() == x.dtype() && weight.dtype() == x.dtype(), DTypeError, op,
               ": grad_out ", describe(grad_out), ", input ", describe(x), " and weight ",
               describe(weight), " must share one dtype");
  const Conv2dAttrs a = conv_attrs(attrs.stride, attrs.padding, attrs.dilation, attrs.groups);
  Tensor x4 = batched(op, x);
  const Conv2dDesc d = conv_grad_desc(op, grad_out, x.sizes(), weight.sizes(), x.dtype(), a);
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  Conv2dGrads g;
  Tensor dy = grad_out.detach().contiguous();
  Tensor wc = weight.detach().contiguous();
  const bool empty_problem = dy.numel() == 0;
  if (need_input) {
    g.grad_input = empty_problem ? zeros(x.sizes(), opts) : empty(x.sizes(), opts);
    if (!empty_problem && x.numel() > 0)
      conv2d_backward_data_stub(x.device())(d, dy.data_ptr(), wc.data_ptr(),
                                            g.grad_input.data_ptr());
  }
  if (need_weight || need_bias) {
    if (need_weight)
      g.grad_weight = empty_problem ? zeros(weight.sizes(), opts) : empty(weight.sizes(), opts);
    if (need_bias) g.grad_bias = empty_problem ? zeros({d.OC}, opts) : empty({d.OC}, opts);
    if (!empty_problem) {
      conv2d_backward_weights_stub(x.device())(d, dy.data_ptr(), x4.data_ptr(),
                                               need_weight ? g.grad_weight.data_ptr() : nullptr,
                                               need_bias ? g.grad_bias.data_ptr() : nullptr);
    }
  }
  // torch's convolution_backward: each gradient counts when its output_mask entry is set.
  if (counting_flops())
    report_flops("convolution_backward",
                 (need_input ? conv_flops(d) : 0) + (need_weight ? conv_weight_grad_flops(d) : 0));
  return g;
}

// The same kernels as conv2d_backward, one gradient per op, so that each records its own node.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dAttrs& attrs) {
  const char* op = "conv2d_backward_input";
  check_grad_operands(op, grad_out, weight, "weight");
  const Conv2dAttrs a = conv_attrs(attrs.stride, attrs.padding, attrs.dilation, attrs.groups);
  const Conv2dDesc d = conv_grad_desc(op, grad_out, input_shape, weight.sizes(), weight.dtype(), a);
  const TensorOptions opts{.dtype = weight.dtype(), .device = weight.device()};
  Tensor dx;
  if (grad_out.numel() == 0 || numel_of(input_shape) == 0) {
    dx = zeros(input_shape, opts);
  } else {
    dx = empty(input_shape, opts);
    Tensor dy = grad_out.detach().contiguous(), wc = weight.detach().contiguous();
    conv2d_backward_data_stub(dx.device())(d, dy.data_ptr(), wc.data_ptr(), dx.data_ptr());
  }
  if (counting_flops()) report_flops("convolution_backward", conv_flops(d));
  record_op(OpId::conv2d_backward_input, {grad_out, weight}, {&dx}, &a);
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dAttrs& attrs) {
  const char* op = "conv2d_backward_weight";
  check_grad_operands(op, grad_out, x, "input");
  const Conv2dAttrs a = conv_attrs(attrs.stride, attrs.padding, attrs.dilation, attrs.groups);
  const Conv2dDesc d = conv_grad_desc(op, grad_out, x.sizes(), weight_shape, x.dtype(), a);
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  Tensor dw;
  if (grad_out.numel() == 0) {
    dw = zeros(weight_shape, opts);
  } else {
    dw = empty(weight_shape, opts);
    Tensor dy = grad_out.detach().contiguous(), x4 = batched(op, x);
    conv2d_backward_weights_stub(dw.device())(d, dy.data_ptr(), x4.data_ptr(), dw.data_ptr(),
                                              nullptr);
  }
  if (counting_flops()) report_flops("convolution_backward", conv_weight_grad_flops(d));
  record_op(OpId::conv2d_backward_weight, {grad_out, x}, {&dw}, &a);
  return dw;
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& x, const Pool2dAttrs& attrs) {
  FABRIC_CHECK(x.defined(), ValueError, "max_pool2d_backward: undefined input");
  PoolSetup s = pool_setup("max_pool2d_backward", x.sizes(), x.dtype(), attrs.kernel, attrs.stride,
                           attrs.padding);
  FABRIC_CHECK(
      grad_out.defined() && grad_out.sizes() == s.out_shape && grad_out.dtype() == x.dtype(),
      ShapeError, "max_pool2d_backward: grad_out ",
      grad_out.defined() ? describe(grad_out) : "undefined", " must be ", shape_str(s.out_shape),
      " ", dtype_name(x.dtype()));
  Tensor dx = zeros(x.sizes(), {.dtype = x.dtype(), .device = x.device()});
  if (grad_out.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous(), xc = x.detach().contiguous();
    max_pool2d_backward_stub(x.device())(s.desc, dy.data_ptr(), xc.data_ptr(), dx.data_ptr());
  }
  // Recorded (a no-op outside grad mode): under create_graph the gradient differentiates again.
  record_op(OpId::max_pool2d_backward, {grad_out, x}, {&dx}, &s.attrs);
  return dx;
}

Tensor max_pool2d_indices(const Tensor& x, const Pool2dAttrs& attrs) {
  FABRIC_CHECK(x.defined(), ValueError, "max_pool2d_indices: undefined input");
  PoolSetup s = pool_setup("max_pool2d_indices", x.sizes(), x.dtype(), attrs.kernel, attrs.stride,
                           attrs.padding);
  Tensor indices = empty(s.out_shape, {.dtype = DType::int64, .device = x.device()});
  if (indices.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    max_pool2d_indices_stub(x.device())(s.desc, xc.data_ptr(),
                                        static_cast<int64_t*>(indices.data_ptr()));
  }
  return indices;
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape,
                           const Pool2dAttrs& attrs) {
  FABRIC_CHECK(grad_out.defined(), ValueError, "avg_pool2d_backward: undefined grad_out");
  PoolSetup s = pool_setup("avg_pool2d_backward", input_shape, grad_out.dtype(), attrs.kernel,
                           attrs.stride, attrs.padding);
  FABRIC_CHECK(grad_out.sizes() == s.out_shape, ShapeError, "avg_pool2d_backward: grad_out ",
               describe(grad_out), " must be ", shape_str(s.out_shape), " for input ",
               shape_str(input_shape));
  Tensor dx = zeros(input_shape, {.dtype = grad_out.dtype(), .device = grad_out.device()});
  if (grad_out.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous();
    avg_pool2d_backward_stub(dx.device())(s.desc, dy.data_ptr(), dx.data_ptr());
  }
  record_op(OpId::avg_pool2d_backward, {grad_out}, {&dx}, &s.attrs);
  return dx;
}

}  // namespace fabric
