// The dispatch stubs of the math family and prod/cumprod (declared in math_kernels.h).
#include "tensor/math_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(math_unary_stub, MathUnaryFn);
FABRIC_DEFINE_STUB(math_binary_stub, MathBinaryFn);
FABRIC_DEFINE_STUB(prod_stub, ProdFn);
FABRIC_DEFINE_STUB(cumprod_stub, ProdFn);
}  // namespace fabric
