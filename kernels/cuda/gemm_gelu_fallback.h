// The GELU part of gemm_bias_gelu / gemm_dgelu done after a plain GEMM, for the problems whose
// fused cuBLASLt epilogue the heuristic declines (gemm_cublaslt.cpp decides, and caches that
// answer per problem with the other plans). Free of CUDA headers.
#pragma once
#include "kernels/cuda/gemm_cublaslt.h"

namespace fabric::cuda::detail {

// After C holds the pre-activation (alpha * op(A) op(B) + bias + beta * C): copies it to
// aux.data when given (what the GELU_AUX epilogue keeps for the backward), then C = gelu(C) with
// the tanh approximation, the formula of fabric's gelu_tanh kernel.
void gemm_gelu_after_product(int device, const GemmDesc& desc, const GeluAux& aux);

// After aux holds the pre-activation (the product was written there): C = gelu(aux), one pass.
void gemm_gelu_from_aux(int device, const GemmDesc& desc, const GeluAux& aux);

// After C holds alpha * op(A) op(B) + beta * C: C = C * gelu'(aux) (the DGELU epilogue), with
// the formula of fabric's fused GELU backward.
void gemm_dgelu_after_product(int device, const GemmDesc& desc, const GeluAux& aux);

}  // namespace fabric::cuda::detail
