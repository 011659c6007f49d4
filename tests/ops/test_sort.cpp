// sort, argsort and topk beyond the harness rows (op_cases_sort.cpp): the orderings torch 1.13
// gives (stable ties, NaN as the largest value, -0.0 equal to 0.0), integer and bool dtypes,
// 0-dim inputs, gradients (double backward included) and the argument errors of all six ops of
// this family (flip, roll and repeat too).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/ops/topk_torch_rows.h"

namespace fabric {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor of(const std::vector<double>& v, DType dt, Shape shape = {}) {
  if (shape.empty()) shape = {static_cast<int64_t>(v.size())};
  return from_vector(v, shape, {.dtype = DType::float64}).to(dt);
}

std::vector<int64_t> idx(const Tensor& t) { return t.to_vector<int64_t>(); }

// NaN equal to NaN, and -0.0 told apart from 0.0.
void expect_same_values(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "at " << i;
    } else {
      EXPECT_EQ(got[i], want[i]) << "at " << i;
      EXPECT_EQ(std::signbit(got[i]), std::signbit(want[i])) << "sign at " << i;
    }
  }
}

// torch 1.13, torch.sort(a, stable=True) and with descending=True: NaNs last ascending and first
// descending, equal values (1, 1 / 2, 2 / -0.0, 0.0) in input order both ways.
TEST(Sort, TiesNaNAndSignedZeroAsTorch) {
  const std::vector<double> a = {1, kNaN, 2, 1, -0.0, 0.0, kNaN, 2};
  struct Row {
    DType dtype;
    bool descending;
    std::vector<double> values;
    std::vector<int64_t> indices;
  };
  std::vector<Row> rows;
  for (DType dt : {DType::float64, DType::float32, DType::float16, DType::bfloat16}) {
    rows.push_back({dt, false, {-0.0, 0.0, 1, 1, 2, 2, kNaN, kNaN}, {4, 5, 0, 3, 2, 7, 1, 6}});
    rows.push_back({dt, true, {kNaN, kNaN, 2, 2, 1, 1, -0.0, 0.0}, {1, 6, 2, 7, 0, 3, 4, 5}});
  }
  for (const Row& r : rows) {
    SCOPED_TRACE(std::string(dtype_name(r.dtype)) + (r.descending ? " descending" : " ascending"));
    auto [values, indices] = sort(of(a, r.dtype), -1, r.descending, true);
    EXPECT_EQ(values.dtype(), r.dtype);
    EXPECT_EQ(indices.dtype(), DType::int64);
    expect_same_values(values.to_vector<double>(), r.values);
    EXPECT_EQ(idx(indices), r.indices);
    EXPECT_EQ(idx(argsort(of(a, r.dtype), 0, r.descending)), r.indices);
  }
}

