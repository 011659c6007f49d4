// The margin, embedding and likelihood losses and the distances against torch 1.13 itself (float64
// values and input gradients of fixed inputs, tools/fixtures/make_margin_loss_rows.py), their
// argument errors, result dtypes and autocast classes. The naive-reference and finite-difference
// checks are the harness rows of op_cases_loss_margin.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/ops/margin_loss_torch_rows.h"

namespace fabric {
namespace {

using margin_fixture::TorchArg;
using margin_fixture::TorchRow;

Tensor make_arg(const TorchArg& a) {
  // from_vector makes (1) of one value: reshape gives 0-d arguments their shape.
  Tensor t =
      (a.index ? from_vector(std::vector<int64_t>(a.v.begin(), a.v.end()))
               : from_vector(a.v, {static_cast<int64_t>(a.v.size())}, {.dtype = DType::float64}))
          .reshape(a.shape);
  if (a.grad) t.set_requires_grad(true);
  return t;
}

// |got - want| relative to max(1, |want|); NaN against NaN is exact.
double rel_err(double got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : INFINITY;
  return std::abs(got - want) / std::max(1.0, std::abs(want));
}

TEST(LossMargin, ValuesAndGradientsMatchTorch113) {
  double worst = 0;
  for (const TorchRow& r : margin_fixture::torch_rows()) {
    SCOPED_TRACE(r.name);
    std::vector<Tensor> args;
    for (const TorchArg& a : r.args) args.push_back(make_arg(a));
    const Tensor out = r.call(args);
    ASSERT_EQ(out.sizes(), r.out_shape);
    EXPECT_EQ(out.dtype(), DType::float64);
    const std::vector<double> got = out.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) {
      const double e = rel_err(got[i], r.out[i]);
      EXPECT_LE(e, 1e-12) << "out[" << i << "] " << got[i] << " vs torch " << r.out[i];
      worst = std::max(worst, e);
    }
    std::vector<Tensor> wrt;
    for (const Tensor& a : args)
      if (a.requires_grad()) wrt.push_back(a);
    ASSERT_EQ(wrt.size(), r.grads.size());
    if (wrt.empty()) continue;
    // c_k = 1 + k / 4, as the fixture's.
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

// Double backward comes from the composed ops: the gradient of sum(grad . v) with respect to each
// input, by autograd with create_graph, against central differences of sum(grad . v) (float64).
TEST(LossMargin, DoubleBackwardMatchesFiniteDifferences) {
  using Call = std::function<Tensor(const std::vector<Tensor>&)>;
  struct Row {
    const char* name;
    std::vector<Shape> shapes;
    Call call;
  };
  const Tensor idx = from_vector<int64_t>({0, 3, 1});
  const Tensor labels = from_vector<int64_t>({1, -1, 1});
  const Tensor soft_labels =
      from_vector<double>({0, 1, 0.25, 1, 0.5, 0, 1, 1, 0.75, 0, 0, 1}, {3, 4});
  const Tensor multi = from_vector<int64_t>({2, 0, -1, 3, 1, 3, -1, 0, 0, 1, 2, 3}, {3, 4});
  const std::vector<Row> rows = {
      {"margin_ranking_loss",
       {{3}, {3}},
       [&](auto& a) { return margin_ranking_loss(a[0], a[1], labels, 0.5); }},
      {"soft_margin_loss",
       {{3, 4}},
       [&](auto& a) {
         return soft_margin_loss(a[0], labels.reshape({3, 1}), "sum");
       }},
      {"multilabel_soft_margin_loss",
       {{3, 4}, {4}},
       [&](auto& a) { return multilabel_soft_margin_loss(a[0], soft_labels, exp(a[1])); }},
      {"cosine_embedding_loss",
       {{3, 4}, {3, 4}},
       [&](auto& a) { return cosine_embedding_loss(a[0], a[1], labels, -0.9); }},
      {"triplet_margin_loss",
       {{3, 4}, {3, 4}, {3, 4}},
       [&](auto& a) { return triplet_margin_loss(a[0], a[1], a[2], 5.0, 3.0, 1e-6, true); }},
      {"poisson_nll_loss",
       {{3, 4}, {3, 4}},
       [&](auto& a) { return poisson_nll_loss(exp(a[0]), add(exp(a[1]), 1.0), false, true); }},
      {"gaussian_nll_loss",
       {{3, 4}, {3, 4}, {3}},
       [&](auto& a) { return gaussian_nll_loss(a[0], a[1], exp(a[2]), true); }},
      {"multi_margin_loss",
       {{3, 4}},
       [&](auto& a) { return multi_margin_loss(a[0], idx, 2, 3.0); }},
      // A hinge's second derivative is 0 almost everywhere; times a smooth factor it is not.
      {"multilabel_margin_loss",
       {{3, 4}},
       [&](auto& a) { return mul(multilabel_margin_loss(a[0], multi, "none"), sum(a[0], {1})); }},
      {"cosine_similarity",
       {{3, 4}, {3, 4}},
       [&](auto& a) { return cosine_similarity(a[0], a[1]); }},
      {"pairwise_distance",
       {{3, 4}, {3, 4}},
       [&](auto& a) { return pairwise_distance(a[0], a[1], 3.0); }},
  };
  Generator gen(7);
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    std::vector<Tensor> in, v;
    for (const Shape& s : r.shapes) {
      in.push_back(randn(s, {.dtype = DType::float64, .requires_grad = true}, &gen));
      v.push_back(randn(s, {.dtype = DType::float64}, &gen));
    }
    // sum(d sum(out) / d in . v), differentiable.
    auto first = [&](const std::vector<Tensor>& x, bool create) {
      const std::vector<Tensor> g = grad({sum(r.call(x))}, x, {}, std::nullopt, create, true);
      Tensor s = zeros({}, {.dtype = DType::float64});
      for (size_t i = 0; i < x.size(); ++i)
        if (g[i].defined()) s = add(s, sum(mul(g[i], v[i])));
      return s;
    };
    // A gradient piecewise constant in the inputs (a hinge's) records nothing: its derivative is 0.
    const Tensor s1 = first(in, true);
    const std::vector<Tensor> second = s1.requires_grad()
                                           ? grad({s1}, in, {}, std::nullopt, false, true)
                                           : std::vector<Tensor>(in.size());
    const double h = 1e-6;
    for (size_t i = 0; i < in.size(); ++i) {
      const std::vector<double> base = in[i].detach().to_vector<double>();
      const std::vector<double> got = second[i].defined() ? second[i].to_vector<double>()
                                                          : std::vector<double>(base.size(), 0.0);
      for (size_t e = 0; e < base.size(); ++e) {
        auto at = [&](double d) {
          std::vector<Tensor> x = in;
          std::vector<double> moved = base;
          moved[e] += d;
          x[i] = from_vector(moved, {static_cast<int64_t>(moved.size())}, {.dtype = DType::float64})
                     .reshape(in[i].sizes());
          x[i].set_requires_grad(true);
          for (size_t j = 0; j < x.size(); ++j) {
            if (j == i) continue;
            x[j] = in[j].detach();
            x[j].set_requires_grad(true);
          }
          return first(x, false).item<double>();
        };
        const double numeric = (at(h) - at(-h)) / (2 * h);
        EXPECT_NEAR(got[e], numeric, 1e-5 * std::max(1.0, std::abs(numeric)))
            << "input " << i << " element " << e;
      }
    }
  }
}

// ---- errors -----------------------------------------------------------------------------------

template <class E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  const std::string msg = thrown<E>(fn);
  for (const std::string& p : parts) EXPECT_CONTAINS(msg, p);
}

TEST(LossMargin, BadReductionRaisesNamingTheOp) {
  const Tensor a = full({2, 3}, 0.5), b = full({2, 3}, 0.25), y = full({2, 3}, 1.0);
  const Tensor c1 = full({2}, 1.0), idx = zeros({2}, {.dtype = DType::int64});
  struct Row {
    const char* op;
    std::function<void()> call;
  };
  const std::vector<Row> rows = {
      {"margin_ranking_loss", [&] { margin_ranking_loss(a, b, y, 0, "avg"); }},
      {"hinge_embedding_loss", [&] { hinge_embedding_loss(a, y, 1, "avg"); }},
      {"soft_margin_loss", [&] { soft_margin_loss(a, y, "avg"); }},
      {"multilabel_soft_margin_loss", [&] { multilabel_soft_margin_loss(a, b, Tensor(), "avg"); }},
      {"cosine_embedding_loss", [&] { cosine_embedding_loss(a, b, c1, 0, "avg"); }},
      {"triplet_margin_loss", [&] { triplet_margin_loss(a, b, a, 1, 2, 1e-6, false, "avg"); }},
      {"poisson_nll_loss", [&] { poisson_nll_loss(a, b, true, false, 1e-8, "avg"); }},
      {"gaussian_nll_loss", [&] { gaussian_nll_loss(a, b, b, false, 1e-6, "avg"); }},
      {"multi_margin_loss", [&] { multi_margin_loss(a, idx, 1, 1, Tensor(), "avg"); }},
      {"multilabel_margin_loss",
       [&] {
         multilabel_margin_loss(a, idx.reshape({2, 1}).expand({2, 3}), "avg");
       }},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.op);
    expect_error<ValueError>(r.call,
                             {r.op, "reduction must be \"mean\", \"sum\" or \"none\"", "\"avg\""});
  }
}

