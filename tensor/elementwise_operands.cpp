// The shared elementwise operand checks and cast of tensor/elementwise_operands.h.
#include "tensor/elementwise_operands.h"

#include "tensor/error.h"

namespace fabric {

void check_elementwise_operand(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(
      !is_fp8(t.dtype()), DTypeError, op, ": ", dtype_name(t.dtype()),
      " tensors are not supported (fp8 is a storage format here; cast to a wider dtype first)");
}

void check_floating_operand(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": got an undefined tensor");
  const DType dt = t.dtype();
  FABRIC_CHECK(is_floating(dt) && !is_fp8(dt), DTypeError, op,
               ": expects a float64, float32, float16 or bfloat16 tensor, got ", dtype_name(dt),
               is_fp8(dt) ? " (fp8 is a storage format here; cast to a wider dtype first)"
                          : " (cast with .to(float32) first)");
}

Tensor cast_for_kernel(const Tensor& t, DType dt) {
  return t.dtype() == dt ? t : t.detach().to(dt);
}

}  // namespace fabric
