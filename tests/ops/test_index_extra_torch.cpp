// take, repeat_interleave, diag_embed, searchsorted/bucketize, unique/unique_consecutive and
// nonzero_tuple (tensor/index_extra.h) against torch 1.13 CPU: values, dtypes, shapes, torch's
// errors and the gradients torch has. Searches and slice-wise unique come from
// tests/ops/index_extra_torch_rows.h (tools/fixtures/make_index_extra_rows.py); the rest are
// literals printed by torch 1.13 for the same calls.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/index_extra.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/ops/index_extra_torch_rows.h"

namespace fabric {
namespace {

using index_extra_torch::kInf;
using index_extra_torch::kNaN;

Tensor f32(const std::vector<double>& v, Shape shape = {}) {
  return from_vector(v, shape, {.dtype = DType::float32});
}
Tensor i64(const std::vector<int64_t>& v, Shape shape = {}) {
  return from_vector(v, shape, {.dtype = DType::int64});
}
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

// Bit-for-bit equality after both went through float32 (so -0 and NaN are checked too).
void expect_bits(const Tensor& got, const std::vector<double>& want, const std::string& what) {
  const std::vector<double> g = got.to_vector<double>();
  const std::vector<double> w = f32(want).to_vector<double>();
  ASSERT_EQ(g.size(), w.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint64_t>(g[i]), std::bit_cast<uint64_t>(w[i]))
        << what << "[" << i << "]: " << g[i] << " vs torch " << w[i];
}

// ---- take -------------------------------------------------------------------------------------

TEST(IndexExtraTorch, TakeFlattenedNegativeAndShape) {
  const Tensor x = arange(6, DType::float32).reshape({2, 3});
  const Tensor y = take(x, i64({0, -1, 5, 2}, {2, 2}));
  EXPECT_EQ(y.sizes(), (Shape{2, 2}));
  EXPECT_EQ(y.dtype(), DType::float32);
  expect_bits(y, {0, 5, 5, 2}, "take");
  const Tensor s = take(scalar_tensor(5.0, {.dtype = DType::float32}), i64({0}).reshape({}));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), 5.0f);
  const Tensor e = take(empty({0}, {.dtype = DType::float32}), i64({}, {0}));
  EXPECT_EQ(e.sizes(), (Shape{0}));
}

TEST(IndexExtraTorch, TakeErrors) {
  const Tensor x = arange(6, DType::float32).reshape({2, 3});
  EXPECT_CONTAINS(thrown<IndexError>([&] { take(x, i64({6})); }),
                  "out of range: tried to access index 6 on a tensor of 6 elements.");
  EXPECT_CONTAINS(thrown<IndexError>([&] { take(x, i64({-7})); }),
                  "tried to access index -7 on a tensor of 6 elements.");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { take(x, i64({1}).to(DType::int32)); }),
                  "Expected a long");
  EXPECT_CONTAINS(thrown<IndexError>([&] { take(empty({0}), i64({0})); }),
                  "tried to take from an empty tensor");
}

TEST(IndexExtraTorch, TakeGradientAccumulates) {
  Tensor x = arange(6, DType::float32).reshape({2, 3}).set_requires_grad(true);
  sum(take(x, i64({0, 0, -1}))).backward();
  expect_bits(x.grad(), {2, 0, 0, 0, 0, 1}, "take grad");  // torch: [[2,0,0],[0,0,1]]
}

// ---- repeat_interleave ------------------------------------------------------------------------

