// CUDA fused attention on tensor cores (tensor/attention_kernels.h, through attention_mma.h): the
// FlashAttention-2 scheme with mma.sync.m16n8k16 (bf16/f16 operands, fp32 accumulators) for bf16
// and f16 problems without dropout, head sizes up to 128, on sm_80 and newer. Everything else (f32,
// dropout, older devices, FABRIC_ATTENTION_MMA=0) stays with the CUDA-core kernels of
// attention_kernels.cu, whose dispatch calls this path first. Like those kernels, every index is
// guarded (any L, S; tiles are zero-filled past the problem and masked scores are selected away,
// never multiplied by 0), and the backward is deterministic without atomics.
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"): with lane
// l = 4 g + t (g = groupID = l >> 2, t = threadID_in_group = l % 4),
//   A (16x16, 4 registers): a[0] = (row g, cols 2t, 2t+1), a[1] = row g+8, a[2] = row g, cols
//     2t+8, 2t+9, a[3] = row g+8, cols 2t+8, 2t+9; the lower column in the lower 16 bits;
//   B (16x8, 2 registers): b[0] = (rows/k 2t, 2t+1; col/n g), b[1] = rows 2t+8, 2t+9;
//   C (16x8 fp32): c[0], c[1] = (row g, cols 2t, 2t+1), c[2], c[3] = row g+8.
// So the C tiles of columns [16j, 16j+8) and [16j+8, 16j+16), packed pairwise to 16 bits, are
// exactly the A fragment of k-step j: probabilities (and dS) go from the accumulators of one mma
// straight into the next one without shared memory (pack_a below).
// Operands reach registers through ldmatrix.x4 from shared-memory tiles stored row-major (one row
// per token, head dims contiguous, rows padded by 8 elements so that the 8 row addresses of each
// 8x8 matrix fall in distinct banks): without .trans it yields A fragments of a row-major tile and
// B fragments when the tile is stored [n][k] (K for Q K^T: n = key, k = dim); with .trans it yields
// B fragments of a tile stored [k][n] (V for P V: k = key, n = dim).
//
// Thread layout: 4 warps per block; a warp owns 16 rows (queries in the forward and dQ kernels,
// keys in the dK/dV kernel), so a thread holds 2 rows (g and g+8) of every accumulator and its
// row statistics are folded over the 4 lanes of a quad with two xor shuffles.
// Forward, one block per (batch, head, 64 queries): Q fragments stay in registers; K and V tiles of
// 64 keys stream through two shared-memory buffers (stopping after the diagonal tile when causal;
// Q is staged in the second buffer before tile 1 needs it); S = Q K^T,
// online softmax in the log2 domain (scale * log2(e) folded into one multiply, exp2), O += P V,
// then out = O / l and lse = ln 2 * m + ln l (natural log, as the contract).
// Backward: (1) D = rowsum(dO * O); (2) one block per (batch, head, 64 keys), each warp 16 keys,
// loops over query tiles of 32 (from the diagonal on when causal): S^T = K Q^T, P^T = exp(S^T -
// lse), dP^T = V dO^T, dS^T = P^T (dP^T - D), dV += P^T dO, dK += dS^T Q, dK scaled once at the
// end; (3) one block per (batch, head, 64 queries) loops over key tiles of 32: dQ += dS K. Each
// output row is written by one block. The backward tiles are 32 wide to keep the dK and dV
// accumulators (64 + 64 registers at head size 128) next to the score tiles without spilling.
//
// Global loads: 16-byte vectors when every operand's base and strides are multiples of 8 elements
// (and E, Ev too), else one element at a time; both zero-fill past the problem. The streamed tiles
// (K, V in the forward and dQ kernels, Q, dO in the dK/dV kernel) are double buffered: each
// iteration waits for its tile, passes one barrier (the tile is visible, the other buffer's
// readers are done), issues the next tile into the other buffer and computes. On the vector path
// the loads are cp.async 16-byte copies (sm_80; src-size 0 zero-fills chunks outside the problem),
// one commit group per tile, so the next tile's latency hides behind this tile's math; on the
// element path they stay synchronous loads in the same schedule (correct, not overlapped). The
// tiles loaded once per block (Q, or K and V, or Q and dO) are cp.async copies too. lse and D
// rows of the dK/dV kernel are plain loads into the same double buffer.
// Blocks are numbered tile-major; the forward and dQ kernels take their query tiles from the last
// one down (the most work under a causal mask first), as the CUDA-core kernels do.
//
// Shared memory (head size 128 / 64): forward 68 / 36 KB (2 x (K, V) tiles of 64 rows of 136 / 72
// elements), dQ 68 / 36 KB (Q, dO, 2 x (K, V) of 32 rows), dK/dV 68.5 / 36.5 KB (K, V, 2 x (Q,
// dO) of 32 rows, 2 x lse, D). ptxas (CUDA 13, sm_80 / sm_90, no spills): forward 189 / 188
// registers at 128 and 132 / 124 at 64; dK/dV 246 / 248 and 167 / 166; dQ 209 / 208 and 145 / 147.
// So at head size 128 2 blocks of 4 warps fit per SM (registers; shared memory allows 2 on sm_80,
// 3 on sm_90), and at 64 3 (the forward 4 on sm_90).
// Not done yet (performance, not correctness): the element path (unaligned or odd strides) loads
// synchronously. P and dS are rounded to the element type before their second mma, as in
// FlashAttention-2; the row sums l use the unrounded fp32 probabilities.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <type_traits>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/attention_layout.h"
#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/attention_row_dot.cuh"
#include "kernels/cuda/mma_util.cuh"
#include "kernels/cuda/reduce_util.cuh"

