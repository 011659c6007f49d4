// conv_transpose1d as torch.nn.functional.conv_transpose1d: conv_transpose2d over a unit height,
// as conv1d is conv2d's (ops_conv1d.cpp). The input becomes (N, C, 1, L) and the weight
// (C, O/groups, 1, K), so conv_transpose2d's composition, autograd (double backward included)
// and CUDA path serve it; the unit dim is dropped from the result.
#include <string>

#include "tensor/autocast.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric {

Tensor conv_transpose1d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
                        int64_t stride, int64_t padding, int64_t output_padding, int64_t groups,
                        int64_t dilation) {
  const char* op = "conv_transpose1d";
  Tensor x = x_in, w = w_in, bias = bias_in;
  // Cast here, once: conv_transpose2d then sees lower-precision operands and its own
  // (identical) lower policy casts nothing.
  apply_autocast(OpId::conv_transpose1d, {&x, &w, &bias});
  FABRIC_CHECK(x.defined() && w.defined(), ValueError, op, ": undefined input or weight");
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError, op,
               ": expected a 2-D (C, L) or 3-D (N, C, L) input, got ", shape_str(x.sizes()));
  FABRIC_CHECK(w.dim() == 3, ShapeError, op,
               ": weight must be 3-D (in_channels, out_channels/groups, kernel_size), got ",
               shape_str(w.sizes()));
  // The checks conv_transpose2d would make, in conv_transpose1d's own shapes (its messages would
  // name the unsqueezed 4-D ones).
  const DType d = x.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, op, ": input ", shape_str(x.sizes()), " ", dtype_name(d),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  FABRIC_CHECK(w.dtype() == d, DTypeError, op, ": input ", shape_str(x.sizes()), " ", dtype_name(d),
               " and weight ", shape_str(w.sizes()), " ", dtype_name(w.dtype()),
               " must have the same dtype");
  FABRIC_CHECK(stride > 0, ValueError, op, ": stride must be positive, got ", stride);
  FABRIC_CHECK(padding >= 0, ValueError, op, ": padding must be non-negative, got ", padding);
  FABRIC_CHECK(dilation > 0, ValueError, op, ": dilation must be positive, got ", dilation);
  FABRIC_CHECK(groups > 0, ValueError, op, ": groups must be positive, got ", groups);
  FABRIC_CHECK(output_padding >= 0 && (output_padding < stride || output_padding < dilation),
               ValueError, op,
               ": output padding must be smaller than either stride or dilation, but got "
               "output_padding ",
               output_padding, ", stride ", stride, ", dilation ", dilation);
  const int64_t C = x.size(-2), L = x.size(-1), K = w.size(2);
  // As torch: at least one input channel per group, so a zero-channel input is refused.
  FABRIC_CHECK(w.size(0) >= groups, ShapeError, op, ": weight ", shape_str(w.sizes()), " has ",
               w.size(0), " input channels (dimension 0), expected at least groups=", groups,
               w.size(0) == 0 ? " (zero-channel inputs are not supported)" : "");
  FABRIC_CHECK(w.size(0) % groups == 0, ShapeError, op, ": weight ", shape_str(w.sizes()), " has ",
               w.size(0), " input channels, not divisible by groups=", groups);
  FABRIC_CHECK(C == w.size(0), ShapeError, op, ": input ", shape_str(x.sizes()), " has ", C,
               " channels but weight ", shape_str(w.sizes()), " expects ", w.size(0));
  FABRIC_CHECK(w.size(1) > 0 && K > 0, ShapeError, op, ": weight ", shape_str(w.sizes()),
               " must have non-zero output channels and kernel size");
  FABRIC_CHECK(L > 0, ShapeError, op,
               ": only zero batch inputs are supported, not empty channel or length dims, got "
               "input ",
               shape_str(x.sizes()));
  const int64_t reach = checked_size_add(checked_size_mul(L - 1, stride, op),
                                         checked_size_mul(dilation, K - 1, op), op);
  const int64_t out =
      checked_size_add(reach, output_padding + 1, op) - checked_size_mul(2, padding, op);
  FABRIC_CHECK(out > 0, ShapeError, op, ": given input ", shape_str(x.sizes()),
               ", the calculated output length (", out, ") is too small");
  Tensor y = conv_transpose2d(x.unsqueeze(-2), w.unsqueeze(2), bias, {1, stride}, {0, padding},
                              {0, output_padding}, groups, {1, dilation});
  return y.squeeze(-2);
}

}  // namespace fabric