TEST(IndexExtraTorch, RepeatInterleaveForms) {
  const Tensor x = arange(6, DType::float32).reshape({2, 3});
  const Tensor flat = repeat_interleave(x, 2);
  EXPECT_EQ(flat.sizes(), (Shape{12}));
  expect_bits(flat, {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, "flat");
  const Tensor rows = repeat_interleave(x, 2, 0);
  EXPECT_EQ(rows.sizes(), (Shape{4, 3}));
  expect_bits(rows, {0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}, "dim 0");
  expect_bits(repeat_interleave(x, i64({1, 0, 2}), 1), {0, 2, 2, 3, 5, 5}, "tensor dim 1");
  expect_bits(repeat_interleave(x, i64({2}), 1), {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5},
              "one repeat broadcast");
  expect_bits(repeat_interleave(x, i64({1, 2}).to(DType::int32), 0, 3), {0, 1, 2, 3, 4, 5, 3, 4, 5},
              "int32 repeats, output_size");
  const Tensor ints32 = repeat_interleave(i64({1, 2}).to(DType::int32), 2);
  EXPECT_EQ(ints32.dtype(), DType::int32);
  const Tensor idx = repeat_interleave(i64({1, 0, 3}));
  EXPECT_EQ(idx.dtype(), DType::int64);
  EXPECT_EQ(ints(idx), (std::vector<int64_t>{0, 2, 2, 2}));
  EXPECT_EQ(repeat_interleave(i64({1, 0, 3}).to(DType::int32)).dtype(), DType::int32);
  EXPECT_EQ(ints(repeat_interleave_sized(i64({2, 1}), 3)), (std::vector<int64_t>{0, 0, 1}));
  expect_bits(repeat_interleave(scalar_tensor(5.0, {.dtype = DType::float32}), 3), {5, 5, 5},
              "0-dim input");
}

TEST(IndexExtraTorch, RepeatInterleaveErrors) {
  const Tensor x = arange(6, DType::float32).reshape({2, 3});
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    repeat_interleave(x, i64({1, 2}), 1);
                  }),
                  "repeats must have the same size as input along dim");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    repeat_interleave(x, i64({1, -2}), 0);
                  }),
                  "repeats can not be negative");
  EXPECT_CONTAINS(thrown<ValueError>([&] { repeat_interleave(x, -1); }),
                  "repeats can not be negative");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    repeat_interleave(x, i64({2}, {1, 1}), 1);
                  }),
                  "repeats must be 0-dim or 1-dim tensor");
  EXPECT_THROW(repeat_interleave(x, f32({1, 2}), 0), DTypeError);
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    repeat_interleave(x, i64({1, 2}), 0, 4);
                  }),
                  "allocated size does not match required size");
  EXPECT_THROW(repeat_interleave(x, 2, 0, 3), ValueError);
  EXPECT_THROW(repeat_interleave(x, 2, 2), IndexError);
  EXPECT_THROW(repeat_interleave(scalar_tensor(5.0), 3, 0), IndexError);
  EXPECT_CONTAINS(thrown<ShapeError>([&] { repeat_interleave(i64({3}).reshape({})); }),
                  "only accept 1D vector as repeat");
  EXPECT_THROW(repeat_interleave(f32({1, 2})), DTypeError);
  EXPECT_THROW(repeat_interleave_sized(i64({1, 2}), 5), ValueError);
}

TEST(IndexExtraTorch, RepeatInterleaveGradientSumsBack) {
  Tensor x = arange(6, DType::float32).reshape({2, 3}).set_requires_grad(true);
  const Tensor y = repeat_interleave(x, i64({1, 0, 2}), 1);
  y.backward(mul(arange(6, DType::float32).reshape({2, 3}), 10));
  expect_bits(x.grad(), {0, 0, 30, 30, 0, 90}, "repeat_interleave grad");
}

// ---- diag_embed -------------------------------------------------------------------------------

