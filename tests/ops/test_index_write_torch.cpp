// The index-write ops against torch 1.13 itself (float64 values and input gradients of fixed
// inputs, tools/fixtures/make_index_write_rows.py: advanced-index placement, index_put with
// duplicates, every scatter_reduce, nonzero's order) and their argument errors. The
// naive-reference and finite-difference checks are the harness rows of op_cases_index_write.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/ops/index_write_torch_rows.h"

namespace fabric {
namespace {

using index_write_fixture::TorchArg;
using index_write_fixture::TorchRow;

Tensor make_arg(const TorchArg& a) {
  const int64_t n = static_cast<int64_t>(a.v.size());
  Tensor t;
  if (a.kind == 'i') {
    t = from_vector(std::vector<int64_t>(a.v.begin(), a.v.end()));
  } else {
    t = from_vector(a.v, {n}, {.dtype = DType::float64});
    if (a.kind == 'b') t = ne(t, Scalar(0));
  }
  t = t.reshape(a.shape);  // from_vector makes (n): reshape gives 0-d and empty arguments theirs
  if (a.kind == 'f') t.set_requires_grad(true);
  return t;
}

double rel_err(double got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : INFINITY;
  return std::abs(got - want) / std::max(1.0, std::abs(want));
}

TEST(IndexWrite, ValuesAndGradientsMatchTorch113) {
  double worst = 0;
  for (const TorchRow& r : index_write_fixture::torch_rows()) {
    SCOPED_TRACE(r.name);
    std::vector<Tensor> args;
    for (const TorchArg& a : r.args) args.push_back(make_arg(a));
    const Tensor out = r.call(args);
    ASSERT_EQ(out.sizes(), r.out_shape);
    const std::vector<double> got = out.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) {
      const double e = rel_err(got[i], r.out[i]);
      EXPECT_LE(e, 1e-12) << "out[" << i << "] " << got[i] << " vs torch " << r.out[i];
      worst = std::max(worst, e);
    }
    std::vector<Tensor> wrt;
    for (const Tensor& a : args)
      if (a.requires_grad()) wrt.push_back(a);
    if (r.grads.empty()) continue;
    ASSERT_EQ(wrt.size(), r.grads.size());
    const Tensor c = add(div(arange(out.numel(), DType::float64), 4.0), 1.0).reshape(out.sizes());
    const std::vector<Tensor> grads = grad({sum(mul(out, c))}, wrt, {}, false, false, true);
    for (size_t k = 0; k < wrt.size(); ++k) {
      const std::vector<double> g = grads[k].defined()
                                        ? grads[k].to_vector<double>()
                                        : std::vector<double>(r.grads[k].size(), 0.0);
      ASSERT_EQ(g.size(), r.grads[k].size()) << "gradient " << k;
      for (size_t i = 0; i < g.size(); ++i) {
        const double e = rel_err(g[i], r.grads[k][i]);
        EXPECT_LE(e, 1e-12) << "d/darg" << k << "[" << i << "] " << g[i] << " vs torch "
                            << r.grads[k][i];
        worst = std::max(worst, e);
      }
    }
  }
  std::cout << "[ parity  ] worst relative difference vs torch 1.13 (float64): " << worst << "\n";
}

Tensor ints(std::vector<int64_t> v) { return from_vector(v); }

TEST(IndexWrite, BadArgumentsRaiseNamingTheOpAndTheValues) {
  const Tensor a = full({4, 3}, 0.5), src = full({2, 3}, 1.0),
               a64 = full({4, 3}, 0.5, {.dtype = DType::float64});
  const Tensor i2 = ints({0, 1}), bad = ints({0, 4});
  const Tensor gi = zeros({2, 3}, {.dtype = DType::int64});
  const Tensor mask = gt(full({4, 3}, 1.0), Scalar(0));
  enum Kind { index_error, shape_error, dtype_error, value_error };
  struct Row {
    const char* name;
    std::function<void()> call;
    Kind kind;
    std::vector<std::string> says;
  };
  const std::vector<Row> rows = {
      {"index_add out of range",
       [&] { index_add(a, 0, bad, src); },
       index_error,
       {"index_add: index 4 is out of range for dim 0 of size 4"}},
      {"index_copy out of range",
       [&] {
         index_copy(a, 0, ints({-1, 0}), src);
       },
       index_error,
       {"index_copy: index -1", "dim 0 of size 4"}},
      {"index_fill out of range",
       [&] { index_fill(a, 1, ints({3}), 1.0); },
       index_error,
       {"index_fill: index 3", "dim 1 of size 3"}},
      {"scatter out of range",
       [&] { scatter(a, 0, add(gi, Scalar(9)), src); },
       index_error,
       {"scatter: index 9", "dim 0 of size 4"}},
      {"scatter_reduce out of range",
       [&] { scatter_reduce(a, 1, add(gi, Scalar(3)), src, "sum"); },
       index_error,
       {"scatter_reduce: index 3", "dim 1 of size 3"}},
      {"index out of range",
       [&] {
         index(a, {ints({1, 4})});
       },
       index_error,
       {"index: index 4 is out of bounds for dim 0 with size 4"}},
      {"index below -size",
       [&] {
         index(a, {Tensor(), ints({-4})});
       },
       index_error,
       {"index: index -4 is out of bounds for dim 1 with size 3"}},
      {"index_put out of range",
       [&] { index_put(a, {ints({7})}, full({}, 1.0)); },
       index_error,
       {"index_put: index 7 is out of bounds for dim 0"}},
      {"take_along_dim out of range",
       [&] { take_along_dim(a, add(gi, Scalar(5)), 0); },
       index_error,
       {"take_along_dim: index 5"}},
      {"index_add dtype mismatch",
       [&] { index_add(a, 0, i2, src.to(DType::float64)); },
       dtype_error,
       {"index_add", "float32", "float64"}},
      {"index_add float index",
       [&] { index_add(a, 0, full({2}, 0.0), src); },
       dtype_error,
       {"index_add: expected an int64 or int32 index tensor"}},
      {"index_copy int32 index",
       [&] { index_copy(a, 0, i2.to(DType::int32), src); },
       dtype_error,
       {"index_copy: expected an int64 index tensor"}},
      {"index_add source shape",
       [&] {
         index_add(a, 0, i2, full({3, 3}, 1.0));
       },
       shape_error,
       {"index_add: source (3, 3)", "(2, 3)"}},
      {"index_add 2-D index",
       [&] { index_add(a, 0, gi, src); },
       shape_error,
       {"index_add: index must be 0-D or 1-D"}},
      {"scatter dtype mismatch",
       [&] { scatter(a64, 0, gi, src); },
       dtype_error,
       {"scatter: expected self and src to have the same dtype", "float64", "float32"}},
      {"scatter index larger than src",
       [&] {
         scatter(a, 0, zeros({3, 3}, {.dtype = DType::int64}), src);
       },
       shape_error,
       {"scatter: expected index (3, 3)", "src (2, 3)"}},
      {"scatter dims",
       [&] { scatter(a, 0, ints({0}), src); },
       shape_error,
       {"scatter: index (1,)", "same number of dims"}},
      {"scatter_reduce bad reduce",
       [&] { scatter_reduce(a, 0, gi, src, "max"); },
       value_error,
       {"scatter_reduce: reduce must be one of sum, prod, mean, amax or amin, got \"max\""}},
      {"masked_select float mask",
       [&] {
         masked_select(a, full({4, 3}, 1.0));
       },
       dtype_error,
       {"masked_select: expected a bool mask"}},
      {"masked_select shapes",
       [&] { masked_select(a, gt(full({5}, 1.0), Scalar(0))); },
       shape_error,
       {"masked_select"}},
      {"masked_scatter short source",
       [&] { masked_scatter(a, mask, full({5}, 1.0)); },
       shape_error,
       {"masked_scatter: the mask (4, 3) selects 12 elements but source (5,) has only 5"}},
      {"masked_scatter dtype",
       [&] { masked_scatter(a, mask, full({12}, 1.0, {.dtype = DType::float64})); },
       dtype_error,
       {"masked_scatter: source must have self's dtype"}},
      {"index float index",
       [&] { index(a, {full({2}, 1.0)}); },
       dtype_error,
       {"index: tensors used as indices must be int64 or bool", "float32"}},
      {"index too many",
       [&] {
         index(a, {i2, i2, i2});
       },
       index_error,
       {"index: too many indices for a tensor of 2 dims (3 given"}},
      {"index mask shape",
       [&] {
         index(a, {gt(full({4, 2}, 1.0), Scalar(0))});
       },
       index_error,
       {"index: the mask (4, 2) at position 0 does not match", "(4, 3)"}},
      {"index broadcast",
       [&] {
         index(a, {i2, ints({0, 1, 2})});
       },
       shape_error,
       {"index"}},
      {"index_put values shape",
       [&] {
         index_put(a, {i2}, full({2, 2}, 1.0));
       },
       shape_error,
       {"index_put: values (2, 2) cannot be broadcast to the indexed shape (2, 3)"}},
      {"index_put dtype",
       [&] { index_put(a, {i2}, full({3}, 1.0, {.dtype = DType::float64})); },
       dtype_error,
       {"index_put: values must have self's dtype"}},
      {"take_along_dim dims",
       [&] { take_along_dim(a, ints({0}), 0); },
       shape_error,
       {"take_along_dim: input and indices must have the same number of dims"}},
      {"take_along_dim int32",
       [&] { take_along_dim(a, gi.to(DType::int32), 0); },
       dtype_error,
       {"take_along_dim: expected int64 indices"}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    std::string msg;
    switch (r.kind) {
      case index_error:
        msg = thrown<IndexError>(r.call);
        break;
      case shape_error:
        msg = thrown<ShapeError>(r.call);
        break;
      case dtype_error:
        msg = thrown<DTypeError>(r.call);
        break;
      case value_error:
        msg = thrown<ValueError>(r.call);
        break;
    }
    for (const std::string& s : r.says) EXPECT_CONTAINS(msg, s);
  }
}

// Out of place: the input keeps its values; integer and bool tensors go through the byte-moving
// writes unchanged.
TEST(IndexWrite, InputsAreNotModifiedAndIntegerWritesAreExact) {
  const Tensor a = from_vector<int64_t>({1, 2, 3, 4}).reshape({2, 2});
  const Tensor out = index_put(a, {from_vector<int64_t>({1})}, from_vector<int64_t>({9, 8}));
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(out.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 9, 8}));
  const Tensor b = gt(from_vector<int64_t>({0, 1, 0}), Scalar(0));
  const Tensor filled = index_fill(b, 0, from_vector<int64_t>({0}), true);
  EXPECT_EQ(filled.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 0}));
  const Tensor big = full({2}, int64_t{1} << 53, {.dtype = DType::int64});
  EXPECT_EQ(index_add(big, 0, from_vector<int64_t>({1}), full({1}, 1, {.dtype = DType::int64}))
                .to_vector<int64_t>(),
            (std::vector<int64_t>{(int64_t{1} << 53), (int64_t{1} << 53) + 1}));
  // A floating alpha on an integer tensor is truncated to an integer, as torch converts it.
  const Tensor ints = from_vector<int64_t>({1, 2, 3});
  const Tensor five = from_vector<int64_t>({5}), at0 = from_vector<int64_t>({0});
  EXPECT_EQ(index_add(ints, 0, at0, five, 2.0).to_vector<int64_t>(),
            (std::vector<int64_t>{11, 2, 3}));
  EXPECT_EQ(index_add(ints, 0, at0, five, 0.5).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 2, 3}));
  // One the dtype cannot hold is refused, as torch's conversion refuses it.
  for (const double bad : {std::nan(""), 1e20})
    EXPECT_CONTAINS(thrown<Error>([&] { index_add(ints, 0, at0, five, bad); }), "index_add");
  EXPECT_CONTAINS(
      thrown<Error>([&] { index_add(ints.to(DType::int8), 0, at0, five.to(DType::int8), 300); }),
      "index_add");
  EXPECT_EQ(nonzero(full({}, 2.0)).sizes(), (Shape{1, 0}));
  EXPECT_EQ(nonzero(zeros({0, 3})).sizes(), (Shape{0, 2}));
}

