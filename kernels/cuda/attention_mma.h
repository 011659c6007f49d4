// The tensor-core (mma.sync) path of the CUDA fused attention, internal to kernels/cuda: the
// dispatch functions of attention_kernels.cu try it first and fall back to their CUDA-core
// kernels when it declines. Same contract as tensor/attention_kernels.h.
#pragma once
#include "tensor/attention_kernels.h"

namespace fabric::cuda {

// Each returns false, writing nothing, for a problem the mma kernels do not take: they take bf16
// and f16 without dropout, head sizes E, Ev up to 128, on a device of compute capability 8.0 or
// newer running code built for sm_80+ (not the JIT of older PTX), unless the environment variable
// FABRIC_ATTENTION_MMA is "0". The backward takes exactly the problems the forward takes.
bool attention_forward_mma(const AttentionArgs& a, void* out, void* lse);
bool attention_backward_mma(const AttentionBackwardArgs& args);

}  // namespace fabric::cuda
