// layer_norm / rms_norm on CUDA with each row held in registers and read and written in 16-byte
// pieces (4 float32 or 8 bf16/f16 elements). The general kernels (norm_kernels.cu) read a row one
// element a thread at a time, twice in the forward (Welford with a division an element, then the
// output) and twice more in the backward's dx kernel, plus again in a separate dweight/dbias
// kernel. Here:
//   forward   one load of the row, its sum and then the squared deviations about the mean from
//             registers (two passes, as the CPU's kernel), then the output written once;
//   backward  one load of x and dy per row, dx written once, and the thread's columns of dweight
//             and dbias summed over every row it visits in the same kernel: each block strides
//             over the rows, its thread rows' partial sums are folded in thread-row order into
//             one partial row per block, and a second kernel folds the blocks' partial rows in a
//             fixed order (thread row t sums blocks t, t + 8, ..., then the 8 sums in order), so
//             the result does not depend on timing.
// Thread `lane` of a row holds the row's pieces lane, lane + lanes, lane + 2 lanes, ... (a warp's
// k-th load is 32 consecutive pieces, 512 bytes). The per-thread arithmetic lives here as plain
// functions that the host compiles too (tests/cuda/test_norm_rows_wide.cpp replays whole grids,
// with the kernels' fold orders); every product that meets a sum is an explicit fma, and every
// other product a rounded::mul, so both compilers round alike once the host's own contraction is
// off (the replay test is compiled with -ffp-contract=off: g = dy * w meets g - mean(g)). The row
// folds are the kernels' `row_allreduce` (a warp's xor butterfly, then the warps in order). Free of
// CUDA headers.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"
#include "tensor/norm_element.h"
#include "tensor/reduce_kernels.h"

#if defined(__CUDACC__)
#define FABRIC_NORM_ROWS_UNROLL _Pragma("unroll")
#else
#define FABRIC_NORM_ROWS_UNROLL _Pragma("GCC unroll 8")
#endif

namespace fabric::cuda {

inline constexpr int kNormRowsPieceBytes = 16;
inline constexpr int kNormRowsBlockThreads = 256;  // a block: lanes x (256 / lanes) thread rows
// The kernels declare __launch_bounds__(kNormRowsBlockThreads) (their backward holds four rows'
// worth of registers a thread: a 1024-thread bound would cap it at 64 registers and spill), so a
// row takes at most a block: rows up to 256 * 32 = 8,192 elements; longer ones take the general
// kernels.
inline constexpr int kNormRowsMaxLanes = kNormRowsBlockThreads;
inline constexpr int kNormRowsMaxElems = 32;  // row elements a thread holds, at most
// Partial rows of dweight | dbias a finish block folds: kNormRowsFinishX columns, its
// kNormRowsFinishY thread rows striding over the blocks' partial rows.
inline constexpr int kNormRowsFinishX = 32, kNormRowsFinishY = 8;

struct NormRowsWide {
  int64_t rows = 0, cols = 0;
  int elems = 0;       // elements of a piece: 4 (float32) or 8 (bfloat16/float16)
  int lanes = 0;       // threads a row: a power of two, a warp or more (fewer for short rows)
  int per_thread = 0;  // pieces a thread holds: 1, 2, 4, 6 or 8 (never past kNormRowsMaxElems)
  int64_t blocks = 0;  // the grid: a row per thread row (forward), striding blocks (backward)