// Spec §3: index_copy promotes on the CPU (self and source to the widest float type); the other
// index writes have no CPU policy, so a bfloat16 self keeps its dtype and a mixed pair is refused.
TEST(IndexWrite, CpuAutocastClasses) {
  const Tensor bf = full({3, 2}, 0.5, {.dtype = DType::bfloat16}), f32 = full({1, 2}, 0.25);
  const Tensor rows = from_vector<int64_t>({1});
  CpuAutocast region(DType::bfloat16);
  const Tensor copied = index_copy(bf, 0, rows, f32);
  EXPECT_EQ(copied.dtype(), DType::float32);
  EXPECT_EQ(copied.to_vector<double>(), (std::vector<double>{0.5, 0.5, 0.25, 0.25, 0.5, 0.5}));
  EXPECT_EQ(index_add(bf, 0, rows, full({1, 2}, 1.0, {.dtype = DType::bfloat16})).dtype(),
            DType::bfloat16);
  EXPECT_EQ(scatter_reduce(bf, 0, zeros({1, 2}, {.dtype = DType::int64}),
                           full({1, 2}, 2.0, {.dtype = DType::bfloat16}), "prod")
                .to_vector<double>(),
            (std::vector<double>{1.0, 1.0, 0.5, 0.5, 0.5, 0.5}));
  EXPECT_CONTAINS(thrown<DTypeError>([&] { index_put(bf, {rows}, f32); }),
                  "index_put: values must have self's dtype");
}

}  // namespace
}  // namespace fabric
