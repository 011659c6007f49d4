// The dispatch stub of the sort kernel (declared in sort_kernels.h).
#include "tensor/sort_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(sort_stub, SortFn);
}  // namespace fabric
