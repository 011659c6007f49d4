// The dispatch stubs of cdist's kernels (cdist_kernels.h).
#include "tensor/cdist_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(cdist_stub, CdistFn);
FABRIC_DEFINE_STUB(cdist_backward_stub, CdistBackwardFn);
}  // namespace fabric
