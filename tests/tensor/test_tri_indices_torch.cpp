// tril_indices / triu_indices against torch 1.13 (tests/tensor/tri_indices_torch_rows.h, from
// tools/fixtures/make_tri_indices_rows.py):
//   torch.tril_indices(row, col, offset)  # and torch.triu_indices: every index of the result
// over empty, square, wide and tall shapes with offsets inside and beyond the matrix on both
// sides, then larger shapes by count and checksum. The same rows check the tril / triu ops: in
// torch, tril(x, k) is x times the 0/1 mask that tril_indices(r, c, k) marks, batched or not.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/tri_indices.h"
#include "tests/tensor/tri_indices_torch_rows.h"

namespace fabric {
namespace {

Tensor tri_indices(bool upper, int64_t row, int64_t col, int64_t offset,
                   DType dtype = DType::int64) {
  return upper ? triu_indices(row, col, offset, dtype) : tril_indices(row, col, offset, dtype);
}

std::string label(bool upper, int64_t row, int64_t col, int64_t offset) {
  return std::string(upper ? "triu_indices(" : "tril_indices(") + std::to_string(row) + ", " +
         std::to_string(col) + ", " + std::to_string(offset) + ")";
}

template <typename E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
  }
}

TEST(TriIndicesTorch, ValuesMatchTorchInInt64AndInt32) {
  for (const TriIndicesTorchRow& r : tri_indices_torch_rows()) {
    SCOPED_TRACE(label(r.upper, r.row, r.col, r.offset));
    const int64_t n = static_cast<int64_t>(r.rows.size());
    const Tensor t = tri_indices(r.upper, r.row, r.col, r.offset);
    ASSERT_EQ(t.dtype(), DType::int64);
    ASSERT_EQ(t.sizes(), (Shape{2, n}));
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_FALSE(t.requires_grad());
    EXPECT_EQ(t.select(0, 0).to_vector<int64_t>(), r.rows);
    EXPECT_EQ(t.select(0, 1).to_vector<int64_t>(), r.cols);
    // torch.tril_indices(row, col, offset, dtype=torch.int32): the same values.
    const Tensor t32 = tri_indices(r.upper, r.row, r.col, r.offset, DType::int32);
    ASSERT_EQ(t32.dtype(), DType::int32);
    ASSERT_EQ(t32.sizes(), (Shape{2, n}));
    EXPECT_EQ(t32.to(DType::int64).to_vector<int64_t>(), t.to_vector<int64_t>());
  }
}

TEST(TriIndicesTorch, LargeShapesCountAndChecksum) {
  for (const TriIndicesTorchSum& r : tri_indices_torch_sums()) {
    SCOPED_TRACE(label(r.upper, r.row, r.col, r.offset));
    const Tensor t = tri_indices(r.upper, r.row, r.col, r.offset);
    ASSERT_EQ(t.sizes(), (Shape{2, r.count}));
    const std::vector<int64_t> v = t.to_vector<int64_t>();
    int64_t sum = 0;
    for (int64_t p = 0; p < r.count; ++p) sum += p * (v[p] + 3 * v[r.count + p]);
    EXPECT_EQ(sum, r.checksum);
  }
}

// Offsets at the int64 limits: torch 1.13's size formula wraps there (tril_indices(3, 4, 2**63-1)
// raises "negative dimension", triu_indices(3, 4, 2**63-1) returns garbage), so fabric gives what
// torch gives for any offset past the matrix, e.g. torch.tril_indices(3, 4, 2**62): all 12 cells.
TEST(TriIndicesTorch, ExtremeOffsetsAreClampedToTheMatrix) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  // torch.tril_indices(3, 4, 2**62) / torch.triu_indices(3, 4, -2**62)
  const std::vector<int64_t> all = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                    0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
  EXPECT_EQ(tril_indices(3, 4, kMax).to_vector<int64_t>(), all);
  EXPECT_EQ(triu_indices(3, 4, kMin).to_vector<int64_t>(), all);
  EXPECT_EQ(tril_indices(3, 4, kMin).sizes(), (Shape{2, 0}));
  EXPECT_EQ(triu_indices(3, 4, kMax).sizes(), (Shape{2, 0}));
}

// torch.tril_indices(3, 3, dtype=torch.float32)
//   RuntimeError: "tril_indices" not implemented for 'Float'  (so every dtype but int64, int32)
// torch.tril_indices(-1, 3) -> RuntimeError: row must be non-negative, got-1
// torch.tril_indices(3, -1) -> RuntimeError: col must be non-negative, got-1
// torch.tril_indices(-1, -1) and torch.tril_indices(-1, 3, dtype=torch.float32): the row message.
TEST(TriIndicesTorch, Errors) {
  for (bool upper : {false, true}) {
    const std::string op = upper ? "triu_indices" : "tril_indices";
    SCOPED_TRACE(op);
    for (DType dt : {DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::int8,
                     DType::uint8, DType::bool_}) {
      expect_error<DTypeError>([&] { tri_indices(upper, 3, 3, 0, dt); },
                               {op, "not implemented for", std::string(dtype_name(dt))});
    }
    expect_error<ValueError>([&] { tri_indices(upper, -1, 3, 0); },
                             {op, "row must be non-negative, got -1"});
    expect_error<ValueError>([&] { tri_indices(upper, 3, -2, 0); },
                             {op, "col must be non-negative, got -2"});
    expect_error<ValueError>([&] { tri_indices(upper, -1, -1, 0); }, {"row must be non-negative"});
    expect_error<ValueError>([&] { tri_indices(upper, -1, 3, 0, DType::float32); },
                             {"row must be non-negative"});
  }
}

// The tril / triu ops on the same shapes and offsets, batched (2, 3, r, c) and plain:
//   x = torch.arange(1., 2*3*r*c + 1).view(2, 3, r, c)
//   i = torch.tril_indices(r, c, k); m = torch.zeros(r, c); m[i[0], i[1]] = 1
//   torch.equal(torch.tril(x, k), x * m)   # True for every row of the fixture (and triu alike)
TEST(TriIndicesTorch, TrilTriuOpsKeepExactlyTheIndexedCells) {
  for (const TriIndicesTorchRow& r : tri_indices_torch_rows()) {
    SCOPED_TRACE(label(r.upper, r.row, r.col, r.offset));
    std::vector<float> mask(static_cast<size_t>(r.row * r.col), 0.f);
    for (size_t p = 0; p < r.rows.size(); ++p) mask[r.rows[p] * r.col + r.cols[p]] = 1.f;
    const int64_t cells = r.row * r.col;
    const Tensor x = arange(1, 6 * cells + 1, 1, DType::float32).view({2, 3, r.row, r.col});
    const Tensor got = r.upper ? triu(x, r.offset) : tril(x, r.offset);
    ASSERT_EQ(got.sizes(), x.sizes());
    const std::vector<float> v = got.to_vector<float>();
    for (int64_t e = 0; e < 6 * cells; ++e)
      ASSERT_EQ(v[e], mask[e % cells] * static_cast<float>(e + 1)) << "element " << e;
    if (cells == 0) continue;
    const Tensor plain = x.select(0, 1).select(0, 2);  // a 2-D, non-batched matrix
    const Tensor got2 = r.upper ? triu(plain, r.offset) : tril(plain, r.offset);
    const std::vector<float> v2 = got2.to_vector<float>();
    for (int64_t e = 0; e < cells; ++e)
      ASSERT_EQ(v2[e], mask[e] * static_cast<float>(5 * cells + e + 1)) << "element " << e;
  }
}

}  // namespace
}  // namespace fabric
