// interpolate (torch.nn.functional.interpolate) with torch 1.13's argument checks in its order,
// and its gradient. nearest, linear and bilinear run the 2-d upsampling kernels (a 1-d input is a
// plane of height 1), nearest and trilinear on 5-d input the 3-d ones; nearest-exact, bicubic and
// area are compositions (upsample_modes.h). With
// scale_factor (and no recompute_scale_factor, torch's default) the output size is
// floor(in * scale) and the kernels read input o / scale, as torch's; with size they read
// o * in / out. area, as torch, turns a scale_factor into the output size it gives.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_upsample.h"
#include "tensor/upsample_modes.h"

namespace fabric {

FABRIC_DEFINE_STUB(upsample2d_forward_stub, UpsampleForwardFn);
FABRIC_DEFINE_STUB(upsample2d_backward_stub, UpsampleBackwardFn);
FABRIC_DEFINE_STUB(upsample3d_forward_stub, Upsample3dFn);
FABRIC_DEFINE_STUB(upsample3d_backward_stub, Upsample3dFn);

namespace {

// Python's repr of a tuple of floats, as torch's messages print them: "(2.0, 2.0, 2.0)".
std::string floats_str(const std::vector<double>& v) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s << ", ";
    if (v[i] == std::floor(v[i]) && std::isfinite(v[i]))
      s << static_cast<int64_t>(v[i]) << ".0";
    else
      s << v[i];
  }
  s << ")";
  return s.str();
}

