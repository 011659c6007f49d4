// The dispatch stubs for the fused optimizer updates (declared in optim_kernels.h).
#include "tensor/optim_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(adam_step_stub, AdamStepFn);
FABRIC_DEFINE_STUB(adam_multi_step_stub, AdamMultiStepFn);
FABRIC_DEFINE_STUB(sgd_step_stub, SgdStepFn);
FABRIC_DEFINE_STUB(rmsprop_step_stub, RmspropStepFn);
FABRIC_DEFINE_STUB(adagrad_step_stub, AdagradStepFn);
}  // namespace fabric
