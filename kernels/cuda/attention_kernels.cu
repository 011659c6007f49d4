// CUDA fused scaled-dot-product attention (tensor/attention_kernels.h), the FlashAttention-2
// scheme on CUDA cores: fp32 FMA from shared-memory tiles, no tensor-core fragments. The functions
// at the bottom (attention_ours.h; attention_dispatch.cpp offers cuDNN a problem first) offer each
// problem to the tensor-core kernels of attention_mma_kernels.cu (bf16/f16 without dropout on
// sm_80+; FABRIC_ATTENTION_MMA=0 turns them off); these kernels take float32, dropout and
// whatever those decline. Nothing in
// the development loop could run these kernels, so the layout is chosen to be easy to check by
// reading rather than to be fastest: one mapping of threads to rows everywhere, one tile shape,
// every index guarded, and every float computed in a fixed order (the results do not depend on
// timing, and the backward uses no atomics).
//
// Thread layout (all three main kernels): a block of kThreads = 256 threads owns kRows = 32 rows
// of one (batch, head) (query rows in the forward and dQ kernels, key rows in the dK/dV kernel).
// Each row belongs to a group of kGroup = 8 consecutive lanes; lane g of a group holds the row's
// columns g, g + 8, g + 16, ... (kD / 8 of them) in registers. A dot product of the row with a row
// of the other operand is 8 partial sums folded by a butterfly of shuffles inside the group, which
// leaves the same bits in all 8 lanes, so every lane of a group sees identical scores and softmax
// statistics without shared memory. The other operand streams through shared memory kTile = 32
// rows at a time as float32: lanes of a group read 8 consecutive words of one tile row, and the 4
// groups of a warp read the same words (a broadcast), so the reads are free of bank conflicts.
// Tiles are zero-filled past L, S, E and Ev, and every score past them (or above the causal
// diagonal) is masked explicitly, so sizes need not be multiples of anything. kD (the head size
// rounded up to 64 or 128) is a template parameter so that the per-lane register arrays have
// compile-time sizes; two float tiles of kTile x kD are 32 KB at kD = 128, under the 48 KB of
// static shared memory.
//
// Forward, one block per (batch, head, 32 query rows): loop over key tiles (stopping at the last
// tile that the block's diagonal reaches when causal), scores for the 32 keys of the tile in
// registers, online softmax (running max m and sum l, the accumulator rescaled by exp(m_old -
// m_new)), out = acc / l and lse = m + log(l).
// Backward: (1) D_i = sum_c dO[i,c] O[i,c] into scratch; (2) one block per (batch, head, 32 keys)
// loops over query tiles, recomputes P = exp(scale q k^T - lse) and accumulates dV += P^T dO and
// dK += dS^T Q with dS = P (dO v^T - D), scaled once at the end; (3) one block per (batch, head, 32
// query rows) loops over key tiles and accumulates dQ = scale dS K. Each output row is written by
// exactly one block, which is what makes the backward deterministic without atomics.
//
// Dropout (0 < p < 1): the mask is the dropout op's (tensor/random_kernels.h) over the (batch,
// heads, L, S) probabilities, so a run matches the composition softmax -> dropout -> matmul drawn
// from the same generator state, and the backward regenerates the mask instead of storing L x S
// bits. Before each 32 x 32 tile of (query, key) pairs is used, the block draws its keep bits into
// shared memory: each query's 32 keys are 32 consecutive elements, which lie in at most 9 Philox
// blocks, so the block runs 32 x 9 block draws (about one per thread) rather than one per element
// per lane. The forward's softmax statistics (m, l, lse) stay those of the undropped scores; only
// the accumulator takes Z p v, Z = kept ? (float)(T)(1/(1-p)) : 0. The backward uses the
// undropped P: dV += Z P dO, dS = P (Z dP - D), with D = rowsum(dO O) of the dropped output.
// Dropout is a template flag of the three kernels: the kernels without it are the code they were
// before it existed (same registers, no mask tile).
//
// Blocks are numbered tile-major (all heads of one tile, then the next tile), and the forward and
// dQ kernels take query tiles from the last one down: under a causal mask those tiles (and the
// first key tiles of the dK/dV kernel) have the most work, and starting them first keeps the tail
// of the grid short.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_layout.h"
#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/attention_ours.h"
#include "kernels/cuda/attention_row_dot.cuh"
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/attention_kernels.h"
#include "tensor/random_kernels.h"

