// Column sums of a contiguous (rows, cols) float32/bf16/f16 array in 16-byte pieces: the bias
// gradients of a model's linear layers (sum over the batch and sequence of dY). The general
// column-mode reduction gives a warp 32 consecutive columns, one element each (64 bytes a load in
// bf16, where a GPU wants 128 or more in flight per instruction); here a thread takes 8
// consecutive columns, a warp 256 (512 bytes a bf16 load). The rows are split over gridDim.y;
// within a block the 8 thread rows' partial sums are folded in thread-row order, then the splits'
// partials in split order, so the result does not depend on timing. Plain functions the host can
// run (tests/cuda/test_col_sum_wide.cpp replays whole grids); free of CUDA headers.
#pragma once
#include <cstdint>

#include "tensor/reduce_kernels.h"

#if defined(__CUDACC__)
#define FABRIC_COLSUM_HD __host__ __device__ __forceinline__
#define FABRIC_COLSUM_UNROLL _Pragma("unroll")
#else
#define FABRIC_COLSUM_HD inline
#define FABRIC_COLSUM_UNROLL _Pragma("GCC unroll 8")
#endif

namespace fabric::cuda {

inline constexpr int kColSumPiece = 8;    // columns a thread
inline constexpr int kColSumBlockX = 32;  // threads across: 256 columns a block
inline constexpr int kColSumBlockY = 8;   // thread rows, striding down the block's rows

struct ColSumWide {
  int64_t rows = 0, cols = 0;
  int64_t rows_per_split = 0, splits = 1;
  int64_t col_blocks() const {
    return (cols + kColSumBlockX * kColSumPiece - 1) / (kColSumBlockX * kColSumPiece);
  }
};

// Whether a sum reduction is a column sum the wide kernel takes: op sum with no finish or divisor,
// a float32/bf16/f16 input read as one contiguous (rows, cols) block from a 16-byte aligned
// address (the reduced dims outermost), cols a multiple of 8, and a contiguous output of cols
// elements. Returns rows and cols through `shape`.
bool col_sum_wide_fits(ReduceOp op, const ReduceGeometry& g, const ReduceParams& p,
                       ColSumWide* shape);

// The split of the rows for a GPU of `sms` multiprocessors: enough blocks for four per SM, each
// split at least 32 rows per thread row.
ColSumWide plan_col_sum_wide(int64_t rows, int64_t cols, int sms);

// Thread (x, y) of block (bx, split): the sums of its 8 columns over its rows (split's rows
// y, y + 8, ...), each column in row order. Columns past cols stay 0.
template <typename T, typename Load>
FABRIC_COLSUM_HD void col_sum_wide_thread(const T* in, const ColSumWide& s, int64_t bx, int x,
                                          int64_t split, int y, const Load& load,
                                          float (&acc)[kColSumPiece]) {
  FABRIC_COLSUM_UNROLL
  for (int j = 0; j < kColSumPiece; ++j) acc[j] = 0.0f;
  const int64_t c0 = (bx * kColSumBlockX + x) * kColSumPiece;
  if (c0 >= s.cols) return;
  const int64_t r0 = split * s.rows_per_split;
  const int64_t r1 = r0 + s.rows_per_split < s.rows ? r0 + s.rows_per_split : s.rows;
  for (int64_t r = r0 + y; r < r1; r += kColSumBlockY) {
    float v[kColSumPiece];
    load(in + r * s.cols + c0, v);
    FABRIC_COLSUM_UNROLL
    for (int j = 0; j < kColSumPiece; ++j) acc[j] += v[j];
  }
}

}  // namespace fabric::cuda
