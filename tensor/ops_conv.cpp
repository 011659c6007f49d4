// conv2d and conv3d as torch.nn.functional's, and their gradient helpers for autograd: fused
// (the default backward) or one recorded op per gradient (double backward, conv_transpose*d).
// One code path serves both ranks: a Rank names what differs (ops, OpIds, spellings); kernels
// see contiguous NC(D)HW tensors and a Conv2dDesc or Conv3dDesc (conv_kernels.h,
// conv3d_kernels.h). conv1d goes through conv2d (ops_conv1d.cpp).
#include <algorithm>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/conv3d_kernels.h"
#include "tensor/conv_kernels.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_conv3d.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

using detail::cat;

// What conv2d and conv3d differ in besides the number of spatial dims: names and spellings.
struct Rank {
  size_t spatial;  // 2 or 3
  const char *forward, *backward, *backward_input, *backward_weight;
  OpId forward_id, backward_input_id, backward_weight_id;
  const char* input_layout;   // the accepted input ranks, for messages
  const char* weight_layout;  // the weight's layout, for messages
};

constexpr Rank k2d{2,
                   "conv2d",
                   "conv2d_backward",
                   "conv2d_backward_input",
                   "conv2d_backward_weight",
                   OpId::conv2d,
                   OpId::conv2d_backward_input,
                   OpId::conv2d_backward_weight,
                   "3-D (C, H, W) or 4-D (N, C, H, W)",
                   "4-D (out_channels, in_channels/groups, kH, kW)"};
constexpr Rank k3d{3,
                   "conv3d",
                   "conv3d_backward",
                   "conv3d_backward_input",
                   "conv3d_backward_weight",
                   OpId::conv3d,
                   OpId::conv3d_backward_input,
                   OpId::conv3d_backward_weight,
                   "4-D (C, D, H, W) or 5-D (N, C, D, H, W)",
                   "5-D (out_channels, in_channels/groups, kD, kH, kW)"};

// conv2d predates conv3d and keeps its messages: it checks the input's and weight's ranks up
// front (naming their dtypes), and names itself in every attribute message.
bool conv2d_style(const Rank& r) { return r.spatial == 2; }

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// A 1- or r.spatial-element argument (stride, padding, dilation) as r.spatial elements.
std::vector<int64_t> spatial_arg(const Rank& r, const char* op, const char* name,
                                 const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == r.spatial, ValueError, op, ": ", name,
               " must have 1 or ", r.spatial, " elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>(r.spatial, v[0]) : v;
}

Conv2dAttrs conv_attrs(const Rank& r, const char* op, const Conv2dAttrs& a) {
  if (conv2d_style(r)) op = r.forward;
  return {spatial_arg(r, op, "stride", a.stride), spatial_arg(r, op, "padding", a.padding),
          spatial_arg(r, op, "dilation", a.dilation), a.groups};
}

void check_float(const char* op, const Tensor& t, const char* what) {
  const DType d = t.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, op, ": ", what, " ", describe(t),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
}

// conv2d_style: x's rank, checked before the geometry (whose message names no dtype).
void check_input_rank(const Rank& r, const char* op, const Tensor& x) {
  if (!conv2d_style(r)) return;
  FABRIC_CHECK(x.dim() == 3 || x.dim() == 4, ShapeError, op, ": expected a ", r.input_layout,
               " input, got ", describe(x));
}

// The geometry of either rank as a Conv3dDesc; a 2-D problem has a unit third dim (size,
// kernel, stride and dilation 1, padding 0), so the element counts hold for both.
struct Geometry {
  const Rank* rank;
  Conv3dDesc d;
};

// "(a x b)" for conv2d (its messages), "(a, b, c)" for conv3d.
std::string extent_str(const Rank& r, const Shape& v) {
  return conv2d_style(r) ? cat("(", v[0], " x ", v[1], ")") : shape_str(v);
}