namespace fabric::cuda {
namespace {

using attention::BlockPos;
using attention::causal_keeps;

constexpr int kGroup = 8;                  // lanes per row
constexpr int kRows = 32;                  // rows owned by a block
constexpr int kThreads = kRows * kGroup;   // 256
constexpr int kTile = 32;                  // rows of the streamed operand per shared-memory tile
constexpr int64_t kMaxHead = 128;          // larger E or Ev: declined
constexpr int64_t kMaxGrid = 2147483647;   // gridDim.x limit

static_assert(32 % kGroup == 0, "a row's lanes must sit inside one warp for the shuffles");
static_assert(kRows == kTile, "a dropout tile is kRows x kTile in every kernel");

template <typename T>
__device__ __forceinline__ float to_f32(const T* p) {
  return cast_value<float>(*p);
}
template <typename T>
__device__ __forceinline__ void store_f32(T* p, float v) {
  *p = cast_value<T>(v);
}

// The sum of v over the kGroup lanes of a row. XOR butterflies add the same pairs in every lane
// (float addition is commutative), so all lanes of the group get bit-identical results. Every
// lane of the warp must call it.
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int m = kGroup / 2; m > 0; m /= 2) v += shfl_xor(v, m);
  return v;
}

// exp for attention::softmax_step: these kernels' scores are in natural-log units.
struct ExpE {
  FABRIC_HD_INLINE float operator()(float x) const { return expf(x); }
};

// One operand of the problem: element strides between batches, heads and rows, last dim
// contiguous. Also used for the contiguous (batch, heads, rows, cols) tensors of the backward.
template <typename T>
struct Operand {
  const T* p;
  int64_t bs, hs, rs;
  __device__ __forceinline__ const T* row(int64_t b, int64_t h, int64_t r) const {
    return p + b * bs + h * hs + r * rs;
  }
};

template <typename T>
Operand<T> operand_of(const AttentionOperand& o) {
  return {static_cast<const T*>(o.data), o.batch_stride, o.head_stride, o.row_stride};
}
template <typename T>
Operand<T> contiguous_operand(const void* p, int64_t heads, int64_t rows, int64_t cols) {
  return {static_cast<const T*>(p), heads * rows * cols, rows * cols, cols};
}

// Stages rows [row0, row0 + kTile) x cols [0, kD) of `src` as float, zero past `rows` and `cols`
// (zero keys and zero columns add nothing to the dot products; masked scores are handled
// separately). Consecutive threads read consecutive columns of a row: coalesced.
template <typename T, int kD>
__device__ __forceinline__ void load_tile(float (&dst)[kTile][kD], const Operand<T>& src,
                                          int64_t b, int64_t h, int64_t row0, int64_t rows,
                                          int cols) {
  for (int idx = static_cast<int>(threadIdx.x); idx < kTile * kD; idx += kThreads) {
    const int r = idx / kD, c = idx % kD;
    const int64_t row = row0 + r;
    dst[r][c] = (row < rows && c < cols) ? to_f32(src.row(b, h, row) + c) : 0.0f;
  }
}

// Lane g's columns (g, g + kGroup, ...) of one row, zero past `cols` or when the row is absent.
template <typename T, int kSlice>
__device__ __forceinline__ void load_slice(float (&dst)[kSlice], const T* row, bool present,
                                           int cols, int g) {
#pragma unroll
  for (int c = 0; c < kSlice; ++c) {
    const int col = g + c * kGroup;
    dst[c] = (present && col < cols) ? to_f32(row + col) : 0.0f;
  }
}

template <typename T, int kSlice>
__device__ __forceinline__ void store_slice(T* row, const float (&src)[kSlice], float mul,
                                            int cols, int g) {
#pragma unroll
  for (int c = 0; c < kSlice; ++c) {
    const int col = g + c * kGroup;
    if (col < cols) store_f32(row + col, src[c] * mul);
  }
}

// The dot product of lane g's register slice with row r of a shared tile, partial (not folded).
template <int kD, int kSlice>
__device__ __forceinline__ float slice_dot(const float (&x)[kSlice], const float (&tile)[kTile][kD],
                                           int r, int g) {
  float acc = 0.0f;
#pragma unroll
  for (int c = 0; c < kSlice; ++c) acc = fmaf(x[c], tile[r][g + c * kGroup], acc);
  return acc;
}

