// Harness cases for the margin, embedding and likelihood losses and the distances
// (ops_loss_margin*.cpp), each against a naive float64 reference written from torch's
// definition: every reduction, the options, labels 1/-1 (and 0, which is neither), broadcasting,
// class-index targets with -1 padding, var shapes and clamps. torch 1.13's own values and
// gradients are in test_loss_margin.cpp's fixture table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using Row = std::vector<double>;

const std::vector<std::string> kReductions = {"none", "mean", "sum"};

// Element values of each input at every element of the broadcast shape, through f.
RefTensor broadcast_map(const std::vector<RefTensor>& in,
                        const std::function<double(const Row&)>& f) {
  Shape s = in[0].shape;
  for (size_t i = 1; i < in.size(); ++i) s = broadcast_shapes(s, in[i].shape, "broadcast_map");
  RefTensor out{s, std::vector<double>(static_cast<size_t>(numel_of(s)))};
  std::vector<int64_t> idx(s.size(), 0);
  Row vals(in.size());
  for (int64_t e = 0; e < out.numel(); ++e) {
    for (size_t i = 0; i < in.size(); ++i) {
      const RefTensor& t = in[i];
      const size_t lead = s.size() - t.shape.size();
      int64_t flat = 0;
      for (size_t d = 0; d < t.shape.size(); ++d)
        flat = flat * t.shape[d] + (t.shape[d] == 1 ? 0 : idx[lead + d]);
      vals[i] = t.v[flat];
    }
    out.v[e] = f(vals);
    for (size_t d = s.size(); d-- > 0;) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

RefTensor reduce(RefTensor losses, const std::string& red) {
  if (red == "none") return losses;
  double s = 0;
  for (double v : losses.v) s += v;
  if (red == "mean") s /= static_cast<double>(losses.v.size());
  return {{}, {s}};
}

// Rows of the last dim of a (N, D) or (D) reference tensor.
Row row(const RefTensor& t, int64_t n) {
  const int64_t d = t.shape.empty() ? 1 : t.shape.back();
  return Row(t.v.begin() + n * d, t.v.begin() + (n + 1) * d);
}
int64_t rows_of(const RefTensor& t) { return t.shape.size() <= 1 ? 1 : t.shape[0]; }
Shape batch_shape(const RefTensor& t) { return t.shape.size() <= 1 ? Shape{} : Shape{t.shape[0]}; }

double log_sigmoid(double x) { return std::min(x, 0.0) - std::log1p(std::exp(-std::abs(x))); }

double p_distance(const Row& a, const Row& b, double p, double eps) {
  double s = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(a[i] - b[i] + eps);
    s += std::pow(d, p);
    m = std::max(m, d);
  }
  return std::isinf(p) ? m : std::pow(s, 1 / p);
}

double cosine(const Row& a, const Row& b, double eps_sq) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return ab / (std::sqrt(std::max(aa, eps_sq)) * std::sqrt(std::max(bb, eps_sq)));
}

// Labels 1/-1 with a 0 among them (neither label).
std::vector<double> labels(size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i % 3 == 0 ? -1 : 1;
  if (n > 4) v[4] = 0;
  return v;
}

