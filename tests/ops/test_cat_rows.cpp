// cat and stack of contiguous pieces through the row-by-row kernel (tensor/cat_kernels.h): every
// piece lands, bit for bit, where out.narrow()/select() says (read back through the strided copy,
// an independent path), in every dtype, for odd row lengths and counts, with empty pieces, and
// at 1 and 2 threads on outputs large enough to be split between them; pieces the kernel does not
// take (a strided one, another dtype) leave the result unchanged. The harness (op_cases_index.cpp)
// checks values and gradients against float64 references.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

const std::vector<DType> kAllDTypes = {DType::bool_,         DType::uint8,      DType::int8,
                                       DType::int32,         DType::int64,      DType::float16,
                                       DType::bfloat16,      DType::float32,    DType::float64,
                                       DType::float8_e4m3fn, DType::float8_e5m2};

// Distinct values per piece and position (small integers: exact in every dtype but bool, and
// bool gets a pattern of both values).
Tensor piece(const Shape& shape, DType dt, int seed) {
  const Tensor t = remainder(arange(0, numel_of(shape), 1, DType::int64) * 7 + seed * 13, 11) - 5;
  return (dt == DType::bool_ ? gt(t, 0) : t.to(dt)).reshape(shape);
}

void expect_pieces_in_place(const Tensor& out, const std::vector<Tensor>& pieces, int64_t dim,
                            const std::string& what) {
  int64_t offset = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const int64_t n = pieces[i].size(dim);
    EXPECT_TRUE(bits_equal(out.narrow(dim, offset, n).contiguous(), pieces[i]))
        << what << ": piece " << i << " (" << shape_str(pieces[i].sizes()) << ") at offset "
        << offset;
    offset += n;
  }
  EXPECT_EQ(offset, out.size(dim)) << what;
}

// (outer..., sizes[i], inner) pieces concatenated along dim.
std::vector<Tensor> pieces_along(Shape base, int64_t dim, const std::vector<int64_t>& sizes,
                                 DType dt) {
  std::vector<Tensor> ps;
  for (size_t i = 0; i < sizes.size(); ++i) {
    base[dim] = sizes[i];
    ps.push_back(piece(base, dt, static_cast<int>(i)));
  }
  return ps;
}

TEST(CatRows, EveryDTypeOddSizesAndEmptyPieces) {
  for (DType dt : kAllDTypes) {
    const std::string name(dtype_name(dt));
    // Rows of 1, 3, 0 and 7 elements (odd byte counts for 1-byte dtypes), 5 of them.
    const auto ps = pieces_along({5, 0}, 1, {1, 3, 0, 7}, dt);
    const Tensor out = cat(ps, 1);
    ASSERT_EQ(out.sizes(), (Shape{5, 11})) << name;
    expect_pieces_in_place(out, ps, 1, name + " dim 1");
    // A middle dim: rows of the pieces' (size * 3) elements.
    const auto ps3 = pieces_along({3, 0, 3}, 1, {2, 1, 4}, dt);
    expect_pieces_in_place(cat(ps3, 1), ps3, 1, name + " 3-d dim 1");
    const auto last = pieces_along({2, 3, 0}, 2, {5, 2}, dt);
    expect_pieces_in_place(cat(last, -1), last, 2, name + " dim -1");
  }
}

TEST(CatRows, SameBitsAtOneAndTwoThreadsOnLargeOutputs) {
  // 1001 rows of 3 + 517 + 1 float32 elements (2 MiB: split between threads), and bytes.
  for (DType dt : {DType::float32, DType::uint8, DType::float64}) {
    const auto ps = pieces_along({1001, 0}, 1, {3, 517, 1}, dt);
    Tensor one, two;
    {
      OmpThreads scope(1);
      one = cat(ps, 1);
    }
    {
      OmpThreads scope(2);
      two = cat(ps, 1);
    }
    const std::string name(dtype_name(dt));
    expect_pieces_in_place(one, ps, 1, name + " 1 thread");
    EXPECT_TRUE(bits_equal(one, two)) << name;
  }
}

TEST(CatRows, PiecesTheKernelDoesNotTakeGiveTheSameResult) {
  const auto ps = pieces_along({6, 0}, 1, {4, 5, 2}, DType::float32);
  const Tensor direct = cat(ps, 1);
  // A transposed (strided) piece, and one of another dtype (promoted by the copy).
  std::vector<Tensor> strided = ps;
  strided[1] = ps[1].t().contiguous().t();
  ASSERT_FALSE(strided[1].is_contiguous());
  EXPECT_TRUE(bits_equal(cat(strided, 1), direct));
  std::vector<Tensor> mixed = ps;
  mixed[2] = ps[2].to(DType::int64);
  EXPECT_TRUE(bits_equal(cat(mixed, 1), direct));
  // Along dim 0 (one row: the per-piece copies).
  const auto rows = pieces_along({0, 6}, 0, {2, 3}, DType::float32);
  expect_pieces_in_place(cat(rows, 0), rows, 0, "dim 0");
}

TEST(StackRows, EveryDTypeAndEveryDim) {
  for (DType dt : kAllDTypes) {
    std::vector<Tensor> ps;
    for (int i = 0; i < 5; ++i) ps.push_back(piece({3, 7}, dt, i));
    for (int64_t dim : {0, 1, 2}) {
      const Tensor out = stack(ps, dim);
      for (size_t i = 0; i < ps.size(); ++i) {
        EXPECT_TRUE(bits_equal(out.select(dim, static_cast<int64_t>(i)).contiguous(), ps[i]))
            << dtype_name(dt) << " dim " << dim << " piece " << i;
      }
    }
  }
}

TEST(StackRows, SameBitsAtOneAndTwoThreads) {
  std::vector<Tensor> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(piece({4099, 33}, DType::float32, i));
  Tensor one, two;
  {
    OmpThreads scope(1);
    one = stack(ps, 1);
  }
  {
    OmpThreads scope(2);
    two = stack(ps, 1);
  }
  for (size_t i = 0; i < ps.size(); ++i)
    EXPECT_TRUE(bits_equal(one.select(1, static_cast<int64_t>(i)).contiguous(), ps[i])) << i;
  EXPECT_TRUE(bits_equal(one, two));
}

}  // namespace
}  // namespace fabric
