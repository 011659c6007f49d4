// LLM.int8 (bitsandbytes Linear8bitLt, spec §7): row- and column-wise int8 quantization with the
// outlier threshold, the int8 x int8 -> int32 GEMM and its dequantization, and the mixed
// int8/16-bit linear forward.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::precision {

struct Int8RowQuant {
  Tensor CA;                          // int8, shape of A
  Tensor SCA;                         // float32 (rows): per-row absmax of the non-outliers
  std::vector<int64_t> outlier_cols;  // ascending; empty when threshold <= 0 or no outliers
};

// A (float16, bfloat16 or float32, CPU or CUDA, shape (..., K); rows = numel / K); CA and SCA on
// A's device (reading outlier_cols back waits for it, only with a threshold). With threshold > 0,
// |a| >= threshold marks an outlier: it is left out of its row's absmax and quantized as 0, and
// (when rows > 1) its whole column is zeroed in CA. q = RNE(a · f32(127 / absmax)); a row whose
// absmax is 0 quantizes to 0.
Int8RowQuant int8_vectorwise_quant(const Tensor& A, double threshold = 0.0);

struct Int8ColQuant {
  Tensor CAt;                         // int8 (K, rows): column k of A quantized, stored as row k
  Tensor SCAt;                        // float32 (K): per-column absmax of the non-outliers
  std::vector<int64_t> outlier_cols;  // ascending; empty when threshold <= 0 or no outliers
};

// bitsandbytes' column-wise statistics of double_quant (CAt, SCAt), as MatMul8bitLt keeps them for
// the weight gradient. A (float16, bfloat16 or float32, CPU or CUDA, shape (..., K); rows = numel /
// K): q = RNE(a · f32(127 / absmax_k)) per column k; a column whose absmax is 0 quantizes to 0.
// With threshold > 0, |a| >= threshold marks an outlier: it is left out of its column's absmax, and
// its whole column is 0 in CAt even with one row (MatMul8bitLt zeroes CAt[:, idx] and computes
// those columns in 16-bit). CAt is the transpose of bitsandbytes' layout, (K, rows), so that
// int8_matmul(CGt, CAt) contracts over the rows. A caller that already holds A's outlier columns
// for this threshold (the row-wise quantization of the same A found the same ones) passes them as
// `known_outlier_cols`: they are then not read back from the device (one wait less on CUDA, as
// bitsandbytes' int8_double_quant reads them once for both).
Int8ColQuant int8_colwise_quant(const Tensor& A, double threshold = 0.0,
                                const std::vector<int64_t>* known_outlier_cols = nullptr);

// bitsandbytes' mm_dequant: C (M, N) int32 with row_stats (M) and col_stats (N) float32 ->
// f32(C · f32(row_stats[m] · col_stats[n]) · f32(1/127²)) rounded once to `dtype` (float32,
// float16 or bfloat16), the forward's operation order, on C's device (the stats on the same one).
Tensor int8_mm_dequant(const Tensor& C, const Tensor& row_stats, const Tensor& col_stats,
                       DType dtype);

// CA (int8, (..., K)) and SCA (float32, rows) -> float32: (q · stats) · 7.874015718698502e-3,
// each product rounded to float32 in that order, as bitsandbytes' default backend computes
// `A * stats.view(-1, 1) * 7.874015718698502e-3`, on CA's device.
Tensor int8_vectorwise_dequant(const Tensor& CA, const Tensor& SCA);

// A (M, K) int8 · B (N, K)ᵀ int8 -> int32 (M, N), exact (oneDNN s8s8s32 on the CPU, dp4a tiles on
// CUDA).
Tensor int8_matmul(const Tensor& A, const Tensor& B);

// The Linear8bitLt forward with frozen int8 weights: X (..., K) float16 (or bfloat16/float32),
// CB (N, K) int8 and SCB (N) float32 from int8_vectorwise_quant(W, 0), bias (N) or undefined.
// out = f32(int32 · f32(SCA[r] · SCB[c]) · f32(1/127²)) + bias, cast to X's dtype; then, for
// the outlier columns of X, out += X[:, cols] · (CB[:, cols] · SCB / 127)ᵀ with the dequantized
// weight columns in X's dtype, accumulated in fp32 (one fused multiply-add per column, in column
// order) and rounded once. Output (..., N), X's dtype.
// With trainable fp16 weights (bitsandbytes' has_fp16_weights), pass that weight (N, K) as
// `fp16_weight`: the outlier columns then use its exact columns (MatMul8bitLt's state.subB =
// B[:, idx]) instead of the int8-dequantized ones; CB and SCB still give the int8 product.
// `x_outlier_cols`, when given, receives X's outlier columns (ascending).
Tensor int8_linear_forward(const Tensor& X, const Tensor& CB, const Tensor& SCB,
                           const Tensor& bias = Tensor(), double threshold = 6.0,
                           const Tensor& fp16_weight = Tensor(),
                           std::vector<int64_t>* x_outlier_cols = nullptr);

}  // namespace fabric::precision
