// The dispatch stubs of cdist's kernels (cdist_kernels.h).
#include "tensor/cdist_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(cdist_stub, CdistFn);
FABRIC_DEFINE_STUB(cdist_backward_stub, CdistBackwardFn);
FABRIC_DEFINE_STUB(cdist_mm_sqrt_stub, CdistMmSqrtFn);
FABRIC_DEFINE_STUB(cdist_mm_scale_stub, CdistMmScaleFn);
}  // namespace fabric