namespace fabric::cuda {
namespace attention_mma {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockRows = kWarps * 16;  // rows a block owns (queries, or keys in dK/dV)
constexpr int kFwdKeys = 64;             // keys per forward tile
constexpr int kBwdTile = 32;             // queries (dK/dV) or keys (dQ) per backward tile
constexpr int kPad = 8;                  // elements after each shared-memory row
constexpr int64_t kMaxHead = 128;
constexpr int64_t kMaxGrid = 2147483647;

struct Operand {
  const uint16_t* p;  // raw bf16/f16 bits
  int64_t bs, hs, rs;
};

struct Params {
  Operand q, k, v, dout;  // dout: contiguous (batch, heads, L, Ev), backward only
  void* out;              // forward: (batch, heads, L, Ev) in T
  float* lse_out;         // forward
  const float* lse;       // backward
  const float* d;         // backward: rowsum(dO * O)
  void *dq, *dk, *dv;     // backward outputs in T
  int64_t bh, heads, L, S;
  int E, Ev;
  int64_t tiles;  // of the launched kernel's grid
  float scale;    // scale * log2(e) is folded in where scores meet the softmax
  bool causal;
  bool vec_qkv, vec_dout;  // 16-byte global loads allowed
};

// The device code below is compiled only for sm_80+ (and the host pass): built for an older
// architecture, the kernels are empty and never launched (see mma_runs_on).
#if FABRIC_MMA_ARCH_OK
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Row 0 of head (b, h) of an operand.
__device__ __forceinline__ const uint16_t* head_of(const Operand& o, int64_t b, int64_t h) {
  return o.p + b * o.bs + h * o.hs;
}

using attention::BlockPos;
using attention::causal_keeps;

// This block's (batch, head, tile) in the tile-major numbering.
__device__ __forceinline__ BlockPos block_pos(const Params& p, bool last_tile_first) {
  return attention::block_pos(static_cast<int64_t>(blockIdx.x), p.bh, p.heads, p.tiles,
                              last_tile_first);
}

// Rows [row0, row0 + kRows) x cols [0, kD) of one head of an operand (src = its row 0) into a
// padded shared tile, zero past `rows` and `cols`. Consecutive threads take consecutive 16-byte
// chunks (or elements) of a row: coalesced. With kAsync and vec, the chunks are cp.async copies
// joining this thread's open group (chunks outside the problem: src-size 0, from row 0), so the
// tile is there only after the group is committed and waited for and then a barrier; otherwise
// the loads are synchronous and the tile is there after a barrier.
template <int kRows, int kD, bool kAsync = false>
__device__ __forceinline__ void load_tile(uint16_t* dst, const uint16_t* src, int64_t rs,
                                          int64_t row0, int64_t rows, int cols, bool vec) {
  constexpr int kStride = kD + kPad;
  const int tid = static_cast<int>(threadIdx.x);
  if (vec) {  // cols % 8 == 0 here, so a chunk is wholly inside or wholly outside
    constexpr int kChunks = kD / 8;
    if constexpr (kAsync) {
      // Not unrolled: the forward kernel issues these between two tiles' math, and unrolled
      // copies keep their addresses live across the loop (registers the accumulators need).
#pragma unroll 1
      for (int idx = tid; idx < kRows * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = (idx % kChunks) * 8;
        const int64_t row = row0 + r;
        const bool in = row < rows && c < cols;
        mma::cp_async_16(dst + r * kStride + c, in ? src + row * rs + c : src, in ? 16 : 0);
      }
    } else {
      for (int idx = tid; idx < kRows * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = (idx % kChunks) * 8;
        const int64_t row = row0 + r;
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (row < rows && c < cols) x = *reinterpret_cast<const uint4*>(src + row * rs + c);
        *reinterpret_cast<uint4*>(dst + r * kStride + c) = x;
      }
    }
  } else {
    for (int idx = tid; idx < kRows * kD; idx += kThreads) {
      const int r = idx / kD, c = idx % kD;
      const int64_t row = row0 + r;
      dst[r * kStride + c] = (row < rows && c < cols) ? src[row * rs + c] : uint16_t{0};
    }
  }
}

// A fragment of rows [r0, r0 + 16) x cols [c0, c0 + 16) of a row-major tile: matrices 0..3 are
// (rows +0, cols +0), (rows +8, cols +0), (rows +0, cols +8), (rows +8, cols +8) = a[0..3].
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const uint16_t* tile, int stride, int r0,
                                       int c0, int lane) {
  const attention::RowCol at = attention::ldmatrix_a_row(lane);
  mma::ldmatrix_x4(a, tile + (r0 + at.row) * stride + c0 + at.col);
}

// B fragments of the n-tiles [n0, n0 + 8) and [n0 + 8, n0 + 16) at k-step [k0, k0 + 16) from a
// tile stored [n][k]: b[0..1] for the first n-tile, b[2..3] for the second. Matrix m is n rows
// n0 + 8 (m / 2) ... and k columns k0 + 8 (m % 2).
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[4], const uint16_t* tile, int stride,
                                          int n0, int k0, int lane) {
  const attention::RowCol at = attention::ldmatrix_b_nk_row(lane);
  mma::ldmatrix_x4(b, tile + (n0 + at.row) * stride + k0 + at.col);
}

