// conv_transpose2d and conv_transpose3d as torch.nn.functional's: the adjoints of conv2d and
// conv3d, one code path for both ranks. A transposed convolution of x by w (C_in, C_out/groups,
// k...) is the input gradient of the convolution from a (C_out)-channel image to C_in channels
// with weight w, for grad_out = x. Built from the recorded conv*d_backward_input (plus views,
// cat and add), so autograd and double backward come from that op's rule: d/dx = conv(dy, w),
// d/dw = conv_backward_weight(x, dy) (derivatives_conv.cpp).
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_conv3d.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

// What the two ranks differ in: the number of spatial dims, names and the gradient op.
struct Rank {
  size_t spatial;  // 2 or 3
  const char* op;
  OpId id;
  const char* input_layout;   // the accepted input ranks, for messages
  const char* weight_layout;  // the weight's layout, for messages
  Tensor (*backward_input)(const Tensor&, const Tensor&, const Shape&, const Conv2dAttrs&);
};

constexpr Rank k2d{2,
                   "conv_transpose2d",
                   OpId::conv_transpose2d,
                   "3-D (C, H, W) or 4-D (N, C, H, W)",
                   "4-D (in_channels, out_channels/groups, kH, kW)",
                   &conv2d_backward_input};
constexpr Rank k3d{3,
                   "conv_transpose3d",
                   OpId::conv_transpose3d,
                   "4-D (C, D, H, W) or 5-D (N, C, D, H, W)",
                   "5-D (in_channels, out_channels/groups, kD, kH, kW)",
                   &conv3d_backward_input};