// ---- dropout -----------------------------------------------------------------------------------

struct DropoutParams {
  bool on;                   // dropout_p > 0: the host launches the kernels with kDrop = true
  float scale;               // 1/(1-p) rounded to the element type
  attention::KeepDraw draw;  // seed, offset, threshold = ceil((1-p) 2^24)
};

// The 32 keys of one query span at most 9 Philox blocks (4 elements each).
constexpr int kDropBlocksPerRow = attention::keep_tasks_per_row(kTile);

// keep[qi][kj] = whether element (query q0 + qi, key k0 + kj) of head bh is kept, 0 for queries
// past L or keys past S: the kTile x 9 tasks of attention::draw_keep_task (one Philox block each,
// about one per thread) rather than one draw per element per lane. Called by all threads of the
// block; a barrier must follow before keep is read.
__device__ __forceinline__ void draw_keep_tile(uint8_t (&keep)[kTile][kTile],
                                               const DropoutParams& d, int64_t bh, int64_t L,
                                               int64_t S, int64_t q0, int64_t k0) {
  for (int t = static_cast<int>(threadIdx.x); t < kTile * kDropBlocksPerRow; t += kThreads)
    attention::draw_keep_task<kTile>(keep, d.draw, bh, L, S, q0, k0, t / kDropBlocksPerRow,
                                     t % kDropBlocksPerRow);
}

// Where this thread stands (the thread layout of the header): its lane g in its row's group, its
// row r of the block, the block's (batch, head, tile) in the tile-major numbering, the block's
// first row, this thread's row (a query, or a key in the dK/dV kernel) and whether that row exists
// (is below `rows`, L or S).
struct ThreadRow {
  int g, r;
  BlockPos pos;
  int64_t first, row;
  bool present;
};
__device__ __forceinline__ ThreadRow thread_row(int64_t bh_count, int64_t heads, int64_t tiles,
                                                int64_t rows, bool last_tile_first) {
  ThreadRow t;
  t.g = static_cast<int>(threadIdx.x) % kGroup;
  t.r = static_cast<int>(threadIdx.x) / kGroup;
  t.pos = attention::block_pos(static_cast<int64_t>(blockIdx.x), bh_count, heads, tiles,
                               last_tile_first);
  t.first = t.pos.tile * kRows;
  t.row = t.first + t.r;
  t.present = t.row < rows;
  return t;
}

// ---- forward ----------------------------------------------------------------------------------

// The problem, as the forward and the backward kernels both see it (set_problem).
template <typename T>
struct ProblemParams {
  Operand<T> q, k, v;
  int64_t bh, heads, L, S;
  int E, Ev;
  int64_t q_tiles;
  float scale;
  bool causal;
  DropoutParams drop;
};

template <typename T>
struct ForwardParams : ProblemParams<T> {
  T* out;      // contiguous (batch, heads, L, Ev)
  float* lse;  // contiguous (batch, heads, L)
};

