// col_sum_rows_f32 (kernels/cpu/reduce_cols_f32.h), the float32 leaf of the column sums, must give
// the bits of the definition it replaces in Reducer<sum, float>::cols: per column, 0 plus each row
// in row order, in float32 (bfloat16 rows widened exactly). Widths with whole 64-column groups,
// 16-column steps and masked tails; 1 to 16 rows; unaligned row starts; order-sensitive values,
// infinities and -0.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/reduce_cols_f32.h"
#include "tensor/float_formats.h"
#include "tests/common/order_sensitive.h"

namespace fabric::cpu {
namespace {

// Row-major (rows, stride) values stored as dt (float32 or bfloat16), row r starting `offset`
// elements into its row, plus those values as float32.
struct Block {
  std::vector<char> bytes;
  std::vector<float> values;  // as float32, (rows, stride)
  std::vector<const char*> row_ptrs;
};

Block make_block(DType dt, int64_t rows, int64_t w, int64_t offset, uint32_t seed) {
  const int64_t stride = w + offset + 3, isz = dt == DType::bfloat16 ? 2 : 4;
  Block b;
  b.values = order_sensitive(static_cast<size_t>(rows * stride), seed);
  b.bytes.resize(static_cast<size_t>(rows * stride * isz));
  for (size_t i = 0; i < b.values.size(); ++i) {
    if (dt == DType::bfloat16) {
      const uint16_t h = float_to_bf16_bits(b.values[i]);
      b.values[i] = bf16_bits_to_float(h);
      std::memcpy(b.bytes.data() + i * 2, &h, 2);
    } else {
      std::memcpy(b.bytes.data() + i * 4, &b.values[i], 4);
    }
  }
  for (int64_t r = 0; r < rows; ++r)
    b.row_ptrs.push_back(b.bytes.data() + (r * stride + offset) * isz);
  return b;
}

void expect_definition_bits(DType dt, int64_t rows, int64_t w, int64_t offset, uint32_t seed) {
  const Block b = make_block(dt, rows, w, offset, seed);
  const int64_t stride = w + offset + 3;
  std::vector<float> got(static_cast<size_t>(w) + 1, 12345.0f);
  col_sum_rows_f32(b.row_ptrs.data(), rows, dt, w, got.data());
  for (int64_t j = 0; j < w; ++j) {
    float want = 0;
    for (int64_t r = 0; r < rows; ++r) want += b.values[r * stride + offset + j];
    ASSERT_EQ(std::bit_cast<uint32_t>(got[j]), std::bit_cast<uint32_t>(want))
        << (dt == DType::bfloat16 ? "bf16" : "f32") << " rows=" << rows << " w=" << w
        << " offset=" << offset << " column " << j << ": " << got[j] << " vs " << want;
  }
  EXPECT_EQ(got[w], 12345.0f) << "wrote past column w=" << w;
}

TEST(ReduceColsF32, DefinitionBitsForEveryWidthAndRowCount) {
  for (DType dt : {DType::float32, DType::bfloat16})
    for (int64_t w : {1, 7, 15, 16, 17, 63, 64, 65, 100, 128, 200, 256})
      for (int64_t rows : {1, 2, 5, 15, 16})
        for (int64_t offset : {0, 1})
          expect_definition_bits(dt, rows, w, offset, static_cast<uint32_t>(w * 31 + rows));
}

TEST(ReduceColsF32, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  // Column 0: -0 + -0 (the sum from +0 is +0); column 1: inf + -inf (NaN); column 2: inf + 1.
  const float r0[3] = {-0.0f, inf, inf}, r1[3] = {-0.0f, -inf, 1.0f};
  const char* rows[2] = {reinterpret_cast<const char*>(r0), reinterpret_cast<const char*>(r1)};
  float acc[3];
  col_sum_rows_f32(rows, 2, DType::float32, 3, acc);
  EXPECT_EQ(std::bit_cast<uint32_t>(acc[0]), 0u);
  EXPECT_TRUE(std::isnan(acc[1]));
  EXPECT_EQ(acc[2], inf);
}

TEST(ReduceColsF32, DataTellsRowOrdersApart) {
  // A reversed row order must give other bits on this data, or an order change could pass.
  const Block b = make_block(DType::float32, 16, 64, 0, 5);
  const int64_t stride = 64 + 3;
  int differ = 0;
  for (int64_t j = 0; j < 64; ++j) {
    float fwd = 0, rev = 0;
    for (int64_t r = 0; r < 16; ++r) fwd += b.values[r * stride + j];
    for (int64_t r = 15; r >= 0; --r) rev += b.values[r * stride + j];
    differ += std::bit_cast<uint32_t>(fwd) != std::bit_cast<uint32_t>(rev);
  }
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace fabric::cpu