// The same from a tile stored [k][n], transposed on the way: matrix m is k rows k0 + 8 (m % 2) ...
// and n columns n0 + 8 (m / 2).
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[4], const uint16_t* tile, int stride,
                                          int k0, int n0, int lane) {
  const attention::RowCol at = attention::ldmatrix_b_kn_row(lane);
  mma::ldmatrix_x4_trans(b, tile + (k0 + at.row) * stride + n0 + at.col);
}

// acc[n] += a * (b[0], b[1]) and acc[n + 1] += a * (b[2], b[3]).
template <typename T>
__device__ __forceinline__ void mma_pair(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[4]) {
  const uint32_t lo[2] = {b[0], b[1]}, hi[2] = {b[2], b[3]};
  mma::mma_16816<T>(c0, a, lo);
  mma::mma_16816<T>(c1, a, hi);
}

// The A fragment of k-step j from the fp32 accumulators of columns [16 j, 16 j + 16), rounded to T
// (attention::pack_a: c0 -> a[0], a[1]; c1 -> a[2], a[3]).
template <typename T>
struct Pack2 {
  __device__ __forceinline__ uint32_t operator()(float lo, float hi) const {
    return mma::pack2<T>(lo, hi);
  }
};
template <typename T>
__device__ __forceinline__ void pack_a(uint32_t (&a)[4], const float (&c0)[4],
                                       const float (&c1)[4]) {
  attention::pack_a(a, c0, c1, Pack2<T>{});
}

// exp2 for attention::softmax_step: the forward's scores are in log2 units.
struct Exp2 {
  FABRIC_HD_INLINE float operator()(float x) const { return exp2f(x); }
};

// The max and sum over the 4 lanes of a quad (the lanes holding one accumulator row). XOR
// butterflies give bit-identical results in all 4 lanes.
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, shfl_xor(v, 1));
  return fmaxf(v, shfl_xor(v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += shfl_xor(v, 1);
  return v + shfl_xor(v, 2);
}

// Stores the 16 x kD accumulator tile of a warp (rows row0 + g and row0 + g + 8 of this thread)
// into a contiguous (rows, cols) matrix, times mul[0] / mul[1] per row, skipping rows >= rows and
// columns >= cols.
template <typename T, int kN>
__device__ __forceinline__ void store_rows(T* base, const float (&acc)[kN][4], int64_t row0,
                                           int64_t rows, int cols, const float (&mul)[2],
                                           int lane) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = row0 + attention::accumulator_at(lane, 2 * half).row;
    if (row >= rows) continue;
    T* dst = base + row * cols;
#pragma unroll
    for (int n = 0; n < kN; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = n * 8 + attention::accumulator_at(lane, 2 * half + e).col;
        if (c < cols) dst[c] = cast_value<T>(acc[n][2 * half + e] * mul[half]);
      }
    }
  }
}

// The K and V tiles of kRows keys from key k0 into dst (K's rows, then V's) as one cp.async group
// (synchronous loads, and an empty group, on the element path): the streamed tile of the forward
// and dQ kernels.
template <int kRows, int kD>
__device__ __forceinline__ void fetch_kv(uint16_t* dst, const Params& p, const uint16_t* kh,
                                         const uint16_t* vh, int64_t k0) {
  load_tile<kRows, kD, true>(dst, kh, p.k.rs, k0, p.S, p.E, p.vec_qkv);
  load_tile<kRows, kD, true>(dst + kRows * (kD + kPad), vh, p.v.rs, k0, p.S, p.Ev, p.vec_qkv);
  mma::cp_async_commit();
}

// c1 = A1 B1^T and c2 = A2 B2^T for this warp's 16 rows of the row-major tiles a1 and a2 against
// the kN * 8 rows of b1 and b2 (tiles stored [n][k]), over the head dimension in k-steps of 16:
// the two score-shaped products of every backward tile (S and dP in the dQ kernel, their
// transposes in the dK/dV kernel). kUnrollK is the k loop's unroll count.
template <typename T, int kD, int kN, int kUnrollK>
__device__ __forceinline__ void paired_products(float (&c1)[kN][4], float (&c2)[kN][4],
                                                const uint16_t* a1, const uint16_t* a2,
                                                const uint16_t* b1, const uint16_t* b2, int warp,
                                                int lane) {
  constexpr int kStride = kD + kPad;
#pragma unroll
  for (int n = 0; n < kN; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) c1[n][i] = c2[n][i] = 0.0f;
  }
#pragma unroll kUnrollK
  for (int kk = 0; kk < kD / 16; ++kk) {
    uint32_t x1[4], x2[4];
    load_a(x1, a1, kStride, warp * 16, kk * 16, lane);
    load_a(x2, a2, kStride, warp * 16, kk * 16, lane);
#pragma unroll
    for (int np = 0; np < kN / 2; ++np) {
      uint32_t b[4];
      load_b_nk(b, b1, kStride, np * 16, kk * 16, lane);
      mma_pair<T>(c1[2 * np], c1[2 * np + 1], x1, b);
      load_b_nk(b, b2, kStride, np * 16, kk * 16, lane);
      mma_pair<T>(c2[2 * np], c2[2 * np + 1], x2, b);
    }
  }
}

