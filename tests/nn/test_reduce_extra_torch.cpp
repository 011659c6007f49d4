// nansum, nanmean, var_mean, std_mean, aminmax, count_nonzero, vector_norm, logcumsumexp, cummax
// and cummin (nn/reduce_extra.h) against torch 1.13 (tests/nn/reduce_extra_torch_rows.h, from
// tools/fixtures/make_reduce_extra_rows.py): outputs and x's gradients, bit for bit where the row's
// tolerance is 0 (everything but float64 var_mean/std_mean, whose Welford pass torch runs in
// another order, and the var_mean/std_mean gradients, which torch forms in the input's dtype and
// these in float64); torch's errors, empty and 0-dim inputs, and the gradients torch lacks.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/reduce_extra.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/nn/reduce_extra_torch_rows.h"

namespace fabric {
namespace {

using reduce_extra_torch::Row;

// How many of `dtype`'s ulps (at want) got is from want; equal bits (NaN: both NaN) are 0.
double ulps(double got, double want, DType dtype) {
  if (std::bit_cast<uint64_t>(got) == std::bit_cast<uint64_t>(want)) return 0;
  if (std::isnan(got) && std::isnan(want)) return 0;
  if (!std::isfinite(got) || !std::isfinite(want)) return std::numeric_limits<double>::infinity();
  double spacing;
  if (dtype == DType::float64) {
    spacing = std::nextafter(std::abs(want), INFINITY) - std::abs(want);
  } else {
    const float w = std::abs(static_cast<float>(want));
    spacing = static_cast<double>(std::nextafter(w, INFINITY) - w);
    if (dtype == DType::bfloat16) spacing *= 65536;
  }
  return std::abs(got - want) / spacing;
}

void expect_close(const Tensor& got, const std::vector<double>& want, int tol,
                  const std::string& what) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  int shown = 0;
  for (size_t i = 0; i < g.size() && shown < 5; ++i) {
    const double d = ulps(g[i], want[i], got.dtype());
    const bool same_bits = std::bit_cast<uint64_t>(g[i]) == std::bit_cast<uint64_t>(want[i]) ||
                           (std::isnan(g[i]) && std::isnan(want[i]));
    if (tol == 0 ? same_bits : d <= tol) continue;
    ADD_FAILURE() << what << "[" << i << "]: " << g[i] << " vs torch " << want[i] << " (" << d
                  << " ulps, " << tol << " allowed)";
    ++shown;
  }
}

std::optional<DType> out_dtype(const Row& r) {
  if (std::string(r.out_dtype).empty()) return std::nullopt;
  return dtype_from_name(r.out_dtype);
}

std::vector<Tensor> run(const Row& r, const Tensor& x) {
  const std::string op = r.op;
  if (op == "nansum") return {nansum(x, r.dims, r.keepdim, out_dtype(r))};
  if (op == "nanmean") return {nanmean(x, r.dims, r.keepdim, out_dtype(r))};
  if (op == "var_mean" || op == "std_mean") {
    auto [a, b] = op == "var_mean" ? var_mean(x, r.dims, r.correction, r.keepdim)
                                   : std_mean(x, r.dims, r.correction, r.keepdim);
    return {a, b};
  }
  if (op == "aminmax") {
    auto [lo, hi] = aminmax(x, r.dim, r.keepdim);
    return {lo, hi};
  }
  if (op == "count_nonzero") return {count_nonzero(x, r.dims)};
  if (op == "vector_norm") return {vector_norm(x, r.ord, r.dims, r.keepdim, out_dtype(r))};
  if (op == "logcumsumexp") return {logcumsumexp(x, *r.dim)};
  auto [v, i] = op == "cummax" ? cummax(x, *r.dim) : cummin(x, *r.dim);
  return {v, i};
}

TEST(ReduceExtraTorch, MatchesTorchRows) {
  for (const Row& r : reduce_extra_torch::rows()) {
    SCOPED_TRACE(r.name);
    const DType dt = dtype_from_name(r.dtype);
    Tensor x = from_vector(r.x, r.shape, {.dtype = dt});
    if (r.grad) x.set_requires_grad(true);
    const std::vector<Tensor> outs = run(r, x);
    EXPECT_EQ(outs[0].sizes(), r.out_shape);
    EXPECT_EQ(dtype_name(outs[0].dtype()), std::string(r.out0_dtype));
    expect_close(outs[0], r.out0, r.tol, "out0");
    if (!r.out1.empty()) {
      ASSERT_EQ(outs.size(), 2u);
      EXPECT_EQ(outs[1].sizes(), r.out_shape);
      expect_close(outs[1], r.out1, r.tol, "out1");
    }
    if (!r.grad) continue;
    std::vector<Tensor> roots, grads;
    const std::vector<double>* g[2] = {&r.g0, &r.g1};
    for (size_t o = 0; o < outs.size() && o < 2; ++o) {
      if (!is_floating(outs[o].dtype())) continue;
      roots.push_back(outs[o]);
      // from_vector takes {} as "1-D": shape 0-dim gradients afterwards.
      const auto n = static_cast<int64_t>(g[o]->size());
      grads.push_back(from_vector(*g[o], {n}, {.dtype = outs[o].dtype()}).reshape(outs[o].sizes()));
    }
    backward(roots, grads);
    ASSERT_TRUE(x.grad().defined());
    expect_close(x.grad(), r.grad_x, r.grad_tol, "grad_x");
  }
}

Tensor vec(std::vector<double> v, DType dt = DType::float32) {
  const auto n = static_cast<int64_t>(v.size());
  return from_vector(v, {n}, {.dtype = dt});
}

TEST(ReduceExtraTorch, TorchErrors) {
  const Tensor i = from_vector(std::vector<int64_t>{1, 0, 2});
  const Tensor f = vec({1, 2, 3});
  EXPECT_CONTAINS(thrown<DTypeError>([&] { nanmean(i); }), "nanmean");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { logcumsumexp(i, 0); }), "logcumsumexp");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { logcumsumexp(f.to(DType::float16), 0); }), "float16");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { var_mean(i); }), "var_mean");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { std_mean(i); }), "std_mean");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { vector_norm(i); }), "vector_norm");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { nansum(f, {}, false, DType::int64); }), "nansum");
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { vector_norm(f.to(DType::float64), 2, {}, false, DType::float32); }),
      "without narrowing");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { vector_norm(f, 2, {}, false, DType::int64); }),
                  "floating point");
  const Tensor e = zeros({2, 0});
  EXPECT_CONTAINS(thrown<ValueError>([&] { vector_norm(e, INFINITY); }), "empty tensor");
  EXPECT_CONTAINS(thrown<ValueError>([&] { vector_norm(e, -1); }), "empty tensor");
  EXPECT_CONTAINS(thrown<IndexError>([&] { vector_norm(e, INFINITY, {1}); }), "dimension 1");
  EXPECT_EQ(vector_norm(e, INFINITY, {0}).sizes(), Shape{0});
  EXPECT_EQ(vector_norm(e, 2).item<float>(), 0.0f);
  EXPECT_CONTAINS(thrown<IndexError>([&] { aminmax(e, 1); }), "reduction dim 1");
  EXPECT_CONTAINS(thrown<IndexError>([&] { aminmax(e); }), "no identity");
  EXPECT_CONTAINS(thrown<IndexError>([&] { cummax(zeros({2, 3}), 2); }), "cummax");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    count_nonzero(zeros({2, 3}), {0, -2});
                  }),
                  "appears multiple times");
  EXPECT_CONTAINS(thrown<ValueError>([&] { nansum(zeros({2, 3}), {1, 1}); }), "nansum");
}

