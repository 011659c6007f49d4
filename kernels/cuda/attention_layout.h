// The index arithmetic of the CUDA attention kernels (attention_kernels.cu, the CUDA-core ones, and
// attention_mma_kernels.cu, the tensor-core ones), host and device, so that the CPU tests
// (tests/cuda/test_attention_layout.cpp) can hold it to the CPU kernel's rules and the PTX ISA
// without a GPU: which (batch, head, tile) a block owns, which keys a block of queries can attend
// under the causal mask, which Philox block and word decide each dropout bit, where the lanes of a
// warp point ldmatrix and which accumulator element is which, and the online-softmax step.
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/host_device.h"
#include "tensor/random_kernels.h"  // philox4x32_10

namespace fabric::cuda::attention {

// ---- blocks and the causal mask -----------------------------------------------------------------

// Blocks are numbered tile-major: block id takes tile id / bh_count (all (batch, head)s of one tile
// before the next), counted from the last tile down when last_tile_first (the query tiles with the
// most keys under a causal mask start first), and (batch, head) id % bh_count.
struct BlockPos {
  int64_t tile, b, h, bh;
};
FABRIC_HD_INLINE BlockPos block_pos(int64_t id, int64_t bh_count, int64_t heads, int64_t tiles,
                                  bool last_tile_first) {
  const int64_t t = id / bh_count;
  BlockPos p;
  p.tile = last_tile_first ? tiles - 1 - t : t;
  p.bh = id - t * bh_count;
  p.b = p.bh / heads;
  p.h = p.bh - p.b * heads;
  return p;
}

// Whether query i attends key j under the causal flag: torch's is_causal, the top-left aligned
// tril(ones(L, S)) (ops.h causal_mask), whatever L and S are.
FABRIC_HD_INLINE bool causal_keeps(bool causal, int64_t i, int64_t j) { return !causal || j <= i; }

// The end of the keys [0, end) that queries [q0, q0 + rows) can attend: S, or under the causal
// mask the first key past the block's last query (keys past it are masked for every row).
FABRIC_HD_INLINE int64_t key_end(bool causal, int64_t S, int64_t q0, int64_t rows) {
  return causal ? (S < q0 + rows ? S : q0 + rows) : S;
}

// The first query that can attend any of the keys [k0, ...): 0, or k0 under the causal mask
// (queries before k0 attend none of them). At or past L, no query does.
FABRIC_HD_INLINE int64_t query_begin(bool causal, int64_t k0) { return causal ? k0 : 0; }

// ---- dropout bits -------------------------------------------------------------------------------

// The dropout contract (tensor/random_kernels.h) keeps element n of the (batch, heads, L, S)
// probabilities by word n % 4 of Philox block n / 4 (counter offset + n / 4). A tile's query row qi
// holds keys [k0, k0 + width) at n = base + e, base = (bh L + q0 + qi) S + k0, which lie in at most
// width / 4 + 1 blocks: task c of the row draws block base / 4 + c, whose word x is the tile's
// column e0 + x.
FABRIC_HD_INLINE constexpr int keep_tasks_per_row(int width) { return width / 4 + 1; }

struct KeepDraw {
  uint64_t seed, offset;
  uint32_t threshold;  // keep iff (word >> 8) < threshold (dropout_keep_threshold)
};

// Task (qi, c)'s part of keep[qi][e], whether element (query q0 + qi, key k0 + e) of head bh is
// kept: the columns e in [0, kWidth) that its block's words fall on, 0 for a query past L or a key
// past S. The tasks (qi, c) for c < keep_tasks_per_row(kWidth) write each element of the row once.
template <int kWidth>
FABRIC_HD_INLINE void draw_keep_task(uint8_t (&keep)[kWidth][kWidth], const KeepDraw& d, int64_t bh,
                                   int64_t L, int64_t S, int64_t q0, int64_t k0, int qi, int c) {
  const int64_t kw = S - k0 < kWidth ? S - k0 : kWidth;  // keys present in the tile
  const int64_t i = q0 + qi;
  const int64_t base = (bh * L + i) * S + k0;
  const int64_t block = base / 4 + c;
  const int e0 = static_cast<int>(block * 4 - base);  // in [-3, kWidth]
  const bool used = i < L && e0 + 3 >= 0 && e0 < kw;
  uint32_t w[4] = {0u, 0u, 0u, 0u};
  if (used) {
    const uint64_t counter = d.offset + static_cast<uint64_t>(block);
    const uint32_t ctr[4] = {static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                             0u, 0u};
    philox4x32_10(ctr, static_cast<uint32_t>(d.seed), static_cast<uint32_t>(d.seed >> 32), w);
  }
  for (int x = 0; x < 4; ++x) {
    const int e = e0 + x;
    if (e >= 0 && e < kWidth) keep[qi][e] = used && e < kw && (w[x] >> 8) < d.threshold;
  }
}

// ---- mma.m16n8k16 fragments ---------------------------------------------------------------------
// PTX ISA: "Matrix Fragments for mma.m16n8k16 with floating point type"; "Warp-level matrix load
// instruction: ldmatrix".

struct RowCol {
  int row, col;
};

// ldmatrix.x4 takes lane l's address as row l % 8 of matrix l / 8. These are the (row, col)
// offsets, within the 16 x 16 block being loaded, of the row address each lane gives:
// The A fragment of a row-major tile: matrices (rows +0, cols +0), (+8, +0), (+0, +8), (+8, +8)
// are a[0..3].
FABRIC_HD_INLINE RowCol ldmatrix_a_row(int lane) { return {lane & 15, (lane >> 4) * 8}; }
// B fragments of two n-tiles from a tile stored [n][k] (row = n, col = k): matrix m holds n rows
// + 8 (m / 2) and k columns + 8 (m % 2), so b[0..1] are the first n-tile's, b[2..3] the second's.
FABRIC_HD_INLINE RowCol ldmatrix_b_nk_row(int lane) {
  return {(lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8};
}
// The same from a tile stored [k][n] (row = k, col = n), loaded with .trans: matrix m holds k rows
// + 8 (m % 2) and n columns + 8 (m / 2).
FABRIC_HD_INLINE RowCol ldmatrix_b_kn_row(int lane) { return {lane & 15, (lane >> 4) * 8}; }

// Element i (0..3) of lane l's fp32 accumulator of a 16 x 8 tile: row g = l / 4 (+8 for i >= 2),
// column 2 (l % 4) + i % 2.
FABRIC_HD_INLINE RowCol accumulator_at(int lane, int i) {
  return {(lane >> 2) + 8 * (i >> 1), 2 * (lane & 3) + (i & 1)};
}

// The A fragment (k-step of 16 columns) made from the accumulators of two adjacent 16 x 8 tiles
// c0 (columns +0..7) and c1 (+8..15): A's register r holds row g (+8 for odd r), columns 2t, 2t+1
// (+8 for r >= 2), which are exactly c0's pairs (0, 1) and (2, 3), then c1's. pack(lo, hi) packs
// two floats into one register, lo in the lower 16 bits (mma::pack2 on the device).
template <typename Word, typename Pack>
FABRIC_HD_INLINE void pack_a(Word (&a)[4], const float (&c0)[4], const float (&c1)[4], Pack pack) {
  a[0] = pack(c0[0], c0[1]);
  a[1] = pack(c0[2], c0[3]);
  a[2] = pack(c1[0], c1[1]);
  a[3] = pack(c1[2], c1[3]);
}

// ---- the online softmax -------------------------------------------------------------------------

// One key tile's update of a row's running max m (over the tiles so far; -inf before the first)
// with the tile's max: the new max, the value the tile's scores are exponentiated against (the new
// max, or 0 while it is still -inf, so that a row with nothing attended yet keeps p = 0 and alpha =
// 0 instead of exp(-inf - -inf) = NaN), and alpha, the factor the running sum and accumulator take.
// exp_fn is exp or exp2, matching the units of the scores.
struct SoftmaxStep {
  float m, base, alpha;
};
template <typename Exp>
FABRIC_HD_INLINE SoftmaxStep softmax_step(float m, float tile_max, Exp exp_fn) {
  SoftmaxStep s;
  s.m = fmaxf(m, tile_max);
  s.base = s.m == -INFINITY ? 0.0f : s.m;
  s.alpha = exp_fn(m - s.base);
  return s;
}

}  // namespace fabric::cuda::attention
