// Harness cases for log_sigmoid, hardshrink, softshrink, threshold, softsign, tanhshrink, prelu,
// glu, eval-mode rrelu, normalize and local_response_norm, each against a naive float64
// reference written here, with finite-difference gradients. The kinks themselves (torch's side
// of each) are checked against torch in test_activation_extra_torch.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using V = std::vector<Tensor>;

const std::vector<Shape> kShapes = {{7, 9}, {2, 3, 17}, {0, 4}, {1}, {}, {40, 33}};

// Values in [-3, 3] at least 0.05 from every multiple of 0.5, where every kink of these cases
// lies (0, +-lambd, the thresholds): central differences never straddle one, and rounding to a
// low-precision dtype never moves a value across one.
InputSpec away_from_kinks(const Shape& s) {
  std::vector<double> v(numel_of(s));
  for (size_t i = 0; i < v.size(); ++i) {
    const double frac = std::fmod(0.6180339887 * static_cast<double>(i + 1), 1.0);  // in [0, 1)
    v[i] = -3 + 0.5 * std::floor(frac * 12) + 0.05 + 0.4 * std::fmod(frac * 12, 1.0);
  }
  return harness::V(s, std::move(v));  // the input helper, not this file's V alias
}

void add_pointwise(std::vector<OpCase>& cases, const std::string& name,
                   std::function<Tensor(const V&)> run, std::function<double(double)> ref,
                   bool kinked) {
  for (const Shape& s : kShapes)
    cases.push_back({name + "/" + shape_str(s),
                     {kinked ? away_from_kinks(s) : F(s, -6, 6)},
                     run,
                     ref_unary(ref)});
}

// (outer, n, inner) of `shape` around `dim`: element (o, k, i) is at (o * n + k) * inner + i.
struct DimSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
DimSplit split_at(const Shape& shape, int64_t dim) {
  DimSplit d;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < dim) d.outer *= shape[i];
    if (i == dim) d.n = shape[i];
    if (i > dim) d.inner *= shape[i];
  }
  return d;
}

RefTensor ref_prelu(const RefTensor& x, const RefTensor& w) {
  RefTensor out{x.shape, x.v};
  const DimSplit d = split_at(x.shape, 1);
  const bool per_channel = w.numel() != 1;
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t c = 0; c < d.n; ++c)
      for (int64_t i = 0; i < d.inner; ++i) {
        double& v = out.v[(o * d.n + c) * d.inner + i];
        if (v <= 0) v *= w.v[per_channel ? c : 0];
      }
  return out;
}

RefTensor ref_glu(const RefTensor& x, int64_t dim) {
  const DimSplit d = split_at(x.shape, dim);
  const int64_t h = d.n / 2;
  Shape os = x.shape;
  os[dim] = h;
  RefTensor out{os, std::vector<double>(static_cast<size_t>(d.outer * h * d.inner))};
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t k = 0; k < h; ++k)
      for (int64_t i = 0; i < d.inner; ++i) {
        const double a = x.v[(o * d.n + k) * d.inner + i];
        const double b = x.v[(o * d.n + k + h) * d.inner + i];
        out.v[(o * h + k) * d.inner + i] = a / (1 + std::exp(-b));
      }
  return out;
}

RefTensor ref_normalize(const RefTensor& x, double p, int64_t dim, double eps) {
  RefTensor out{x.shape, x.v};
  const DimSplit d = split_at(x.shape, dim);
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t i = 0; i < d.inner; ++i) {
      double norm = 0;
      for (int64_t k = 0; k < d.n; ++k) {
        const double a = std::abs(x.v[(o * d.n + k) * d.inner + i]);
        norm = std::isinf(p) ? std::max(norm, a) : norm + std::pow(a, p);
      }
      if (!std::isinf(p)) norm = std::pow(norm, 1 / p);
      for (int64_t k = 0; k < d.n; ++k) out.v[(o * d.n + k) * d.inner + i] /= std::max(norm, eps);
    }
  return out;
}

// x / (k + alpha / size * sum of x^2 over channels [c - size/2, c + (size-1)/2])^beta.
RefTensor ref_lrn(const RefTensor& x, int64_t size, double alpha, double beta, double k) {
  RefTensor out{x.shape, x.v};
  const DimSplit d = split_at(x.shape, 1);
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t c = 0; c < d.n; ++c)
      for (int64_t i = 0; i < d.inner; ++i) {
        double sq = 0;
        for (int64_t j = std::max<int64_t>(0, c - size / 2);
             j <= std::min(d.n - 1, c + (size - 1) / 2); ++j) {
          const double v = x.v[(o * d.n + j) * d.inner + i];
          sq += v * v;
        }
        out.v[(o * d.n + c) * d.inner + i] /= std::pow(k + alpha / size * sq, beta);
      }
  return out;
}