#endif  // FABRIC_MMA_ARCH_OK

// ---- forward ----------------------------------------------------------------------------------

// Two buffers, each a K tile and a V tile of kFwdKeys rows; Q is staged in buffer 1 until it is in
// registers (tile 1 overwrites it).
template <int kD>
constexpr size_t forward_smem() {
  return static_cast<size_t>(2 * 2 * kFwdKeys) * (kD + kPad) * sizeof(uint16_t);
}
static_assert(kBlockRows <= 2 * kFwdKeys, "Q is staged in one K, V buffer");

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) attention_mma_forward_kernel(Params p) {
#if FABRIC_MMA_ARCH_OK
  constexpr int kStride = kD + kPad;
  constexpr int kK = kD / 16;       // k-steps over the head dim
  constexpr int kN = kFwdKeys / 8;  // score n-tiles per key tile
  constexpr int kO = kD / 8;        // output n-tiles
  constexpr int kBuf = 2 * kFwdKeys * kStride;  // elements of one K, V buffer
  uint16_t* smem = reinterpret_cast<uint16_t*>(mma::dynamic_smem());
  uint16_t* qs = smem + kBuf;

  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const BlockPos pos = block_pos(p, true);
  const int64_t q0 = pos.tile * kBlockRows;
  // This thread's accumulator rows: elements 0, 1 and 2, 3 (attention::accumulator_at).
  const int64_t row[2] = {q0 + warp * 16 + attention::accumulator_at(lane, 0).row,
                          q0 + warp * 16 + attention::accumulator_at(lane, 2).row};
  const uint16_t* kh = head_of(p.k, pos.b, pos.h);
  const uint16_t* vh = head_of(p.v, pos.b, pos.h);

  load_tile<kBlockRows, kD, true>(qs, head_of(p.q, pos.b, pos.h), p.q.rs, q0, p.L, p.E,
                                  p.vec_qkv);
  mma::cp_async_commit();
  fetch_kv<kFwdKeys, kD>(smem, p, kh, vh, 0);  // tile 0 flies while Q goes to registers
  mma::cp_async_wait<1>();  // this thread's Q chunks
  __syncthreads();
  uint32_t qf[kK][4];
#pragma unroll
  for (int kk = 0; kk < kK; ++kk) load_a(qf[kk], qs, kStride, warp * 16, kk * 16, lane);

  float o[kO][4];
#pragma unroll
  for (int n = 0; n < kO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-dev_inf<float>(), -dev_inf<float>()};  // running max, log2 units
  float l[2] = {0.0f, 0.0f};  // this thread's part of the running sum (quad-summed at the end)
  const float sl2 = p.scale * kLog2e;

  // Tile j is in buffer j % 2. One barrier per tile: after it, tile j is visible to every thread
  // and every warp is done with buffer (j + 1) % 2 (tile j - 1, or Q), so tile j + 1 is issued
  // into it right away and flies during tile j's math.
  const int64_t k_end = attention::key_end(p.causal, p.S, q0, kBlockRows);
  int buf = 0;
  for (int64_t k0 = 0; k0 < k_end; k0 += kFwdKeys, buf ^= 1) {
    mma::cp_async_wait<0>();  // this thread's copies of tile j (the only group pending)
    __syncthreads();
    if (k0 + kFwdKeys < k_end)
      fetch_kv<kFwdKeys, kD>(smem + (buf ^ 1) * kBuf, p, kh, vh, k0 + kFwdKeys);
    const uint16_t* ks = smem + buf * kBuf;
    const uint16_t* vs = ks + kFwdKeys * kStride;

    float s[kN][4];
#pragma unroll
    for (int n = 0; n < kN; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kK; ++kk) {
#pragma unroll
      for (int np = 0; np < kN / 2; ++np) {
        uint32_t b[4];
        load_b_nk(b, ks, kStride, np * 16, kk * 16, lane);
        mma_pair<T>(s[2 * np], s[2 * np + 1], qf[kk], b);
      }
    }

    // Mask (keys past S, above the diagonal) and move to log2 units; the tile max per row.
    float tmax[2] = {-dev_inf<float>(), -dev_inf<float>()};
#pragma unroll
    for (int n = 0; n < kN; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t key = k0 + n * 8 + attention::accumulator_at(lane, i).col;
        const bool ok = key < p.S && causal_keeps(p.causal, row[i >> 1], key);
        s[n][i] = ok ? s[n][i] * sl2 : -dev_inf<float>();
        tmax[i >> 1] = fmaxf(tmax[i >> 1], s[n][i]);
      }
    }
    float base[2], alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // Every row sees key 0 in the first tile, so the max is finite from there on and alpha is 0
      // on the first tile (m = -inf); softmax_step's guard would keep a row with nothing attended
      // at 0 instead of NaN all the same.
      const attention::SoftmaxStep step = attention::softmax_step(m[r], quad_max(tmax[r]), Exp2{});
      base[r] = step.base;
      alpha[r] = step.alpha;
      m[r] = step.m;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int n = 0; n < kN; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[n][i] = exp2f(s[n][i] - base[i >> 1]);  // masked: exp2(-inf) = 0
        l[i >> 1] += s[n][i];
      }
    }