std::vector<OpCase> pair_label_cases() {
  std::vector<OpCase> cases;
  for (const std::string& red : kReductions) {
    for (double margin : {0.0, 0.5}) {
      const std::string m = "margin" + std::to_string(margin).substr(0, 3) + "_";
      cases.push_back({.name = "margin_ranking_loss/" + m + red,
                       .inputs = {F({2, 4}), F({2, 4}), V({2, 4}, {1, -1, -1, 1, 1, 1, -1, 1})},
                       .run =
                           [red, margin](const std::vector<Tensor>& in) {
                             return margin_ranking_loss(in[0], in[1], in[2], margin, red);
                           },
                       .reference =
                           [red, margin](const std::vector<RefTensor>& in) {
                             return reduce(broadcast_map(in,
                                                         [margin](const Row& v) {
                                                           return std::max(
                                                               0.0, -v[2] * (v[0] - v[1]) + margin);
                                                         }),
                                           red);
                           }});
      cases.push_back({.name = "hinge_embedding_loss/" + m + red,
                       .inputs = {F({2, 4}), V({2, 4}, labels(8))},
                       .run =
                           [red, margin](const std::vector<Tensor>& in) {
                             return hinge_embedding_loss(in[0], in[1], margin + 1, red);
                           },
                       .reference =
                           [red, margin](const std::vector<RefTensor>& in) {
                             return reduce(broadcast_map(in,
                                                         [margin](const Row& v) {
                                                           const double hinge =
                                                               std::max(0.0, margin + 1 - v[0]);
                                                           return (v[1] != 1 ? hinge : 0) +
                                                                  (v[1] != -1 ? v[0] : 0);
                                                         }),
                                           red);
                           }});
    }
    cases.push_back(
        {.name = "soft_margin_loss/" + red,
         .inputs = {F({3, 4}, -4, 4), NoGrad(V({4}, {1, -1, -1, 1}))},
         .run =
             [red](const std::vector<Tensor>& in) { return soft_margin_loss(in[0], in[1], red); },
         .reference =
             [red](const std::vector<RefTensor>& in) {
               return reduce(
                   broadcast_map(in,
                                 [](const Row& v) { return std::log1p(std::exp(-v[0] * v[1])); }),
                   red);
             }});
  }
  // Labels of the target's rows broadcast over the inputs' (torch broadcasts all three).
  cases.push_back(
      {.name = "margin_ranking_loss/broadcast_target",
       .inputs = {F({3, 4}), F({1, 4}), V({3, 1}, {1, -1, 1})},
       .run =
           [](const std::vector<Tensor>& in) {
             return margin_ranking_loss(in[0], in[1], in[2], 0.25, "sum");
           },
       .reference =
           [](const std::vector<RefTensor>& in) {
             return reduce(
                 broadcast_map(
                     in, [](const Row& v) { return std::max(0.0, -v[2] * (v[0] - v[1]) + 0.25); }),
                 "sum");
           }});
  return cases;
}

std::vector<OpCase> multilabel_soft_margin_cases() {
  std::vector<OpCase> cases;
  for (const std::string& red : kReductions) {
    for (bool weighted : {false, true}) {
      cases.push_back(
          {.name = std::string("multilabel_soft_margin_loss/") + (weighted ? "weight_" : "") + red,
           .inputs = {F({3, 4}, -4, 4), F({3, 4}, 0, 1), P({4}, 0.5, 2)},
           .run =
               [red, weighted](const std::vector<Tensor>& in) {
                 return multilabel_soft_margin_loss(in[0], in[1], weighted ? in[2] : Tensor(), red);
               },
           .reference =
               [red, weighted](const std::vector<RefTensor>& in) {
                 RefTensor losses{batch_shape(in[0]), {}};
                 for (int64_t n = 0; n < rows_of(in[0]); ++n) {
                   const Row x = row(in[0], n), t = row(in[1], n);
                   double s = 0;
                   for (size_t c = 0; c < x.size(); ++c)
                     s += -(t[c] * log_sigmoid(x[c]) + (1 - t[c]) * log_sigmoid(-x[c])) *
                          (weighted ? in[2].v[c] : 1.0);
                   losses.v.push_back(s / static_cast<double>(x.size()));
                 }
                 return reduce(losses, red);
               }});
    }
  }
  return cases;
}

