// The FP8 GEMM on tensor cores (cuBLASLt, sm_89 and newer) with Transformer Engine's per-tensor
// scales: C = scale_a * scale_b * (A @ B^T) [+ bias], E4M3 or E5M2 operands, fp32 accumulation.
// Free of CUDA headers. The op layer's fp8_gemm (precision/fp8_ops.h) emulates this on the CPU.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace fabric::cuda {

struct Fp8GemmDesc {
  int64_t M = 0, N = 0, K = 0;
  // Operands in the one layout the FP8 tensor cores take ("TN"): A (M x K) and B (N x K), both
  // row-major with K contiguous, as a Linear's input and weight are stored (y = x W^T).
  DType a_dtype = DType::float8_e4m3fn, b_dtype = DType::float8_e4m3fn;  // not both E5M2
  const void* A = nullptr;
  int64_t lda = 0;  // >= K, a multiple of 16
  const void* B = nullptr;
  int64_t ldb = 0;  // >= K, a multiple of 16
  // C (M x N) row-major: float32, bfloat16 or float16.
  DType c_dtype = DType::bfloat16;
  void* C = nullptr;
  int64_t ldc = 0;  // >= N, a multiple of 16 bytes' worth
  // Device pointers to one float each (the dequantizing scale_inv of each operand), 16-byte
  // aligned as every pointer cuBLASLt's FP8 kernels read; null is 1.
  // Device memory keeps delayed scaling on the device: no host round trip per GEMM.
  const float* scale_a = nullptr;
  const float* scale_b = nullptr;
  // Optional (N) bias added before the rounding to C: bfloat16 for float32/bfloat16 C, float16
  // for float16 C (cuBLASLt's rule for FP8).
  const void* bias = nullptr;
  DType bias_dtype = DType::bfloat16;
  // cuBLASLt's fast accumulation: faster, but partial sums are not promoted to full fp32 (what
  // Transformer Engine uses in the forward, not in the backward).
  bool fast_accum = false;
};

// Whether `device` has FP8 tensor cores (compute capability 8.9 or newer). False without a device.
bool fp8_gemm_supported(int device);

// Queues the GEMM on the compute stream of the device that owns C. ValueError for sizes the FP8
// kernels do not take (M, N, K, the leading dims and addresses must be multiples of 16 elements
// or bytes), DTypeError for other dtypes, DeviceError on a GPU older than sm_89.
void gemm_fp8(const Fp8GemmDesc& desc);

}  // namespace fabric::cuda