// The geometry of input shape x ((N, C, spatial...), or (C, spatial...) with N = 1), weight shape
// w and attrs (r.spatial elements each), with every argument check of the forward. Shapes, not
// tensors: the gradient ops know the shape of the operand they compute the gradient of, not its
// values.
Geometry conv_geometry(const Rank& r, const char* op, const Shape& x, const Shape& w, DType dtype,
                       const Conv2dAttrs& a) {
  const size_t ns = r.spatial;
  FABRIC_CHECK(x.size() == ns + 1 || x.size() == ns + 2, ShapeError, op, ": expected a ",
               r.input_layout, " input, got ", shape_str(x));
  FABRIC_CHECK(w.size() == ns + 2, ShapeError, op, ": weight must be ", r.weight_layout, ", got ",
               shape_str(w));
  const size_t b = x.size() - ns - 1;  // where C is
  Geometry g{&r, {}};
  Conv3dDesc& d = g.d;
  d.N = b == 1 ? x[0] : 1;
  d.C = x[b];
  d.OC = w[0];
  d.groups = a.groups;
  d.dtype = dtype;
  d.in = d.k = d.out = {1, 1, 1};
  bool nonempty = true;
  for (size_t i = 0; i < ns; ++i) {
    d.in[i] = x[b + 1 + i];
    d.k[i] = w[2 + i];
    d.stride[i] = a.stride[i];
    d.pad[i] = a.padding[i];
    d.dil[i] = a.dilation[i];
    nonempty = nonempty && d.in[i] > 0;
  }
  // As PyTorch: an empty batch passes, an empty image does not (padding would otherwise make an
  // output out of no pixels).
  FABRIC_CHECK(nonempty, ShapeError, op,
               ": only zero batch or zero channel inputs are supported, got input ", shape_str(x));
  // Which of two bad attributes gets named follows each rank's old order: conv2d checks one
  // attribute over all dims at a time, conv3d all attributes of one dim at a time.
  auto check_attr = [&](int which, size_t i) {
    if (which == 0)
      FABRIC_CHECK(d.stride[i] > 0, ValueError, op, ": stride must be positive, got ",
                   shape_str(a.stride));
    else if (which == 1)
      FABRIC_CHECK(d.pad[i] >= 0, ValueError, op, ": padding must be non-negative, got ",
                   shape_str(a.padding));
    else
      FABRIC_CHECK(d.dil[i] > 0, ValueError, op, ": dilation must be positive, got ",
                   shape_str(a.dilation));
  };
  for (int which = 0; which < 3 && conv2d_style(r); ++which)
    for (size_t i = 0; i < ns; ++i) check_attr(which, i);
  for (size_t i = 0; i < ns && !conv2d_style(r); ++i)
    for (int which = 0; which < 3; ++which) check_attr(which, i);
  FABRIC_CHECK(d.groups > 0, ValueError, op, ": groups must be positive, got ", d.groups);
  // As torch: at least one output channel per group (a weight of no output channels is refused
  // even when the input has none).
  FABRIC_CHECK(d.OC >= d.groups, ShapeError, op, ": weight ", shape_str(w), " has ", d.OC,
               " output channels (dimension 0), expected at least groups=", d.groups);
  FABRIC_CHECK(d.OC % d.groups == 0, ShapeError, op, ": weight ", shape_str(w), " has ", d.OC,
               " output channels, not divisible by groups=", d.groups);
  // A zero-channel input with a zero-channel weight passes (conv_out_shape: torch's result).
  FABRIC_CHECK(d.C == w[1] * d.groups, ShapeError, op, ": input ", shape_str(x), " has ", d.C,
               " channels but weight ", shape_str(w), " with groups=", d.groups, " expects ",
               w[1] * d.groups);
  // Before the fit check: a zero kernel "fits" any input, and its dilated extent can be negative.
  Shape kernel(d.k.begin(), d.k.begin() + static_cast<std::ptrdiff_t>(ns));
  FABRIC_CHECK(std::all_of(kernel.begin(), kernel.end(), [](int64_t k) { return k > 0; }),
               ShapeError, op, ": kernel size should be greater than zero, but got kernel ",
               extent_str(r, kernel), " of weight ", shape_str(w));
  // Checked: a huge padding or dilation would otherwise wrap into a plausible output size.
  Shape padded(ns), span(ns);
  bool fits = true;
  for (size_t i = 0; i < ns; ++i) {
    span[i] = checked_size_add(checked_size_mul(d.dil[i], d.k[i] - 1, op), 1, op);
    padded[i] = checked_size_add(d.in[i], checked_size_mul(2, d.pad[i], op), op);
    fits = fits && span[i] <= padded[i];
  }
  FABRIC_CHECK(fits, ShapeError, op, ": the padded input ", extent_str(r, padded), " of ",
               shape_str(x), " is smaller than the dilated kernel ", extent_str(r, span),
               " of weight ", shape_str(w));
  for (size_t i = 0; i < ns; ++i) d.out[i] = (padded[i] - span[i]) / d.stride[i] + 1;
  return g;
}