std::vector<OpCase> embedding_cases() {
  std::vector<OpCase> cases;
  for (const std::string& red : kReductions) {
    for (double margin : {0.0, -0.5}) {
      cases.push_back(
          {.name = "cosine_embedding_loss/margin" + std::to_string(margin).substr(0, 4) + "_" + red,
           .inputs = {F({5, 3}), F({5, 3}), V({5}, {1, -1, 1, -1, 0})},
           .run =
               [red, margin](const std::vector<Tensor>& in) {
                 return cosine_embedding_loss(in[0], in[1], in[2], margin, red);
               },
           .reference =
               [red, margin](const std::vector<RefTensor>& in) {
                 RefTensor losses{{5}, {}};
                 for (int64_t n = 0; n < 5; ++n) {
                   const Row a = row(in[0], n), b = row(in[1], n);
                   double ab = 0, aa = 1e-12, bb = 1e-12;
                   for (size_t i = 0; i < a.size(); ++i)
                     ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
                   const double cos = ab / std::sqrt(aa * bb), y = in[2].v[n];
                   losses.v.push_back(y == 1    ? 1 - cos
                                      : y == -1 ? std::max(0.0, cos - margin)
                                                : 0.0);
                 }
                 return reduce(losses, red);
               }});
    }
    for (double p : {2.0, 1.0, 3.0}) {
      for (bool swap : {false, true}) {
        cases.push_back(
            {.name = "triplet_margin_loss/p" + std::to_string(p).substr(0, 3) +
                     (swap ? "_swap_" : "_") + red,
             .inputs = {F({4, 3}), F({4, 3}), F({4, 3})},
             .run =
                 [red, p, swap](const std::vector<Tensor>& in) {
                   return triplet_margin_loss(in[0], in[1], in[2], 1.5, p, 1e-6, swap, red);
                 },
             .reference =
                 [red, p, swap](const std::vector<RefTensor>& in) {
                   RefTensor losses{{4}, {}};
                   for (int64_t n = 0; n < 4; ++n) {
                     const Row a = row(in[0], n), q = row(in[1], n), m = row(in[2], n);
                     double neg = p_distance(a, m, p, 1e-6);
                     if (swap) neg = std::min(neg, p_distance(q, m, p, 1e-6));
                     losses.v.push_back(std::max(0.0, 1.5 + p_distance(a, q, p, 1e-6) - neg));
                   }
                   return reduce(losses, red);
                 },
             // bfloat16's distances differ by a few units; the margin magnifies nothing.
             .tol_scale = 2});
      }
    }
  }
  for (double p : {2.0, 1.0, 3.0, std::numeric_limits<double>::infinity()}) {
    cases.push_back(
        {.name = "pairwise_distance/p" + std::to_string(p).substr(0, 3),
         .inputs = {F({4, 5}), F({4, 5})},
         .run = [p](const std::vector<Tensor>& in) { return pairwise_distance(in[0], in[1], p); },
         .reference =
             [p](const std::vector<RefTensor>& in) {
               RefTensor out{{4}, {}};
               for (int64_t n = 0; n < 4; ++n)
                 out.v.push_back(p_distance(row(in[0], n), row(in[1], n), p, 1e-6));
               return out;
             },
         .tol_scale = 2});
  }
  cases.push_back({.name = "pairwise_distance/broadcast_keepdim",
                   .inputs = {F({5}), F({3, 5})},
                   .run =
                       [](const std::vector<Tensor>& in) {
                         return pairwise_distance(in[0], in[1], 2.0, 0.1, true);
                       },
                   .reference =
                       [](const std::vector<RefTensor>& in) {
                         RefTensor out{{3, 1}, {}};
                         for (int64_t n = 0; n < 3; ++n)
                           out.v.push_back(p_distance(in[0].v, row(in[1], n), 2.0, 0.1));
                         return out;
                       }});
  for (double eps : {1e-8, 0.5}) {
    cases.push_back({.name = "cosine_similarity/dim1_eps" + std::to_string(eps),
                     .inputs = {F({4, 5}), F({4, 5})},
                     .run =
                         [eps](const std::vector<Tensor>& in) {
                           return cosine_similarity(in[0], in[1], 1, eps);
                         },
                     .reference =
                         [eps](const std::vector<RefTensor>& in) {
                           RefTensor out{{4}, {}};
                           for (int64_t n = 0; n < 4; ++n)
                             out.v.push_back(cosine(row(in[0], n), row(in[1], n), eps * eps));
                           return out;
                         },
                     .tol_scale = 2});
  }
  // A zero vector: its norm clamps at eps (the output is 0, the gradient to the other input
  // finite), and broadcasting of a (D) row against (N, D).
  cases.push_back(
      {.name = "cosine_similarity/broadcast_zero_row",
       .inputs = {V({3}, {0, 0, 0}), F({2, 3})},
       .run =
           [](const std::vector<Tensor>& in) { return cosine_similarity(in[0], in[1], -1, 0.1); },
       .reference =
           [](const std::vector<RefTensor>&) {
             return RefTensor{{2}, {0, 0}};
           }});
  return cases;
}

