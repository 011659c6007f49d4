// for_each_row walks a loop in tiles when its operands are unit-stride along different dims
// (tensor/strided_loop_impl.h): every element is visited exactly once, tile edges that are not a
// multiple of the tile and dims outside the tiled pair included, and elementwise ops through the
// tiled walk give the bits of the same op on row-major copies of their operands, on 1 and 2
// threads, in every float dtype and mixed dtypes.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/strided_loop.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

TEST(LoopTiles, ChosenOnlyForOperandsContiguousAlongDifferentDims) {
  const Tensor out = zeros({8, 196, 768});
  const Tensor a = randn({8, 768, 196}).transpose(1, 2), pos = randn({8, 196, 768});
  const StridedLoop mixed = make_strided_loop("add", out, {&a, &pos});
  const detail::LoopTiles t = detail::loop_tiles_for(mixed);
  EXPECT_EQ(t.tile_dim, mixed.ndim - 2);
  EXPECT_EQ(t.height, 64);
  EXPECT_EQ(t.width, 128);
  EXPECT_LT(detail::loop_tiles_for(make_strided_loop("add", out, {&pos, &pos})).tile_dim, 0);
  // Too short along the rows (fewer than 16) to pay: the plain row walk.
  const Tensor narrow_out = zeros({300, 8});
  const Tensor narrow = randn({8, 300}).t();
  EXPECT_LT(detail::loop_tiles_for(make_strided_loop("neg", narrow_out, {&narrow})).tile_dim, 0);
  // A double operand: tiles of 32 indices.
  const Tensor d_out = zeros({100, 100}, {.dtype = DType::float64});
  const Tensor d = randn({100, 100}, {.dtype = DType::float64}).t();
  EXPECT_EQ(detail::loop_tiles_for(make_strided_loop("neg", d_out, {&d})).height, 32);
}

// Counts the visits of each output element of a tiled loop.
std::vector<float> visit_counts(const Shape& out_shape, const Tensor& strided, int threads) {
  OmpThreads scope(threads);
  Tensor out = zeros(out_shape);
  const StridedLoop loop = make_strided_loop("count", out, {&strided});
  EXPECT_GE(detail::loop_tiles_for(loop).tile_dim, 0);
  for_each_row(loop, [](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, p[0] + i * s[0], sizeof v);
      v += 1.0f;
      std::memcpy(p[0] + i * s[0], &v, sizeof v);
    }
  });
  return out.to_vector<float>();
}

TEST(LoopTiles, EveryElementIsVisitedOnce) {
  for (int threads : {1, 2}) {
    SCOPED_TRACE(threads);
    // Edges that are not multiples of 64 x 128; a leading dim; dims left outside the tiled pair.
    const std::vector<float> a =
        visit_counts({3, 70, 145}, randn({3, 145, 70}).transpose(1, 2), threads);
    EXPECT_EQ(a, std::vector<float>(a.size(), 1.0f));
    const std::vector<float> b =
        visit_counts({2, 33, 5, 130}, randn({2, 130, 5, 33}).permute({0, 3, 2, 1}), threads);
    EXPECT_EQ(b, std::vector<float>(b.size(), 1.0f));
    const std::vector<float> c = visit_counts({600, 700}, randn({700, 600}).t(), threads);
    EXPECT_EQ(c, std::vector<float>(c.size(), 1.0f));
  }
}

void expect_same_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const Tensor g = got.contiguous(), w = want.contiguous();
  EXPECT_EQ(std::memcmp(g.data_ptr(), w.data_ptr(), g.numel() * itemsize(g.dtype())), 0) << what;
}

TEST(LoopTiles, OpsGiveTheBitsOfRowMajorOperands) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (DType dt : {DType::float32, DType::bfloat16, DType::float16, DType::float64}) {
      const std::string what = std::string(dtype_name(dt)) + " threads=" + std::to_string(threads);
      const Tensor a = randn({4, 150, 97}).to(dt), pos = randn({4, 97, 150}).to(dt);
      const Tensor at = a.transpose(1, 2), row = at.contiguous();
      expect_same_bits(add(at, pos), add(row, pos), "add " + what);
      expect_same_bits(add(pos, at, 0.5), add(pos, row, 0.5), "add alpha " + what);
      expect_same_bits(mul(at, pos), mul(row, pos), "mul " + what);
      expect_same_bits(div(pos, at), div(pos, row), "div " + what);
      expect_same_bits(pow(abs(at), pos), pow(abs(row), pos), "pow " + what);
      expect_same_bits(maximum(at, pos), maximum(row, pos), "maximum " + what);
      expect_same_bits(gt(at, pos), gt(row, pos), "gt " + what);
      expect_same_bits(where(gt(pos, 0.0), at, pos), where(gt(pos, 0.0), row, pos),
                       "where " + what);
      expect_same_bits(addcmul(pos, at, pos, 0.25), addcmul(pos, row, pos, 0.25),
                       "addcmul " + what);
      // Written into a transposed view: the output is the strided operand.
      Tensor out = zeros({4, 150, 97}, {.dtype = dt}).transpose(1, 2);
      out.copy_(add(pos, 1.0));
      expect_same_bits(out, add(pos, 1.0), "copy_ into a transposed view " + what);
      Tensor acc = pos.clone().transpose(1, 2).contiguous().transpose(1, 2);
      acc.add_(at);
      expect_same_bits(acc, add(pos, row), "add_ on a transposed tensor " + what);
    }
    // Mixed dtypes: a bfloat16 operand beside a float32 one.
    const Tensor h = randn({4, 150, 97}).to(DType::bfloat16).transpose(1, 2);
    const Tensor f = randn({4, 97, 150});
    expect_same_bits(add(h, f), add(h.contiguous(), f), "bfloat16 + float32");
    expect_same_bits(mul(f, h), mul(f, h.contiguous()), "float32 * bfloat16");
  }
}

}  // namespace
}  // namespace fabric
