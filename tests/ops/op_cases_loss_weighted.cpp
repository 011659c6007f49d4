// Harness cases for cross_entropy / nll_loss with a per-class weight and cross_entropy with
// class-probability targets (the composed path of ops_loss_weighted.cpp), against naive float64
// references written from torch's definitions; the probabilities and their weight are inputs too,
// so their gradients are checked by finite differences as well (a class-index weight has no
// derivative: torch refuses one that requires grad).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

// The (C) / (N, C, d...) layout of a loss input: the value of class c at position (n, i).
struct Classes {
  int64_t n = 1, c = 0, inner = 1;
  explicit Classes(const RefTensor& x) {
    if (x.shape.size() == 1) {
      c = x.shape[0];
      return;
    }
    n = x.shape[0];
    c = x.shape[1];
    for (size_t d = 2; d < x.shape.size(); ++d) inner *= x.shape[d];
  }
  int64_t positions() const { return n * inner; }
  std::vector<double> line(const RefTensor& x, int64_t pos) const {
    const int64_t o = pos / inner, i = pos % inner;
    std::vector<double> v(static_cast<size_t>(c));
    for (int64_t k = 0; k < c; ++k) v[k] = x.v[(o * c + k) * inner + i];
    return v;
  }
};

std::vector<double> log_softmax_line(const std::vector<double>& x) {
  double m = -std::numeric_limits<double>::infinity(), s = 0;
  for (double v : x) m = std::max(m, v);
  for (double v : x) s += std::exp(v - m);
  std::vector<double> y(x.size());
  for (size_t k = 0; k < x.size(); ++k) y[k] = x[k] - m - std::log(s);
  return y;
}

RefTensor reduce(RefTensor per_position, const std::string& red, double divisor) {
  if (red == "none") return per_position;
  double total = 0;
  for (double v : per_position.v) total += v;
  return {{}, {red == "sum" ? total : total / divisor}};
}

// Class targets: -w[t] * logp[t] mixed with smoothing's -sum_c w_c logp[c] as (1 - s) and s / C;
// 0 where ignored; "mean" over the total weight of the targets not ignored.
RefTensor ref_weighted(const RefTensor& x, const RefTensor& t, const RefTensor& w, bool logits,
                       int64_t ignore, const std::string& red, double s) {
  const Classes g(x);
  RefTensor out{t.shape, std::vector<double>(static_cast<size_t>(g.positions()))};
  double total_weight = 0;
  for (int64_t p = 0; p < g.positions(); ++p) {
    const int64_t tg = static_cast<int64_t>(t.v[p]);
    if (tg == ignore) continue;
    const std::vector<double> row = g.line(x, p);
    const std::vector<double> lp = logits ? log_softmax_line(row) : row;
    double smooth = 0;
    for (int64_t k = 0; k < g.c; ++k) smooth -= w.v[k] * lp[k];
    out.v[p] = (1 - s) * -w.v[tg] * lp[tg] + s / static_cast<double>(g.c) * smooth;
    total_weight += w.v[tg];
  }
  return reduce(out, red, total_weight);
}

// Probability targets: -sum_c w_c p'_c logp_c with p' = p (1 - s) + s / C; "mean" over positions.
RefTensor ref_probabilities(const RefTensor& x, const RefTensor& p, const RefTensor* w,
                            const std::string& red, double s) {
  const Classes g(x);
  Shape pos_shape = x.shape;
  pos_shape.erase(pos_shape.begin() + (x.shape.size() == 1 ? 0 : 1));
  RefTensor out{pos_shape, std::vector<double>(static_cast<size_t>(g.positions()))};
  for (int64_t q = 0; q < g.positions(); ++q) {
    const std::vector<double> lp = log_softmax_line(g.line(x, q)), pr = g.line(p, q);
    double l = 0;
    for (int64_t k = 0; k < g.c; ++k)
      l -= (w ? w->v[k] : 1.0) * (pr[k] * (1 - s) + s / static_cast<double>(g.c)) * lp[k];
    out.v[q] = l;
  }
  return reduce(out, red, static_cast<double>(g.positions()));
}

struct ClassRow {
  std::string name;
  Shape x, t;
  int64_t classes;
  int64_t ignore;
  std::string red;
  double smoothing;
};

