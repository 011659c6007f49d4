// Convolution through im2col/col2im and the CPU GEMM, in float32 or float64: the float64 path
// (oneDNN has no f64 convolution) and the fallback where oneDNN offers no fast primitive.
#pragma once
#include "tensor/conv_kernels.h"

namespace fabric::cpu {

// d.dtype must be float32 or float64; pointers as in tensor/conv_kernels.h.
void conv2d_forward_im2col(const Conv2dDesc& d, const void* x, const void* w, const void* bias,
                           void* y);
void conv2d_backward_data_im2col(const Conv2dDesc& d, const void* dy, const void* w, void* dx);
void conv2d_backward_weights_im2col(const Conv2dDesc& d, const void* dy, const void* x, void* dw,
                                    void* db);

}  // namespace fabric::cpu
