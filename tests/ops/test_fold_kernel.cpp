// fold's (col2im) CPU kernel, which adds each kernel offset's column row into its plane one
// output row at a time: stride, padding and dilation combinations (kernel columns wholly in the
// padding, pixels no block reaches, strides past the kernel) against the float64 reference at 1
// and 2 threads, and float32 sums in the per-element loop's order, (ki, kj) from 0, bit for bit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/omp_threads.h"
#include "tests/ops/op_harness.h"

namespace fabric {
namespace {

using harness::F;
using harness::OpCase;
using harness::RefTensor;
using Sizes = std::vector<int64_t>;

struct Geom {
  Sizes k, d, p, s;
};

int64_t blocks(int64_t n, int64_t k, int64_t d, int64_t p, int64_t s) {
  return (n + 2 * p - (d * (k - 1) + 1)) / s + 1;
}

struct FoldCase {
  std::string name;
  int64_t N, C;  // N = 0: unbatched (C*kh*kw, L)
  Sizes size;
  Geom g;
};

const std::vector<FoldCase> kCases = {
    {"k3_s2_p1", 2, 3, {9, 11}, {{3, 3}, {1, 1}, {1, 1}, {2, 2}}},
    {"k2x3_d2", 1, 2, {7, 8}, {{2, 3}, {2, 2}, {0, 0}, {1, 1}}},
    {"k3_s3_p2", 2, 2, {8, 7}, {{3, 3}, {1, 1}, {2, 2}, {3, 3}}},
    // padding 3 past a 2-wide kernel: whole rows and columns of blocks in the padding
    {"k2_p3", 1, 3, {4, 5}, {{2, 2}, {1, 1}, {3, 3}, {1, 1}}},
    // one block: kernel offset 0 lies wholly in the padding, offset 1 reaches pixel 0 only
    {"k2_d3_p3_s10_offset_in_padding", 2, 2, {5, 6}, {{2, 2}, {3, 3}, {3, 3}, {10, 10}}},
    // stride 3 past a 2-wide kernel: every third row and column receives nothing
    {"k2_s3_gaps", 2, 2, {8, 11}, {{2, 2}, {1, 1}, {0, 0}, {3, 3}}},
    {"k3x2_d2x3_p2x1_s1x2", 1, 2, {9, 10}, {{3, 2}, {2, 3}, {2, 1}, {1, 2}}},
    {"k1_p0", 2, 3, {5, 6}, {{1, 1}, {1, 1}, {0, 0}, {1, 1}}},
    {"unbatched_k3_p1_d2", 0, 2, {7, 9}, {{3, 3}, {2, 2}, {1, 1}, {1, 1}}},
    // Large enough for the OpenMP split (planes * kk * L > 32768), with vector bodies and tails.
    {"k3_p1_parallel", 2, 4, {24, 37}, {{3, 3}, {1, 1}, {1, 1}, {1, 1}}},
    {"k5_p2_s2_parallel", 2, 6, {30, 33}, {{5, 5}, {1, 1}, {2, 2}, {2, 2}}},
};

Shape cols_shape(const FoldCase& c) {
  const int64_t L = blocks(c.size[0], c.g.k[0], c.g.d[0], c.g.p[0], c.g.s[0]) *
                    blocks(c.size[1], c.g.k[1], c.g.d[1], c.g.p[1], c.g.s[1]);
  const int64_t rows = c.C * c.g.k[0] * c.g.k[1];
  return c.N == 0 ? Shape{rows, L} : Shape{c.N, rows, L};
}

// Each pixel summed over (c, i, j, bh, bw) in that order, in T (float64 for the reference).
template <typename T>
std::vector<T> naive_fold(const std::vector<T>& x, const FoldCase& c) {
  const int64_t N = c.N == 0 ? 1 : c.N, H = c.size[0], W = c.size[1];
  const int64_t BH = blocks(H, c.g.k[0], c.g.d[0], c.g.p[0], c.g.s[0]);
  const int64_t BW = blocks(W, c.g.k[1], c.g.d[1], c.g.p[1], c.g.s[1]);
  const int64_t L = BH * BW, rows = c.C * c.g.k[0] * c.g.k[1];
  std::vector<T> out(static_cast<size_t>(N * c.C * H * W), T(0));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ch = 0; ch < c.C; ++ch)
      for (int64_t i = 0; i < c.g.k[0]; ++i)
        for (int64_t j = 0; j < c.g.k[1]; ++j)
          for (int64_t bh = 0; bh < BH; ++bh)
            for (int64_t bw = 0; bw < BW; ++bw) {
              const int64_t h = bh * c.g.s[0] - c.g.p[0] + i * c.g.d[0];
              const int64_t w = bw * c.g.s[1] - c.g.p[1] + j * c.g.d[1];
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              const int64_t row = (ch * c.g.k[0] + i) * c.g.k[1] + j;
              out[((n * c.C + ch) * H + h) * W + w] += x[(n * rows + row) * L + bh * BW + bw];
            }
  return out;
}

Tensor run_fold(const Tensor& x, const FoldCase& c) {
  return fold(x, c.size, c.g.k, c.g.d, c.g.p, c.g.s);
}

std::vector<OpCase> fold_cases() {
  std::vector<OpCase> out;
  for (const FoldCase& c : kCases) {
    out.push_back({"fold_kernel/" + c.name,
                   {F(cols_shape(c))},
                   [c](const std::vector<Tensor>& t) { return run_fold(t[0], c); },
                   [c](const std::vector<RefTensor>& t) {
                     Shape s = c.N == 0 ? Shape{c.C, c.size[0], c.size[1]}
                                        : Shape{c.N, c.C, c.size[0], c.size[1]};
                     return RefTensor{s, naive_fold(t[0].v, c)};
                   }});
  }
  return out;
}

TEST(FoldKernel, HarnessAtOneThread) {
  OmpThreads one(1);
  harness::run_cases(fold_cases());
}

TEST(FoldKernel, HarnessAtTwoThreads) {
  OmpThreads two(2);
  harness::run_cases(fold_cases());
}

// float32 sums in the order torch's col2im and the per-element loop use: the same bits.
TEST(FoldKernel, Float32SumsInKernelOffsetOrder) {
  manual_seed(4);
  for (int threads : {1, 2}) {
    OmpThreads t(threads);
    for (const FoldCase& c : kCases) {
      SCOPED_TRACE(::testing::Message() << c.name << " threads " << threads);
      const Tensor x = randn(cols_shape(c));
      const std::vector<float> want = naive_fold(x.to_vector<float>(), c);
      const std::vector<float> got = run_fold(x, c).to_vector<float>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "at " << i;
    }
  }
}

}  // namespace
}  // namespace fabric
