// interpolate (torch.nn.functional.interpolate, modes nearest and bilinear on (N, C, H, W)) with
// torch 1.13's argument checks in its order, and its gradient. With scale_factor (and no
// recompute_scale_factor, torch's default) the output size is floor(in * scale) and the kernels
// read input o / scale, as torch's; with size they read o * in / out.
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_upsample.h"

namespace fabric {

FABRIC_DEFINE_STUB(upsample2d_forward_stub, UpsampleForwardFn);
FABRIC_DEFINE_STUB(upsample2d_backward_stub, UpsampleBackwardFn);

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

// torch's functional checks: mode vs align_corners, then size/scale_factor, then mode vs rank.
// A 1-element size or scale_factor stands for torch's scalar (the same for both dims).
UpsampleAttrs interpolate_setup(const Tensor& x, std::vector<int64_t>& size,
                                std::vector<double>& scale, std::string_view mode,
                                std::optional<bool> align_corners) {
  const bool nearest = mode == "nearest" || mode == "area" || mode == "nearest-exact";
  FABRIC_CHECK(!(nearest && align_corners.has_value()), ValueError,
               "interpolate: align_corners option can only be set with the interpolating modes: "
               "linear | bilinear | bicubic | trilinear (got mode '",
               mode, "')");
  const int64_t dim = x.dim() - 2;
  FABRIC_CHECK(size.empty() || scale.empty(), ValueError,
               "interpolate: only one of size or scale_factor should be defined");
  FABRIC_CHECK(!size.empty() || !scale.empty(), ValueError,
               "interpolate: either size or scale_factor should be defined");
  if (size.size() == 1 && dim > 0) size.assign(static_cast<size_t>(dim), size[0]);
  if (scale.size() == 1 && dim > 0) scale.assign(static_cast<size_t>(dim), scale[0]);
  FABRIC_CHECK(size.empty() || static_cast<int64_t>(size.size()) == dim, ValueError,
               "interpolate: Input and output must have the same number of spatial dimensions, "
               "but got input with spatial dimensions of ",
               spatial_str(x.sizes()), " and output size of ", shape_str(size),
               ". Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size "
               "in (o1, o2, ...,oK) format.");
  FABRIC_CHECK(scale.empty() || static_cast<int64_t>(scale.size()) == dim, ValueError,
               "interpolate: Input and scale_factor must have the same number of spatial "
               "dimensions, but got input with spatial dimensions of ",
               spatial_str(x.sizes()), " and scale_factor of shape ", floats_str(scale),
               ". Please provide input tensor in (N, C, d1, d2, ...,dK) format and scale_factor "
               "in (s1, s2, ...,sK) format.");
  FABRIC_CHECK(mode != "bilinear" || x.dim() == 4, NotImplementedError, "interpolate: Got ",
               x.dim(), "D input, but bilinear mode needs 4D input");
  FABRIC_CHECK(mode == "nearest" || mode == "bilinear", NotImplementedError,
               "interpolate: Input Error: Only 3D, 4D and 5D input Tensors supported (got ",
               x.dim(),
               "D) for the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
               "nearest-exact (got ",
               mode, "); fabric implements nearest and bilinear");
  FABRIC_CHECK(x.dim() == 4, NotImplementedError,
               "interpolate: fabric implements nearest for 4-D (N, C, H, W) input, got ",
               shape_str(x.sizes()));
  UpsampleAttrs a;
  a.input_shape = x.sizes();
  UpsampleDesc& d = a.desc;
  d.planes = x.size(0) * x.size(1);
  d.H = x.size(2);
  d.W = x.size(3);
  if (!size.empty()) {
    d.OH = size[0];
    d.OW = size[1];
  } else {
    d.OH = static_cast<int64_t>(std::floor(static_cast<double>(d.H) * scale[0]));
    d.OW = static_cast<int64_t>(std::floor(static_cast<double>(d.W) * scale[1]));
    d.scale_h = scale[0];
    d.scale_w = scale[1];
  }
  d.bilinear = mode == "bilinear";
  d.align_corners = align_corners.value_or(false);
  FABRIC_CHECK(d.H > 0 && d.W > 0 && d.OH > 0 && d.OW > 0, ValueError,
               "interpolate: Input and output sizes should be greater than 0, but got input (H: ",
               d.H, ", W: ", d.W, ") output (H: ", d.OH, ", W: ", d.OW, ")");
  FABRIC_CHECK(x.size(1) > 0, ShapeError,
               "interpolate: Non-empty 4D data tensor expected but got a tensor with sizes ",
               shape_str(x.sizes()));
  return a;
}

void check_float(const char* op, const Tensor& t) {
  const DType dt = t.dtype();
  FABRIC_CHECK(
      dt == DType::float32 || dt == DType::float64 || dt == DType::bfloat16 || dt == DType::float16,
      DTypeError, op, ": input ", shape_str(t.sizes()), " ", dtype_name(dt),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
}

}  // namespace

Tensor interpolate(const Tensor& x_in, std::vector<int64_t> size, std::vector<double> scale_factor,
                   std::string_view mode, std::optional<bool> align_corners) {
  FABRIC_CHECK(x_in.defined(), ValueError, "interpolate: undefined input");
  UpsampleAttrs a = interpolate_setup(x_in, size, scale_factor, mode, align_corners);
  const OpId id = a.desc.bilinear ? OpId::upsample_bilinear2d : OpId::upsample_nearest2d;
  Tensor x = x_in;
  apply_autocast(id, {&x});
  check_float("interpolate", x);
  a.desc.dtype = x.dtype();
  Tensor out = empty({x.size(0), x.size(1), a.desc.OH, a.desc.OW},
                     {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    upsample2d_forward_stub(x.device())(a.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(id, {x}, {&out}, &a,
            a.desc.bilinear ? "UpsampleBilinear2DBackward1" : "UpsampleNearest2DBackward1");
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

}  // namespace fabric
