// The index arithmetic of the CUDA attention kernels (kernels/cuda/attention_layout.h), on the CPU:
// the block numbering covers every (batch, head, tile) once; the causal rule is ops.h's
// causal_mask and the key/query bounds never cut an attended pair; the dropout bits drawn tile by
// tile are the dropout op's mask over the (batch, heads, L, S) probabilities; the lanes' ldmatrix
// addresses, the accumulator map and the accumulators -> A fragment repacking, run through an
// emulation of ldmatrix and mma.m16n8k16 written from the PTX ISA's fragment tables, give Q K^T and
// (Q K^T) V; and the online-softmax step, tile by tile, gives the float64 softmax and log-sum-exp.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/attention_layout.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/random_kernels.h"

namespace fabric {
namespace {

namespace at = cuda::attention;

// ---- blocks and the causal mask -----------------------------------------------------------------

TEST(AttentionLayout, BlockNumberingCoversEveryTileOfEveryHeadOnce) {
  struct Grid {
    int64_t batch, heads, tiles;
  };
  for (const Grid& gr : {Grid{1, 1, 1}, Grid{2, 3, 5}, Grid{8, 12, 16}, Grid{3, 1, 7}}) {
    for (bool last_first : {false, true}) {
      const int64_t bh = gr.batch * gr.heads;
      std::vector<int> seen(static_cast<size_t>(bh * gr.tiles), 0);
      for (int64_t id = 0; id < bh * gr.tiles; ++id) {
        const at::BlockPos p = at::block_pos(id, bh, gr.heads, gr.tiles, last_first);
        ASSERT_TRUE(p.tile >= 0 && p.tile < gr.tiles && p.bh >= 0 && p.bh < bh) << id;
        ASSERT_TRUE(p.b >= 0 && p.b < gr.batch && p.h >= 0 && p.h < gr.heads) << id;
        EXPECT_EQ(p.b * gr.heads + p.h, p.bh) << id;
        // Tile-major: the first bh blocks share the first tile taken (the last when last_first).
        EXPECT_EQ(p.tile, last_first ? gr.tiles - 1 - id / bh : id / bh) << id;
        ++seen[static_cast<size_t>(p.tile * bh + p.bh)];
      }
      for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "(tile, head) " << i;
    }
  }
}

// causal_keeps is torch's top-left aligned tril(ones(L, S)) (causal_mask) for L < S, L > S and
// L = S; key_end keeps every key a block's queries attend and query_begin every query that
// attends a block's keys, for the block heights of both kernel families.
TEST(AttentionLayout, CausalRuleAndTileBoundsMatchTheMask) {
  struct Size {
    int64_t L, S;
  };
  for (const Size& z : {Size{1, 1}, Size{37, 53}, Size{70, 29}, Size{64, 64}, Size{20, 90},
                        Size{130, 70}, Size{5, 300}, Size{129, 100}}) {
    const std::vector<uint8_t> m = causal_mask(z.L, z.S).to_vector<uint8_t>();
    const std::string what = "L " + std::to_string(z.L) + " S " + std::to_string(z.S);
    for (int64_t i = 0; i < z.L; ++i) {
      for (int64_t j = 0; j < z.S; ++j) {
        ASSERT_EQ(at::causal_keeps(true, i, j), m[static_cast<size_t>(i * z.S + j)] != 0)
            << what << " (" << i << ", " << j << ")";
        ASSERT_TRUE(at::causal_keeps(false, i, j));
      }
    }
    for (int64_t rows : {32, 64}) {
      for (bool causal : {false, true}) {
        for (int64_t q0 = 0; q0 < z.L; q0 += rows) {
          const int64_t end = at::key_end(causal, z.S, q0, rows);
          EXPECT_LE(end, z.S) << what;
          for (int64_t i = q0; i < std::min(q0 + rows, z.L); ++i)
            for (int64_t j = end; j < z.S; ++j)
              ASSERT_FALSE(at::causal_keeps(causal, i, j)) << what << " rows " << rows;
        }
        for (int64_t k0 = 0; k0 < z.S; k0 += rows) {
          const int64_t begin = at::query_begin(causal, k0);
          for (int64_t i = 0; i < std::min(begin, z.L); ++i)
            for (int64_t j = k0; j < std::min(k0 + rows, z.S); ++j)
              ASSERT_FALSE(at::causal_keeps(causal, i, j)) << what << " rows " << rows;
        }
      }
    }
  }
}

// ---- dropout bits -------------------------------------------------------------------------------

// The CUDA-core kernels' keep tiles (32 x 32, every tile of every head, the tasks of
// draw_keep_tile) against the dropout op's mask of ones(batch, heads, L, S) drawn at the same
// (seed, offset); an offset just below 2^32 makes the counters cross into their high word.
TEST(AttentionLayout, KeepTilesAreTheDropoutOpsMask) {
  constexpr int kW = 32;
  struct Problem {
    int64_t B, H, L, S;
    double p;
    uint64_t offset;
  };
  for (const Problem& pr :
       {Problem{2, 2, 37, 45, 0.1, 0xFFFFFF00ull}, Problem{1, 3, 70, 29, 0.5, 7},
        Problem{1, 1, 5, 301, 0.3, 0}, Problem{2, 1, 33, 1, 0.5, 12345}}) {
    const uint64_t seed = 0x9E3779B97F4A7C15ull;
    Generator gen(seed);
    gen.set_offset(pr.offset);
    const std::vector<float> want =
        dropout(ones({pr.B, pr.H, pr.L, pr.S}), pr.p, true, &gen).to_vector<float>();
    const at::KeepDraw draw{seed, pr.offset, static_cast<uint32_t>(dropout_keep_threshold(pr.p))};
    const std::string what = "B " + std::to_string(pr.B) + " H " + std::to_string(pr.H) + " L " +
                             std::to_string(pr.L) + " S " + std::to_string(pr.S);
    int64_t mismatches = 0;
    for (int64_t bh = 0; bh < pr.B * pr.H; ++bh) {
      for (int64_t q0 = 0; q0 < pr.L; q0 += kW) {
        for (int64_t k0 = 0; k0 < pr.S; k0 += kW) {
          uint8_t keep[kW][kW];
          for (auto& row : keep)
            for (uint8_t& x : row) x = 2;  // not a bit: shows an element no task wrote
          for (int qi = 0; qi < kW; ++qi)
            for (int c = 0; c < at::keep_tasks_per_row(kW); ++c)
              at::draw_keep_task<kW>(keep, draw, bh, pr.L, pr.S, q0, k0, qi, c);
          for (int qi = 0; qi < kW; ++qi) {
            for (int e = 0; e < kW; ++e) {
              const int64_t i = q0 + qi, j = k0 + e;
              const int expect = (i < pr.L && j < pr.S)
                                     ? (want[static_cast<size_t>((bh * pr.L + i) * pr.S + j)] != 0)
                                     : 0;
              if (keep[qi][e] != expect && ++mismatches <= 5)
                ADD_FAILURE() << what << " head " << bh << " query " << i << " key " << j
                              << ": keep " << int(keep[qi][e]) << ", the dropout op " << expect;
            }
          }
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << what;
  }
}

// ---- mma.m16n8k16 fragments ---------------------------------------------------------------------

// The PTX ISA's tables for bf16/f16 mma.m16n8k16 (g = lane / 4, t = lane % 4), independent of
// attention_layout.h: element i of A (8 per lane, two per register, the lower one in the lower
// half), of B (4 per lane) and of C (4 per lane).
at::RowCol spec_a(int lane, int i) {
  const int g = lane >> 2, t = lane & 3;
  return {g + ((i % 4) >= 2 ? 8 : 0), 2 * t + (i & 1) + (i >= 4 ? 8 : 0)};
}
at::RowCol spec_b(int lane, int i) {  // (k, n)
  const int g = lane >> 2, t = lane & 3;
  return {2 * t + (i & 1) + (i >= 2 ? 8 : 0), g};
}
at::RowCol spec_c(int lane, int i) {
  const int g = lane >> 2, t = lane & 3;
  return {g + (i >= 2 ? 8 : 0), 2 * t + (i & 1)};
}

// A register: two 16-bit elements, kept as floats (the test's values are small integers, exact in
// bf16 and f16, so no rounding is emulated).
struct Reg {
  float lo = 0, hi = 0;
};
using Warp4 = std::array<std::array<Reg, 4>, 32>;  // [lane][register]

// A shared-memory tile: rows of `stride` elements.
struct Tile {
  int stride;
  std::vector<float> v;
  float at(int r, int c) const { return v[static_cast<size_t>(r * stride + c)]; }
};

// ldmatrix.x4 (PTX ISA): lane l gives the address of row l % 8 of matrix l / 8 (here as (row,
// col) of the tile). Without .trans, register m of lane l holds row l / 4, columns 2 (l % 4) and
// 2 (l % 4) + 1 of matrix m; with .trans, column l / 4 of rows 2 (l % 4) and 2 (l % 4) + 1.
Warp4 ldmatrix_x4(const Tile& tile, const std::array<at::RowCol, 32>& addr, bool trans) {
  Warp4 r;
  for (int lane = 0; lane < 32; ++lane) {
    for (int m = 0; m < 4; ++m) {
      if (!trans) {
        const at::RowCol row = addr[8 * m + lane / 4];
        r[lane][m] = {tile.at(row.row, row.col + 2 * (lane % 4)),
                      tile.at(row.row, row.col + 2 * (lane % 4) + 1)};
      } else {
        const at::RowCol r0 = addr[8 * m + 2 * (lane % 4)], r1 = addr[8 * m + 2 * (lane % 4) + 1];
        r[lane][m] = {tile.at(r0.row, r0.col + lane / 4), tile.at(r1.row, r1.col + lane / 4)};
      }
    }
  }
  return r;
}

// The lanes' addresses for a 16 x 16 block at (r0, c0) of a tile, from one of the layout maps.
std::array<at::RowCol, 32> addresses(at::RowCol (*map)(int), int r0, int c0) {
  std::array<at::RowCol, 32> a;
  for (int lane = 0; lane < 32; ++lane) a[lane] = {r0 + map(lane).row, c0 + map(lane).col};
  return a;
}

// d += a b for one warp: a's registers 0..3 are A, b's registers (b0, b1) are B, per the tables.
void mma_16816(std::array<std::array<float, 4>, 32>& d, const Warp4& a, const Warp4& b, int b0) {
  double A[16][16] = {}, B[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      const Reg& r = a[lane][i / 2];
      const at::RowCol rc = spec_a(lane, i);
      A[rc.row][rc.col] = (i & 1) ? r.hi : r.lo;
    }
    for (int i = 0; i < 4; ++i) {
      const Reg& r = b[lane][b0 + i / 2];
      const at::RowCol kn = spec_b(lane, i);
      B[kn.row][kn.col] = (i & 1) ? r.hi : r.lo;
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) {
      const at::RowCol rc = spec_c(lane, i);
      double s = 0;
      for (int k = 0; k < 16; ++k) s += A[rc.row][k] * B[k][rc.col];
      d[lane][i] += static_cast<float>(s);
    }
  }
}

Tile random_tile(std::mt19937& rng, int rows, int cols) {
  Tile t{cols + 8, std::vector<float>(static_cast<size_t>(rows * (cols + 8)), -1000.0f)};
  std::uniform_int_distribution<int> u(-3, 3);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t.v[static_cast<size_t>(r * t.stride + c)] = float(u(rng));
  return t;  // the pad columns hold -1000: a read of them shows in the products
}

// A warp's part of the forward: S = Q K^T for its 16 query rows against 64 keys (A fragments of a
// row-major Q, B fragments of K stored [key][dim]), then O = S V (A fragments repacked from S's
// accumulators, B fragments of V stored [key][dim] read transposed), each against the plain
// products; the same calls serve the backward's K Q^T, V dO^T, P^T dO, dS^T Q and dS K.
TEST(AttentionLayout, FragmentMapsGiveTheTileProducts) {
  constexpr int kD = 64, kKeys = 64, kRows = 64;
  std::mt19937 rng(17);
  const Tile q = random_tile(rng, kRows, kD), k = random_tile(rng, kKeys, kD),
             v = random_tile(rng, kKeys, kD);
  for (int warp = 0; warp < kRows / 16; ++warp) {
    std::array<std::array<std::array<float, 4>, 32>, kKeys / 8> s{};  // [n-tile][lane][element]
    for (int kk = 0; kk < kD / 16; ++kk) {
      const Warp4 a = ldmatrix_x4(q, addresses(at::ldmatrix_a_row, warp * 16, kk * 16), false);
      for (int np = 0; np < kKeys / 16; ++np) {
        const Warp4 b = ldmatrix_x4(k, addresses(at::ldmatrix_b_nk_row, np * 16, kk * 16), false);
        mma_16816(s[2 * np], a, b, 0);
        mma_16816(s[2 * np + 1], a, b, 2);
      }
    }
    std::vector<double> want_s(static_cast<size_t>(16 * kKeys), 0.0);
    for (int r = 0; r < 16; ++r)
      for (int j = 0; j < kKeys; ++j)
        for (int c = 0; c < kD; ++c)
          want_s[static_cast<size_t>(r * kKeys + j)] += double(q.at(warp * 16 + r, c)) * k.at(j, c);
    for (int n = 0; n < kKeys / 8; ++n)
      for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < 4; ++i) {
          const at::RowCol rc = at::accumulator_at(lane, i);
          ASSERT_EQ(s[n][lane][i], want_s[static_cast<size_t>(rc.row * kKeys + n * 8 + rc.col)])
              << "S warp " << warp << " n-tile " << n << " lane " << lane << " element " << i;
        }

    std::array<std::array<std::array<float, 4>, 32>, kD / 8> o{};
    for (int j = 0; j < kKeys / 16; ++j) {
      Warp4 a;
      for (int lane = 0; lane < 32; ++lane) {
        Reg regs[4];
        float c0[4], c1[4];
        for (int i = 0; i < 4; ++i) c0[i] = s[2 * j][lane][i], c1[i] = s[2 * j + 1][lane][i];
        at::pack_a(regs, c0, c1, [](float lo, float hi) { return Reg{lo, hi}; });
        for (int r = 0; r < 4; ++r) a[lane][r] = regs[r];
      }
      for (int np = 0; np < kD / 16; ++np) {
        const Warp4 b = ldmatrix_x4(v, addresses(at::ldmatrix_b_kn_row, j * 16, np * 16), true);
        mma_16816(o[2 * np], a, b, 0);
        mma_16816(o[2 * np + 1], a, b, 2);
      }
    }
    for (int n = 0; n < kD / 8; ++n)
      for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < 4; ++i) {
          const at::RowCol rc = at::accumulator_at(lane, i);
          double want = 0;
          for (int key = 0; key < kKeys; ++key)
            want += want_s[static_cast<size_t>(rc.row * kKeys + key)] * v.at(key, n * 8 + rc.col);
          ASSERT_EQ(o[n][lane][i], want)
              << "O warp " << warp << " n-tile " << n << " lane " << lane << " element " << i;
        }
  }
}

// ---- the online softmax -------------------------------------------------------------------------

// Rows of scores (some masked: -inf) taken in tiles as the forward kernels take them, in natural
// and in log2 units: the running max, sum and accumulator of out = sum p v / sum p give the
// float64 softmax-weighted value and log-sum-exp; a row whose first tile is wholly masked (a
// shape the kernels' key 0 rules out, which the guard covers all the same) too.
TEST(AttentionLayout, OnlineSoftmaxStepGivesTheSoftmax) {
  constexpr int kTile = 32;
  const float ninf = -std::numeric_limits<float>::infinity();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  for (bool log2_units : {false, true}) {
    for (int trial = 0; trial < 200; ++trial) {
      const int n = 1 + static_cast<int>(rng() % 200);
      std::vector<float> s(static_cast<size_t>(n)), v(static_cast<size_t>(n));
      for (int j = 0; j < n; ++j) {
        s[j] = rng() % 4 == 0 ? ninf : u(rng);
        v[j] = u(rng);
      }
      if (trial % 3 == 0)  // the first tile wholly masked
        for (int j = 0; j < std::min(n - 1, kTile); ++j) s[j] = ninf;
      s[static_cast<size_t>(n - 1)] = u(rng);  // one key attended at least
      // float64 truth, in natural units (a log2-unit score x stands for x ln 2).
      const double unit = log2_units ? std::log(2.0) : 1.0;
      double mx = -INFINITY;
      for (float x : s) mx = std::max(mx, double(x) * unit);
      double sum = 0, acc_want = 0;
      for (int j = 0; j < n; ++j) {
        const double p = std::exp(double(s[j]) * unit - mx);
        sum += p;
        acc_want += p * v[j];
      }
      const double out_want = acc_want / sum, lse_want = mx + std::log(sum);

      float m = ninf, l = 0, acc = 0;
      for (int k0 = 0; k0 < n; k0 += kTile) {
        const int k1 = std::min(n, k0 + kTile);
        float tile_max = ninf;
        for (int j = k0; j < k1; ++j) tile_max = std::max(tile_max, s[j]);
        const at::SoftmaxStep step =
            log2_units ? at::softmax_step(m, tile_max, [](float x) { return std::exp2(x); })
                       : at::softmax_step(m, tile_max, [](float x) { return std::exp(x); });
        l *= step.alpha;
        acc *= step.alpha;
        for (int j = k0; j < k1; ++j) {
          const float p = log2_units ? std::exp2(s[j] - step.base) : std::exp(s[j] - step.base);
          l += p;
          acc += p * v[j];
        }
        m = step.m;
      }
      const double lse = log2_units ? m * std::log(2.0) + std::log(l) : m + std::log(l);
      const std::string what = std::string(log2_units ? "log2" : "natural") + " units, trial " +
                               std::to_string(trial) + ", " + std::to_string(n) + " keys";
      ASSERT_TRUE(std::isfinite(acc / l)) << what;
      EXPECT_NEAR(acc / l, out_want, 1e-5 * 8) << what;  // |v| <= 8
      EXPECT_NEAR(lse, lse_want, 1e-5 * (1 + std::abs(lse_want))) << what;
    }
  }
}

}  // namespace
}  // namespace fabric
