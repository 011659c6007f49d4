// CPU GEMM: batched, strided, row-major C = alpha * op(A) * op(B) + bias + beta * C over raw
// pointers. oneDNN does f32/bf16 (matmul primitives; dnnl_sgemm for large f32), f16 goes through an
// exact bf16 hi/lo split on AMX (gemm_f16_split.cpp) or an exact f32 copy, Eigen does f64.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/linalg_kernels.h"

namespace fabric::cpu {

// The device-neutral GEMM description (tensor/linalg_kernels.h): the op layer hands its GemmDesc
// to the CPU kernel as it is.
using GemmArgs = GemmDesc;

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
// The output half of gemm_via_f32, shared with gemm_f16_split: runs `f` (the problem `g` with A and
// B already converted to f32 or bf16) with an f32 accumulator and output: an f16/bf16 C of `g` is
// staged through f32 scratch (read only when beta != 0) and rounded once (RNE), an f16/bf16 bias
// is widened to f32. Returns false, g's C untouched, when oneDNN has no primitive for bf16 operands
// (f32 ones fall back to Eigen).
bool run_with_f32_output(const GemmArgs& g, GemmArgs f);
// f16 x f16 -> f32/f16 on oneDNN's AMX bf16 matmul: every finite f16 x is exactly hi + lo with hi
// and lo bfloat16, so op(A) * op(B) is exactly the bf16 product [Ah Al Ah Al] * [Bh; Bh; Bl; Bl]
// (K' = 4K) with f32 accumulation: gemm_via_f32's result up to summation order. Returns false
// (nothing written) where the route does not apply: no AMX, a size where it was not measured faster
// (the work is 4x: K <= 384, M >= 512), or an inf/NaN in A or B (whose propagation it changes).
bool gemm_f16_split(const GemmArgs& args);
// With `on`, gemm_f16_split takes every f16 problem with finite operands (AMX still required), not
// only the sizes where it was measured faster (tests). Returns the previous setting.
bool force_f16_split(bool on);
// Calls of gemm_f16_split that ran the split product, and those that found an inf/NaN operand and
// left the problem to gemm_via_f32 (process-wide, relaxed counters; tests observe the route).
struct F16SplitStats {
  uint64_t split = 0;
  uint64_t nonfinite = 0;
};
F16SplitStats f16_split_stats();
}  // namespace detail

}  // namespace fabric::cpu