template <typename T, int kD, bool kDrop>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(ForwardParams<T> a) {
  constexpr int kSlice = kD / kGroup;
  __shared__ float ks[kTile][kD];
  __shared__ float vs[kTile][kD];
  __shared__ uint8_t keep[kRows][kTile];  // [query][key], when dropout is on

  const auto [g, r, pos, q0, i, row_ok] = thread_row(a.bh, a.heads, a.q_tiles, a.L, true);

  float q[kSlice];
  load_slice<T, kSlice>(q, a.q.row(pos.b, pos.h, row_ok ? i : 0), row_ok, a.E, g);
  float acc[kSlice];
#pragma unroll
  for (int c = 0; c < kSlice; ++c) acc[c] = 0.0f;
  float m = -dev_inf<float>(), l = 0.0f;

  // Keys at or past q0 + kRows are above the diagonal for every row of the block. The loop
  // bounds are block-uniform, so the __syncthreads inside are reached by all threads. Rows past L
  // run along on zero q (their results are never stored) to keep the block in step.
  const int64_t k_end = attention::key_end(a.causal, a.S, q0, kRows);
  for (int64_t k0 = 0; k0 < k_end; k0 += kTile) {
    __syncthreads();  // the previous tile's readers are done
    load_tile<T, kD>(ks, a.k, pos.b, pos.h, k0, a.S, a.E);
    load_tile<T, kD>(vs, a.v, pos.b, pos.h, k0, a.S, a.Ev);
    if constexpr (kDrop) draw_keep_tile(keep, a.drop, pos.bh, a.L, a.S, q0, k0);
    __syncthreads();

    float s[kTile];
#pragma unroll
    for (int j = 0; j < kTile; ++j) s[j] = slice_dot<kD, kSlice>(q, ks, j, g);
    float tile_max = -dev_inf<float>();
#pragma unroll
    for (int j = 0; j < kTile; ++j) {
      const int64_t key = k0 + j;
      const bool ok = key < a.S && causal_keeps(a.causal, i, key);
      const float dot = group_sum(s[j]);  // outside the select: every lane must shuffle
      s[j] = ok ? dot * a.scale : -dev_inf<float>();
      tile_max = fmaxf(tile_max, s[j]);
    }
    // The first tile holds key 0, which every row attends (causal keeps j = 0 <= i), so the max
    // is finite from the first tile on: alpha is 0 there (m = -inf) and exp(-inf) = 0 removes the
    // masked keys (softmax_step's guard would keep a row with nothing attended at 0, not NaN).
    const attention::SoftmaxStep step = attention::softmax_step(m, tile_max, ExpE{});
    const float alpha = step.alpha;
    float p_sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kTile; ++j) {
      s[j] = dev_exp(s[j] - step.base);
      p_sum += s[j];
    }
    l = l * alpha + p_sum;
#pragma unroll
    for (int c = 0; c < kSlice; ++c) acc[c] *= alpha;
    // l sums the undropped p; the accumulator takes Z p (Z = 0 or the scale).
    if constexpr (kDrop) {
#pragma unroll
      for (int j = 0; j < kTile; ++j) s[j] = keep[r][j] ? s[j] * a.drop.scale : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kTile; ++j) {
#pragma unroll
      for (int c = 0; c < kSlice; ++c) acc[c] = fmaf(s[j], vs[j][g + c * kGroup], acc[c]);
    }
    m = step.m;
  }

  if (!row_ok) return;  // no barrier follows
  const int64_t row = pos.bh * a.L + i;
  store_slice<T, kSlice>(a.out + row * a.Ev, acc, 1.0f / l, a.Ev, g);
  if (g == 0) a.lse[row] = m + dev_log(l);
}

// ---- backward ---------------------------------------------------------------------------------

template <typename T>
struct BackwardParams : ProblemParams<T> {
  Operand<T> grad_out;          // contiguous (batch, heads, L, Ev)
  const float* lse;             // (batch, heads, L)
  const float* d;               // (batch, heads, L), from attention_row_dot.cuh
  T *grad_q, *grad_k, *grad_v;  // contiguous (batch, heads, L|S, E|Ev)
  int64_t k_tiles;
};