// torch 1.13 on integer and bool inputs (the dtype is kept; ties stable).
TEST(Sort, IntegerAndBoolDtypes) {
  const std::vector<double> b = {3, 1, 3, 1, 2, 3, 1, 2, 2, 3};
  struct Row {
    DType dtype;
    std::vector<double> input;
    bool descending;
    std::vector<int64_t> indices;
  };
  const std::vector<Row> rows = {
      {DType::int64, b, true, {0, 2, 5, 9, 4, 7, 8, 1, 3, 6}},
      {DType::int32, b, false, {1, 3, 6, 4, 7, 8, 0, 2, 5, 9}},
      {DType::int8, {-3, 5, -128, 127, 0}, false, {2, 0, 4, 1, 3}},
      {DType::uint8, {200, 3, 255, 0, 3}, true, {2, 0, 1, 4, 3}},
      {DType::bool_, {1, 0, 1}, false, {1, 0, 2}},
      {DType::bool_, {1, 0, 1}, true, {0, 2, 1}},
      // Beyond float's 24-bit mantissa: compared as int64, not through a float.
      {DType::int64, {16777217, 16777216}, false, {1, 0}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(dtype_name(r.dtype));
    auto [values, indices] = sort(of(r.input, r.dtype), 0, r.descending);
    EXPECT_EQ(values.dtype(), r.dtype);
    EXPECT_EQ(idx(indices), r.indices);
    std::vector<double> want;
    for (int64_t i : r.indices) want.push_back(r.input[i]);
    EXPECT_EQ(values.to_vector<double>(), want);
  }
}

// topk orders equal values as torch 1.13's CPU selection does (not as a stable sort would:
// topk(b, 4) is [5, 9, 0, 2], the stable order [0, 2, 5, 9]).
TEST(TopK, ValuesIndicesAndKBounds) {
  const std::vector<double> b = {3, 1, 3, 1, 2, 3, 1, 2, 2, 3};
  struct Row {
    std::vector<double> input;
    int64_t k;
    bool largest;
    std::vector<double> values;
    std::vector<int64_t> indices;
  };
  const std::vector<Row> rows = {
      {b, 4, true, {3, 3, 3, 3}, {5, 9, 0, 2}},
      {b, 4, false, {1, 1, 1, 2}, {1, 3, 6, 7}},
      {b, 0, true, {}, {}},
      {b, 10, true, {3, 3, 3, 3, 2, 2, 2, 1, 1, 1}, {5, 9, 0, 2, 4, 7, 8, 1, 3, 6}},
      {{1, kNaN, 2, -1}, 2, true, {kNaN, 2}, {1, 2}},
      {{1, kNaN, 2, -1}, 2, false, {-1, 1}, {3, 0}},
  };
  for (DType dt : {DType::float32, DType::int64, DType::float16}) {
    for (const Row& r : rows) {
      if (dt == DType::int64 && std::isnan(r.input[1])) continue;
      SCOPED_TRACE(std::string(dtype_name(dt)) + " k=" + std::to_string(r.k));
      auto [values, indices] = topk(of(r.input, dt), r.k, -1, r.largest);
      EXPECT_EQ(values.sizes(), (Shape{r.k}));
      expect_same_values(values.to_vector<double>(), r.values);
      EXPECT_EQ(idx(indices), r.indices);
    }
  }
}

// torch 1.13's CPU topk indices on rows of many ties and NaNs, on both sides of its
// partial_sort / nth_element switch (k * 64 <= n), largest or smallest, sorted or not
// (tools/fixtures/make_topk_rows.py). The values are small integers, so every dtype orders them
// alike (torch 1.13 has no float16 CPU topk: those rows hold us to the same rule).
TEST(TopK, OrdersEqualValuesAsTorchsSelection) {
  const auto& rows = topk_torch_rows();
  ASSERT_EQ(rows.size(), 72u);
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16, DType::int64}) {
    for (size_t r = 0; r < rows.size(); ++r) {
      const TopkTorchRow& row = rows[r];
      const bool has_nan = std::any_of(row.input.begin(), row.input.end(),
                                       [](double v) { return std::isnan(v); });
      if (dt == DType::int64 && has_nan) continue;
      SCOPED_TRACE(std::string(dtype_name(dt)) + " row " + std::to_string(r));
      const Tensor x = of(row.input, dt);
      auto [values, indices] = topk(x, row.k, -1, row.largest, row.sorted);
      EXPECT_EQ(idx(indices), row.indices);
      std::vector<double> want;
      for (int64_t i : row.indices) want.push_back(row.input[static_cast<size_t>(i)]);
      expect_same_values(values.to_vector<double>(), want);
    }
  }
}

// Negative dims, inner dims, and 0-dim inputs (torch keeps them 0-dim, index 0; topk takes k 0
// or 1 there and gives the element back either way).
TEST(Sort, DimsAndZeroDimInputs) {
  const Tensor x = of({4, 1, 3, 2, 6, 5}, DType::float32, {2, 3});  // [[4, 1, 3], [2, 6, 5]]
  EXPECT_EQ(idx(argsort(x, -2)), (std::vector<int64_t>{1, 0, 0, 0, 1, 1}));
  EXPECT_EQ(idx(argsort(x, 1, true)), (std::vector<int64_t>{0, 2, 1, 1, 2, 0}));
  auto [tv, ti] = topk(x, 1, 0);
  EXPECT_EQ(tv.sizes(), (Shape{1, 3}));
  EXPECT_EQ(tv.to_vector<double>(), (std::vector<double>{4, 6, 5}));
  EXPECT_EQ(idx(ti), (std::vector<int64_t>{0, 1, 1}));
  // A non-contiguous input (the transpose) sorts by its logical layout.
  EXPECT_EQ(std::get<0>(sort(x.t(), 0)).to_vector<double>(),
            (std::vector<double>{1, 2, 3, 5, 4, 6}));

  const Tensor s = scalar_tensor(3.0);
  for (int64_t k : {0, 1}) {
    auto [v, i] = topk(s, k);
    EXPECT_EQ(v.dim(), 0);
    EXPECT_EQ(v.item<double>(), 3.0);
    EXPECT_EQ(i.item<int64_t>(), 0);
  }
  auto [sv, si] = sort(s, 0);
  EXPECT_EQ(sv.dim(), 0);
  EXPECT_EQ(si.dim(), 0);
  EXPECT_EQ(sv.item<double>(), 3.0);
}