TEST(ReduceExtraTorch, EmptyAndZeroDim) {
  const Tensor e = zeros({2, 0});
  auto [cv, ci] = cummax(e, 1);
  EXPECT_EQ(cv.sizes(), (Shape{2, 0}));
  EXPECT_EQ(ci.dtype(), DType::int64);
  EXPECT_EQ(logcumsumexp(e, 1).sizes(), (Shape{2, 0}));
  auto [v, m] = var_mean(e, {1});
  EXPECT_TRUE(std::isnan(v.to_vector<float>()[0]) && std::isnan(m.to_vector<float>()[1]));
  EXPECT_TRUE(std::isnan(nanmean(e, {1}).to_vector<float>()[0]));
  EXPECT_EQ(nansum(e, {1}).to_vector<float>(), (std::vector<float>{0, 0}));
  // torch copies a 0-dim input: -0.0 stays -0.0 (a fold would give +0.0).
  const Tensor z = scalar_tensor(-0.0, {.dtype = DType::float32});
  EXPECT_TRUE(std::signbit(logcumsumexp(z, 0).item<float>()));
  auto [sv, si] = cummin(scalar_tensor(3.0, {.dtype = DType::float32}), 0);
  EXPECT_EQ(sv.dim(), 0);
  EXPECT_EQ(sv.item<float>(), 3.0f);
  EXPECT_EQ(si.item<int64_t>(), 0);
  auto [lo, hi] = aminmax(scalar_tensor(3.0, {.dtype = DType::float32}), 0);
  EXPECT_EQ(lo.item<float>(), 3.0f);
  EXPECT_EQ(hi.item<float>(), 3.0f);
}

// torch 1.13 raises on aminmax's backward; here each output carries amin's / amax's gradient.
TEST(ReduceExtraTorch, AminmaxGradientIsAminAmaxs) {
  const std::vector<double> xv{1, 4, 4, 0, 2, 0};
  Tensor x = from_vector(xv, {2, 3}, {.dtype = DType::float32});
  x.set_requires_grad(true);
  auto [lo, hi] = aminmax(x, 1);
  backward({lo, hi}, {vec({1, 2}), vec({3, 4})});
  Tensor y = from_vector(xv, {2, 3}, {.dtype = DType::float32});
  y.set_requires_grad(true);
  backward({amin(y, {1}), amax(y, {1})}, {vec({1, 2}), vec({3, 4})});
  EXPECT_EQ(x.grad().to_vector<float>(), y.grad().to_vector<float>());
}

TEST(ReduceExtraTorch, NodesAndDoubleBackward) {
  Tensor x = vec({0.5, -1, 2, 0.25});
  x.set_requires_grad(true);
  const Tensor y = logcumsumexp(x, 0);
  EXPECT_EQ(grad_fn_name(y), "LogcumsumexpBackward0");
  EXPECT_EQ(grad_fn_name(std::get<0>(cummax(x, 0))), "GatherBackward0");
  EXPECT_EQ(grad_fn_name(nansum(x)), "NansumBackward0");
  EXPECT_EQ(grad_fn_name(std::get<1>(var_mean(x))), "VarMeanBackward0");
  EXPECT_EQ(grad_fn_name(std::get<0>(std_mean(x))), "StdMeanBackward0");
  // var_mean's closure records too: its gradient differentiates again.
  const Tensor gv = grad({std::get<0>(var_mean(x))}, {x}, {}, std::nullopt, true)[0];
  EXPECT_TRUE(gv.requires_grad());
  // d/dx of sum(y) with create_graph, then its sum differentiated again: the closure's ops record.
  const Tensor g = grad({sum(y)}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  ASSERT_TRUE(g.requires_grad());
  const Tensor gg = grad({sum(mul(g, g))}, {x})[0];
  EXPECT_EQ(gg.sizes(), x.sizes());
  for (float v : gg.to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace fabric
