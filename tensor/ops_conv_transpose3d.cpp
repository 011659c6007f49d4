// conv_transpose3d as torch.nn.functional.conv_transpose3d: the adjoint of conv3d, built like
// conv_transpose2d (ops_conv_transpose.cpp) from the recorded conv3d_backward_input (plus views,
// cat and add), so autograd and double backward come from that op's rule: d/dx = conv3d(dy, w),
// d/dw = conv3d_backward_weight(x, dy) (derivatives_conv3d.cpp).
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_conv3d.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

constexpr const char* kOp = "conv_transpose3d";
constexpr std::array<const char*, 3> kDimName{"depth", "height", "width"};

std::string describe(const Tensor& t) {
  return detail::cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// A 1- or 3-element argument as (d, h, w).
std::vector<int64_t> triple_arg(const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == 3, ValueError, kOp, ": ", name,
               " must have 1 or 3 elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0], v[0]} : v;
}

void check_operands(const Tensor& x, const Tensor& w, const Tensor& bias) {
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
  FABRIC_CHECK(x.dim() == 4 || x.dim() == 5, ShapeError, kOp,
               ": expected a 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got ", describe(x));
  FABRIC_CHECK(w.dim() == 5, ShapeError, kOp,
               ": weight must be 5-D (in_channels, out_channels/groups, kD, kH, kW), got ",
               describe(w));
  if (!bias.defined()) return;
  FABRIC_CHECK(bias.dtype() == d, DTypeError, kOp, ": bias ", describe(bias),
               " must have the input's dtype ", dtype_name(d));
  FABRIC_CHECK(bias.device() == x.device(), DeviceError, kOp, ": bias on ", bias.device(),
               ", input on ", x.device());
}

// One spatial dim: input size n, kernel k, and torch's output size (n - 1) * stride - 2 *
// padding + dilation * (k - 1) + output_padding + 1.
struct Dim {
  int64_t n, k, stride, padding, output_padding, dilation, out;
};

Dim make_dim(const char* which, int64_t n, int64_t k, int64_t s, int64_t p, int64_t op, int64_t d) {
  FABRIC_CHECK(s > 0, ValueError, kOp, ": stride must be positive, got ", s, " (", which, ")");
  FABRIC_CHECK(p >= 0, ValueError, kOp, ": padding must be non-negative, got ", p, " (", which,
               ")");
  FABRIC_CHECK(d > 0, ValueError, kOp, ": dilation must be positive, got ", d, " (", which, ")");
  // torch's rule: output_padding < stride or < dilation.
  FABRIC_CHECK(op >= 0 && (op < s || op < d), ValueError, kOp,
               ": output padding must be smaller than either stride or dilation, but got "
               "output_padding ",
               op, ", stride ", s, ", dilation ", d, " (", which, ")");
  const int64_t span = checked_size_mul(d, k - 1, kOp);
  const int64_t reach = checked_size_add(checked_size_mul(n - 1, s, kOp), span, kOp);
  const int64_t out = checked_size_add(reach, op + 1, kOp) - checked_size_mul(2, p, kOp);
  return {n, k, s, p, op, d, out};
}

// The conv3d whose input gradient this dim's output is (as conv_transpose2d's Plan): its
// padding, the input size it runs on, and where the output starts in it. conv3d maps the canvas
// back to n only when output_padding < stride; otherwise the gradient is taken unpadded on the
// rows the kernel reaches and the output cut out of it at `padding`, zeros past its end.
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

}  // namespace

Tensor conv_transpose3d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> output_padding, int64_t groups,
                        std::vector<int64_t> dilation) {
  Tensor x = x_in, w = w_in, bias = bias_in;
  apply_autocast(OpId::conv_transpose3d, {&x, &w, &bias});
  check_operands(x, w, bias);
  const auto s = triple_arg("stride", stride), p = triple_arg("padding", padding),
             op = triple_arg("output_padding", output_padding),
             d = triple_arg("dilation", dilation);
  FABRIC_CHECK(groups > 0, ValueError, kOp, ": groups must be positive, got ", groups);
  const int64_t b = x.dim() - 4;  // where C is
  const int64_t C = x.size(b);
  FABRIC_CHECK(w.size(0) % groups == 0, ShapeError, kOp, ": weight ", shape_str(w.sizes()), " has ",
               w.size(0), " input channels, not divisible by groups=", groups);
  FABRIC_CHECK(C == w.size(0), ShapeError, kOp, ": input ", shape_str(x.sizes()), " has ", C,
               " channels but weight ", shape_str(w.sizes()), " expects ", w.size(0));
  FABRIC_CHECK(w.size(1) > 0 && w.size(2) > 0 && w.size(3) > 0 && w.size(4) > 0, ShapeError, kOp,
               ": weight ", shape_str(w.sizes()),
               " must have non-zero output channels and kernel sizes");
  // As conv3d (and torch): an empty batch passes, an empty volume does not.
  FABRIC_CHECK(x.size(b + 1) > 0 && x.size(b + 2) > 0 && x.size(b + 3) > 0, ShapeError, kOp,
               ": only zero batch or zero channel inputs are supported, got input ",
               shape_str(x.sizes()));
  std::array<Dim, 3> dims{};
  Shape out_size(3);
  for (size_t i = 0; i < 3; ++i) {
    dims[i] = make_dim(kDimName[i], x.size(b + 1 + static_cast<int64_t>(i)), w.size(2 + i), s[i],
                       p[i], op[i], d[i]);
    out_size[i] = dims[i].out;
  }
  FABRIC_CHECK(out_size[0] > 0 && out_size[1] > 0 && out_size[2] > 0, ShapeError, kOp,
               ": given input ", shape_str(x.sizes()), ", the calculated output size per channel ",
               shape_str(out_size), " is too small");
  const int64_t OC = w.size(1) * groups;
  if (bias.defined())
    FABRIC_CHECK(bias.dim() == 1 && bias.size(0) == OC, ShapeError, kOp, ": bias ", describe(bias),
                 " must be 1-D with ", OC, " elements (weight ", shape_str(w.sizes()),
                 ", groups=", groups, ")");

  Shape canvas = x.sizes();
  canvas[static_cast<size_t>(b)] = OC;
  std::array<Plan, 3> plans{};
  std::vector<int64_t> conv_padding(3);
  for (size_t i = 0; i < 3; ++i) {
    plans[i] = plan(dims[i]);
    canvas[static_cast<size_t>(b + 1) + i] = plans[i].canvas;
    conv_padding[i] = plans[i].padding;
  }
  const Conv2dAttrs attrs{s, conv_padding, d, groups};
  Tensor y;
  {
    // torch counts a transposed convolution as a "convolution" (same FLOPs as this gradient).
    FlopOpName as_convolution("convolution");
    y = conv3d_backward_input(x, w, canvas, attrs);
  }
  for (size_t i = 0; i < 3; ++i)
    y = window(y, b + 1 + static_cast<int64_t>(i), plans[i].start, dims[i].out);
  if (!bias.defined()) return y;
  return add(y, bias.reshape(x.dim() == 5 ? Shape{1, OC, 1, 1, 1} : Shape{OC, 1, 1, 1}));
}

}  // namespace fabric
