// The dispatch stubs for random generation and dropout (declared in random_kernels.h).
#include "tensor/random_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(random_fill_stub, RandomFillFn);
FABRIC_DEFINE_STUB(dropout_stub, DropoutFn);
}  // namespace fabric
