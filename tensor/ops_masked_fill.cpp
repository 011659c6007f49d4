// masked_fill as torch.masked_fill: one `where` pass, with the value as a 0-dim tensor of x's
// dtype so the result keeps x's dtype (where alone would promote an integer x to a float value's).
// where's rule gives the gradients: x's where the mask is false, the value's summed over the
// filled positions (the engine sums a 0-dim input's gradient), none to the mask.
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

void check_mask(const Tensor& x, const Tensor& mask) {
  FABRIC_CHECK(x.defined() && mask.defined(), ValueError, "masked_fill: undefined input or mask");
  FABRIC_CHECK(mask.dtype() == DType::bool_, DTypeError,
               "masked_fill: only bool masks are supported, got a mask of dtype ",
               dtype_name(mask.dtype()), " (compare first, e.g. ne(mask, 0))");
  FABRIC_CHECK(mask.device() == x.device(), DeviceError, "masked_fill: mask on ", mask.device(),
               ", input on ", x.device());
  broadcast_shapes(x.sizes(), mask.sizes(), "masked_fill");  // the error names this op, not where
}

}  // namespace

Tensor masked_fill(const Tensor& x_in, const Tensor& mask, const Scalar& value) {
  Tensor x = x_in;
  apply_autocast(OpId::masked_fill, {&x});
  check_mask(x, mask);
  // As torch's fill: 1000 into uint8 raises, 1.5 into int64 truncates.
  check_scalar_fits("masked_fill", value, x.dtype());
  return where(mask, scalar_tensor(value, {.dtype = x.dtype(), .device = x.device()}), x);
}

Tensor masked_fill(const Tensor& x_in, const Tensor& mask, const Tensor& value) {
  Tensor x = x_in;
  apply_autocast(OpId::masked_fill, {&x});
  check_mask(x, mask);
  FABRIC_CHECK(value.defined(), ValueError, "masked_fill: undefined value tensor");
  FABRIC_CHECK(value.dim() == 0, ShapeError,
               "masked_fill: only a 0-dim value tensor is supported, got value ",
               shape_str(value.sizes()), " with ", value.dim(), " dimension(s)");
  // Recorded casts: a value that requires grad gets its gradient back in its own dtype and
  // device (torch accepts a CPU 0-dim value for a CUDA input).
  return where(mask, value.to(x.dtype()).to(x.device()), x);
}

}  // namespace fabric
