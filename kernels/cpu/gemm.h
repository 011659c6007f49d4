// CPU GEMM: batched, strided, row-major C = alpha * op(A) * op(B) + bias + beta * C over raw
// pointers. oneDNN does f32/bf16 (matmul primitives; dnnl_sgemm for large f32), f16 goes through an
// exact f32 copy, Eigen does f64.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace fabric::cpu {

struct GemmArgs {
  // For b in [0, batch): C[b] (M x N) = alpha * op(A[b]) (M x K) * op(B[b]) (K x N) + bias
  //                                      + beta * C[b].
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

// Throws DTypeError for an unsupported dtype combination and ValueError for bad sizes, leading
// dims, strides or null pointers. Thread-safe: may be called from several threads at once.
void gemm(const GemmArgs& args);

// Counters of the oneDNN primitive cache (shared by all threads): a repeated problem (same dims,
// leading dims, strides, transposes, dtypes, alpha/beta, bias presence) is a hit.
struct GemmCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t entries = 0;
};
GemmCacheStats gemm_cache_stats();
// Drops every cached primitive and zeroes the counters (tests; freeing memory after a shape sweep).
void gemm_cache_clear();

namespace detail {
// The backends behind gemm(), called after validation with M, N, K, batch > 0.
// gemm_onednn returns false when oneDNN has no primitive for the problem (the caller falls back).
bool gemm_onednn(const GemmArgs& args);
// f32 problems of at least this many multiply-adds (M*N*K per batch entry; default 2^30, 1024^3)
// run on dnnl_sgemm instead of the matmul primitive. Returns the previous value (tests route every
// f32 problem there with 0).
int64_t set_sgemm_min_volume(int64_t volume);
// float32 or float64 only (all operands the same dtype).
void gemm_eigen(const GemmArgs& args);
// f16 x f16 -> f32/f16 (and bf16 when oneDNN has no bf16 primitive): widens the operands exactly
// to f32 scratch, runs the f32 path and rounds an f16/bf16 output once.
void gemm_via_f32(const GemmArgs& args);
}  // namespace detail

}  // namespace fabric::cpu