#pragma unroll
    for (int n = 0; n < kO; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }

    // O += P V: P's k-steps are 16 keys; V's rows past S are zero and P is 0 there.
#pragma unroll
    for (int j = 0; j < kFwdKeys / 16; ++j) {
      uint32_t a[4];
      pack_a<T>(a, s[2 * j], s[2 * j + 1]);
#pragma unroll
      for (int np = 0; np < kO / 2; ++np) {
        uint32_t b[4];
        load_b_kn(b, vs, kStride, j * 16, np * 16, lane);
        mma_pair<T>(o[2 * np], o[2 * np + 1], a, b);
      }
    }
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = quad_sum(l[r]);
    inv[r] = 1.0f / l[r];
  }
  store_rows<T, kO>(static_cast<T*>(p.out) + pos.bh * p.L * p.Ev, o, q0 + warp * 16, p.L, p.Ev, inv,
                    lane);
  if ((lane & 3) == 0) {  // one lane of the quad holding the rows
#pragma unroll
    for (int r = 0; r < 2; ++r)
      if (row[r] < p.L) p.lse_out[pos.bh * p.L + row[r]] = m[r] * kLn2 + logf(l[r]);
  }
#endif
}

// ---- backward ---------------------------------------------------------------------------------

// dK/dV kernel: K and V (kBlockRows rows each), then two buffers of a Q and a dO tile (kBwdTile
// rows), then two buffers of the tile's lse and D.
template <int kD>
constexpr size_t backward_kv_smem() {
  return static_cast<size_t>(2 * kBlockRows + 2 * 2 * kBwdTile) * (kD + kPad) * sizeof(uint16_t) +
         2 * 2 * kBwdTile * sizeof(float);
}
// dQ kernel: Q and dO (kBlockRows rows each) and two buffers of a K and a V tile (kBwdTile rows).
template <int kD>
constexpr size_t backward_q_smem() {
  return static_cast<size_t>(2 * kBlockRows + 2 * 2 * kBwdTile) * (kD + kPad) * sizeof(uint16_t);
}

// dK, dV for 64 keys of one (batch, head); warp w owns keys k0 + 16 w ... + 15.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) attention_mma_backward_kv_kernel(Params p) {
#if FABRIC_MMA_ARCH_OK
  constexpr int kStride = kD + kPad;
  constexpr int kN = kBwdTile / 8;  // query n-tiles of S^T
  constexpr int kO = kD / 8;
  constexpr int kBuf = 2 * kBwdTile * kStride;  // elements of one Q, dO buffer
  uint16_t* ks = reinterpret_cast<uint16_t*>(mma::dynamic_smem());
  uint16_t* vs = ks + kBlockRows * kStride;
  uint16_t* qdos = vs + kBlockRows * kStride;  // two Q, dO buffers
  float* stats = reinterpret_cast<float*>(qdos + 2 * kBuf);  // two (lse in log2 units, D) buffers

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const BlockPos pos = block_pos(p, false);
  const int64_t k0 = pos.tile * kBlockRows;
  // This thread's accumulator rows: elements 0, 1 and 2, 3 (attention::accumulator_at).
  const int64_t key[2] = {k0 + warp * 16 + attention::accumulator_at(lane, 0).row,
                          k0 + warp * 16 + attention::accumulator_at(lane, 2).row};
  const int64_t stat = pos.bh * p.L;
  const uint16_t* qh = head_of(p.q, pos.b, pos.h);
  const uint16_t* doh = head_of(p.dout, pos.b, pos.h);
  // The Q and dO tile at query q0 into buffer `buf` as one cp.async group, with its lse and D
  // (plain loads and stores: they are read after the same barrier as the tile).
  auto fetch_qdo = [&](int buf, int64_t q0) {
    uint16_t* qs = qdos + buf * kBuf;
    load_tile<kBwdTile, kD, true>(qs, qh, p.q.rs, q0, p.L, p.E, p.vec_qkv);
    load_tile<kBwdTile, kD, true>(qs + kBwdTile * kStride, doh, p.dout.rs, q0, p.L, p.Ev,
                                  p.vec_dout);
    mma::cp_async_commit();
    if (tid < kBwdTile) {
      float* st = stats + buf * 2 * kBwdTile;
      const int64_t i = q0 + tid;
      st[tid] = i < p.L ? p.lse[stat + i] * kLog2e : 0.0f;
      st[kBwdTile + tid] = i < p.L ? p.d[stat + i] : 0.0f;
    }
  };

  load_tile<kBlockRows, kD, true>(ks, head_of(p.k, pos.b, pos.h), p.k.rs, k0, p.S, p.E,
                                  p.vec_qkv);
  load_tile<kBlockRows, kD, true>(vs, head_of(p.v, pos.b, pos.h), p.v.rs, k0, p.S, p.Ev,
                                  p.vec_qkv);
  mma::cp_async_commit();
  // Queries before k0 attend none of these keys under the causal mask (k0 is a multiple of the
  // query tile). When that is already past L the loop does not run and zeros are written.
  const int64_t q_begin = attention::query_begin(p.causal, k0);
  if (q_begin < p.L) fetch_qdo(0, q_begin);

  float dk[kO][4], dv[kO][4];