  FABRIC_HD_INLINE int64_t pieces() const { return cols / elems; }  // of a row
  FABRIC_HD_INLINE int rows_per_block() const {
    return lanes >= kNormRowsBlockThreads ? 1 : kNormRowsBlockThreads / lanes;
  }
  // The first element of slot k of thread `lane`: piece lane + k * lanes of the row.
  FABRIC_HD_INLINE int64_t slot_start(int lane, int k) const {
    return (static_cast<int64_t>(lane) + static_cast<int64_t>(k) * lanes) * elems;
  }
  // Pieces thread `lane` holds of a row (a prefix of its per_thread slots).
  FABRIC_HD_INLINE int live(int lane) const {
    const int64_t left = cols / elems - lane;
    if (left <= 0) return 0;
    const int64_t n = (left + lanes - 1) / lanes;
    return n < per_thread ? static_cast<int>(n) : per_thread;
  }
};

// Whether the wide kernels take this forward / backward: FABRIC_CUDA_WIDE on, x float32, bf16 or
// f16 with cols a multiple of a piece, x, dx and the weight and bias 16-byte aligned, the weight
// and bias absent or of x's dtype, y (dy) of x's dtype or bf16/f16 beside float32 rows and aligned
// to its pieces, rows no longer than kNormRowsMaxLanes threads hold; the backward also needs dx (it
// computes dweight/dbias beside it). Fills `plan`.
bool norm_rows_wide_fits(const NormArgs& a, NormRowsWide* plan);
bool norm_rows_wide_fits(const NormBackwardArgs& a, NormRowsWide* plan);

// The plan for rows of `cols` elements of `itemsize` bytes (cols a multiple of 16 / itemsize):
// the fewest lanes, from a warp, that hold a row within kNormRowsMaxElems elements a thread, and
// a block for every rows_per_block rows (the forward's grid).
NormRowsWide plan_norm_rows_wide(int64_t rows, int64_t cols, int itemsize);

// The backward's grid: blocks striding over the rows, at most `resident` (one wave of the blocks
// the GPU keeps resident, so that few partial rows of dweight/dbias are left to fold).
NormRowsWide norm_rows_backward_grid(NormRowsWide plan, int64_t resident);

// The kernels (norm_rows_wide_kernels.cu), for arguments norm_rows_wide_fits took.
void norm_rows_wide_forward(const NormArgs& a, const NormRowsWide& plan);
void norm_rows_wide_backward(const NormBackwardArgs& a, const NormRowsWide& plan);

// ---- per-thread arithmetic ----------------------------------------------------------------------

// Row `row`'s pieces held by thread `lane`, as floats: piece lane + k * lanes in slot k for the
// `live` slots. load(p, v) reads the piece at element pointer p into v[0..E) (dy's pieces may be
// of a narrower type than x's, E elements all the same).
template <int K, int E, typename T, typename Load>
FABRIC_HD_INLINE void norm_rows_load(const T* base, const NormRowsWide& s, int64_t row, int lane,
                                     int live, const Load& load, float (&v)[K][E]) {
  const T* r = base + row * s.cols;
  FABRIC_NORM_ROWS_UNROLL
  for (int k = 0; k < K; ++k)
    if (k < live) load(r + s.slot_start(lane, k), v[k]);
}

// The thread's share of sum((x - center)^2) over its live slots (center 0: rms_norm's sum of
// squares), or with kPlain of sum(x), slot by slot, each piece in element order.
template <bool kPlain, int K, int E>
FABRIC_HD_INLINE float norm_rows_thread_sum(const float (&v)[K][E], int live, float center) {
  float acc = 0.0f;
  FABRIC_NORM_ROWS_UNROLL
  for (int k = 0; k < K; ++k) {
    if (k >= live) break;
    FABRIC_NORM_ROWS_UNROLL
    for (int j = 0; j < E; ++j) {
      if constexpr (kPlain) {
        acc += v[k][j];
      } else {
        const float d = v[k][j] - center;
        acc = rounded::fma(d, d, acc);
      }
    }
  }
  return acc;
}

// The output pieces of the thread's slots, each element as norm_element rounds it (weight and
// bias pieces read with `load`, absent ones skipped); store(p, y) writes piece y at p, rounded to
// the output's type O (x's, or a narrower one: the autocast cast fused into the norm).
template <bool kW, bool kB, int K, int E, typename O, typename P, typename Load, typename Store>
FABRIC_HD_INLINE void norm_rows_write(O* out, const P* weight, const P* bias, const NormRowsWide& s,
                                      int64_t row, int lane, int live, const float (&v)[K][E],
                                      float mean, float rstd, const Load& load,
                                      const Store& store) {
  FABRIC_NORM_ROWS_UNROLL
  for (int k = 0; k < K; ++k) {
    if (k >= live) break;
    const int64_t c = s.slot_start(lane, k);
    float w[E], b[E], y[E];
    if constexpr (kW) load(weight + c, w);
    if constexpr (kB) load(bias + c, b);
    FABRIC_NORM_ROWS_UNROLL
    for (int j = 0; j < E; ++j)
      y[j] = norm::norm_element<kW, kB>(v[k][j], mean, rstd, kW ? w[j] : 0.0f, kB ? b[j] : 0.0f);
    store(out + row * s.cols + c, y);
  }
}

// Backward, first half for one row: x's slots become xhat = (x - mean) * rstd in place, and the
// thread's shares of sum(g) and sum(g * xhat) with g = dy * weight (dy without a weight).
template <bool kW, int K, int E, typename T, typename Load>
FABRIC_HD_INLINE void norm_rows_backward_sums(float (&xhat)[K][E], const float (&dy)[K][E],
                                              const T* weight, const NormRowsWide& s, int lane,
                                              int live, float mean, float rstd, const Load& load,
                                              float& sum_g, float& sum_gx) {
  sum_g = 0.0f;
  sum_gx = 0.0f;
  FABRIC_NORM_ROWS_UNROLL
  for (int k = 0; k < K; ++k) {
    if (k >= live) break;
    float w[E];
    if constexpr (kW) load(weight + s.slot_start(lane, k), w);
    FABRIC_NORM_ROWS_UNROLL
    for (int j = 0; j < E; ++j) {
      xhat[k][j] = rounded::mul(xhat[k][j] - mean, rstd);
      const float g = kW ? rounded::mul(dy[k][j], w[j]) : dy[k][j];
      sum_g += g;
      sum_gx = rounded::fma(g, xhat[k][j], sum_gx);
    }
  }
}

// Backward, second half for one row: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (rms_norm
// without mean(g)) stored piece by piece, and the row added to the thread's running column sums
// dweight += dy * xhat, dbias += dy.
template <bool kW, int K, int E, typename T, typename Load, typename Store>
FABRIC_HD_INLINE void norm_rows_backward_dx(T* dx, const float (&xhat)[K][E],
                                            const float (&dy)[K][E], const T* weight,
                                            const NormRowsWide& s, int64_t row, int lane, int live,
                                            float rstd, float mean_g, float mean_gx,
                                            const Load& load, const Store& store, float (&dw)[K][E],
                                            float (&db)[K][E]) {
  FABRIC_NORM_ROWS_UNROLL
  for (int k = 0; k < K; ++k) {
    if (k >= live) break;
    const int64_t c = s.slot_start(lane, k);
    float w[E], out[E];
    if constexpr (kW) load(weight + c, w);
    FABRIC_NORM_ROWS_UNROLL
    for (int j = 0; j < E; ++j) {
      const float g = kW ? rounded::mul(dy[k][j], w[j]) : dy[k][j];
      out[j] = rounded::mul(rstd, rounded::fma(-xhat[k][j], mean_gx, g - mean_g));
      dw[k][j] = rounded::fma(dy[k][j], xhat[k][j], dw[k][j]);
      db[k][j] += dy[k][j];
    }
    store(dx + row * s.cols + c, out);
  }
}

// The rows thread row `y` of block `b` visits, in order: b * rows_per_block + y, then a whole
// grid's rows further each time. `step` counts the block's iterations, which every thread row
// of a block runs alike (the row folds synchronise the block); the row may be past the end.
FABRIC_HD_INLINE int64_t norm_rows_backward_row(const NormRowsWide& s, int64_t b, int y,
                                                int64_t step) {
  const int64_t rpb = s.rows_per_block();
  return (step * s.blocks + b) * rpb + y;
}
FABRIC_HD_INLINE int64_t norm_rows_backward_steps(const NormRowsWide& s, int64_t b) {
  const int64_t rpb = s.rows_per_block(), first = b * rpb, stride = s.blocks * rpb;
  return first >= s.rows ? 0 : (s.rows - first + stride - 1) / stride;
}

}  // namespace fabric::cuda
