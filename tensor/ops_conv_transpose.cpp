// conv_transpose2d as torch.nn.functional.conv_transpose2d: the adjoint of
// conv2d. A transposed convolution of x by w (C_in, C_out/groups, kH, kW) is
// the input gradient of the conv2d from a (C_out)-channel image to C_in
// channels with weight w, for grad_out = x. Built from the recorded
// conv2d_backward_input (plus views, cat and add), so autograd and double
// backward come from that op's rule: d/dx = conv2d(dy, w), d/dw =
// conv2d_backward_weight(x, dy) (derivatives_conv.cpp).
#include <algorithm>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

constexpr const char* kOp = "conv_transpose2d";

std::string describe(const Tensor& t) {
  return detail::cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// A 1- or 2-element argument as (h, w).
std::vector<int64_t> pair_arg(const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == 2, ValueError, kOp, ": ", name,
               " must have 1 or 2 elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0]} : v;
}

void check_operands(const Tensor& x, const Tensor& w, const Tensor& bias) {
  FABRIC_CHECK(x.defined() && w.defined(), ValueError, kOp, ": undefined input or weight");
  const DType d = x.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, kOp, ": input ", describe(x),
      " has an unsupported dtype; supported: float64, float32, "
      "bfloat16, float16");
  FABRIC_CHECK(w.dtype() == d, DTypeError, kOp, ": input ", describe(x), " and weight ",
               describe(w), " must have the same dtype");
  FABRIC_CHECK(x.device() == w.device(), DeviceError, kOp, ": input on ", x.device(),
               ", weight on ", w.device());
  FABRIC_CHECK(x.dim() == 3 || x.dim() == 4, ShapeError, kOp,
               ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got ", describe(x));
  FABRIC_CHECK(w.dim() == 4, ShapeError, kOp,
               ": weight must be 4-D (in_channels, out_channels/groups, kH, kW), got ",
               describe(w));
  if (!bias.defined()) return;
  FABRIC_CHECK(bias.dtype() == d, DTypeError, kOp, ": bias ", describe(bias),
               " must have the input's dtype ", dtype_name(d));
  FABRIC_CHECK(bias.device() == x.device(), DeviceError, kOp, ": bias on ", bias.device(),
               ", input on ", x.device());
}

// One spatial dim of the problem: input size n, kernel k, and the output size
// torch's formula gives, (n - 1) * stride - 2 * padding + dilation * (k - 1) +
// output_padding + 1.
struct Dim {
  int64_t n, k, stride, padding, output_padding, dilation, out;
};

Dim make_dim(const char* which, int64_t n, int64_t k, int64_t s, int64_t p, int64_t op, int64_t d) {
  FABRIC_CHECK(s > 0, ValueError, kOp, ": stride must be positive, got ", s, " (", which, ")");
  FABRIC_CHECK(p >= 0, ValueError, kOp, ": padding must be non-negative, got ", p, " (", which,
               ")");
  FABRIC_CHECK(d > 0, ValueError, kOp, ": dilation must be positive, got ", d, " (", which, ")");
  // torch's rule: an output row past the last one the kernel reaches must be
  // one a larger input would have reached, i.e. output_padding < stride or <
  // dilation.
  FABRIC_CHECK(op >= 0 && (op < s || op < d), ValueError, kOp,
               ": output padding must be smaller than either stride or "
               "dilation, but got "
               "output_padding ",
               op, ", stride ", s, ", dilation ", d, " (", which, ")");
  const int64_t span = checked_size_mul(d, k - 1, kOp);
  const int64_t reach = checked_size_add(checked_size_mul(n - 1, s, kOp), span, kOp);
  const int64_t out = checked_size_add(reach, op + 1, kOp) - checked_size_mul(2, p, kOp);
  return {n, k, s, p, op, d, out};
}

// The conv2d whose input gradient this dim's output is: its padding and the
// input size (the "canvas") it runs on, and where the output starts in it.
// Normally the canvas is the output and padding is torch's; conv2d maps it back
// to n rows only when output_padding < stride, so otherwise (output_padding >=
// stride < dilation) the gradient is taken unpadded on the rows the kernel
// reaches, (n - 1) * stride + dilation * (k - 1) + 1, and the output cut out of
// it at `padding` (its tail past the canvas gets no contribution: zeros).
struct Plan {
  int64_t padding, canvas, start;
};

Plan plan(const Dim& d) {
  if (d.output_padding < d.stride) return {d.padding, d.out, 0};
  return {0, (d.n - 1) * d.stride + d.dilation * (d.k - 1) + 1, d.padding};
}

// Rows [start, start + len) of `t` along `dim`, zeros where they run past its
// end.
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

}  // namespace

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> output_padding, int64_t groups,
                        std::vector<int64_t> dilation) {
  Tensor x = x_in, w = w_in, bias = bias_in;
  apply_autocast(OpId::conv_transpose2d, {&x, &w, &bias});
  check_operands(x, w, bias);
  const auto s = pair_arg("stride", stride), p = pair_arg("padding", padding),
             op = pair_arg("output_padding", output_padding), d = pair_arg("dilation", dilation);
  FABRIC_CHECK(groups > 0, ValueError, kOp, ": groups must be positive, got ", groups);
  const int64_t b = x.dim() - 3;  // where C is
  const int64_t C = x.size(b), H = x.size(b + 1), W = x.size(b + 2);
  FABRIC_CHECK(w.size(0) % groups == 0, ShapeError, kOp, ": weight ", shape_str(w.sizes()), " has ",
               w.size(0), " input channels, not divisible by groups=", groups);
  FABRIC_CHECK(C == w.size(0), ShapeError, kOp, ": input ", shape_str(x.sizes()), " has ", C,
               " channels but weight ", shape_str(w.sizes()), " expects ", w.size(0));
  FABRIC_CHECK(w.size(1) > 0 && w.size(2) > 0 && w.size(3) > 0, ShapeError, kOp, ": weight ",
               shape_str(w.sizes()), " must have non-zero output channels and kernel sizes");
  // As conv2d (and torch): an empty batch passes, an empty image does not.
  FABRIC_CHECK(H > 0 && W > 0, ShapeError, kOp,
               ": only zero batch or zero channel inputs are supported, got input ",
               shape_str(x.sizes()));
  const Dim dh = make_dim("height", H, w.size(2), s[0], p[0], op[0], d[0]);
  const Dim dw = make_dim("width", W, w.size(3), s[1], p[1], op[1], d[1]);
  FABRIC_CHECK(dh.out > 0 && dw.out > 0, ShapeError, kOp, ": given input size per channel (", H,
               " x ", W, "), the calculated output size per channel (", dh.out, " x ", dw.out,
               ") is too small");
  const int64_t OC = w.size(1) * groups;
  if (bias.defined())
    FABRIC_CHECK(bias.dim() == 1 && bias.size(0) == OC, ShapeError, kOp, ": bias ", describe(bias),
                 " must be 1-D with ", OC, " elements (weight ", shape_str(w.sizes()),
                 ", groups=", groups, ")");

  const Plan ph = plan(dh), pw = plan(dw);
  Shape canvas = x.sizes();
  canvas[static_cast<size_t>(b)] = OC;
  canvas[static_cast<size_t>(b + 1)] = ph.canvas;
  canvas[static_cast<size_t>(b + 2)] = pw.canvas;
  const Conv2dAttrs attrs{s, {ph.padding, pw.padding}, d, groups};
  Tensor y;
  {
    // torch counts a transposed convolution as a "convolution" (same FLOPs as this gradient).
    FlopOpName as_convolution("convolution");
    y = conv2d_backward_input(x, w, canvas, attrs);
  }
  y = window(window(y, b + 1, ph.start, dh.out), b + 2, pw.start, dw.out);
  if (!bias.defined()) return y;
  return add(y, bias.reshape(x.dim() == 4 ? Shape{1, OC, 1, 1} : Shape{OC, 1, 1}));
}

}  // namespace fabric