std::vector<OpCase> likelihood_cases() {
  std::vector<OpCase> cases;
  for (const std::string& red : kReductions) {
    for (bool log_input : {true, false}) {
      for (bool full : {false, true}) {
        cases.push_back(
            {.name = std::string("poisson_nll_loss/") + (log_input ? "log_" : "rate_") +
                     (full ? "full_" : "") + red,
             .inputs = {log_input ? F({3, 4}) : P({3, 4}, 0.2, 3), P({3, 4}, 0.2, 4)},
             .run =
                 [=](const std::vector<Tensor>& in) {
                   return poisson_nll_loss(in[0], in[1], log_input, full, 1e-8, red);
                 },
             .reference =
                 [=](const std::vector<RefTensor>& in) {
                   return reduce(broadcast_map(in,
                                               [=](const Row& v) {
                                                 const double x = v[0], t = v[1];
                                                 double l = log_input ? std::exp(x) - t * x
                                                                      : x - t * std::log(x + 1e-8);
                                                 if (full && t > 1)
                                                   l += t * std::log(t) - t +
                                                        0.5 * std::log(2 * std::numbers::pi * t);
                                                 return l;
                                               }),
                                 red);
                 },
             .tol_scale = 2});
      }
    }
    // var per element, per sample (one dim fewer: unsqueezed), per sample with a last dim of 1.
    for (const Shape& vs : {Shape{3, 4}, Shape{3}, Shape{3, 1}}) {
      for (bool full : {false, true}) {
        cases.push_back(
            {.name = "gaussian_nll_loss/var" + shape_str(vs) + (full ? "_full_" : "_") + red,
             .inputs = {F({3, 4}), F({3, 4}), P(vs, 0.2, 2)},
             .run =
                 [=](const std::vector<Tensor>& in) {
                   return gaussian_nll_loss(in[0], in[1], in[2], full, 1e-6, red);
                 },
             .reference =
                 [=](const std::vector<RefTensor>& in) {
                   RefTensor var = in[2];
                   if (var.shape.size() == 1) var.shape = {3, 1};
                   return reduce(
                       broadcast_map({in[0], in[1], var},
                                     [=](const Row& v) {
                                       const double d = v[0] - v[1];
                                       return 0.5 * (std::log(v[2]) + d * d / v[2]) +
                                              (full ? 0.5 * std::log(2 * std::numbers::pi) : 0.0);
                                     }),
                       red);
                 }});
      }
    }
  }
  // Variances under eps count as eps (no finite differences: a step crosses the clamp, whose
  // gradient torch ignores).
  cases.push_back({.name = "gaussian_nll_loss/var_below_eps",
                   .inputs = {F({2, 3}), F({2, 3}), V({2, 3}, {0, 1e-9, 0.5, 1, 0.01, 2})},
                   .run =
                       [](const std::vector<Tensor>& in) {
                         return gaussian_nll_loss(in[0], in[1], in[2], false, 0.01, "none");
                       },
                   .reference =
                       [](const std::vector<RefTensor>& in) {
                         return broadcast_map(in, [](const Row& v) {
                           const double var = std::max(v[2], 0.01), d = v[0] - v[1];
                           return 0.5 * (std::log(var) + d * d / var);
                         });
                       },
                   .dtypes = {DType::float64, DType::float32},
                   .grad_check = false});
  return cases;
}

// An int64 class-index input holding exactly `values`.
InputSpec Labels(Shape s, std::vector<double> values, int64_t classes) {
  InputSpec spec = Idx(std::move(s), classes);
  spec.values = std::move(values);
  return spec;
}

