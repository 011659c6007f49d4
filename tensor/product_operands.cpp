// The shared operand check of tensor/product_operands.h.
#include "tensor/product_operands.h"

#include "tensor/error.h"
#include "tensor/shape.h"

namespace fabric {

void check_product_operands(const char* op, const Tensor& a, const Tensor& b) {
  FABRIC_CHECK(a.defined() && b.defined(), ValueError, op, ": undefined operand");
  FABRIC_CHECK(a.device() == b.device(), DeviceError, op, ": operands are on different devices (",
               a.device(), " and ", b.device(), ")");
  FABRIC_CHECK(a.dtype() == b.dtype(), DTypeError, op,
               ": expected both operands to have the same dtype, but got ", dtype_name(a.dtype()),
               " ", shape_str(a.sizes()), " and ", dtype_name(b.dtype()), " ",
               shape_str(b.sizes()));
}

}  // namespace fabric
