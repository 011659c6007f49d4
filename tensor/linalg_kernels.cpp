// The dispatch stub of the GEMM (declared in linalg_kernels.h).
#include "tensor/linalg_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(gemm_stub, GemmFn);
FABRIC_DEFINE_STUB(gemm_gelu_stub, GemmGeluFn);
FABRIC_DEFINE_STUB(gemm_dgelu_stub, GemmDgeluFn);
FABRIC_DEFINE_STUB(gemm_bgrad_stub, GemmBgradFn);
}  // namespace fabric
