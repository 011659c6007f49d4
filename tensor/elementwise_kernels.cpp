// The dispatch stubs for the elementwise kernels (declared in elementwise_kernels.h).
#include "tensor/elementwise_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(binary_stub, BinaryFn);
FABRIC_DEFINE_STUB(compare_stub, CompareFn);
FABRIC_DEFINE_STUB(unary_stub, UnaryFn);
FABRIC_DEFINE_STUB(where_stub, WhereFn);
FABRIC_DEFINE_STUB(clamp_stub, ClampFn);
FABRIC_DEFINE_STUB(addcmul_stub, AddcmulFn);
}  // namespace fabric
