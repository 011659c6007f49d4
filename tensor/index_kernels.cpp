// The dispatch stubs of the indexing kernels (declared in index_kernels.h).
#include "tensor/index_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(index_minmax_stub, IndexMinMaxFn);
FABRIC_DEFINE_STUB(index_select_stub, IndexSelectFn);
FABRIC_DEFINE_STUB(index_add_stub, IndexAddFn);
FABRIC_DEFINE_STUB(gather_stub, ScatterGatherFn);
FABRIC_DEFINE_STUB(scatter_add_stub, ScatterGatherFn);
FABRIC_DEFINE_STUB(tri_stub, TriFn);
FABRIC_DEFINE_STUB(one_hot_stub, OneHotFn);
}  // namespace fabric
