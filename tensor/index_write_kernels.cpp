// The dispatch stub of the scatter kernel (declared in index_write_kernels.h).
#include "tensor/index_write_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(scatter_reduce_stub, ScatterReduceFn);
}  // namespace fabric