TEST(LossMargin, BadShapesRaiseNamingTheShapes) {
  const Tensor m23 = full({2, 3}, 0.5), m24 = full({2, 4}, 0.5), v3 = full({3}, 1.0);
  const Tensor v2 = full({2}, 1.0), m231 = full({2, 3, 1}, 0.5);
  const Tensor idx2 = zeros({2}, {.dtype = DType::int64});
  struct Row {
    const char* what;
    std::function<void()> call;
    std::vector<std::string> parts;
  };
  const std::vector<Row> rows = {
      {"margin_ranking dims",
       [&] { margin_ranking_loss(m23, m23, v3); },
       {"margin_ranking_loss", "same number of dimensions", "(2, 3)", "(3,)"}},
      {"margin_ranking sizes",
       [&] { margin_ranking_loss(m23, m24, m23); },
       {"margin_ranking_loss", "(2, 3)", "(2, 4)"}},
      {"hinge sizes", [&] { hinge_embedding_loss(m23, m24); }, {"hinge_embedding_loss", "(2, 4)"}},
      {"soft_margin target grows the input",
       [&] { soft_margin_loss(v3, m23); },
       {"soft_margin_loss", "target of shape (2, 3)", "input's shape (3,)"}},
      {"multilabel_soft_margin 0-d",
       [&] { multilabel_soft_margin_loss(full({}, 1.0), full({}, 1.0)); },
       {"multilabel_soft_margin_loss", "class dimension", "()"}},
      {"multilabel_soft_margin sizes",
       [&] { multilabel_soft_margin_loss(m23, m24); },
       {"multilabel_soft_margin_loss", "(2, 4)"}},
      {"cosine_embedding 2-d target",
       [&] {
         cosine_embedding_loss(m23, m23, full({2, 1}, 1.0));
       },
       {"cosine_embedding_loss", "0-d or 1-d target", "(2, 1)"}},
      {"cosine_embedding 3-d inputs",
       [&] { cosine_embedding_loss(m231, m231, v2); },
       {"cosine_embedding_loss", "1-d target expects 2-d inputs", "(2, 3, 1)"}},
      {"cosine_embedding 0-d target",
       [&] { cosine_embedding_loss(m23, m23, full({}, 1.0)); },
       {"cosine_embedding_loss", "0-d target expects 1-d inputs", "(2, 3)"}},
      {"cosine_embedding sizes",
       [&] { cosine_embedding_loss(m23, m24, v2); },
       {"cosine_embedding_loss", "(2, 3)", "(2, 4)"}},
      {"cosine_embedding target size",
       [&] { cosine_embedding_loss(m23, m23, v3); },
       {"cosine_embedding_loss", "(3,)"}},
      {"triplet dims",
       [&] { triplet_margin_loss(m23, m23, v3); },
       {"triplet_margin_loss", "same number of dimensions", "2-d, 2-d and 1-d"}},
      {"pairwise sizes",
       [&] { pairwise_distance(m23, m24); },
       {"pairwise_distance", "(2, 3)", "(2, 4)"}},
      {"cosine_similarity sizes",
       [&] { cosine_similarity(m23, m24); },
       {"cosine_similarity", "(2, 3)", "(2, 4)"}},
      {"poisson sizes", [&] { poisson_nll_loss(m23, m24); }, {"poisson_nll_loss", "(2, 4)"}},
      {"gaussian var",
       [&] { gaussian_nll_loss(m23, m23, v3); },
       {"gaussian_nll_loss", "var of shape (3,)", "incorrect size", "(2, 3)", "(2,)"}},
      {"gaussian var last dim",
       [&] {
         gaussian_nll_loss(m23, m23, full({2, 2}, 1.0));
       },
       {"gaussian_nll_loss", "var of shape (2, 2)"}},
      {"multi_margin 3-d",
       [&] {
         multi_margin_loss(full({2, 3, 4}, 0.5), idx2);
       },
       {"multi_margin_loss", "non-empty vector (C) or matrix (N, C)", "(2, 3, 4)"}},
      {"multi_margin no classes",
       [&] {
         multi_margin_loss(full({2, 0}, 0.5), idx2);
       },
       {"multi_margin_loss", "(2, 0)"}},
      {"multi_margin target size",
       [&] { multi_margin_loss(m23, zeros({3}, {.dtype = DType::int64})); },
       {"multi_margin_loss", "inconsistent target size", "expected 2", "(3,)"}},
      {"multi_margin weight size",
       [&] { multi_margin_loss(m23, idx2, 1, 1.0, full({4}, 1.0)); },
       {"multi_margin_loss", "inconsistent weight size", "expected 3", "(4,)"}},
      {"multilabel_margin 3-d",
       [&] {
         multilabel_margin_loss(full({2, 3, 4}, 0.5), idx2);
       },
       {"multilabel_margin_loss", "(2, 3, 4)"}},
      {"multilabel_margin target",
       [&] { multilabel_margin_loss(m23, idx2); },
       {"multilabel_margin_loss", "inconsistent target size", "(2, 3)", "got shape (2,)"}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    expect_error<ShapeError>(r.call, r.parts);
  }
}

TEST(LossMargin, BadValuesAndDtypesRaise) {
  const Tensor m23 = full({2, 3}, 0.5);
  // p of multi_margin_loss; its weight must be one-dimensional.
  expect_error<ValueError>([&] { multi_margin_loss(m23, zeros({2}, {.dtype = DType::int64}), 3); },
                           {"multi_margin_loss", "only p == 1 and p == 2", "p = 3"});
  expect_error<ValueError>(
      [&] {
        multi_margin_loss(m23, zeros({2}, {.dtype = DType::int64}), 1, 1.0, full({1, 3}, 1.0));
      },
      {"multi_margin_loss", "weight must be one-dimensional", "(1, 3)"});
  // Class indices out of range (multilabel's may be -1: the end of a sample's labels).
  expect_error<IndexError>(
      [&] {
        multi_margin_loss(m23, from_vector<int64_t>({0, 3}));
      },
      {"multi_margin_loss", "1 of 2 target values are out of range", "[0, 3)", "from 0 to 3"});
  expect_error<IndexError>(
      [&] {
        multi_margin_loss(m23, from_vector<int64_t>({-1, 0}));
      },
      {"multi_margin_loss", "[0, 3)"});
  expect_error<IndexError>(
      [&] {
        multilabel_margin_loss(m23, from_vector<int64_t>({0, -2, 1, 2, -1, 3}, {2, 3}));
      },
      {"multilabel_margin_loss", "2 of 6", "[-1, 3)", "from -2 to 3"});
  // Negative variances.
  expect_error<ValueError>(
      [&] {
        gaussian_nll_loss(m23, m23, from_vector<float>({1, -1, 2, 0, -0.5, 1}, {2, 3}));
      },
      {"gaussian_nll_loss", "var has negative entries (2 of 6)"});
  // Dtypes: floating inputs, int64 class indices, label targets not bool.
  const Tensor ints = zeros({2, 3}, {.dtype = DType::int64});
  expect_error<DTypeError>([&] { soft_margin_loss(ints, m23); },
                           {"soft_margin_loss", "input", "int64"});
  expect_error<DTypeError>(
      [&] {
        hinge_embedding_loss(m23, ones({2, 3}, {.dtype = DType::bool_}));
      },
      {"hinge_embedding_loss", "target", "bool"});
  expect_error<DTypeError>([&] { multi_margin_loss(m23, zeros({2}, {.dtype = DType::int32})); },
                           {"multi_margin_loss", "int64", "int32"});
  expect_error<DTypeError>(
      [&] {
        multilabel_margin_loss(m23, full({2, 3}, 1.0));
      },
      {"multilabel_margin_loss", "int64", "float32"});
  expect_error<DTypeError>([&] { cosine_similarity(ints, ints); },
                           {"cosine_similarity", "floating point", "int64"});
  expect_error<IndexError>([&] { cosine_similarity(m23, m23, 2); }, {"cosine_similarity"});
  // pairwise_distance takes integers, as torch's x1 - x2 + eps promotes them (cosine_similarity
  // does not: torch wants a floating common dtype there).
  const Tensor d = pairwise_distance(ints, m23);
  EXPECT_EQ(d.dtype(), DType::float32);
  EXPECT_NEAR(d.to_vector<double>()[0], std::sqrt(3 * (0.5 - 1e-6) * (0.5 - 1e-6)), 1e-6);
  EXPECT_EQ(pairwise_distance(ints, ints).dtype(), DType::float32);
}

// torch has no derivative for soft_margin_loss's target nor multi_margin_loss's weight, and refuses
// one that requires grad while autograd records; under no-grad it is only read.
TEST(LossMargin, ArgumentsWithoutADerivativeAreRefusedWhileRecording) {
  const Tensor x = full({2, 3}, 0.25, {.requires_grad = true});
  const Tensor t = full({2, 3}, 1.0, {.requires_grad = true}),
               w = full({3}, 2.0, {.requires_grad = true});
  const Tensor idx = from_vector<int64_t>({0, 2});
  expect_error<NotImplementedError>(
      [&] { soft_margin_loss(x, t); },
      {"soft_margin_loss", "derivative for 'target' is not implemented"});
  expect_error<NotImplementedError>(
      [&] { multi_margin_loss(x, idx, 1, 1.0, w); },
      {"multi_margin_loss", "derivative for 'weight' is not implemented"});
  NoGradGuard no_grad;
  EXPECT_NO_THROW(soft_margin_loss(x, t));
  EXPECT_NO_THROW(multi_margin_loss(x, idx, 1, 1.0, w));
}

// Labels, class indices and integer inputs of cosine_similarity are taken as torch takes them.
// A batch without labels (every row starts with -1, or no rows) has a zero loss that is still
// differentiable, as torch's (a zero gradient), under every reduction.
TEST(LossMargin, MultilabelMarginWithoutLabelsStillDifferentiates) {
  for (const char* reduction : {"mean", "sum", "none"}) {
    SCOPED_TRACE(reduction);
    for (const Shape& shape : {Shape{2, 3}, Shape{0, 5}}) {
      Tensor x = randn(shape, {.dtype = DType::float64});
      x.set_requires_grad(true);
      const Tensor target = shape[0] == 0
                                ? zeros(shape, {.dtype = DType::int64})
                                : from_vector(std::vector<int64_t>{-1, 0, 1, -1, 2, 2}, {2, 3});
      const Tensor loss = sum(multilabel_margin_loss(x, target, reduction));
      ASSERT_TRUE(loss.requires_grad());
      loss.backward();
      EXPECT_EQ(x.grad().sizes(), shape);
      for (double v : x.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
    }
  }
}

TEST(LossMargin, IntegerLabelsAndInputsAreTaken) {
  const Tensor x1 = from_vector<float>({0.5f, -1.0f, 2.0f}),
               x2 = from_vector<float>({1.0f, 0.0f, 1.0f});
  const Tensor y_int = from_vector<int64_t>({1, -1, 1}), y = from_vector<float>({1, -1, 1});
  EXPECT_EQ(margin_ranking_loss(x1, x2, y_int).item<float>(),
            margin_ranking_loss(x1, x2, y).item<float>());
  EXPECT_EQ(hinge_embedding_loss(x1, y_int).item<float>(),
            hinge_embedding_loss(x1, y).item<float>());
  EXPECT_EQ(soft_margin_loss(x1, y_int).item<float>(), soft_margin_loss(x1, y).item<float>());
  EXPECT_FLOAT_EQ(
      cosine_similarity(from_vector<int64_t>({1, 0}), from_vector<float>({1, 1}), 0).item<float>(),
      1 / std::sqrt(2.0f));
}

// ---- dtypes and autocast ----------------------------------------------------------------------

TEST(LossMargin, ResultDtypesFollowTorch) {
  const Tensor f32 = full({2, 3}, 0.5), f64 = full({2, 3}, 0.25, {.dtype = DType::float64});
  EXPECT_EQ(margin_ranking_loss(f32, f64, f32).dtype(), DType::float64);
  EXPECT_EQ(soft_margin_loss(f32, f64).dtype(), DType::float32);  // written into the input's dtype
  EXPECT_EQ(poisson_nll_loss(f32, f64).dtype(), DType::float64);
  EXPECT_EQ(gaussian_nll_loss(f32, f32, f64).dtype(), DType::float64);
  EXPECT_EQ(cosine_similarity(f32, f64).dtype(), DType::float64);
  EXPECT_EQ(pairwise_distance(f32, f64).dtype(), DType::float64);
  // multi_margin_loss takes a weight of another dtype (cast to the input's).
  EXPECT_EQ(multi_margin_loss(f32, from_vector<int64_t>({0, 1}), 1, 1.0,
                              full({3}, 1.0, {.dtype = DType::float64}))
                .dtype(),
            DType::float32);
}

// Spec §3's CPU lists: the kernels of torch compute in float32 under CPU autocast; the Python
// compositions (multilabel_soft_margin_loss, gaussian_nll_loss) and the distances run in the
// inputs' dtype (cosine_similarity is on CUDA's FP32 list only).
TEST(LossMargin, CpuAutocastClasses) {
  const auto bf = [](const Shape& s, double v) { return full(s, v, {.dtype = DType::bfloat16}); };
  const Tensor x = bf({2, 3}, 0.5), y = bf({2, 3}, 1.0), lab = bf({2}, 1.0);
  const Tensor idx = from_vector<int64_t>({0, 2});
  CpuAutocast region(DType::bfloat16);
  EXPECT_EQ(margin_ranking_loss(x, x, y).dtype(), DType::float32);
  EXPECT_EQ(hinge_embedding_loss(x, y).dtype(), DType::float32);
  EXPECT_EQ(soft_margin_loss(x, y).dtype(), DType::float32);
  EXPECT_EQ(cosine_embedding_loss(x, x, lab).dtype(), DType::float32);
  EXPECT_EQ(triplet_margin_loss(x, x, x).dtype(), DType::float32);
  EXPECT_EQ(poisson_nll_loss(x, y).dtype(), DType::float32);
  EXPECT_EQ(multi_margin_loss(x, idx).dtype(), DType::float32);
  EXPECT_EQ(multilabel_margin_loss(x, from_vector<int64_t>({0, -1, 0, 1, 2, -1}, {2, 3})).dtype(),
            DType::float32);
  EXPECT_EQ(multilabel_soft_margin_loss(x, y).dtype(), DType::bfloat16);
  EXPECT_EQ(gaussian_nll_loss(x, y, y).dtype(), DType::bfloat16);
  EXPECT_EQ(cosine_similarity(x, y).dtype(), DType::bfloat16);
  EXPECT_EQ(pairwise_distance(x, y).dtype(), DType::bfloat16);
}

// None of these losses warns (torch 1.13 warns for none of them either).
TEST(LossMargin, NoWarnings) {
  const Tensor x = full({3, 2}, 0.5), y = full({2}, 1.0);
  test::CapturedWarnings warnings;
  hinge_embedding_loss(x, y);
  soft_margin_loss(x, y);
  poisson_nll_loss(x, y);
  multilabel_soft_margin_loss(x, y);
  EXPECT_TRUE(warnings.messages().empty());
}

}  // namespace
}  // namespace fabric
