// The 16-byte column sums (kernels/cuda/col_sum_wide.h) checked without a device: which
// reductions they take, and whole grids replayed on the host with the kernel's thread function
// and its fold order (thread rows, then splits). Integer-valued inputs keep every float sum exact,
// so the replay must give the exact column sums for every shape and split.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/col_sum_wide.h"

namespace fabric {
namespace {

using cuda::ColSumWide;
using cuda::kColSumBlockX;
using cuda::kColSumBlockY;
using cuda::kColSumPiece;

struct FloatLoad {
  void operator()(const float* p, float (&v)[kColSumPiece]) const {
    for (int j = 0; j < kColSumPiece; ++j) v[j] = p[j];
  }
};

// What the kernel and its finish compute, block by block.
std::vector<float> replay(const std::vector<float>& in, const ColSumWide& s) {
  std::vector<float> partial(static_cast<size_t>(s.splits * s.cols), 0.0f);
  const int threads = kColSumBlockX * kColSumBlockY;
  for (int64_t split = 0; split < s.splits; ++split) {
    for (int64_t bx = 0; bx < s.col_blocks(); ++bx) {
      std::vector<std::vector<float>> sums(kColSumBlockY, std::vector<float>(threads, 0.0f));
      for (int y = 0; y < kColSumBlockY; ++y) {
        for (int x = 0; x < kColSumBlockX; ++x) {
          float acc[kColSumPiece];
          cuda::col_sum_wide_thread(in.data(), s, bx, x, split, y, FloatLoad{}, acc);
          for (int j = 0; j < kColSumPiece; ++j) sums[y][x * kColSumPiece + j] = acc[j];
        }
      }
      for (int t = 0; t < threads; ++t) {
        const int64_t col = bx * threads + t;
        if (col >= s.cols) continue;
        float v = sums[0][t];
        for (int y = 1; y < kColSumBlockY; ++y) v += sums[y][t];
        partial[static_cast<size_t>(split * s.cols + col)] = v;
      }
    }
  }
  std::vector<float> out(static_cast<size_t>(s.cols));
  for (int64_t c = 0; c < s.cols; ++c) {
    float v = partial[static_cast<size_t>(c)];
    for (int64_t k = 1; k < s.splits; ++k) v += partial[static_cast<size_t>(k * s.cols + c)];
    out[static_cast<size_t>(c)] = v;
  }
  return out;
}

TEST(CudaColSumWide, ReplayedGridsGiveTheExactColumnSums) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {1, 8}, {7, 8}, {9, 16}, {100, 256}, {300, 264}, {1000, 520}, {37, 2304}, {8192, 768}};
  for (const auto& [rows, cols] : shapes) {
    std::vector<float> in(static_cast<size_t>(rows * cols));
    std::vector<double> want(static_cast<size_t>(cols), 0.0);
    uint32_t state = 12345;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        state = state * 1664525u + 1013904223u;
        const float v = static_cast<float>(static_cast<int>(state >> 27) - 16);  // -16 .. 15
        in[static_cast<size_t>(r * cols + c)] = v;
        want[static_cast<size_t>(c)] += v;
      }
    }
    for (const int sms : {1, 8, 132}) {
      const ColSumWide s = cuda::plan_col_sum_wide(rows, cols, sms);
      const std::string what = std::to_string(rows) + " x " + std::to_string(cols) + ", " +
                               std::to_string(sms) + " SMs, " + std::to_string(s.splits) +
                               " splits";
      ASSERT_GE(s.splits, 1) << what;
      ASSERT_GE(s.splits * s.rows_per_split, rows) << what;
      ASSERT_LT((s.splits - 1) * s.rows_per_split, rows) << what << ": an empty split";
      const std::vector<float> got = replay(in, s);
      for (int64_t c = 0; c < cols; ++c) {
        ASSERT_EQ(static_cast<double>(got[static_cast<size_t>(c)]), want[static_cast<size_t>(c)])
            << what << ", column " << c;
      }
    }
  }
}

// A (rows, cols) float32 sum over its rows, as the op layer describes it.
ReduceGeometry column_sum(const void* in, int64_t rows, int64_t cols) {
  ReduceGeometry g;
  g.in = static_cast<const char*>(in);
  g.in_dtype = DType::float32;
  g.out_dtype = DType::float32;
  g.nkeep = 1;
  g.keep_sizes[0] = cols;
  g.keep_in[0] = 1;
  g.keep_out[0] = 1;
  g.nred = 1;
  g.red_sizes[0] = rows;
  g.red_in[0] = cols;
  return g;
}

TEST(CudaColSumWide, TakesOnlyPlainColumnSumsOfAlignedRows) {
  const char* wide = std::getenv("FABRIC_CUDA_WIDE");
  if (wide != nullptr && std::string(wide) == "0") GTEST_SKIP() << "FABRIC_CUDA_WIDE=0";
  alignas(16) static float data[64];
  ColSumWide s;
  const ReduceParams sum;
  EXPECT_TRUE(cuda::col_sum_wide_fits(ReduceOp::sum, column_sum(data, 100, 768), sum, &s));
  EXPECT_EQ(s.rows, 100);
  EXPECT_EQ(s.cols, 768);
  for (DType dt : {DType::bfloat16, DType::float16}) {
    ReduceGeometry g = column_sum(data, 100, 768);
    g.in_dtype = dt;
    EXPECT_TRUE(cuda::col_sum_wide_fits(ReduceOp::sum, g, sum, &s)) << dtype_name(dt);
  }
  // (B, T, C) over B and T: rows B * T.
  ReduceGeometry btc = column_sum(data, 1024, 768);
  btc.nred = 2;
  btc.red_sizes[0] = 8;
  btc.red_in[0] = 1024 * 768;
  btc.red_sizes[1] = 1024;
  btc.red_in[1] = 768;
  EXPECT_TRUE(cuda::col_sum_wide_fits(ReduceOp::sum, btc, sum, &s));
  EXPECT_EQ(s.rows, 8 * 1024);
  // Not taken:
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum_sq, column_sum(data, 100, 768), sum, &s));
  ReduceParams mean;
  mean.divisor = 100;
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum, column_sum(data, 100, 768), mean, &s));
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum, column_sum(data, 100, 770), sum, &s))
      << "cols not a multiple of 8";
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum, column_sum(data + 1, 100, 768), sum, &s))
      << "misaligned";
  ReduceGeometry g = column_sum(data, 100, 768);
  g.in_dtype = DType::float64;
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum, g, sum, &s)) << "float64";
  g = column_sum(data, 100, 768);
  g.keep_in[0] = 100;
  g.red_in[0] = 1;
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum, g, sum, &s)) << "transposed";
  g = column_sum(data, 100, 768);
  g.keep_out[0] = 2;
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum, g, sum, &s)) << "strided output";
  ReduceGeometry gap = btc;
  gap.red_in[0] = 2048 * 768;
  EXPECT_FALSE(cuda::col_sum_wide_fits(ReduceOp::sum, gap, sum, &s)) << "rows not contiguous";
}

}  // namespace
}  // namespace fabric