// torch's conv_flop_count: 2 · (output numel) · (C_in/groups) · prod(kernel), for the forward and
// for the input gradient (a transposed convolution of grad_out: the same products).
int64_t conv_flops(const Geometry& g) {
  return 2 * g.d.y_numel() * (g.d.C / g.d.groups) * g.d.k_numel();
}

// torch's count for the weight gradient, conv(xᵀ, grad_outᵀ): its formula takes the product of
// all input and output channels, so with groups it is `groups` times the forward's.
int64_t conv_weight_grad_flops(const Geometry& g) {
  return 2 * g.d.y_numel() * g.d.C * g.d.k_numel();
}

// The forward's output shape: unbatched when the input was. A zero-channel input gives zero
// output channels, as torch's calc_output_size (an empty result whatever the weight's count;
// the bias gradient is still zeros of OC elements).
Shape conv_out_shape(const Geometry& g, bool unbatched) {
  const int64_t channels = g.d.C == 0 ? 0 : g.d.OC;
  Shape s = unbatched ? Shape{channels} : Shape{g.d.N, channels};
  for (size_t i = 0; i < g.rank->spatial; ++i) s.push_back(g.d.out[i]);
  return s;
}

bool unbatched(const Geometry& g, const Shape& x_shape) {
  return x_shape.size() == g.rank->spatial + 1;
}

// ---- the kernels, through the rank's stubs --------------------------------------------------

Conv2dDesc as_2d(const Conv3dDesc& d) {
  Conv2dDesc c;
  c.N = d.N, c.C = d.C, c.H = d.in[0], c.W = d.in[1], c.OC = d.OC, c.KH = d.k[0], c.KW = d.k[1];
  c.OH = d.out[0], c.OW = d.out[1], c.stride_h = d.stride[0], c.stride_w = d.stride[1];
  c.pad_h = d.pad[0], c.pad_w = d.pad[1], c.dil_h = d.dil[0], c.dil_w = d.dil[1];
  c.groups = d.groups, c.dtype = d.dtype;
  return c;
}

void run_forward(const Geometry& g, Device dev, const void* x, const void* w, const void* bias,
                 void* y) {
  if (g.rank->spatial == 2) return conv2d_forward_stub(dev)(as_2d(g.d), x, w, bias, y);
  conv3d_forward_stub(dev)(g.d, x, w, bias, y);
}

void run_backward_data(const Geometry& g, Device dev, const void* dy, const void* w, void* dx) {
  if (g.rank->spatial == 2) return conv2d_backward_data_stub(dev)(as_2d(g.d), dy, w, dx);
  conv3d_backward_data_stub(dev)(g.d, dy, w, dx);
}

void run_backward_weights(const Geometry& g, Device dev, const void* dy, const void* x, void* dw,
                          void* db) {
  if (g.rank->spatial == 2) return conv2d_backward_weights_stub(dev)(as_2d(g.d), dy, x, dw, db);
  conv3d_backward_weights_stub(dev)(g.d, dy, x, dw, db);
}

// A contiguous copy of t, detached (kernels take plain buffers; the batch dim need not exist).
Tensor plain(const Tensor& t) { return t.detach().contiguous(); }

// ---- the ops, for either rank -----------------------------------------------------------------