TEST(IndexExtraTorch, DiagEmbedValuesAndDims) {
  const Tensor v = f32({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor d = diag_embed(v);
  EXPECT_EQ(d.sizes(), (Shape{2, 3, 3}));
  expect_bits(d, {1, 0, 0, 0, 2, 0, 0, 0, 3, 4, 0, 0, 0, 5, 0, 0, 0, 6}, "default");
  EXPECT_EQ(diag_embed(v, 1).sizes(), (Shape{2, 4, 4}));
  EXPECT_EQ(diag_embed(v, -2, 0, 2).sizes(), (Shape{5, 2, 5}));
  // torch.diag_embed(arange(6).reshape(2, 3), -1)[1]: x[1] one row below the main diagonal.
  const Tensor below = diag_embed(arange(6, DType::float32).reshape({2, 3}), -1).select(0, 1);
  expect_bits(below, {0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 5, 0}, "offset -1");
  // torch.diag_embed(v, 1, 2, 0): (4, 2, 4), out[i + 1, b, i] = v[b, i].
  const Tensor swapped = diag_embed(v, 1, 2, 0);
  EXPECT_EQ(swapped.sizes(), (Shape{4, 2, 4}));
  expect_bits(swapped, {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0,
                        0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 3, 0, 0, 0, 6, 0},
              "offset 1, dims (2, 0)");
  const Tensor b = diag_embed(from_vector(std::vector<bool>{true, false}));
  EXPECT_EQ(b.dtype(), DType::bool_);
  EXPECT_EQ(ints(b), (std::vector<int64_t>{1, 0, 0, 0}));
  EXPECT_EQ(diag_embed(i64({1, 2})).dtype(), DType::int64);
  EXPECT_CONTAINS(thrown<ValueError>([&] { diag_embed(v, 0, 0, 0); }),
                  "diagonal dimensions cannot be identical 0, 0");
  EXPECT_THROW(diag_embed(v, 0, 0, 3), IndexError);
  EXPECT_THROW(diag_embed(v, 0, -4, 1), IndexError);
  EXPECT_THROW(diag_embed(scalar_tensor(3.0)), IndexError);
}

TEST(IndexExtraTorch, DiagEmbedGradientIsTheDiagonal) {
  Tensor v = f32({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad(true);
  diag_embed(v, 1, 0, 2).backward(arange(32, DType::float32).reshape({4, 2, 4}));
  expect_bits(v.grad(), {1, 10, 19, 5, 14, 23}, "diag_embed grad");
}

// ---- searchsorted / bucketize -----------------------------------------------------------------

TEST(IndexExtraTorch, SearchsortedRowsMatchTorch) {
  for (const auto& r : index_extra_torch::search_rows()) {
    const Tensor seq = f32(r.seq, r.seq_shape), vals = f32(r.values, r.values_shape);
    const Tensor sorter = r.sorter.empty() ? Tensor() : i64(r.sorter, r.seq_shape);
    const Tensor left = searchsorted(seq, vals, false, false, std::nullopt, sorter);
    EXPECT_EQ(left.dtype(), DType::int64);
    EXPECT_EQ(left.sizes(), r.values_shape) << r.name;
    EXPECT_EQ(ints(left), r.left) << r.name;
    EXPECT_EQ(ints(searchsorted(seq, vals, false, true, std::nullopt, sorter)), r.right) << r.name;
    EXPECT_EQ(ints(searchsorted(seq, vals, true, false, "right", sorter)), r.right) << r.name;
  }
}

TEST(IndexExtraTorch, SearchsortedDtypesAndScalars) {
  const Tensor seq = f32({1, 2});
  const Tensor r32 = searchsorted(seq, f32({2}), true, true);
  EXPECT_EQ(r32.dtype(), DType::int32);
  EXPECT_EQ(ints(r32), (std::vector<int64_t>{2}));
  // Compared in the promoted dtype: an int64 sequence against 2.5 (torch: 2, not 1).
  EXPECT_EQ(ints(searchsorted(i64({1, 2, 3}), f32({2.5}))), (std::vector<int64_t>{2}));
  // float16 sequence against a float32 value just above 2 (torch: 2).
  EXPECT_EQ(ints(searchsorted(f32({1, 2, 3}).to(DType::float16), f32({2.0001}))),
            (std::vector<int64_t>{2}));
  const Tensor s = searchsorted(seq, Scalar(1.5));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<int64_t>(), 1);
  const Tensor z = searchsorted(f32({1, 3}), f32({3}).reshape({}));
  EXPECT_EQ(z.dim(), 0);
  EXPECT_EQ(z.item<int64_t>(), 1);
  EXPECT_EQ(ints(searchsorted(empty({0}), f32({2}))), (std::vector<int64_t>{0}));
  EXPECT_EQ(searchsorted(seq, empty({0})).sizes(), (Shape{0}));
  EXPECT_EQ(ints(searchsorted(f32({1, -0.0, 0}), f32({0, -0.0}))), (std::vector<int64_t>{0, 0}));
}

TEST(IndexExtraTorch, SearchsortedErrors) {
  const Tensor seq = f32({1, 2, 3}), v = f32({2});
  EXPECT_CONTAINS(thrown<ValueError>([&] { searchsorted(seq, v, false, true, "left"); }),
                  "side and right can't be set to opposites, got side of left while right "
                  "was True");
  EXPECT_EQ(ints(searchsorted(seq, v, false, false, "right")), (std::vector<int64_t>{2}));
  EXPECT_CONTAINS(thrown<ValueError>([&] { searchsorted(seq, v, false, false, "middle"); }),
                  "side can only be 'left' or 'right' but got middle");
  const Tensor rows = f32({1, 3, 5, 2, 4, 6}, {2, 3});
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    searchsorted(rows, f32({3, 6}));
                  }),
                  "first N-1 dimensions of boundaries tensor and input value tensor must match");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { searchsorted(rows, f32({3}).reshape({})); }),
                  "input value can be a scalar only when boundaries tensor dimension is 1");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { searchsorted(f32({1}).reshape({}), v); }),
                  "boundaries tensor should have positive dimension");
  const Tensor seq5 = f32({3, 1, 2, 0, 2});
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    searchsorted(seq5, v, false, false, std::nullopt, i64({1, 2, 4, 0}));
                  }),
                  "boundary and sorter must have the same size");
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] {
        searchsorted(seq5, v, false, false, std::nullopt, i64({1, 2, 4, 0, 3}).to(DType::int32));
      }),
      "sorter must be a tensor of long dtype");
  EXPECT_THROW(searchsorted(seq5, v, false, false, std::nullopt, i64({1, 2, 4, 0, 5})), IndexError);
  const Tensor b = from_vector(std::vector<bool>{true, false});
  EXPECT_THROW(searchsorted(b, from_vector(std::vector<bool>{true})), DTypeError);
}

