// Dispatch stub for the GEMM behind matmul/mm/bmm/linear (and the float64 convolution path):
// a device-neutral description of one batched, strided, row-major GEMM over raw pointers.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// C[b] (M x N) = alpha * op(A[b]) (M x K) * op(B[b]) (K x N) + bias + beta * C[b], b in [0, batch),
// over raw pointers: one description for the op layer and every device's kernel (the CPU kernel,
// kernels/cpu/gemm.h, takes it as its GemmArgs).
struct GemmDesc {
  // Supported: all f32; all f64; bf16 x bf16 -> f32 or bf16; f16 x f16 -> f32 or f16.
  int64_t batch = 1, M = 0, N = 0, K = 0;
  DType a_dtype = DType::float32, b_dtype = DType::float32, c_dtype = DType::float32;
  // Row-major. trans_a: A is stored as (K x M) with leading dim lda (likewise B as (N x K)).
  // stride_* = elements between consecutive batches; 0 broadcasts that operand (not allowed for C
  // when batch > 1).
  const void* A = nullptr;
  int64_t lda = 0;
  int64_t stride_a = 0;
  bool trans_a = false;
  const void* B = nullptr;
  int64_t ldb = 0;
  int64_t stride_b = 0;
  bool trans_b = false;
  void* C = nullptr;
  int64_t ldc = 0;
  int64_t stride_c = 0;
  // beta == 0 means C is not read (NaN/garbage in C does not propagate), as in BLAS.
  float alpha = 1.f, beta = 0.f;
  // Optional (N) row vector added to every row of every C[b], after the alpha scaling. Its dtype is
  // float32, or the input dtype for bf16/f16 inputs, or float64 for f64.
  const void* bias = nullptr;
  DType bias_dtype = DType::float32;
};

using GemmFn = void (*)(const GemmDesc& desc);
FABRIC_DECLARE_STUB(gemm_stub, GemmFn);

// The GELU (tanh form) of a fused MLP (gelu_mlp) in the GEMM's epilogue, for devices whose GEMM
// library has one (CUDA: cuBLASLt's GELU_AUX_BIAS and DGELU); the op layer runs the plain GEMM
// and then the GELU op where none is registered. `aux` is laid out as C (leading dim ldc, batch
// stride stride_c) in C's dtype.
// Forward: C = gelu_tanh(alpha * op(A) op(B) + bias); aux, when not null, gets the
// pre-activation (alpha * op(A) op(B) + bias) for the backward. beta is 0.
using GemmGeluFn = void (*)(const GemmDesc& desc, void* aux);
FABRIC_DECLARE_STUB(gemm_gelu_stub, GemmGeluFn);
// Backward: C = (alpha * op(A) op(B)) * gelu_tanh'(aux), aux the pre-activation; the GEMM that
// produces the gradient of the GELU's input. No bias; beta is 0.
using GemmDgeluFn = void (*)(const GemmDesc& desc, const void* aux);
FABRIC_DECLARE_STUB(gemm_dgelu_stub, GemmDgeluFn);

// A linear layer's weight gradient with its bias gradient in the GEMM's epilogue (CUDA: cuBLASLt's
// BGRADB): C = alpha * op(A) op(B) as gemm_stub computes it, and bias_grad (M values in C's dtype)
// = the sums over K of op(A), the bias gradient when op(A) is the output gradient transposed.
// Returns false, writing nothing, where the device does not fuse this problem; the op layer then
// runs the plain GEMM and a column sum (as it does where no kernel is registered).
using GemmBgradFn = bool (*)(const GemmDesc& desc, void* bias_grad);
FABRIC_DECLARE_STUB(gemm_bgrad_stub, GemmBgradFn);

}  // namespace fabric
