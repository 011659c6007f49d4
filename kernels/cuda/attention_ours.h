// Our fused attention kernels on CUDA (attention_kernels.cu: the tensor-core kernels of
// attention_mma_kernels.cu, then the CUDA-core ones), reached through attention_dispatch.cpp,
// which offers cuDNN a problem first and hands these contiguous layouts only. Free of CUDA
// headers.
#pragma once
#include "tensor/attention_kernels.h"

namespace fabric::cuda {

// The stubs' contracts (tensor/attention_kernels.h) for contiguous out, grad_out and gradients:
// strides for any of them are a ValueError. The backward takes every problem the forward took.
bool attention_forward_ours(const AttentionArgs& a, void* out, void* lse);
void attention_backward_ours(const AttentionBackwardArgs& args);

}  // namespace fabric::cuda
