// The bias parts of the CUDA convolution (conv_bias.cu), next to cuDNN's convolution in
// conv_cudnn.cpp: adding a per-channel bias to NC(D)HW outputs (the spatial dims flattened into
// HW), and the bias gradient. Free of CUDA headers; both queue on the compute stream of `device`.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace fabric::cuda {

// y (N, C, HW) += bias (C), in float32 (float64 for float64) and rounded once to `dtype`.
void conv_add_bias(int device, DType dtype, void* y, const void* bias, int64_t N, int64_t C,
                   int64_t HW);

// db (C) = the sum of dy (N, C, HW) over N and HW, accumulated in float32 (float64 for float64)
// by a fixed-order tree per channel, so repeated calls give the same bits.
void conv_bias_grad(int device, DType dtype, const void* dy, void* db, int64_t N, int64_t C,
                    int64_t HW);

}  // namespace fabric::cuda