#pragma unroll
  for (int n = 0; n < kO; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) dk[n][i] = dv[n][i] = 0.0f;
  }
  const float sl2 = p.scale * kLog2e;

  // Query tile j is in buffer j % 2, pipelined as in the forward: after the wait and the barrier,
  // tile j (and, the first time, K and V) is visible and buffer (j + 1) % 2 is free for tile j + 1.
  int buf = 0;
  for (int64_t q0 = q_begin; q0 < p.L; q0 += kBwdTile, buf ^= 1) {
    mma::cp_async_wait<0>();
    __syncthreads();
    if (q0 + kBwdTile < p.L) fetch_qdo(buf ^ 1, q0 + kBwdTile);
    const uint16_t* qs = qdos + buf * kBuf;
    const uint16_t* dos = qs + kBwdTile * kStride;
    const float* lse_s = stats + buf * 2 * kBwdTile;
    const float* d_s = lse_s + kBwdTile;

    float st[kN][4], dpt[kN][4];  // S^T and dP^T: rows = this warp's keys, cols = queries
    // k loop not unrolled: kk only moves addresses, and unrolling would let the compiler hoist
    // loads of later k-steps into registers the dK and dV accumulators need.
    paired_products<T, kD, kN, 1>(st, dpt, ks, vs, qs, dos, warp, lane);
    // P^T = exp(S^T - lse) (a select keeps absent pairs at 0), dS^T = P^T (dP^T - D).
#pragma unroll
    for (int n = 0; n < kN; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int qi = n * 8 + attention::accumulator_at(lane, i).col;
        const int64_t query = q0 + qi, j = key[i >> 1];
        const bool ok = j < p.S && query < p.L && causal_keeps(p.causal, query, j);
        const float pt = ok ? exp2f(st[n][i] * sl2 - lse_s[qi]) : 0.0f;
        st[n][i] = pt;
        dpt[n][i] = pt * (dpt[n][i] - d_s[qi]);
      }
    }
    // dV += P^T dO, dK += dS^T Q: k-steps of 16 queries.
#pragma unroll
    for (int j = 0; j < kBwdTile / 16; ++j) {
      uint32_t pa[4], da[4];
      pack_a<T>(pa, st[2 * j], st[2 * j + 1]);
      pack_a<T>(da, dpt[2 * j], dpt[2 * j + 1]);
#pragma unroll
      for (int np = 0; np < kO / 2; ++np) {
        uint32_t b[4];
        load_b_kn(b, dos, kStride, j * 16, np * 16, lane);
        mma_pair<T>(dv[2 * np], dv[2 * np + 1], pa, b);
        load_b_kn(b, qs, kStride, j * 16, np * 16, lane);
        mma_pair<T>(dk[2 * np], dk[2 * np + 1], da, b);
      }
    }
  }

  mma::cp_async_wait<0>();  // K and V, when the loop did not run: no copies left in flight at exit
  const float kmul[2] = {p.scale, p.scale}, one[2] = {1.0f, 1.0f};
  store_rows<T, kO>(static_cast<T*>(p.dk) + pos.bh * p.S * p.E, dk, k0 + warp * 16, p.S, p.E, kmul,
                    lane);
  store_rows<T, kO>(static_cast<T*>(p.dv) + pos.bh * p.S * p.Ev, dv, k0 + warp * 16, p.S, p.Ev, one,
                    lane);
#endif
}