// dK, dV for 32 keys of one (batch, head): query tiles stream through shared memory with their
// dO rows, lse and D.
template <typename T, int kD, bool kDrop>
__global__ void __launch_bounds__(kThreads) attention_backward_kv_kernel(BackwardParams<T> a) {
  constexpr int kSlice = kD / kGroup;
  __shared__ float qs[kTile][kD];
  __shared__ float dos[kTile][kD];
  __shared__ float lse_s[kTile];
  __shared__ float d_s[kTile];
  __shared__ uint8_t keep[kTile][kRows];  // [query][key], when dropout is on

  const auto [g, r, pos, k0, j, key_ok] = thread_row(a.bh, a.heads, a.k_tiles, a.S, false);

  float kr[kSlice], vr[kSlice], dk[kSlice], dv[kSlice];
  load_slice<T, kSlice>(kr, a.k.row(pos.b, pos.h, key_ok ? j : 0), key_ok, a.E, g);
  load_slice<T, kSlice>(vr, a.v.row(pos.b, pos.h, key_ok ? j : 0), key_ok, a.Ev, g);
#pragma unroll
  for (int c = 0; c < kSlice; ++c) dk[c] = dv[c] = 0.0f;

  // Queries before k0 attend none of these keys under the causal mask. When the first such
  // tile is already past L (keys beyond the last query when L < S), the loop does not run and
  // the zero gradients are written.
  const int64_t q_begin = attention::query_begin(a.causal, k0);
  const int64_t stat_base = pos.bh * a.L;
  for (int64_t q0 = q_begin; q0 < a.L; q0 += kTile) {
    __syncthreads();  // the previous tile's readers are done
    load_tile<T, kD>(qs, a.q, pos.b, pos.h, q0, a.L, a.E);
    load_tile<T, kD>(dos, a.grad_out, pos.b, pos.h, q0, a.L, a.Ev);
    const int t = static_cast<int>(threadIdx.x);
    if (t < kTile) {
      const int64_t i = q0 + t;
      lse_s[t] = i < a.L ? a.lse[stat_base + i] : 0.0f;
      d_s[t] = i < a.L ? a.d[stat_base + i] : 0.0f;
    }
    if constexpr (kDrop) draw_keep_tile(keep, a.drop, pos.bh, a.L, a.S, q0, k0);
    __syncthreads();

#pragma unroll 2
    for (int ii = 0; ii < kTile; ++ii) {
      const int64_t i = q0 + ii;
      // Same products in the same order as the forward's score, so P matches the forward's.
      const float s = group_sum(slice_dot<kD, kSlice>(kr, qs, ii, g));
      const float dp = group_sum(slice_dot<kD, kSlice>(vr, dos, ii, g));
      const bool ok = key_ok && i < a.L && causal_keeps(a.causal, i, j);
      // A select, not a multiply by 0: absent rows have lse = 0 and would give exp(s) otherwise.
      const float p = ok ? dev_exp(s * a.scale - lse_s[ii]) : 0.0f;
      // Dropout: dV takes Z P, dS = P (Z dP - D).
      float zp = p, zdp = dp;
      if constexpr (kDrop) {
        const float z = keep[ii][r] ? a.drop.scale : 0.0f;
        zp = z * p;
        zdp = z * dp;
      }
      const float ds = p * (zdp - d_s[ii]);
#pragma unroll
      for (int c = 0; c < kSlice; ++c) {
        dv[c] = fmaf(zp, dos[ii][g + c * kGroup], dv[c]);
        dk[c] = fmaf(ds, qs[ii][g + c * kGroup], dk[c]);
      }
    }
  }

  if (!key_ok) return;  // no barrier follows
  const int64_t row = pos.bh * a.S + j;
  store_slice<T, kSlice>(a.grad_k + row * a.E, dk, a.scale, a.E, g);
  store_slice<T, kSlice>(a.grad_v + row * a.Ev, dv, 1.0f, a.Ev, g);
}

// dQ for 32 query rows of one (batch, head): key tiles stream through shared memory with their
// value rows.
template <typename T, int kD, bool kDrop>
__global__ void __launch_bounds__(kThreads) attention_backward_q_kernel(BackwardParams<T> a) {
  constexpr int kSlice = kD / kGroup;
  __shared__ float ks[kTile][kD];
  __shared__ float vs[kTile][kD];
  __shared__ uint8_t keep[kRows][kTile];  // [query][key], when dropout is on

  const auto [g, r, pos, q0, i, row_ok] = thread_row(a.bh, a.heads, a.q_tiles, a.L, true);

  float qr[kSlice], dor[kSlice], dq[kSlice];
  load_slice<T, kSlice>(qr, a.q.row(pos.b, pos.h, row_ok ? i : 0), row_ok, a.E, g);
  load_slice<T, kSlice>(dor, a.grad_out.row(pos.b, pos.h, row_ok ? i : 0), row_ok, a.Ev, g);
#pragma unroll
  for (int c = 0; c < kSlice; ++c) dq[c] = 0.0f;
  const int64_t stat = pos.bh * a.L + i;
  const float lse_i = row_ok ? a.lse[stat] : 0.0f;
  const float d_i = row_ok ? a.d[stat] : 0.0f;

  const int64_t k_end = attention::key_end(a.causal, a.S, q0, kRows);
  for (int64_t k0 = 0; k0 < k_end; k0 += kTile) {
    __syncthreads();  // the previous tile's readers are done
    load_tile<T, kD>(ks, a.k, pos.b, pos.h, k0, a.S, a.E);
    load_tile<T, kD>(vs, a.v, pos.b, pos.h, k0, a.S, a.Ev);
    if constexpr (kDrop) draw_keep_tile(keep, a.drop, pos.bh, a.L, a.S, q0, k0);
    __syncthreads();

#pragma unroll 2
    for (int jj = 0; jj < kTile; ++jj) {
      const int64_t j = k0 + jj;
      const float s = group_sum(slice_dot<kD, kSlice>(qr, ks, jj, g));
      const float dp = group_sum(slice_dot<kD, kSlice>(dor, vs, jj, g));
      const bool ok = row_ok && j < a.S && causal_keeps(a.causal, i, j);
      const float p = ok ? dev_exp(s * a.scale - lse_i) : 0.0f;
      float zdp = dp;
      if constexpr (kDrop) zdp = (keep[r][jj] ? a.drop.scale : 0.0f) * dp;
      const float ds = p * (zdp - d_i);
#pragma unroll
      for (int c = 0; c < kSlice; ++c) dq[c] = fmaf(ds, ks[jj][g + c * kGroup], dq[c]);
    }
  }

  if (!row_ok) return;
  store_slice<T, kSlice>(a.grad_q + stat * a.E, dq, a.scale, a.E, g);
}