std::vector<OpCase> class_index_cases() {
  std::vector<OpCase> cases;
  for (const std::string& red : kReductions) {
    for (int64_t p : {1, 2}) {
      for (bool weighted : {false, true}) {
        cases.push_back({.name = "multi_margin_loss/p" + std::to_string(p) +
                                 (weighted ? "_weight_" : "_") + red,
                         .inputs = {F({4, 5}), Idx({4}, 5), NoGrad(P({5}, 0.5, 2))},
                         .run =
                             [=](const std::vector<Tensor>& in) {
                               return multi_margin_loss(in[0], in[1], p, 0.9,
                                                        weighted ? in[2] : Tensor(), red);
                             },
                         .reference =
                             [=](const std::vector<RefTensor>& in) {
                               RefTensor losses{{4}, {}};
                               for (int64_t n = 0; n < 4; ++n) {
                                 const Row x = row(in[0], n);
                                 const auto y = static_cast<size_t>(in[1].v[n]);
                                 double s = 0;
                                 for (size_t d = 0; d < x.size(); ++d) {
                                   if (d == y) continue;
                                   const double z = std::max(0.0, 0.9 - x[y] + x[d]);
                                   s += (p == 1 ? z : z * z) * (weighted ? in[2].v[y] : 1.0);
                                 }
                                 losses.v.push_back(s / 5);
                               }
                               return reduce(losses, red);
                             }});
      }
    }
    // Labels up to the first -1; one listed twice; a sample with none.
    cases.push_back({.name = "multilabel_margin_loss/" + red,
                     .inputs = {F({4, 5}), Labels({4, 5}, {3, 0, -1, 1,  2,  1,  2, 4, 0, 3,
                                                           2, 2, -1, -1, -1, -1, 1, 2, 3, 4},
                                                  5)},
                     .run =
                         [red](const std::vector<Tensor>& in) {
                           return multilabel_margin_loss(in[0], in[1], red);
                         },
                     .reference =
                         [red](const std::vector<RefTensor>& in) {
                           RefTensor losses{{4}, {}};
                           for (int64_t n = 0; n < 4; ++n) {
                             const Row x = row(in[0], n), t = row(in[1], n);
                             std::vector<bool> is_label(5, false);
                             size_t len = 0;
                             while (len < 5 && t[len] >= 0)
                               is_label[static_cast<size_t>(t[len++])] = true;
                             double s = 0;
                             for (size_t k = 0; k < len; ++k)
                               for (size_t d = 0; d < 5; ++d)
                                 if (!is_label[d])
                                   s += std::max(0.0, 1 - x[static_cast<size_t>(t[k])] + x[d]);
                             losses.v.push_back(s / 5);
                           }
                           return reduce(losses, red);
                         }});
  }
  // One sample: a (C) input with a 0-d target (multi_margin) or a (C) target (multilabel); torch's
  // "none" gives a 0-d loss for both.
  cases.push_back({.name = "multi_margin_loss/one_sample",
                   .inputs = {F({5}), Labels({}, {3}, 5)},
                   .run =
                       [](const std::vector<Tensor>& in) {
                         return multi_margin_loss(in[0], in[1], 1, 1.0, Tensor(), "none");
                       },
                   .reference =
                       [](const std::vector<RefTensor>& in) {
                         double s = 0;
                         for (size_t d = 0; d < 5; ++d)
                           if (d != 3) s += std::max(0.0, 1 - in[0].v[3] + in[0].v[d]);
                         return RefTensor{{}, {s / 5}};
                       }});
  cases.push_back({.name = "multilabel_margin_loss/one_sample",
                   .inputs = {F({5}), Labels({5}, {4, 1, -1, 0, 0}, 5)},
                   .run =
                       [](const std::vector<Tensor>& in) {
                         return multilabel_margin_loss(in[0], in[1], "none");
                       },
                   .reference =
                       [](const std::vector<RefTensor>& in) {
                         double s = 0;
                         for (size_t k : {4, 1})
                           for (size_t d : {0, 2, 3})
                             s += std::max(0.0, 1 - in[0].v[k] + in[0].v[d]);
                         return RefTensor{{}, {s / 5}};
                       }});
  return cases;
}

std::vector<OpCase> margin_loss_cases() {
  std::vector<OpCase> cases;
  for (auto* family : {&pair_label_cases, &multilabel_soft_margin_cases, &embedding_cases,
                       &likelihood_cases, &class_index_cases})
    for (auto& c : (*family)()) cases.push_back(std::move(c));
  return cases;
}

}  // namespace

TEST(OpHarness, LossMargin) { run_cases(margin_loss_cases()); }
TEST(OpHarnessCuda, LossMargin) { run_cases_on_cuda(margin_loss_cases()); }

}  // namespace fabric::harness