// dQ for 64 queries of one (batch, head); warp w owns queries q0 + 16 w ... + 15.
// The minimum of 3 (2) blocks per SM caps registers where they already fall: without it ptxas
// chose 128 registers at head size 64 for bf16 on sm_80, spilling.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads, kD <= 64 ? 3 : 2)
    attention_mma_backward_q_kernel(Params p) {
#if FABRIC_MMA_ARCH_OK
  constexpr int kStride = kD + kPad;
  constexpr int kK = kD / 16;
  constexpr int kN = kBwdTile / 8;  // key n-tiles of S
  constexpr int kO = kD / 8;
  constexpr int kBuf = 2 * kBwdTile * kStride;  // elements of one K, V buffer
  uint16_t* qs = reinterpret_cast<uint16_t*>(mma::dynamic_smem());
  uint16_t* dos = qs + kBlockRows * kStride;
  uint16_t* kvs = dos + kBlockRows * kStride;  // two K, V buffers

  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const BlockPos pos = block_pos(p, true);
  const int64_t q0 = pos.tile * kBlockRows;
  // This thread's accumulator rows: elements 0, 1 and 2, 3 (attention::accumulator_at).
  const int64_t row[2] = {q0 + warp * 16 + attention::accumulator_at(lane, 0).row,
                          q0 + warp * 16 + attention::accumulator_at(lane, 2).row};
  const uint16_t* kh = head_of(p.k, pos.b, pos.h);
  const uint16_t* vh = head_of(p.v, pos.b, pos.h);

  load_tile<kBlockRows, kD, true>(qs, head_of(p.q, pos.b, pos.h), p.q.rs, q0, p.L, p.E,
                                  p.vec_qkv);
  load_tile<kBlockRows, kD, true>(dos, head_of(p.dout, pos.b, pos.h), p.dout.rs, q0, p.L, p.Ev,
                                  p.vec_dout);
  mma::cp_async_commit();
  fetch_kv<kBwdTile, kD>(kvs, p, kh, vh, 0);
  float lse2[2], dd[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const bool in = row[r] < p.L;
    lse2[r] = in ? p.lse[pos.bh * p.L + row[r]] * kLog2e : 0.0f;
    dd[r] = in ? p.d[pos.bh * p.L + row[r]] : 0.0f;
  }
  float dq[kO][4];
#pragma unroll
  for (int n = 0; n < kO; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
  const float sl2 = p.scale * kLog2e;

  const int64_t k_end = attention::key_end(p.causal, p.S, q0, kBlockRows);
  // Tile j is in buffer j % 2, pipelined as in the forward: after the wait and the barrier, tile j
  // (and, the first time, Q and dO) is visible and buffer (j + 1) % 2 is free for tile j + 1.
  int buf = 0;
  for (int64_t k0 = 0; k0 < k_end; k0 += kBwdTile, buf ^= 1) {
    mma::cp_async_wait<0>();
    __syncthreads();
    if (k0 + kBwdTile < k_end)
      fetch_kv<kBwdTile, kD>(kvs + (buf ^ 1) * kBuf, p, kh, vh, k0 + kBwdTile);
    const uint16_t* ks = kvs + buf * kBuf;
    const uint16_t* vs = ks + kBwdTile * kStride;

    float s[kN][4], dp[kN][4];
    paired_products<T, kD, kN, kK>(s, dp, qs, dos, ks, vs, warp, lane);
#pragma unroll
    for (int n = 0; n < kN; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t j = k0 + n * 8 + attention::accumulator_at(lane, i).col, i_row = row[i >> 1];
        const bool ok = i_row < p.L && j < p.S && causal_keeps(p.causal, i_row, j);
        const float pv = ok ? exp2f(s[n][i] * sl2 - lse2[i >> 1]) : 0.0f;
        dp[n][i] = pv * (dp[n][i] - dd[i >> 1]);  // dS
      }
    }
    // dQ += dS K: k-steps of 16 keys, K read transposed.
#pragma unroll
    for (int j = 0; j < kBwdTile / 16; ++j) {
      uint32_t a[4];
      pack_a<T>(a, dp[2 * j], dp[2 * j + 1]);
#pragma unroll
      for (int np = 0; np < kO / 2; ++np) {
        uint32_t b[4];
        load_b_kn(b, ks, kStride, j * 16, np * 16, lane);
        mma_pair<T>(dq[2 * np], dq[2 * np + 1], a, b);
      }
    }
  }

  const float qmul[2] = {p.scale, p.scale};
  store_rows<T, kO>(static_cast<T*>(p.dq) + pos.bh * p.L * p.E, dq, q0 + warp * 16, p.L, p.E, qmul,
                    lane);
#endif
}

// ---- host side --------------------------------------------------------------------------------

int64_t tiles_of(int64_t n) { return (n + kBlockRows - 1) / kBlockRows; }

// FABRIC_ATTENTION_MMA=0 sends every problem to the CUDA-core kernels (read once).
bool mma_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("FABRIC_ATTENTION_MMA");
    return !(e != nullptr && std::string_view(e) == "0");
  }();
  return on;
}

// Whether the mma kernels run on `device` (the current one): compute capability 8.0 or newer, and
// kernels loaded from code built for sm_80+. A build whose CUDA architectures all lie below 80 runs
// on such a device through the JIT of its older PTX, where FABRIC_MMA_ARCH_OK compiled the kernel
// bodies away: launched, they would write nothing. Asked once per device.
bool mma_runs_on(int device) {
  static std::atomic<int> answers[kMaxDevices] = {};  // 0: not asked yet, 1: yes, 2: no
  if (device < 0 || device >= kMaxDevices) return false;
  int v = answers[device].load(std::memory_order_relaxed);
  if (v == 0) {
    bool yes = compute_capability(device) >= 80;
    if (yes) {
      // ptxVersion is the virtual architecture (__CUDA_ARCH__) the loaded kernel was compiled for;
      // every mma kernel was compiled for the same ones.
      cudaFuncAttributes attr{};
      FABRIC_CUDA_CHECK(cudaFuncGetAttributes(&attr, attention_mma_forward_kernel<BFloat16, 64>));
      yes = attr.ptxVersion >= 80;
    }
    v = yes ? 1 : 2;
    answers[device].store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

// Everything about the problem but the device: the same answer for forward and backward.
bool takes_problem(const AttentionArgs& a) {
  if (a.dtype != DType::bfloat16 && a.dtype != DType::float16) return false;
  if (!(a.dropout_p == 0.0)) return false;
  if (a.E < 1 || a.Ev < 1 || a.E > kMaxHead || a.Ev > kMaxHead || a.L < 1 || a.S < 1) return false;
  if (a.batch < 0 || a.heads < 0 || a.batch > kMaxGrid || a.heads > kMaxGrid) return false;
  const int64_t bh = a.batch * a.heads;
  if (bh > kMaxGrid) return false;
  if (bh > 0 && (tiles_of(a.L) > kMaxGrid / bh || tiles_of(a.S) > kMaxGrid / bh)) return false;
  return mma_enabled();
}

int head_width(const AttentionArgs& a) { return (a.E > a.Ev ? a.E : a.Ev) <= 64 ? 64 : 128; }

bool vec_operand(const AttentionOperand& o) {
  return aligned16(o.data) && o.batch_stride % 8 == 0 && o.head_stride % 8 == 0 &&
         o.row_stride % 8 == 0;
}

void set_problem(Params& p, const AttentionArgs& a) {
  auto op = [](const AttentionOperand& o) {
    return Operand{static_cast<const uint16_t*>(o.data), o.batch_stride, o.head_stride,
                   o.row_stride};
  };
  p = Params{};
  p.q = op(a.q);
  p.k = op(a.k);
  p.v = op(a.v);
  p.bh = a.batch * a.heads;
  p.heads = a.heads;
  p.L = a.L;
  p.S = a.S;
  p.E = static_cast<int>(a.E);
  p.Ev = static_cast<int>(a.Ev);
  p.scale = static_cast<float>(a.scale);
  p.causal = a.causal;
  p.vec_qkv =
      a.E % 8 == 0 && a.Ev % 8 == 0 && vec_operand(a.q) && vec_operand(a.k) && vec_operand(a.v);
}

// Calls f(T{}, width) with the element type and the head width as compile-time constants.
template <typename F>
void visit(const AttentionArgs& a, F&& f) {
  auto with_width = [&](auto tag) {
    if (head_width(a) == 64) {
      f(tag, std::integral_constant<int, 64>{});
    } else {
      f(tag, std::integral_constant<int, 128>{});
    }
  };
  if (a.dtype == DType::bfloat16) {
    with_width(BFloat16{});
  } else {
    with_width(Half{});
  }
}

// Kernels using more than the default 48 KB of dynamic shared memory must say so first.
template <typename K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    FABRIC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(bytes)));
  }
}