// ---- host side --------------------------------------------------------------------------------

// The register width for head sizes E and Ev: 64 or 128, 0 when they do not fit.
int head_width(int64_t E, int64_t Ev) {
  const int64_t e = E > Ev ? E : Ev;
  if (E < 1 || Ev < 1 || e > kMaxHead) return 0;
  return e <= 64 ? 64 : 128;
}

bool takes_dtype(DType t) {
  return t == DType::float32 || t == DType::bfloat16 || t == DType::float16;
}

int64_t tiles_of(int64_t n) { return (n + kRows - 1) / kRows; }

// Whether every grid of the forward and the backward fits gridDim.x. Checked by the forward only,
// since the backward must take every problem the forward took.
bool grids_fit(const AttentionArgs& a) {
  if (a.batch < 0 || a.heads < 0 || a.batch > kMaxGrid || a.heads > kMaxGrid) return false;
  const int64_t bh = a.batch * a.heads;  // < 2^62: no overflow
  if (bh > kMaxGrid) return false;
  if (bh == 0) return true;
  return tiles_of(a.L) <= kMaxGrid / bh && tiles_of(a.S) <= kMaxGrid / bh;
}

// The fields ForwardParams and BackwardParams share, from the op's arguments.
template <typename T>
void set_problem(ProblemParams<T>& p, const AttentionArgs& a, int64_t bh, int64_t q_tiles) {
  p.q = operand_of<T>(a.q);
  p.k = operand_of<T>(a.k);
  p.v = operand_of<T>(a.v);
  p.bh = bh;
  p.heads = a.heads;
  p.L = a.L;
  p.S = a.S;
  p.E = static_cast<int>(a.E);
  p.Ev = static_cast<int>(a.Ev);
  p.q_tiles = q_tiles;
  p.scale = static_cast<float>(a.scale);
  p.causal = a.causal;
  p.drop.on = a.dropout_p > 0.0;
  p.drop.scale = 1.0f;
  p.drop.draw = {a.seed, a.offset, 0u};
  if (p.drop.on) {
    // The dropout op's rule (kernels/cpu/random.cpp dropout_typed): the same threshold, and
    // torch's scale for the element type (dropout_scale).
    p.drop.draw.threshold = static_cast<uint32_t>(dropout_keep_threshold(a.dropout_p));
    p.drop.scale = static_cast<float>(dropout_scale(a.dropout_p, a.dtype));
  }
}

// Calls f(T{}, width) with the element type of dtype t and the head width as a compile-time
// constant. Only for problems takes_dtype and head_width accepted.
template <typename F>
void visit_problem(DType t, int width, F&& f) {
  auto with_width = [&](auto tag) {
    if (width == 64) {
      f(tag, std::integral_constant<int, 64>{});
    } else {
      f(tag, std::integral_constant<int, 128>{});
    }
  };
  switch (t) {
    case DType::float32:
      return with_width(float{});
    case DType::bfloat16:
      return with_width(BFloat16{});
    case DType::float16:
      return with_width(Half{});
    default:
      break;
  }
  throw DTypeError(detail::cat("attention CUDA kernel: no kernel for ", dtype_name(t)));
}

// Calls f(std::bool_constant<on>{}): the kernels with and without dropout are separate
// instantiations, so the mask code costs the kernels without it nothing (registers included).
template <typename F>
void with_dropout(bool on, F&& f) {
  if (on) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

}  // namespace

