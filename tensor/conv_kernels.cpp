// The dispatch stubs of the convolution and pooling kernels (declared in conv_kernels.h and
// conv3d_kernels.h).
#include "tensor/conv3d_kernels.h"
#include "tensor/conv_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(conv2d_forward_stub, Conv2dForwardFn);
FABRIC_DEFINE_STUB(conv2d_backward_data_stub, Conv2dBackwardDataFn);
FABRIC_DEFINE_STUB(conv2d_backward_weights_stub, Conv2dBackwardWeightsFn);
FABRIC_DEFINE_STUB(conv3d_forward_stub, Conv3dForwardFn);
FABRIC_DEFINE_STUB(conv3d_backward_data_stub, Conv3dBackwardDataFn);
FABRIC_DEFINE_STUB(conv3d_backward_weights_stub, Conv3dBackwardWeightsFn);
FABRIC_DEFINE_STUB(max_pool2d_forward_stub, Pool2dForwardFn);
FABRIC_DEFINE_STUB(avg_pool2d_forward_stub, Pool2dForwardFn);
FABRIC_DEFINE_STUB(max_pool2d_backward_stub, MaxPool2dBackwardFn);
FABRIC_DEFINE_STUB(avg_pool2d_backward_stub, AvgPool2dBackwardFn);
FABRIC_DEFINE_STUB(max_pool2d_indices_stub, MaxPool2dIndicesFn);
FABRIC_DEFINE_STUB(adaptive_avg_pool2d_forward_stub, Pool2dForwardFn);
FABRIC_DEFINE_STUB(adaptive_avg_pool2d_backward_stub, AvgPool2dBackwardFn);
}  // namespace fabric