bool forward(const AttentionArgs& a, void* out, void* lse) {
  if (!takes_problem(a)) return false;
  if (a.batch * a.heads == 0) return true;  // nothing to write
  LaunchContext ctx(out);
  if (!mma_runs_on(ctx.device)) return false;
  Params p;
  set_problem(p, a);
  p.out = out;
  p.lse_out = static_cast<float*>(lse);
  p.tiles = tiles_of(a.L);
  visit(a, [&](auto tag, auto w) {
    using T = decltype(tag);
    constexpr int kD = decltype(w)::value;
    constexpr size_t smem = forward_smem<kD>();
    auto* kernel = &attention_mma_forward_kernel<T, kD>;
    allow_smem(kernel, smem);
    kernel<<<grid_dim(p.tiles * p.bh), kThreads, smem, ctx.stream>>>(p);
    FABRIC_CUDA_CHECK_LAUNCH();
  });
  return true;
}

bool backward(const AttentionBackwardArgs& args) {
  const AttentionArgs& a = args.fwd;
  if (!takes_problem(a)) return false;
  if (a.batch * a.heads == 0) return true;
  LaunchContext ctx(args.grad_q);
  if (!mma_runs_on(ctx.device)) return false;
  Params p;
  set_problem(p, a);
  p.dout =
      Operand{static_cast<const uint16_t*>(args.grad_out), a.heads * a.L * a.Ev, a.L * a.Ev, a.Ev};
  p.vec_dout = a.Ev % 8 == 0 && aligned16(args.grad_out);
  p.lse = static_cast<const float*>(args.lse);
  p.dq = args.grad_q;
  p.dk = args.grad_k;
  p.dv = args.grad_v;

  const int64_t rows = p.bh * a.L;
  // D lives only for the launches below, which run on the compute stream the caching allocator
  // orders its reuse on.
  DeviceScratch d(ctx.device, static_cast<size_t>(rows) * sizeof(float));
  p.d = d.as<float>();
  visit(a, [&](auto tag, auto w) {
    using T = decltype(tag);
    constexpr int kD = decltype(w)::value;
    launch_attention_row_dot(static_cast<const T*>(args.out), static_cast<const T*>(args.grad_out),
                             d.as<float>(), rows, a.Ev, ctx.stream);

    constexpr size_t kv_smem = backward_kv_smem<kD>();
    auto* kv = &attention_mma_backward_kv_kernel<T, kD>;
    allow_smem(kv, kv_smem);
    p.tiles = tiles_of(a.S);
    kv<<<grid_dim(p.tiles * p.bh), kThreads, kv_smem, ctx.stream>>>(p);
    FABRIC_CUDA_CHECK_LAUNCH();

    constexpr size_t q_smem = backward_q_smem<kD>();
    auto* dq = &attention_mma_backward_q_kernel<T, kD>;
    allow_smem(dq, q_smem);
    p.tiles = tiles_of(a.L);
    dq<<<grid_dim(p.tiles * p.bh), kThreads, q_smem, ctx.stream>>>(p);
    FABRIC_CUDA_CHECK_LAUNCH();
  });
  return true;
}

}  // namespace
}  // namespace attention_mma

bool attention_forward_mma(const AttentionArgs& a, void* out, void* lse) {
  return attention_mma::forward(a, out, lse);
}
bool attention_backward_mma(const AttentionBackwardArgs& args) {
  return attention_mma::backward(args);
}

}  // namespace fabric::cuda