TEST(IndexExtraTorch, BucketizeNaNAndErrors) {
  const Tensor bounds = f32({1, 3, 5, kNaN});
  const Tensor x = f32({kNaN, 0, 3, 5, 6, kInf}, {2, 3});
  const Tensor left = bucketize(x, bounds);
  EXPECT_EQ(left.sizes(), (Shape{2, 3}));
  EXPECT_EQ(ints(left), (std::vector<int64_t>{4, 0, 1, 2, 4, 4}));
  EXPECT_EQ(ints(bucketize(x, bounds, false, true)), (std::vector<int64_t>{4, 0, 2, 4, 4, 4}));
  EXPECT_EQ(bucketize(x, bounds, true).dtype(), DType::int32);
  EXPECT_EQ(bucketize(f32({3}).reshape({}), f32({1, 3})).item<int64_t>(), 1);
  EXPECT_EQ(ints(bucketize(i64({3}), f32({1, 3}))), (std::vector<int64_t>{1}));
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    bucketize(f32({3}), f32({1, 3}, {1, 2}));
                  }),
                  "boundaries tensor must be 1 dimension, but got dim(2)");
  EXPECT_THROW(bucketize(f32({3}), f32({3}).reshape({})), ShapeError);
}

// ---- unique / unique_consecutive --------------------------------------------------------------

TEST(IndexExtraTorch, UniqueRowsMatchTorch) {
  for (const auto& r : index_extra_torch::unique_rows()) {
    const Tensor x = f32(r.x, r.x_shape);
    const UniqueResult u = r.consecutive ? unique_consecutive(x, true, true, r.dim)
                                         : unique(x, true, true, true, r.dim);
    EXPECT_EQ(u.values.sizes(), r.values_shape) << r.name;
    EXPECT_EQ(u.values.dtype(), DType::float32) << r.name;
    expect_bits(u.values, r.values, r.name);
    EXPECT_EQ(ints(u.inverse), r.inverse) << r.name;
    EXPECT_EQ(u.inverse.sizes(), r.dim ? Shape{r.x_shape[*r.dim]} : r.x_shape) << r.name;
    EXPECT_EQ(ints(u.counts), r.counts) << r.name;
    if (!r.consecutive && r.dim) {  // torch's unique_dim sorts whatever `sorted` says
      const UniqueResult unsorted = unique(x, false, true, true, r.dim);
      expect_bits(unsorted.values, r.values, r.name);
    }
  }
}

