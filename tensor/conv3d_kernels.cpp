// The dispatch stubs of the 3-D convolution kernels (declared in conv3d_kernels.h).
#include "tensor/conv3d_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(conv3d_forward_stub, Conv3dForwardFn);
FABRIC_DEFINE_STUB(conv3d_backward_data_stub, Conv3dBackwardDataFn);
FABRIC_DEFINE_STUB(conv3d_backward_weights_stub, Conv3dBackwardWeightsFn);
}  // namespace fabric
