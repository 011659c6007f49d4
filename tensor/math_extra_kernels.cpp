// The dispatch stubs of the extra math, special functions and bitwise ops (math_extra_kernels.h).
#include "tensor/math_extra_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(extra_unary_stub, ExtraUnaryFn);
FABRIC_DEFINE_STUB(extra_binary_stub, ExtraBinaryFn);
FABRIC_DEFINE_STUB(bitwise_stub, BitwiseFn);
FABRIC_DEFINE_STUB(bitwise_not_stub, BitwiseNotFn);
FABRIC_DEFINE_STUB(signbit_stub, SignbitFn);
}  // namespace fabric