// The values' gradient goes back to the positions they came from; the indices have none; double
// backward works through the recorded gather.
TEST(Sort, GradientsScatterBackAndDifferentiateTwice) {
  {
    Tensor x = of({3, 1, 2}, DType::float64);
    x.set_requires_grad(true);
    auto [v, i] = sort(x);
    EXPECT_FALSE(i.requires_grad());
    v.backward(of({10, 20, 30}, DType::float64));
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{30, 10, 20}));
  }
  {
    Tensor x = of({3, 1, 2}, DType::float64);
    x.set_requires_grad(true);
    std::get<0>(topk(x, 2)).backward(of({1, 2}, DType::float64));
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 0, 2}));
  }
  {
    // L = sum(w * v^2) with v = sort(x): dL/dx = 2 x w[rank of x]; its sum's gradient is 2 w[rank].
    Tensor x = of({3, 1, 2}, DType::float64);
    x.set_requires_grad(true);
    const Tensor v = std::get<0>(sort(x));
    const Tensor loss = sum(mul(mul(v, v), of({1, 2, 3}, DType::float64)));
    const Tensor g = fabric::grad({loss}, {x}, {}, std::nullopt, true)[0];
    EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{18, 2, 8}));
    sum(g).backward();
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{6, 2, 4}));
  }
}

// torch's argument errors, as fabric::Error subclasses naming the op and what was wrong.
TEST(SortFlipRollRepeat, ArgumentErrors) {
  const Tensor b = of({3, 1, 3, 1, 2}, DType::float32);
  const Tensor m = zeros({2, 3});
  EXPECT_CONTAINS(thrown<IndexError>([&] { topk(b, 6); }), "topk: k = 6 is out of range");
  EXPECT_CONTAINS(thrown<IndexError>([&] { topk(b, -1); }), "expected 0 <= k <= 5");
  EXPECT_CONTAINS(thrown<IndexError>([&] { topk(scalar_tensor(1.0), 2); }), "topk");
  EXPECT_CONTAINS(thrown<IndexError>([&] { sort(b, 1); }), "sort");
  EXPECT_CONTAINS(thrown<IndexError>([&] { argsort(m, -3); }), "argsort");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { sort(b.to(DType::float8_e4m3fn)); }),
                  "sort: not implemented for dtype");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    flip(m, {0, -2});
                  }),
                  "flip: dim 0 appears more than once");
  EXPECT_CONTAINS(thrown<IndexError>([&] { flip(m, {2}); }), "flip");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    roll(m, {1, 2}, {0});
                  }),
                  "roll: shifts [1, 2] and dims [0] must have the same length");
  EXPECT_CONTAINS(thrown<ValueError>([&] { roll(m, {}); }), "roll: shifts must not be empty");
  EXPECT_CONTAINS(thrown<ValueError>([&] { roll(m, {1, 1}); }), "expected exactly one shift");
  EXPECT_CONTAINS(thrown<IndexError>([&] { roll(scalar_tensor(1.0), {1}, {0}); }), "0-dim input");
  EXPECT_CONTAINS(thrown<IndexError>([&] { roll(m, {1}, {2}); }), "roll");
  EXPECT_CONTAINS(thrown<ShapeError>([&] { repeat(m, {2}); }), "fewer than the input's 2 dims");
  EXPECT_CONTAINS(thrown<ValueError>([&] { repeat(m, {1, -1}); }), "must be non-negative");
}

// torch 1.13 results for the shapes and values of flip, roll and repeat on small inputs.
TEST(FlipRollRepeat, ResultsAsTorch) {
  const Tensor a = arange(6, DType::int64).reshape({2, 3});  // [[0, 1, 2], [3, 4, 5]]
  struct Row {
    std::string name;
    Tensor got;
    Shape shape;
    std::vector<int64_t> want;
  };
  const std::vector<Row> rows = {
      {"flip both", flip(a, {0, 1}), {2, 3}, {5, 4, 3, 2, 1, 0}},
      {"flip -1", flip(a, {-1}), {2, 3}, {2, 1, 0, 5, 4, 3}},
      {"roll flat", roll(a, {1}), {2, 3}, {5, 0, 1, 2, 3, 4}},
      {"roll -4 dim 1", roll(a, {-4}, {1}), {2, 3}, {1, 2, 0, 4, 5, 3}},
      {"roll twice one dim", roll(a, {1, 1}, {1, 1}), {2, 3}, {1, 2, 0, 4, 5, 3}},
      {"repeat", repeat(a, {1, 2}), {2, 6}, {0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}},
      {"repeat new dim", repeat(a, {2, 1, 1}), {2, 2, 3}, {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}},
      {"repeat zero", repeat(a, {2, 3, 0}), {2, 6, 0}, {}},
      {"repeat 0-dim none", repeat(scalar_tensor(7.0), {}), {}, {7}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.got.sizes(), r.shape);
    EXPECT_EQ(r.got.to(DType::int64).to_vector<int64_t>(), r.want);
  }
  // Results are new tensors even where nothing moves (torch).
  const Tensor same = flip(a, {});
  EXPECT_NE(same.data_ptr(), a.data_ptr());
}

}  // namespace
}  // namespace fabric
