// Registers the CPU GEMM (kernels/cpu/gemm.h) behind the device-neutral gemm_stub: it takes the
// stub's GemmDesc as it is.
#include "kernels/cpu/gemm.h"
#include "tensor/linalg_kernels.h"

namespace fabric {
FABRIC_REGISTER_KERNEL(gemm_stub, cpu, &cpu::gemm);
}  // namespace fabric