std::vector<OpCase> activation_extra_cases() {
  std::vector<OpCase> c;
  add_pointwise(
      c, "log_sigmoid", [](const V& x) { return log_sigmoid(x[0]); },
      [](double a) { return -std::log1p(std::exp(-a)); }, false);
  add_pointwise(
      c, "hardshrink", [](const V& x) { return hardshrink(x[0]); },
      [](double a) { return std::abs(a) > 0.5 ? a : 0.0; }, true);
  add_pointwise(
      c, "hardshrink_lambd1.5", [](const V& x) { return hardshrink(x[0], 1.5); },
      [](double a) { return std::abs(a) > 1.5 ? a : 0.0; }, true);
  add_pointwise(
      c, "softshrink", [](const V& x) { return softshrink(x[0]); },
      [](double a) { return a > 0.5    ? a - 0.5
                            : a < -0.5 ? a + 0.5
                                       : 0.0; }, true);
  add_pointwise(
      c, "softshrink_lambd1", [](const V& x) { return softshrink(x[0], 1.0); },
      [](double a) { return a > 1    ? a - 1
                            : a < -1 ? a + 1
                                     : 0.0; }, true);
  add_pointwise(
      c, "threshold_0.5_-2", [](const V& x) { return threshold(x[0], 0.5, -2.0); },
      [](double a) { return a <= 0.5 ? -2.0 : a; }, true);
  add_pointwise(
      c, "threshold_-1_0", [](const V& x) { return threshold(x[0], -1.0, 0.0); },
      [](double a) { return a <= -1 ? 0.0 : a; }, true);
  add_pointwise(
      c, "softsign", [](const V& x) { return softsign(x[0]); },
      [](double a) { return a / (1 + std::abs(a)); }, true);
  add_pointwise(
      c, "tanhshrink", [](const V& x) { return tanhshrink(x[0]); },
      [](double a) { return a - std::tanh(a); }, false);
  add_pointwise(
      c, "rrelu_eval", [](const V& x) { return rrelu(x[0]); },
      [](double a) { return a > 0 ? a : a * (1.0 / 8 + 1.0 / 3) / 2; }, true);
  add_pointwise(
      c, "rrelu_eval_0.1_0.3", [](const V& x) { return rrelu(x[0], 0.1, 0.3); },
      [](double a) { return a > 0 ? a : a * 0.2; }, true);

  // prelu: C slopes along dim 1 of 2-d to 4-d inputs, or one slope for any input.
  const auto prelu_case = [&](const std::string& name, Shape x, Shape w) {
    c.push_back({"prelu/" + name,
                 {away_from_kinks(x), F(std::move(w), -1, 1)},
                 [](const V& t) { return prelu(t[0], t[1]); },
                 [](const std::vector<RefTensor>& t) { return ref_prelu(t[0], t[1]); }});
  };
  prelu_case("2d_C", {5, 3}, {3});
  prelu_case("3d_C", {2, 4, 5}, {4});
  prelu_case("4d_C", {2, 3, 2, 3}, {3});
  prelu_case("4d_one", {2, 3, 2, 3}, {1});
  prelu_case("1d_one", {6}, {1});
  prelu_case("0d_weight", {3, 4}, {});

  for (const auto& [shape, dim] : std::vector<std::pair<Shape, int64_t>>{
           {{3, 8}, -1}, {{4, 3}, 0}, {{2, 6, 5}, 1}, {{2, 3, 4}, -1}, {{0, 4}, 1}}) {
    c.push_back({"glu/" + shape_str(shape) + "_dim" + std::to_string(dim),
                 {F(shape, -3, 3)},
                 [dim](const V& t) { return glu(t[0], dim); },
                 [dim, rank = static_cast<int64_t>(shape.size())](const std::vector<RefTensor>& t) {
                   return ref_glu(t[0], dim < 0 ? dim + rank : dim);
                 }});
  }

  // normalize: no norm of random inputs falls under eps (the eps clamp is in the torch rows);
  // p = 1 on positive inputs, away from |x|'s kink.
  struct NormalizeRow {
    std::string name;
    Shape shape;
    double p;
    int64_t dim;
  };
  for (const NormalizeRow& r : std::vector<NormalizeRow>{{"p2_dim1", {3, 5, 2}, 2.0, 1},
                                                         {"p1_dim1", {4, 6}, 1.0, 1},
                                                         {"p3_dim0", {3, 4}, 3.0, 0},
                                                         {"pinf_dim1", {2, 5}, INFINITY, 1}}) {
    c.push_back(
        {"normalize/" + r.name,
         {r.p == 1.0 ? P(r.shape, 0.2, 2) : F(r.shape)},
         [r](const V& t) { return normalize(t[0], r.p, r.dim); },
         [r](const std::vector<RefTensor>& t) { return ref_normalize(t[0], r.p, r.dim, 1e-12); },
         {DType::float64, DType::float32, DType::bfloat16, DType::float16},
         2.0});
  }

  struct LrnRow {
    std::string name;
    Shape shape;
    int64_t size;
    double alpha, beta, k;
  };
  for (const LrnRow& r : std::vector<LrnRow>{{"3d_size3", {2, 5, 4}, 3, 0.5, 0.75, 1.0},
                                             {"3d_size2", {2, 4, 3}, 2, 1e-4, 0.75, 1.0},
                                             {"4d_size4", {2, 6, 2, 3}, 4, 0.3, 0.6, 2.0},
                                             {"5d_size1", {1, 3, 2, 2, 2}, 1, 0.2, 0.9, 1.5}}) {
    c.push_back(
        {"local_response_norm/" + r.name,
         {F(r.shape)},
         [r](const V& t) { return local_response_norm(t[0], r.size, r.alpha, r.beta, r.k); },
         [r](const std::vector<RefTensor>& t) {
           return ref_lrn(t[0], r.size, r.alpha, r.beta, r.k);
         },
         {DType::float64, DType::float32, DType::bfloat16, DType::float16},
         2.0});
  }
  return c;
}

}  // namespace

TEST(OpHarness, ActivationExtra) { run_cases(activation_extra_cases()); }
TEST(OpHarnessCuda, ActivationExtra) { run_cases_on_cuda(activation_extra_cases()); }

}  // namespace fabric::harness
