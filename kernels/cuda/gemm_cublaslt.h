// The CUDA GEMM of fabric through cuBLASLt (the kernel behind gemm_stub on CUDA), its TF32 switch,
// the bias/GELU epilogue entry points for fused layers, and the heuristic cache's counters.
// Free of CUDA headers: benchmarks and tests include it from plain C++ translation units.
#pragma once
#include <cstdint>

#include "kernels/cuda/alignment.h"
#include "tensor/linalg_kernels.h"

namespace fabric::cuda {

// Whether float32 GEMMs may run on TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32): 10 mantissa
// bits per product, about 1e-3 relative. Off by default, as torch.backends.cuda.matmul.allow_tf32.
// Process-wide; takes effect for the next GEMM. Returns the previous value. The same switch as
// the public fabric::set_allow_tf32 (tensor/device_control.h).
bool set_allow_tf32(bool allow);
bool allow_tf32();

// C = alpha * op(A) op(B) + bias + beta * C for a GemmDesc whose pointers are CUDA memory of one
// device (the stub kernel; see tensor/linalg_kernels.h for the contract, the same as the CPU's).
// f16/bf16 accumulate in float32 (CUBLAS_COMPUTE_32F), f64 in float64. Queued on the device's
// compute stream; returns without waiting. DTypeError/ValueError as the CPU kernel for bad input.
// Where cuBLASLt has no kernel (a layout, an alignment, a bias dtype its epilogue does not take),
// plain cuBLAS computes the product and a kernel of ours adds the bias.
void gemm(const GemmDesc& desc);

// The fused epilogues of GPT-2's MLP (c_fc + GELU; its backward), reached by the gelu_mlp op
// through gemm_gelu_stub / gemm_dgelu_stub. cuBLASLt's GELU is the tanh approximation (GPT-2's,
// nn.GELU(approximate="tanh")), taken for bfloat16/float16 C only. Where cuBLASLt has no
// algorithm for the fused epilogue, for float32 C, or with FABRIC_CUDA_GEMM_EPILOGUES=0, the plain
// GEMM and our elementwise GELU (or GELU backward) give the same result, a 16-bit C rounded once
// more before the GELU.
struct GeluAux {
  void* data = nullptr;  // (batch, M, N) row-major in C's dtype, leading dim ld; null: not kept
  int64_t ld = 0;        // >= N and a multiple of 8 (cuBLASLt's rule)
  int64_t stride = 0;    // elements between batches; a multiple of 8
};
// C = gelu(alpha * op(A) op(B) + bias + beta * C), desc.bias optional. With aux.data, the GELU
// input (the pre-activation) is also written to aux, for the backward.
void gemm_bias_gelu(const GemmDesc& desc, const GeluAux& aux = {});
// The GELU backward fused into the GEMM that produces the pre-activation's gradient:
// C = (alpha * op(A) op(B) + beta * C) * gelu'(aux), aux the pre-activation kept by
// gemm_bias_gelu. desc.bias must be null.
void gemm_dgelu(const GemmDesc& desc, const GeluAux& aux);

// The plans (cuBLASLt heuristic results) cached per problem: shapes, leading dims, batch and its
// strides, transposes, dtypes, epilogue, pointer alignments, TF32 mode and device. A repeated
// problem is a hit. Calls with a GELU, DGELU or bias-gradient epilogue count as fused when
// cuBLASLt ran it, as declined when they took the fallback (the same values, so only these counts
// tell whether the epilogues run on a GPU).
struct GemmPlanStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t entries = 0;
  uint64_t fused_epilogues = 0;
  uint64_t declined_epilogues = 0;
};
GemmPlanStats gemm_plan_stats();
void gemm_plan_cache_clear();  // drops every plan and zeroes the counters

// Bytes of the per-device cuBLASLt workspace (taken from the caching allocator on first use).
inline constexpr int64_t kGemmWorkspaceBytes = int64_t{32} << 20;

namespace detail {
// The cuBLASLt handle (a cublasLtHandle_t) and the workspace of `device`, made on first use and
// kept for the life of the process; shared with the FP8 GEMM (gemm_fp8.h).
void* cublaslt_handle(int device);
void* cublaslt_workspace(int device);
// Whether cuBLASLt may be handed the epilogue's bias and aux pointers: its alignment preferences
// describe A, B, C and D only, so the heuristic can pick a kernel that assumes a 16-byte-aligned
// bias (or aux) and then faults with "misaligned address", a sticky error that ends the process's
// use of the device (pytorch/pytorch#194497; Marian's cuBLASLt path requires 16 bytes too). A bias
// or aux view at an offset goes to the unfused path instead. A null pointer is no constraint.
inline constexpr int64_t kEpilogueAlignment = 16;
inline bool epilogue_pointers_aligned(const void* bias, const void* aux) {
  return aligned_to(bias, kEpilogueAlignment) && aligned_to(aux, kEpilogueAlignment);
}
// C[b] = beta * C[b] + bias over desc's (batch, M, N) C (gemm_epilogue.cu), in float32 (float64
// for float64 C) and rounded once; beta == 0 never reads C; desc.bias may be null. Queued on the
// compute stream of `device`. A and B are ignored.
void gemm_scale_add_bias(int device, const GemmDesc& desc);
}  // namespace detail

}  // namespace fabric::cuda
