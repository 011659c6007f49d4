// conv1d as torch.nn.functional.conv1d: conv2d over a unit height. The input
// becomes (N, C, 1, L) and the weight (O, C/groups, 1, K), so conv2d's kernels,
// autograd rule (double backward included) and CUDA path serve it; the unit dim
// is dropped from the result.
#include <string>

#include "tensor/autocast.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric {

Tensor conv1d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, int64_t stride,
              int64_t padding, int64_t dilation, int64_t groups) {
  Tensor x = x_in, w = w_in, bias = bias_in;
  // Cast here, once: conv2d then sees lower-precision operands and its own
  // (identical) lower policy casts nothing, so the result is what one cast of
  // the caller's tensors gives.
  apply_autocast(OpId::conv1d, {&x, &w, &bias});
  FABRIC_CHECK(x.defined() && w.defined(), ValueError, "conv1d: undefined input or weight");
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError,
               "conv1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got ", shape_str(x.sizes()));
  FABRIC_CHECK(w.dim() == 3, ShapeError,
               "conv1d: weight must be 3-D (out_channels, in_channels/groups, "
               "kernel_size), got ",
               shape_str(w.sizes()));
  const DType d = x.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, "conv1d: input ", shape_str(x.sizes()), " ", dtype_name(d),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  FABRIC_CHECK(w.dtype() == x.dtype(), DTypeError, "conv1d: input ", shape_str(x.sizes()), " ",
               dtype_name(x.dtype()), " and weight ", shape_str(w.sizes()), " ",
               dtype_name(w.dtype()), " must have the same dtype");
  FABRIC_CHECK(x.device() == w.device(), DeviceError, "conv1d: input on ", x.device(),
               ", weight on ", w.device());
  FABRIC_CHECK(stride > 0, ValueError, "conv1d: stride must be positive, got ", stride);
  FABRIC_CHECK(padding >= 0, ValueError, "conv1d: padding must be non-negative, got ", padding);
  FABRIC_CHECK(dilation > 0, ValueError, "conv1d: dilation must be positive, got ", dilation);
  FABRIC_CHECK(groups > 0, ValueError, "conv1d: groups must be positive, got ", groups);
  // The shape checks conv2d would make, in conv1d's own shapes (its messages
  // would name the unsqueezed 4-D ones).
  const int64_t C = x.size(-2), L = x.size(-1), O = w.size(0), K = w.size(2);
  // As torch: at least one output channel per group, even for a zero-channel input.
  FABRIC_CHECK(O >= groups, ShapeError, "conv1d: weight ", shape_str(w.sizes()), " has ", O,
               " output channels (dimension 0), expected at least groups=", groups);
  FABRIC_CHECK(O % groups == 0, ShapeError, "conv1d: weight ", shape_str(w.sizes()), " has ", O,
               " output channels, not divisible by groups=", groups);
  // A zero-channel input with a zero-channel weight passes: conv2d gives torch's empty result.
  FABRIC_CHECK(C == w.size(1) * groups, ShapeError, "conv1d: input ", shape_str(x.sizes()), " has ",
               C, " channels but weight ", shape_str(w.sizes()), " with groups=", groups,
               " expects ", w.size(1) * groups);
  FABRIC_CHECK(L > 0, ShapeError,
               "conv1d: only zero batch or zero channel inputs are supported, "
               "got input ",
               shape_str(x.sizes()));
  // Before the fit check: a zero kernel "fits" any input, and its dilated extent can be negative.
  FABRIC_CHECK(K > 0, ShapeError, "conv1d: kernel size should be greater than zero, but got ", K,
               " (weight ", shape_str(w.sizes()), ")");
  const int64_t padded = checked_size_add(L, checked_size_mul(2, padding, "conv1d"), "conv1d");
  const int64_t span = checked_size_add(checked_size_mul(dilation, K - 1, "conv1d"), 1, "conv1d");
  FABRIC_CHECK(span <= padded, ShapeError, "conv1d: the padded input length (", padded, ") of ",
               shape_str(x.sizes()), " is smaller than the dilated kernel (", span, ") of weight ",
               shape_str(w.sizes()));
  Tensor y = conv2d(x.unsqueeze(-2), w.unsqueeze(2), bias, {1, stride}, {0, padding}, {1, dilation},
                    groups);
  return y.squeeze(-2);
}

}  // namespace fabric