bool attention_forward_ours(const AttentionArgs& a, void* out, void* lse) {
  FABRIC_CHECK(
      !a.out_strides, ValueError,
      "attention forward (CUDA): out must be contiguous (batch, heads, L, Ev), got strides");
  // The tensor-core kernels (attention_mma_kernels.cu); what they decline runs here.
  if (attention_forward_mma(a, out, lse)) return true;
  // dropout_p = 1 (everything dropped) is left to the composition; NaN fails both tests.
  if (!takes_dtype(a.dtype) || !(a.dropout_p >= 0.0 && a.dropout_p < 1.0)) return false;
  const int width = head_width(a.E, a.Ev);
  if (width == 0 || a.L < 1 || a.S < 1 || !grids_fit(a)) return false;
  const int64_t bh = a.batch * a.heads;
  if (bh == 0) return true;  // nothing to write

  LaunchContext ctx(out);
  const int64_t q_tiles = tiles_of(a.L);
  visit_problem(a.dtype, width, [&](auto tag, auto w) {
    using T = decltype(tag);
    constexpr int kD = decltype(w)::value;
    ForwardParams<T> p;
    set_problem(p, a, bh, q_tiles);
    p.out = static_cast<T*>(out);
    p.lse = static_cast<float*>(lse);
    with_dropout(p.drop.on, [&](auto drop) {
      attention_forward_kernel<T, kD, decltype(drop)::value>
          <<<grid_dim(q_tiles * bh), kThreads, 0, ctx.stream>>>(p);
      FABRIC_CUDA_CHECK_LAUNCH();
    });
  });
  return true;
}

void attention_backward_ours(const AttentionBackwardArgs& args) {
  FABRIC_CHECK(!args.fwd.out_strides && !args.grad_out_strides && !args.grad_q_strides &&
                   !args.grad_k_strides && !args.grad_v_strides,
               ValueError,
               "attention backward (CUDA): out, grad_out and the gradients must be contiguous "
               "(batch, heads, L|S, E|Ev), got strides for one of them");
  // Exactly what attention_forward_mma took.
  if (attention_backward_mma(args)) return;
  const AttentionArgs& a = args.fwd;
  const int width = head_width(a.E, a.Ev);
  FABRIC_CHECK(takes_dtype(a.dtype) && width != 0 && grids_fit(a) && a.dropout_p >= 0.0 &&
                   a.dropout_p < 1.0,
               ValueError, "attention backward (CUDA): a problem the forward kernel declines (dtype ",
               dtype_name(a.dtype), ", E ", a.E, ", Ev ", a.Ev, ", dropout_p ", a.dropout_p, ")");
  const int64_t bh = a.batch * a.heads;
  if (bh == 0) return;

  LaunchContext ctx(args.grad_q);
  const int64_t rows = bh * a.L;
  // D lives only for the three launches below: the caching allocator orders its reuse on the
  // compute stream they run on, so releasing it when this function returns is safe.
  DeviceScratch d(ctx.device, static_cast<size_t>(rows) * sizeof(float));
  const int64_t q_tiles = tiles_of(a.L), k_tiles = tiles_of(a.S);
  visit_problem(a.dtype, width, [&](auto tag, auto w) {
    using T = decltype(tag);
    constexpr int kD = decltype(w)::value;
    launch_attention_row_dot(static_cast<const T*>(args.out), static_cast<const T*>(args.grad_out),
                             d.as<float>(), rows, a.Ev, ctx.stream);

    BackwardParams<T> p;
    set_problem(p, a, bh, q_tiles);
    p.grad_out = contiguous_operand<T>(args.grad_out, a.heads, a.L, a.Ev);
    p.lse = static_cast<const float*>(args.lse);
    p.d = d.as<float>();
    p.grad_q = static_cast<T*>(args.grad_q);
    p.grad_k = static_cast<T*>(args.grad_k);
    p.grad_v = static_cast<T*>(args.grad_v);
    p.k_tiles = k_tiles;
    with_dropout(p.drop.on, [&](auto drop) {
      attention_backward_kv_kernel<T, kD, decltype(drop)::value>
          <<<grid_dim(k_tiles * bh), kThreads, 0, ctx.stream>>>(p);
      FABRIC_CUDA_CHECK_LAUNCH();
      attention_backward_q_kernel<T, kD, decltype(drop)::value>
          <<<grid_dim(q_tiles * bh), kThreads, 0, ctx.stream>>>(p);
      FABRIC_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace fabric::cuda
