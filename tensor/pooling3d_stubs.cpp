// The dispatch stubs of the 3-d/adaptive max pools and of unfold/fold (pool3d_kernels.h,
// fold_kernels.h).
#include "tensor/fold_kernels.h"
#include "tensor/max_pool3d_saved.h"
#include "tensor/pool3d_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(pool3d_max_stub, Pool3dMaxFn);
FABRIC_DEFINE_STUB(pool3d_avg_stub, Pool3dAvgFn);
FABRIC_DEFINE_STUB(pool3d_max_backward_stub, Pool3dMaxBackwardFn);
FABRIC_DEFINE_STUB(pool3d_avg_backward_stub, Pool3dAvgBackwardFn);
FABRIC_DEFINE_STUB(unfold_stub, UnfoldFn);
FABRIC_DEFINE_STUB(fold_stub, FoldFn);
}  // namespace fabric