Tensor conv_forward(const Rank& r, const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
                    const Conv2dAttrs& attrs_in) {
  const char* op = r.forward;
  Tensor x = x_in, w = w_in, bias = bias_in;
  apply_autocast(r.forward_id, {&x, &w, &bias});
  FABRIC_CHECK(x.defined() && w.defined(), ValueError, op, ": undefined input or weight");
  check_float(op, x, "input");
  FABRIC_CHECK(w.dtype() == x.dtype(), DTypeError, op, ": input ", describe(x), " and weight ",
               describe(w), " must have the same dtype");
  if (conv2d_style(r))
    FABRIC_CHECK(w.dim() == static_cast<int64_t>(r.spatial) + 2, ShapeError, op,
                 ": weight must be ", r.weight_layout, ", got ", describe(w));
  FABRIC_CHECK(x.device() == w.device(), DeviceError, op, ": input on ", x.device(),
               ", weight on ", w.device());
  if (bias.defined()) {
    FABRIC_CHECK(bias.dtype() == x.dtype(), DTypeError, op, ": bias ", describe(bias),
                 " must have the input's dtype ", dtype_name(x.dtype()));
    const bool fits = bias.dim() == 1 && w.dim() >= 1 && bias.size(0) == w.size(0);
    if (conv2d_style(r))
      FABRIC_CHECK(fits, ShapeError, op, ": bias ", describe(bias), " must be 1-D with ",
                   w.size(0), " elements (weight ", shape_str(w.sizes()), ")");
    else
      FABRIC_CHECK(fits, ShapeError, op, ": bias ", describe(bias),
                   " must be 1-D with one element per output channel of weight ",
                   shape_str(w.sizes()));
    FABRIC_CHECK(bias.device() == x.device(), DeviceError, op, ": bias on ", bias.device(),
                 ", input on ", x.device());
  }
  const Conv2dAttrs attrs = conv_attrs(r, op, attrs_in);
  check_input_rank(r, op, x);
  const Geometry g = conv_geometry(r, op, x.sizes(), w.sizes(), x.dtype(), attrs);
  Tensor out = empty(conv_out_shape(g, unbatched(g, x.sizes())),
                     {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = plain(x), wc = plain(w);
    Tensor bc = bias.defined() ? plain(bias) : Tensor();
    run_forward(g, x.device(), xc.data_ptr(), wc.data_ptr(),
                bc.defined() ? bc.data_ptr() : nullptr, out.data_ptr());
  }
  if (counting_flops()) report_flops("convolution", conv_flops(g));
  record_op(r.forward_id, {x, w, bias}, {&out}, &attrs, "ConvolutionBackward0");
  return out;
}

// The geometry of a gradient: the forward's checks on the shapes, and grad_out must have the
// forward's output shape.
Geometry conv_grad_geometry(const Rank& r, const char* op, const Tensor& grad_out,
                            const Shape& x_shape, const Shape& w_shape, DType dtype,
                            const Conv2dAttrs& a) {
  const Geometry g = conv_geometry(r, op, x_shape, w_shape, dtype, a);
  const Shape out_shape = conv_out_shape(g, unbatched(g, x_shape));
  FABRIC_CHECK(grad_out.sizes() == out_shape, ShapeError, op, ": grad_out ",
               shape_str(grad_out.sizes()), " does not match the forward's output shape ",
               shape_str(out_shape));
  return g;
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

Conv2dGrads conv_backward(const Rank& r, const Tensor& grad_out, const Tensor& x,
                          const Tensor& weight, const Conv2dAttrs& attrs, bool need_input,
                          bool need_weight, bool need_bias) {
  const char* op = r.backward;
  FABRIC_CHECK(grad_out.defined() && x.defined() && weight.defined(), ValueError, op,
               ": undefined argument");
  check_float(op, x, "input");
  FABRIC_CHECK(grad_out.dtype() == x.dtype() && weight.dtype() == x.dtype(), DTypeError, op,
               ": grad_out ", describe(grad_out), ", input ", describe(x), " and weight ",
               describe(weight), " must share one dtype");
  const Conv2dAttrs a = conv_attrs(r, op, attrs);
  check_input_rank(r, op, x);
  const Geometry g = conv_grad_geometry(r, op, grad_out, x.sizes(), weight.sizes(), x.dtype(), a);
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  Conv2dGrads grads;
  Tensor dy = plain(grad_out);
  const bool empty_problem = dy.numel() == 0;
  if (need_input) {
    grads.grad_input = empty_problem ? zeros(x.sizes(), opts) : empty(x.sizes(), opts);
    if (!empty_problem && x.numel() > 0) {
      Tensor wc = plain(weight);
      run_backward_data(g, x.device(), dy.data_ptr(), wc.data_ptr(), grads.grad_input.data_ptr());
    }
  }
  if (need_weight || need_bias) {
    if (need_weight)
      grads.grad_weight =
          empty_problem ? zeros(weight.sizes(), opts) : empty(weight.sizes(), opts);
    if (need_bias) grads.grad_bias = empty_problem ? zeros({g.d.OC}, opts) : empty({g.d.OC}, opts);
    if (!empty_problem) {
      Tensor xc = plain(x);
      run_backward_weights(g, x.device(), dy.data_ptr(), xc.data_ptr(),
                           need_weight ? grads.grad_weight.data_ptr() : nullptr,
                           need_bias ? grads.grad_bias.data_ptr() : nullptr);
    }
  }
  // torch's convolution_backward: each gradient counts when its output_mask entry is set.
  if (counting_flops())
    report_flops("convolution_backward",
                 (need_input ? conv_flops(g) : 0) + (need_weight ? conv_weight_grad_flops(g) : 0));
  return grads;
}

// The same kernels as conv_backward, one gradient per op, so that each records its own node.
Tensor conv_backward_input(const Rank& r, const Tensor& grad_out, const Tensor& weight,
                           const Shape& input_shape, const Conv2dAttrs& attrs) {
  const char* op = r.backward_input;
  check_grad_operands(op, grad_out, weight, "weight");
  const Conv2dAttrs a = conv_attrs(r, op, attrs);
  const Geometry g =
      conv_grad_geometry(r, op, grad_out, input_shape, weight.sizes(), weight.dtype(), a);
  const TensorOptions opts{.dtype = weight.dtype(), .device = weight.device()};
  Tensor dx;
  if (grad_out.numel() == 0 || numel_of(input_shape) == 0) {
    dx = zeros(input_shape, opts);
  } else {
    dx = empty(input_shape, opts);
    Tensor dy = plain(grad_out), wc = plain(weight);
    run_backward_data(g, dx.device(), dy.data_ptr(), wc.data_ptr(), dx.data_ptr());
  }
  if (counting_flops()) report_flops("convolution_backward", conv_flops(g));
  record_op(r.backward_input_id, {grad_out, weight}, {&dx}, &a);
  return dx;
}

Tensor conv_backward_weight(const Rank& r, const Tensor& grad_out, const Tensor& x,
                            const Shape& weight_shape, const Conv2dAttrs& attrs) {
  const char* op = r.backward_weight;
  check_grad_operands(op, grad_out, x, "input");
  const Conv2dAttrs a = conv_attrs(r, op, attrs);
  const Geometry g = conv_grad_geometry(r, op, grad_out, x.sizes(), weight_shape, x.dtype(), a);
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  Tensor dw;
  if (grad_out.numel() == 0) {
    dw = zeros(weight_shape, opts);
  } else {
    dw = empty(weight_shape, opts);
    Tensor dy = plain(grad_out), xc = plain(x);
    run_backward_weights(g, dw.device(), dy.data_ptr(), xc.data_ptr(), dw.data_ptr(), nullptr);
  }
  if (counting_flops()) report_flops("convolution_backward", conv_weight_grad_flops(g));
  record_op(r.backward_weight_id, {grad_out, x}, {&dw}, &a);
  return dw;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, std::vector<int64_t> stride,
              std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
  return conv_forward(k2d, x, w, bias, {stride, padding, dilation, groups});
}

Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, std::vector<int64_t> stride,
              std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
  return conv_forward(k3d, x, w, bias, {stride, padding, dilation, groups});
}

Conv2dGrads conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                            const Conv2dAttrs& attrs, bool need_input, bool need_weight,
                            bool need_bias) {
  return conv_backward(k2d, grad_out, x, weight, attrs, need_input, need_weight, need_bias);
}

Conv2dGrads conv3d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                            const Conv2dAttrs& attrs, bool need_input, bool need_weight,
                            bool need_bias) {
  return conv_backward(k3d, grad_out, x, weight, attrs, need_input, need_weight, need_bias);
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dAttrs& attrs) {
  return conv_backward_input(k2d, grad_out, weight, input_shape, attrs);
}

Tensor conv3d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dAttrs& attrs) {
  return conv_backward_input(k3d, grad_out, weight, input_shape, attrs);
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dAttrs& attrs) {
  return conv_backward_weight(k2d, grad_out, x, weight_shape, attrs);
}

Tensor conv3d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dAttrs& attrs) {
  return conv_backward_weight(k3d, grad_out, x, weight_shape, attrs);
}

}  // namespace fabric
