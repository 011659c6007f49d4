// The dispatch stubs of the reduction/normalisation/loss family (declared in reduce_kernels.h).
#include "tensor/reduce_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(reduce_stub, ReduceFn);
FABRIC_DEFINE_STUB(arg_reduce_stub, ArgReduceFn);
FABRIC_DEFINE_STUB(cumsum_stub, CumsumFn);
FABRIC_DEFINE_STUB(softmax_stub, SoftmaxFn);
FABRIC_DEFINE_STUB(softmax_backward_stub, SoftmaxBackwardFn);
FABRIC_DEFINE_STUB(norm_stub, NormFn);
FABRIC_DEFINE_STUB(norm_backward_stub, NormBackwardFn);
FABRIC_DEFINE_STUB(cross_entropy_stub, CrossEntropyFn);
FABRIC_DEFINE_STUB(cross_entropy_backward_stub, CrossEntropyBackwardFn);
FABRIC_DEFINE_STUB(nll_loss_stub, NllLossFn);
FABRIC_DEFINE_STUB(nll_loss_backward_stub, NllLossBackwardFn);
FABRIC_DEFINE_STUB(squared_diff_stub, SquaredDiffFn);
}  // namespace fabric