std::string describe(const Tensor& t) {
  return detail::cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// A 1- or r.spatial-element argument as r.spatial elements.
std::vector<int64_t> spatial_arg(const Rank& r, const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == r.spatial, ValueError, r.op, ": ", name,
               " must have 1 or ", r.spatial, " elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>(r.spatial, v[0]) : v;
}

void check_operands(const Rank& r, const Tensor& x, const Tensor& w, const Tensor& bias) {
  const char* kOp = r.op;
  const int64_t ns = static_cast<int64_t>(r.spatial);
  FABRIC_CHECK(x.defined() && w.defined(), ValueError, kOp, ": undefined input or weight");
  const DType d = x.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, kOp, ": input ", describe(x),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  FABRIC_CHECK(w.dtype() == d, DTypeError, kOp, ": input ", describe(x), " and weight ",
               describe(w), " must have the same dtype");
  FABRIC_CHECK(x.device() == w.device(), DeviceError, kOp, ": input on ", x.device(),
               ", weight on ", w.device());
  FABRIC_CHECK(x.dim() == ns + 1 || x.dim() == ns + 2, ShapeError, kOp, ": expected a ",
               r.input_layout, " input, got ", describe(x));
  FABRIC_CHECK(w.dim() == ns + 2, ShapeError, kOp, ": weight must be ", r.weight_layout, ", got ",
               describe(w));
  if (!bias.defined()) return;
  FABRIC_CHECK(bias.dtype() == d, DTypeError, kOp, ": bias ", describe(bias),
               " must have the input's dtype ", dtype_name(d));
  FABRIC_CHECK(bias.device() == x.device(), DeviceError, kOp, ": bias on ", bias.device(),
               ", input on ", x.device());
}

// One spatial dim of the problem: input size n, kernel k, and the output size torch's formula
// gives, (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1.
struct Dim {
  int64_t n, k, stride, padding, output_padding, dilation, out;
};

Dim make_dim(const char* kOp, const char* which, int64_t n, int64_t k, int64_t s, int64_t p,
             int64_t op, int64_t d) {
  FABRIC_CHECK(s > 0, ValueError, kOp, ": stride must be positive, got ", s, " (", which, ")");
  FABRIC_CHECK(p >= 0, ValueError, kOp, ": padding must be non-negative, got ", p, " (", which,
               ")");
  FABRIC_CHECK(d > 0, ValueError, kOp, ": dilation must be positive, got ", d, " (", which, ")");
  // torch's rule: an output row past the last one the kernel reaches must be one a larger input
  // would have reached, i.e. output_padding < stride or < dilation.
  FABRIC_CHECK(op >= 0 && (op < s || op < d), ValueError, kOp,
               ": output padding must be smaller than either stride or dilation, but got "
               "output_padding ",
               op, ", stride ", s, ", dilation ", d, " (", which, ")");
  const int64_t span = checked_size_mul(d, k - 1, kOp);
  const int64_t reach = checked_size_add(checked_size_mul(n - 1, s, kOp), span, kOp);
  const int64_t out = checked_size_add(reach, op + 1, kOp) - checked_size_mul(2, p, kOp);
  return {n, k, s, p, op, d, out};
}

// The convolution whose input gradient this dim's output is: its padding and the input size (the
// "canvas") it runs on, and where the output starts in it. Normally the canvas is the output and
// padding is torch's; the convolution maps it back to n rows only when output_padding < stride,
// so otherwise (output_padding >= stride < dilation) the gradient is taken unpadded on the rows
// the kernel reaches, (n - 1) * stride + dilation * (k - 1) + 1, and the output cut out of it at
// `padding` (its tail past the canvas gets no contribution: zeros).
struct Plan {
  int64_t padding, canvas, start;
};

Plan plan(const Dim& d) {
  if (d.output_padding < d.stride) return {d.padding, d.out, 0};
  return {0, (d.n - 1) * d.stride + d.dilation * (d.k - 1) + 1, d.padding};
}

// Rows [start, start + len) of `t` along `dim`, zeros where they run past its end.
Tensor window(const Tensor& t, int64_t dim, int64_t start, int64_t len) {
  const int64_t size = t.size(dim);
  if (start == 0 && len == size) return t;
  const int64_t from = std::min(start, size), kept = std::clamp<int64_t>(size - from, 0, len);
  Tensor part = t.narrow(dim, from, kept);
  if (kept == len) return part;
  Shape tail = t.sizes();
  tail[static_cast<size_t>(dim)] = len - kept;
  return cat({part, zeros(tail, {.dtype = t.dtype(), .device = t.device()})}, dim);
}

// "(a x b)" (conv_transpose2d's messages) or "(a, b, c)" (conv_transpose3d's).
std::string extent_str(const Rank& r, const Shape& v) {
  return r.spatial == 2 ? detail::cat("(", v[0], " x ", v[1], ")") : shape_str(v);
}

Tensor conv_transpose(const Rank& r, const Tensor& x_in, const Tensor& w_in,
                      const Tensor& bias_in, const std::vector<int64_t>& stride,
                      const std::vector<int64_t>& padding,
                      const std::vector<int64_t>& output_padding, int64_t groups,
                      const std::vector<int64_t>& dilation) {
  const char* kOp = r.op;
  const size_t ns = r.spatial;
  Tensor x = x_in, w = w_in, bias = bias_in;
  apply_autocast(r.id, {&x, &w, &bias});
  check_operands(r, x, w, bias);
  const auto s = spatial_arg(r, "stride", stride), p = spatial_arg(r, "padding", padding),
             op = spatial_arg(r, "output_padding", output_padding),
             d = spatial_arg(r, "dilation", dilation);
  FABRIC_CHECK(groups > 0, ValueError, kOp, ": groups must be positive, got ", groups);
  const int64_t b = x.dim() - static_cast<int64_t>(ns) - 1;  // where C is
  const int64_t C = x.size(b);
  // As torch: at least one input channel per group, so a zero-channel input is refused (unlike
  // the convolution's, whose result torch defines).
  FABRIC_CHECK(w.size(0) >= groups, ShapeError, kOp, ": weight ", shape_str(w.sizes()), " has ",
               w.size(0), " input channels (dimension 0), expected at least groups=", groups,
               w.size(0) == 0 ? " (zero-channel inputs are not supported)" : "");
  FABRIC_CHECK(w.size(0) % groups == 0, ShapeError, kOp, ": weight ", shape_str(w.sizes()), " has ",
               w.size(0), " input channels, not divisible by groups=", groups);
  FABRIC_CHECK(C == w.size(0), ShapeError, kOp, ": input ", shape_str(x.sizes()), " has ", C,
               " channels but weight ", shape_str(w.sizes()), " expects ", w.size(0));
  const Shape in(x.sizes().begin() + b + 1, x.sizes().end());
  const Shape k(w.sizes().begin() + 2, w.sizes().end());
  const auto positive = [](const Shape& v) {
    return std::all_of(v.begin(), v.end(), [](int64_t n) { return n > 0; });
  };
  FABRIC_CHECK(w.size(1) > 0 && positive(k), ShapeError, kOp, ": weight ", shape_str(w.sizes()),
               " must have non-zero output channels and kernel sizes");
  // As torch: an empty batch passes, an empty image does not (nor, above, zero channels).
  FABRIC_CHECK(positive(in), ShapeError, kOp,
               ": only zero batch inputs are supported, not empty channel or spatial dims, got "
               "input ",
               shape_str(x.sizes()));
  constexpr std::array<const char*, 3> kDimName{"depth", "height", "width"};
  std::vector<Dim> dims(ns);
  Shape out_size(ns);
  for (size_t i = 0; i < ns; ++i) {
    dims[i] = make_dim(kOp, kDimName[3 - ns + i], in[i], k[i], s[i], p[i], op[i], d[i]);
    out_size[i] = dims[i].out;
  }
  if (ns == 2)
    FABRIC_CHECK(positive(out_size), ShapeError, kOp, ": given input size per channel ",
                 extent_str(r, in), ", the calculated output size per channel ",
                 extent_str(r, out_size), " is too small");
  else
    FABRIC_CHECK(positive(out_size), ShapeError, kOp, ": given input ", shape_str(x.sizes()),
                 ", the calculated output size per channel ", shape_str(out_size),
                 " is too small");
  const int64_t OC = w.size(1) * groups;
  if (bias.defined())
    FABRIC_CHECK(bias.dim() == 1 && bias.size(0) == OC, ShapeError, kOp, ": bias ", describe(bias),
                 " must be 1-D with ", OC, " elements (weight ", shape_str(w.sizes()),
                 ", groups=", groups, ")");

  Shape canvas = x.sizes();
  canvas[static_cast<size_t>(b)] = OC;
  std::vector<Plan> plans(ns);
  std::vector<int64_t> conv_padding(ns);
  for (size_t i = 0; i < ns; ++i) {
    plans[i] = plan(dims[i]);
    canvas[static_cast<size_t>(b + 1) + i] = plans[i].canvas;
    conv_padding[i] = plans[i].padding;
  }
  const Conv2dAttrs attrs{s, conv_padding, d, groups};
  Tensor y;
  {
    // torch counts a transposed convolution as a "convolution" (same FLOPs as this gradient).
    FlopOpName as_convolution("convolution");
    y = r.backward_input(x, w, canvas, attrs);
  }
  for (size_t i = 0; i < ns; ++i)
    y = window(y, b + 1 + static_cast<int64_t>(i), plans[i].start, dims[i].out);
  if (!bias.defined()) return y;
  Shape bias_shape(ns + 1, 1);  // (OC, 1, ...), with a leading 1 for a batched input
  bias_shape[0] = OC;
  if (b == 1) bias_shape.insert(bias_shape.begin(), 1);
  return add(y, bias.reshape(bias_shape));
}

}  // namespace

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> output_padding, int64_t groups,
                        std::vector<int64_t> dilation) {
  return conv_transpose(k2d, x, w, bias, stride, padding, output_padding, groups, dilation);
}

Tensor conv_transpose3d(const Tensor& x, const Tensor& w, const Tensor& bias,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> output_padding, int64_t groups,
                        std::vector<int64_t> dilation) {
  return conv_transpose(k3d, x, w, bias, stride, padding, output_padding, groups, dilation);
}

}  // namespace fabric