TEST(IndexExtraTorch, UniqueIntegersBoolAndShapes) {
  const UniqueResult u = unique(i64({5, 2, 5, 7, 2, 2}).to(DType::int32), true, true, true);
  EXPECT_EQ(u.values.dtype(), DType::int32);
  EXPECT_EQ(ints(u.values), (std::vector<int64_t>{2, 5, 7}));
  EXPECT_EQ(ints(u.inverse), (std::vector<int64_t>{1, 0, 1, 2, 0, 0}));
  EXPECT_EQ(ints(u.counts), (std::vector<int64_t>{3, 2, 1}));
  const Tensor bools = from_vector(std::vector<bool>{true, false, true});
  const UniqueResult b = unique(bools, true, true, true);
  EXPECT_EQ(b.values.dtype(), DType::bool_);
  EXPECT_EQ(ints(b.values), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(ints(b.inverse), (std::vector<int64_t>{1, 0, 1}));
  const UniqueResult plain = unique(i64({3, 1}));
  EXPECT_FALSE(plain.inverse.defined());
  EXPECT_FALSE(plain.counts.defined());
  const UniqueResult s = unique(scalar_tensor(3.0, {.dtype = DType::float32}), true, true, true);
  EXPECT_EQ(s.values.sizes(), (Shape{1}));
  EXPECT_EQ(s.inverse.dim(), 0);
  const UniqueResult e = unique(empty({2, 0}), true, true, true);
  EXPECT_EQ(e.values.sizes(), (Shape{0}));
  EXPECT_EQ(e.inverse.sizes(), (Shape{2, 0}));
  EXPECT_EQ(e.counts.sizes(), (Shape{0}));
  const UniqueResult bf = unique(f32({2, 1, 2}).to(DType::bfloat16));
  EXPECT_EQ(bf.values.dtype(), DType::bfloat16);
  expect_bits(bf.values, {1, 2}, "bfloat16");
  const Tensor xg = f32({1, 2}).set_requires_grad(true);
  EXPECT_FALSE(unique(xg).values.requires_grad());
}

// Every NaN is its own value (torch 1.13 CPU's hash set never matches a NaN). Ours come last with
// count 1 and their own inverse entries (torch: hash order, count 0, inverse 0; see the header).
TEST(IndexExtraTorch, UniqueFlatNaNsAreEachUnique) {
  const UniqueResult u = unique(f32({3, kNaN, 1, -0.0, 0, kNaN, 1, 3, -kInf, 0}), true, true, true);
  expect_bits(u.values, {-kInf, -0.0, 1, 3, kNaN, kNaN}, "values");
  EXPECT_EQ(ints(u.inverse), (std::vector<int64_t>{3, 4, 2, 1, 1, 5, 2, 3, 0, 1}));
  EXPECT_EQ(ints(u.counts), (std::vector<int64_t>{1, 3, 2, 2, 1, 1}));
}

TEST(IndexExtraTorch, UniqueErrors) {
  EXPECT_THROW(unique(f32({1, 2}).to(DType::float16)), DTypeError);
  EXPECT_THROW(unique(f32({1, 2}).to(DType::float16), true, false, false, 0), DTypeError);
  EXPECT_THROW(unique_consecutive(f32({1, 2}).to(DType::float16)), DTypeError);
  EXPECT_THROW(unique(i64({3}).reshape({}), true, false, false, 0), IndexError);
  EXPECT_THROW(unique_consecutive(i64({3}).reshape({}), false, false, 0), IndexError);
  EXPECT_THROW(unique(i64({3, 1, 3}, {1, 3}), true, false, false, 2), IndexError);
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    unique(empty({2, 0}), true, false, false, 0);
                  }),
                  "aren't selected, so unique cannot be applied");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    unique(empty({0, 2, 0}), true, false, false, 0);
                  }),
                  "more than one zero-sized dimension");
  const UniqueResult e = unique(empty({0, 2}), true, true, true, 0);
  EXPECT_EQ(e.values.sizes(), (Shape{0, 2}));
  EXPECT_EQ(e.inverse.sizes(), (Shape{0}));
  const UniqueResult c = unique_consecutive(empty({0, 3}), true, true, 0);
  EXPECT_EQ(c.values.sizes(), (Shape{0, 3}));
}

// ---- nonzero_tuple ----------------------------------------------------------------------------

TEST(IndexExtraTorch, NonzeroTuple) {
  const std::vector<Tensor> t = nonzero_tuple(i64({0, 1, 2, 0}, {2, 2}));
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].dtype(), DType::int64);
  EXPECT_EQ(ints(t[0]), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(ints(t[1]), (std::vector<int64_t>{1, 0}));
  const std::vector<Tensor> s = nonzero_tuple(scalar_tensor(3.0));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(ints(s[0]), (std::vector<int64_t>{0}));
  const std::vector<Tensor> z = nonzero_tuple(scalar_tensor(0.0));
  ASSERT_EQ(z.size(), 1u);
  EXPECT_EQ(z[0].sizes(), (Shape{0}));
  EXPECT_EQ(ints(nonzero_tuple(f32({0, kNaN, -0.0}))[0]), (std::vector<int64_t>{1}));
  const std::vector<Tensor> e = nonzero_tuple(empty({2, 0}));
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1].sizes(), (Shape{0}));
}

}  // namespace
}  // namespace fabric
