// The dispatch stub of the GEMM (declared in linalg_kernels.h).
#include "tensor/linalg_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(gemm_stub, GemmFn);
}  // namespace fabric