std::vector<OpCase> class_weight_cases() {
  const std::vector<ClassRow> rows = {
      {"mean", {16, 5}, {16}, 5, -100, "mean", 0.0},
      {"sum", {16, 5}, {16}, 5, -100, "sum", 0.0},
      {"none", {16, 5}, {16}, 5, -100, "none", 0.0},
      {"ignore_mean", {16, 5}, {16}, 5, 1, "mean", 0.0},
      {"ignore_none", {16, 5}, {16}, 5, 1, "none", 0.0},
      {"smooth_ignore_mean", {16, 5}, {16}, 5, 1, "mean", 0.1},
      {"smooth_sum", {16, 5}, {16}, 5, -100, "sum", 0.2},
      {"smooth_ignore_none", {16, 5}, {16}, 5, 3, "none", 0.1},
      {"spatial_mean", {4, 5, 3}, {4, 3}, 5, 2, "mean", 0.1},
      {"spatial_none", {2, 4, 3, 2}, {2, 3, 2}, 4, -100, "none", 0.0},
      {"unbatched_mean", {6}, {}, 6, -100, "mean", 0.1},
      {"empty_sum", {0, 5}, {0}, 5, -100, "sum", 0.1},
  };
  std::vector<OpCase> cases;
  for (const ClassRow& d : rows) {
    const int64_t c = d.classes;
    cases.push_back({.name = "cross_entropy/weight_" + d.name,
                     .inputs = {F(d.x, -3, 3), Idx(d.t, c), NoGrad(P({c}, 0.2, 2))},
                     .run =
                         [d](const std::vector<Tensor>& in) {
                           return cross_entropy(in[0], in[1], d.ignore, d.red, d.smoothing, in[2]);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_weighted(in[0], in[1], in[2], true, d.ignore, d.red,
                                               d.smoothing);
                         },
                     .tol_scale = 2});
    if (d.smoothing != 0.0) continue;
    cases.push_back({.name = "nll_loss/weight_" + d.name,
                     .inputs = {F(d.x, -5, 0), Idx(d.t, c), NoGrad(P({c}, 0.2, 2))},
                     .run =
                         [d](const std::vector<Tensor>& in) {
                           return nll_loss(in[0], in[1], d.ignore, d.red, in[2]);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_weighted(in[0], in[1], in[2], false, d.ignore, d.red, 0.0);
                         }});
  }
  cases.push_back({.name = "cross_entropy/weight_int32_target",
                   .inputs = {F({6, 4}), Idx({6}, 4, DType::int32), NoGrad(P({4}, 0.2, 2))},
                   .run =
                       [](const std::vector<Tensor>& in) {
                         return cross_entropy(in[0], in[1], -100, "mean", 0.0, in[2]);
                       },
                   .reference =
                       [](const std::vector<RefTensor>& in) {
                         return ref_weighted(in[0], in[1], in[2], true, -100, "mean", 0.0);
                       }});
  return cases;
}

struct ProbRow {
  std::string name;
  Shape x;
  std::string red;
  double smoothing;
};

std::vector<OpCase> probability_cases() {
  const std::vector<ProbRow> rows = {
      {"mean", {8, 5}, "mean", 0.0},          {"sum", {8, 5}, "sum", 0.0},
      {"none", {8, 5}, "none", 0.0},          {"smooth_mean", {8, 5}, "mean", 0.1},
      {"smooth_none", {8, 5}, "none", 0.25},  {"spatial_mean", {3, 4, 2, 2}, "mean", 0.1},
      {"spatial_none", {2, 5, 3}, "none", 0}, {"unbatched_sum", {7}, "sum", 0.1},
      {"empty_sum", {0, 5}, "sum", 0.0},
  };
  std::vector<OpCase> cases;
  for (const ProbRow& d : rows) {
    const int64_t c = d.x.size() == 1 ? d.x[0] : d.x[1];
    cases.push_back({.name = "cross_entropy/probs_" + d.name,
                     .inputs = {F(d.x, -3, 3), F(d.x, 0, 1)},
                     .run =
                         [d](const std::vector<Tensor>& in) {
                           return cross_entropy(in[0], in[1], -100, d.red, d.smoothing);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_probabilities(in[0], in[1], nullptr, d.red, d.smoothing);
                         },
                     .tol_scale = 2});
    cases.push_back({.name = "cross_entropy/probs_weight_" + d.name,
                     .inputs = {F(d.x, -3, 3), F(d.x, 0, 1), P({c}, 0.2, 2)},
                     .run =
                         [d](const std::vector<Tensor>& in) {
                           return cross_entropy(in[0], in[1], -100, d.red, d.smoothing, in[2]);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_probabilities(in[0], in[1], &in[2], d.red, d.smoothing);
                         },
                     .tol_scale = 2});
  }
  return cases;
}

std::vector<OpCase> weighted_loss_cases() {
  std::vector<OpCase> cases = class_weight_cases();
  for (auto& c : probability_cases()) cases.push_back(std::move(c));
  return cases;
}

}  // namespace

TEST(OpHarness, LossWeighted) { run_cases(weighted_loss_cases()); }
TEST(OpHarnessCuda, LossWeighted) { run_cases_on_cuda(weighted_loss_cases()); }

}  // namespace fabric::harness