std::string spatial_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 2; i < shape.size(); ++i) s += (i > 2 ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// torch's "(D: 3, H: 4, W: 5)" of the input (or output) sizes, one letter per spatial dim.
std::string sizes_str(const std::vector<upsample_modes::Axis>& axes, bool out) {
  static constexpr const char* kNames[] = {"D", "H", "W"};
  const size_t first = 3 - axes.size();
  std::string s = "(";
  for (size_t k = 0; k < axes.size(); ++k)
    s += (k ? ", " : "") + std::string(kNames[first + k]) + ": " +
         std::to_string(out ? axes[k].out : axes[k].in);
  return s + ")";
}

bool is_one_of(std::string_view mode, std::initializer_list<std::string_view> modes) {
  for (std::string_view m : modes)
    if (mode == m) return true;
  return false;
}

// torch's functional checks: mode vs align_corners, then size/scale_factor, then mode vs rank.
// A 1-element size or scale_factor stands for torch's scalar (the same for every spatial dim).
// Returns one Axis per spatial dimension.
std::vector<upsample_modes::Axis> interpolate_setup(const Tensor& x, std::vector<int64_t>& size,
                                                    std::vector<double>& scale,
                                                    std::string_view mode,
                                                    std::optional<bool> align_corners) {
  const bool nearest = is_one_of(mode, {"nearest", "area", "nearest-exact"});
  FABRIC_CHECK(!(nearest && align_corners.has_value()), ValueError,
               "interpolate: align_corners option can only be set with the interpolating modes: "
               "linear | bilinear | bicubic | trilinear (got mode '",
               mode, "')");
  const int64_t dim = x.dim() - 2;
  FABRIC_CHECK(size.empty() || scale.empty(), ValueError,
               "interpolate: only one of size or scale_factor should be defined");
  FABRIC_CHECK(!size.empty() || !scale.empty(), ValueError,
               "interpolate: either size or scale_factor should be defined");
  // torch expands a scalar to one value per spatial dim with no length check: none below 3-D,
  // whose rank error then comes from the dispatch below.
  const bool size_scalar = size.size() == 1, scale_scalar = scale.size() == 1;
  const auto spatial = static_cast<size_t>(std::max<int64_t>(dim, 0));
  if (size_scalar) size.assign(spatial, size[0]);
  if (scale_scalar) scale.assign(spatial, scale[0]);
  FABRIC_CHECK(size_scalar || size.empty() || static_cast<int64_t>(size.size()) == dim, ValueError,
               "interpolate: Input and output must have the same number of spatial dimensions, "
               "but got input with spatial dimensions of ",
               spatial_str(x.sizes()), " and output size of ", shape_str(size),
               ". Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size "
               "in (o1, o2, ...,oK) format.");
  FABRIC_CHECK(scale_scalar || scale.empty() || static_cast<int64_t>(scale.size()) == dim,
               ValueError,
               "interpolate: Input and scale_factor must have the same number of spatial "
               "dimensions, but got input with spatial dimensions of ",
               spatial_str(x.sizes()), " and scale_factor of shape ", floats_str(scale),
               ". Please provide input tensor in (N, C, d1, d2, ...,dK) format and scale_factor "
               "in (s1, s2, ...,sK) format.");
  // torch's mode-by-rank dispatch: the linear family names the rank it needs.
  const int64_t nd = x.dim();
  const bool linear_family = is_one_of(mode, {"linear", "bilinear", "trilinear"});
  const int64_t needs = mode == "linear" ? 3 : mode == "bilinear" ? 4 : 5;
  FABRIC_CHECK(!linear_family || nd < 3 || nd > 5 || nd == needs, NotImplementedError,
               "interpolate: Got ", nd, "D input, but ", mode, " mode needs ", needs, "D input");
  const bool torch_has =
      (nd >= 3 && nd <= 5) && (is_one_of(mode, {"nearest", "nearest-exact", "area"}) ||
                               linear_family || (mode == "bicubic" && nd == 4));
  FABRIC_CHECK(torch_has, NotImplementedError,
               "interpolate: Input Error: Only 3D, 4D and 5D input Tensors supported (got ", nd,
               "D) for the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
               "nearest-exact (got ",
               mode, ")");
  std::vector<upsample_modes::Axis> axes(static_cast<size_t>(dim));
  for (int64_t k = 0; k < dim; ++k) {
    upsample_modes::Axis& a = axes[k];
    a.in = x.size(k + 2);
    if (!size.empty()) {
      a.out = size[k];
    } else {
      a.out = static_cast<int64_t>(std::floor(static_cast<double>(a.in) * scale[k]));
      // area recomputes the scale from the sizes (torch sets recompute_scale_factor for it).
      a.scale = mode == "area" ? 0.0 : scale[k];
    }
  }
  // area is adaptive average pooling, whose own checks apply instead (an output size of 0 is
  // allowed there; an empty input dimension is its error).
  if (mode == "area") return axes;
  bool positive = true;
  for (const auto& a : axes) positive = positive && a.in > 0 && a.out > 0;
  FABRIC_CHECK(positive, ValueError,
               "interpolate: Input and output sizes should be greater than 0, but got input ",
               sizes_str(axes, false), dim == 1 ? " and output " : " output ",
               sizes_str(axes, true));
  FABRIC_CHECK(x.size(1) > 0, ShapeError, "interpolate: Non-empty ", nd,
               "D data tensor expected but got a tensor with sizes ", shape_str(x.sizes()));
  return axes;
}

void check_float(const char* op, const Tensor& t) {
  const DType dt = t.dtype();
  FABRIC_CHECK(
      dt == DType::float32 || dt == DType::float64 || dt == DType::bfloat16 || dt == DType::float16,
      DTypeError, op, ": input ", shape_str(t.sizes()), " ", dtype_name(dt),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
}

// torch's is_contiguous(memory_format=channels_last) of an (N, C, H, W) tensor: dense with C
// innermost, then W, H, N (a dimension of size 1 may have any stride); channels_last_3d's of an
// (N, C, D, H, W) one: C, then W, H, D, N.
bool is_channels_last_contiguous(const Tensor& x) {
  int64_t expected = 1;
  const std::vector<int64_t> order =
      x.dim() == 5 ? std::vector<int64_t>{1, 4, 3, 2, 0} : std::vector<int64_t>{1, 3, 2, 0};
  for (int64_t d : order) {
    if (x.size(d) == 1) continue;
    if (x.stride(d) != expected) return false;
    expected *= x.size(d);
  }
  return true;
}

// nearest and trilinear on an (N, C, D, H, W) input: the 3-D kernels.
Tensor interpolate3d(const Tensor& x_in, const std::vector<upsample_modes::Axis>& axes,
                     bool trilinear, bool align_corners) {
  Tensor x = x_in;
  const OpId id = trilinear ? OpId::upsample_trilinear3d : OpId::upsample_nearest3d;
  apply_autocast(id, {&x});
  check_float("interpolate", x);
  Upsample3dAttrs a;
  Upsample3dDesc& d = a.desc;
  d.planes = x.size(0) * x.size(1);
  UpsampleAxis* dims[3] = {&d.d, &d.h, &d.w};
  for (size_t k = 0; k < 3; ++k) *dims[k] = {axes[k].in, axes[k].out, axes[k].scale};
  d.trilinear = trilinear;
  d.align_corners = align_corners;
  // As in 2-d: torch's nearest kernel for channels-last-3d inputs takes the shortcuts.
  d.nearest_shortcuts = is_channels_last_contiguous(x);
  d.dtype = x.dtype();
  a.input_shape = x.sizes();
  Tensor out = empty({x.size(0), x.size(1), d.d.out, d.h.out, d.w.out},
                     {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    upsample3d_forward_stub(x.device())(d, xc.data_ptr(), out.data_ptr());
  }
  record_op(id, {x}, {&out}, &a,
            trilinear ? "UpsampleTrilinear3DBackward1" : "UpsampleNearest3DBackward1");
  return out;
}

}  // namespace

Tensor interpolate(const Tensor& x_in, std::vector<int64_t> size, std::vector<double> scale_factor,
                   std::string_view mode, std::optional<bool> align_corners) {
  FABRIC_CHECK(x_in.defined(), ValueError, "interpolate: undefined input");
  const auto axes = interpolate_setup(x_in, size, scale_factor, mode, align_corners);
  Tensor x = x_in;
  if (mode == "area") return upsample_modes::area(x, axes);
  if (mode == "nearest-exact") {  // on no autocast list, as torch's _upsample_nearest_exact*
    check_float("interpolate", x);
    return upsample_modes::nearest_exact(x, axes);
  }
  if (mode == "bicubic") {
    apply_autocast(OpId::upsample_bicubic2d, {&x});
    check_float("interpolate", x);
    return upsample_modes::bicubic(x, axes, align_corners.value_or(false));
  }
  if (axes.size() == 3)
    return interpolate3d(x, axes, mode != "nearest", align_corners.value_or(false));
  // nearest, linear, bilinear: the kernels, a 1-d (N, C, L) input as planes of height 1.
  const bool one_d = axes.size() == 1, linear = mode != "nearest";
  const OpId id = one_d ? (linear ? OpId::upsample_linear1d : OpId::upsample_nearest1d)
                        : (linear ? OpId::upsample_bilinear2d : OpId::upsample_nearest2d);
  apply_autocast(id, {&x});
  check_float("interpolate", x);
  UpsampleAttrs a;
  UpsampleDesc& d = a.desc;
  d.planes = x.size(0) * x.size(1);
  const upsample_modes::Axis rows = one_d ? upsample_modes::Axis{1, 1, 0} : axes[0];
  const upsample_modes::Axis& cols = axes.back();
  d.H = rows.in;
  d.OH = rows.out;
  d.scale_h = rows.scale;
  d.W = cols.in;
  d.OW = cols.out;
  d.scale_w = cols.scale;
  d.bilinear = linear;
  // As torch picks its nearest kernel: the channels-last one (with the shortcuts) for a 4-d input
  // laid out channels-last, which every contiguous one-channel input is; its backward is the
  // same map's (torch's backward always takes the shortcuts, not the adjoint of its forward).
  d.nearest_shortcuts = !one_d && is_channels_last_contiguous(x);
  d.align_corners = align_corners.value_or(false);
  d.dtype = x.dtype();
  a.input_shape = {x.size(0), x.size(1), d.H, d.W};
  const Shape out_shape =
      one_d ? Shape{x.size(0), x.size(1), d.OW} : Shape{x.size(0), x.size(1), d.OH, d.OW};
  Tensor out = empty(out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    upsample2d_forward_stub(x.device())(d, xc.data_ptr(), out.data_ptr());
  }
  const char* node = one_d
                         ? (linear ? "UpsampleLinear1DBackward1" : "UpsampleNearest1DBackward1")
                         : (linear ? "UpsampleBilinear2DBackward1" : "UpsampleNearest2DBackward1");
  record_op(id, {x}, {&out}, &a, node);
  return out;
}

Tensor upsample2d_backward(const Tensor& grad_out, const UpsampleAttrs& a) {
  const char* op = "upsample2d_backward";
  FABRIC_CHECK(grad_out.defined(), ValueError, op, ": undefined grad_out");
  const Shape want{a.input_shape[0], a.input_shape[1], a.desc.OH, a.desc.OW};
  FABRIC_CHECK(grad_out.sizes() == want, ShapeError, op, ": grad_out ", shape_str(grad_out.sizes()),
               " must be ", shape_str(want), " for input ", shape_str(a.input_shape));
  check_float(op, grad_out);
  UpsampleDesc d = a.desc;
  d.dtype = grad_out.dtype();
  Tensor dx = empty(a.input_shape, {.dtype = d.dtype, .device = grad_out.device()});
  if (dx.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous();
    upsample2d_backward_stub(dx.device())(d, dy.data_ptr(), dx.data_ptr());
  }
  return dx;
}

Tensor upsample3d_backward(const Tensor& grad_out, const Upsample3dAttrs& a) {
  const char* op = "upsample3d_backward";
  FABRIC_CHECK(grad_out.defined(), ValueError, op, ": undefined grad_out");
  const Upsample3dDesc& d0 = a.desc;
  const Shape want{a.input_shape[0], a.input_shape[1], d0.d.out, d0.h.out, d0.w.out};
  FABRIC_CHECK(grad_out.sizes() == want, ShapeError, op, ": grad_out ", shape_str(grad_out.sizes()),
               " must be ", shape_str(want), " for input ", shape_str(a.input_shape));
  check_float(op, grad_out);
  Upsample3dDesc d = d0;
  d.dtype = grad_out.dtype();
  Tensor dx = empty(a.input_shape, {.dtype = d.dtype, .device = grad_out.device()});
  if (dx.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous();
    upsample3d_backward_stub(dx.device())(d, dy.data_ptr(), dx.data_ptr());
  }
  return dx;
}

}  // namespace fabric
