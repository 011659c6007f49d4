// Dispatch stub for the GEMM behind matmul/mm/bmm/linear (and the float64 convolution path):
// a device-neutral description of one batched, strided, row-major GEMM over raw pointers.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// C[b] (M x N) = alpha * op(A[b]) (M x K) * op(B[b]) (K x N) + bias + beta * C[b], b in [0, batch).
// The same contract as the CPU kernel (kernels/cpu/gemm.h): row-major; trans_a means A is stored
// as (K x M) with leading dim lda (likewise B as (N x K)); stride_* are elements between batches,
// 0 broadcasting that operand; beta == 0 never reads C; bias is an optional (N) row vector added
// after the alpha scaling. Supported dtypes: f32; f64; bf16 x bf16 -> f32|bf16; f16 x f16 ->
// f32|f16.
struct GemmDesc {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  DType a_dtype = DType::float32, b_dtype = DType::float32, c_dtype = DType::float32;
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
  float alpha = 1.f, beta = 0.f;
  const void* bias = nullptr;
  DType bias_dtype = DType::float32;
};

using GemmFn = void (*)(const GemmDesc& desc);
FABRIC_DECLARE_STUB(gemm_stub, GemmFn);

}  // namespace fabric
