// 3-D convolution as direct loops in float32 or float64, accumulating in double: the float64
// path (oneDNN 2.x has no f64 convolution) and the fallback for problems oneDNN refuses (empty
// ones, or a CPU without its float32 primitives). Pointers as in tensor/conv3d_kernels.h.
#pragma once
#include "tensor/conv3d_kernels.h"

namespace fabric::cpu {

void conv3d_forward_direct(const Conv3dDesc& d, const void* x, const void* w, const void* bias,
                           void* y);
void conv3d_backward_data_direct(const Conv3dDesc& d, const void* dy, const void* w, void* dx);
void conv3d_backward_weights_direct(const Conv3dDesc& d, const void* dy, const void* x, void* dw,
                                    void* db);

}  // namespace fabric::cpu
