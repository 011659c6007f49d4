// Harness cases for the elementwise losses (l1_loss, smooth_l1_loss, huber_loss,
// binary_cross_entropy(_with_logits), kl_div), each against a naive float64 reference written
// from the loss's definition: every reduction, broadcasting, the branch boundaries of
// smooth_l1/huber, extreme logits, probabilities 0 and 1 and zero KL targets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

// One loss value per element of the broadcast shape: f(values of each input at that element).
using ElemLoss = std::function<double(const std::vector<double>&)>;

RefTensor ref_elementwise(const std::vector<RefTensor>& in, const ElemLoss& f) {
  Shape s = in[0].shape;
  for (size_t i = 1; i < in.size(); ++i) s = broadcast_shapes(s, in[i].shape, "ref_elementwise");
  RefTensor out{s, std::vector<double>(static_cast<size_t>(numel_of(s)))};
  std::vector<int64_t> idx(s.size(), 0);
  std::vector<double> vals(in.size());
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

// "none" | "sum" | "mean" | "batchmean" (sum / input.size(0), the input's shape being `in0`).
RefTensor ref_reduce(RefTensor losses, const std::string& red, const Shape& in0) {
  if (red == "none") return losses;
  double s = 0;
  for (double v : losses.v) s += v;
  if (red == "mean") s /= static_cast<double>(losses.v.size());  // 0/0: NaN, as torch
  if (red == "batchmean" && !in0.empty()) s /= static_cast<double>(in0[0]);
  return {{}, {s}};
}

RefFn ref_loss(ElemLoss f, std::string red) {
  return [f, red](const std::vector<RefTensor>& in) {
    return ref_reduce(ref_elementwise(in, f), red, in[0].shape);
  };
}

double smooth_l1(double x, double y, double beta) {
  const double z = std::abs(x - y);
  return z < beta ? 0.5 * z * z / beta : z - 0.5 * beta;
}

double huber(double x, double y, double delta) {
  const double z = std::abs(x - y);
  return z < delta ? 0.5 * z * z : delta * (z - 0.5 * delta);
}

double bce(double x, double t) {
  return -(t * std::max(std::log(x), -100.0) + (1 - t) * std::max(std::log(1 - x), -100.0));
}

// softplus(-x) = log(1 + exp(-x)) written independently of the op's max-val trick.
double bce_logits(double x, double t, double pos_weight) {
  const double softplus_neg_x = std::log1p(std::exp(-std::abs(x))) + std::max(-x, 0.0);
  return (1 - t) * x + (1 + (pos_weight - 1) * t) * softplus_neg_x;
}

double kl(double x, double t, bool log_target) {
  if (log_target) return std::exp(t) * (t - x);
  return t == 0 ? 0.0 : t * (std::log(t) - x);
}

const std::vector<std::string> kReductions = {"none", "mean", "sum"};

std::vector<OpCase> distance_cases() {
  std::vector<OpCase> cases;
  struct Shapes {
    std::string name;
    Shape x, t;
  };
  const std::vector<Shapes> shapes = {{"", {3, 4}, {3, 4}},
                                      {"broadcast_target_", {2, 3, 4}, {4}},
                                      {"broadcast_input_", {3, 1}, {2, 3, 4}}};
  for (const Shapes& sh : shapes) {
    for (const std::string& red : kReductions) {
      cases.push_back(
          {.name = "l1_loss/" + sh.name + red,
           .inputs = {F(sh.x), F(sh.t)},
           .run = [red](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1], red); },
           .reference =
               ref_loss([](const std::vector<double>& v) { return std::abs(v[0] - v[1]); }, red)});
      for (double beta : {1.0, 0.5, 0.0}) {
        cases.push_back({.name = "smooth_l1_loss/" + sh.name + red + "_beta" + std::to_string(beta),
                         .inputs = {F(sh.x), F(sh.t)},
                         .run =
                             [red, beta](const std::vector<Tensor>& in) {
                               return smooth_l1_loss(in[0], in[1], red, beta);
                             },
                         .reference = ref_loss(
                             [beta](const std::vector<double>& v) {
                               return beta == 0 ? std::abs(v[0] - v[1])
                                                : smooth_l1(v[0], v[1], beta);
                             },
                             red)});
      }
      for (double delta : {1.0, 2.5}) {
        cases.push_back(
            {.name = "huber_loss/" + sh.name + red + "_delta" + std::to_string(delta),
             .inputs = {F(sh.x), F(sh.t)},
             .run =
                 [red, delta](const std::vector<Tensor>& in) {
                   return huber_loss(in[0], in[1], red, delta);
                 },
             .reference = ref_loss(
                 [delta](const std::vector<double>& v) { return huber(v[0], v[1], delta); }, red)});
      }
    }
  }
  // |x - y| exactly at beta / delta (both signs), beside points inside and outside: the branch
  // switch is where torch's `<` puts it, and the gradient is continuous across it. x - y is exact
  // in every dtype (multiples of 1/4).
  const std::vector<double> x = {1.0, -0.5, 2.0, 0.25, 3.0, -2.0, 0.5, -1.5};
  for (double b : {1.0, 0.5, 2.0}) {
    const std::vector<double> d = {b, -b, b, -b, 0.25 * b, -2.5 * b, 0.0, 4.0 * b};
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] - d[i];
    for (const std::string red : {"none", "sum"}) {
      cases.push_back(
          {.name = "smooth_l1_loss/at_beta" + std::to_string(b) + "_" + red,
           .inputs = {V({2, 4}, x), V({2, 4}, y)},
           .run =
               [red, b](const std::vector<Tensor>& in) {
                 return smooth_l1_loss(in[0], in[1], red, b);
               },
           .reference = ref_loss(
               [b](const std::vector<double>& v) { return smooth_l1(v[0], v[1], b); }, red)});
      cases.push_back(
          {.name = "huber_loss/at_delta" + std::to_string(b) + "_" + red,
           .inputs = {V({2, 4}, x), V({2, 4}, y)},
           .run = [red,
                   b](const std::vector<Tensor>& in) { return huber_loss(in[0], in[1], red, b); },
           .reference =
               ref_loss([b](const std::vector<double>& v) { return huber(v[0], v[1], b); }, red)});
    }
  }
  cases.push_back({.name = "l1_loss/empty_mean",
                   .inputs = {F({0, 3}), F({0, 3})},
                   .run = [](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1]); },
                   .reference =
                       [](const std::vector<RefTensor>&) {
                         return RefTensor{{}, {std::nan("")}};
                       }});
  cases.push_back(
      {.name = "huber_loss/scalar",
       .inputs = {F({}), F({})},
       .run = [](const std::vector<Tensor>& in) { return huber_loss(in[0], in[1], "mean", 0.5); },
       .reference =
           ref_loss([](const std::vector<double>& v) { return huber(v[0], v[1], 0.5); }, "mean")});
  return cases;
}

std::vector<OpCase> bce_cases() {
  std::vector<OpCase> cases;
  for (const std::string& red : kReductions) {
    cases.push_back(
        {.name = "binary_cross_entropy/" + red,
         .inputs = {P({3, 4}, 0.02, 0.98), F({3, 4}, 0, 1)},
         .run =
             [red](const std::vector<Tensor>& in) {
               return binary_cross_entropy(in[0], in[1], Tensor(), red);
             },
         .reference = ref_loss([](const std::vector<double>& v) { return bce(v[0], v[1]); }, red)});
    // A weight per column and one per row, broadcast to the input.
    for (const Shape& ws : {Shape{4}, Shape{3, 1}}) {
      cases.push_back(
          {.name = "binary_cross_entropy/weight" + shape_str(ws) + "_" + red,
           .inputs = {P({3, 4}, 0.02, 0.98), F({3, 4}, 0, 1), NoGrad(F(ws, 0.5, 2))},
           .run =
               [red](const std::vector<Tensor>& in) {
                 return binary_cross_entropy(in[0], in[1], in[2], red);
               },
           .reference =
               ref_loss([](const std::vector<double>& v) { return v[2] * bce(v[0], v[1]); }, red)});
    }
    cases.push_back(
        {.name = "binary_cross_entropy_with_logits/" + red,
         .inputs = {F({3, 4}, -4, 4), F({3, 4}, 0, 1)},
         .run =
             [red](const std::vector<Tensor>& in) {
               return binary_cross_entropy_with_logits(in[0], in[1], Tensor(), Tensor(), red);
             },
         .reference = ref_loss(
             [](const std::vector<double>& v) { return bce_logits(v[0], v[1], 1.0); }, red)});
    // weight per row, pos_weight per class (the last dim).
    cases.push_back(
        {.name = "binary_cross_entropy_with_logits/weight_pos_weight_" + red,
         .inputs = {F({2, 3, 4}, -4, 4), F({2, 3, 4}, 0, 1), NoGrad(F({3, 1}, 0.5, 2)),
                    NoGrad(P({4}, 0.2, 4))},
         .run =
             [red](const std::vector<Tensor>& in) {
               return binary_cross_entropy_with_logits(in[0], in[1], in[2], in[3], red);
             },
         .reference = ref_loss(
             [](const std::vector<double>& v) { return v[2] * bce_logits(v[0], v[1], v[3]); }, red),
         .tol_scale = 2});
  }
  cases.push_back(
      {.name = "binary_cross_entropy_with_logits/pos_weight_only",
       .inputs = {F({5, 3}, -4, 4), F({5, 3}, 0, 1), NoGrad(P({3}, 0.2, 4))},
       .run =
           [](const std::vector<Tensor>& in) {
             return binary_cross_entropy_with_logits(in[0], in[1], Tensor(), in[2], "mean");
           },
       .reference = ref_loss(
           [](const std::vector<double>& v) { return bce_logits(v[0], v[1], v[2]); }, "mean")});
  // Logits far past where exp overflows a naive log(1 + exp(-x)) in float16, values and
  // gradients (finite differences at +-50, +-100).
  for (const std::string red : {"none", "sum"}) {
    cases.push_back(
        {.name = "binary_cross_entropy_with_logits/extreme_" + red,
         .inputs = {V({2, 4}, {50, -50, 50, -50, 0, 100, -100, 20}),
                    V({2, 4}, {1, 0, 0, 1, 0.5, 0.25, 0.75, 0.875}),
                    NoGrad(V({4}, {1, 2, 0.5, 3}))},
         .run =
             [red](const std::vector<Tensor>& in) {
               return binary_cross_entropy_with_logits(in[0], in[1], Tensor(), in[2], red);
             },
         .reference = ref_loss(
             [](const std::vector<double>& v) { return bce_logits(v[0], v[1], v[2]); }, red)});
  }
  // Probabilities exactly 0 and 1: the logs clamp at -100 (a wrong target there costs 100, not
  // inf). No finite differences: a step leaves [0, 1]; torch's gradients at the edges are in
  // test_loss_elementwise.cpp's parity table.
  for (const std::string red : {"none", "mean"}) {
    cases.push_back(
        {.name = "binary_cross_entropy/zero_and_one_" + red,
         .inputs = {V({2, 3}, {0, 1, 0, 1, 0.5, 1e-30}), V({2, 3}, {0, 1, 1, 0, 0.25, 1})},
         .run =
             [red](const std::vector<Tensor>& in) {
               return binary_cross_entropy(in[0], in[1], Tensor(), red);
             },
         .reference = ref_loss([](const std::vector<double>& v) { return bce(v[0], v[1]); }, red),
         .grad_check = false});
  }
  cases.push_back({.name = "binary_cross_entropy/empty_sum",
                   .inputs = {P({0, 3}, 0.1, 0.9), F({0, 3}, 0, 1)},
                   .run =
                       [](const std::vector<Tensor>& in) {
                         return binary_cross_entropy(in[0], in[1], Tensor(), "sum");
                       },
                   .reference =
                       [](const std::vector<RefTensor>&) {
                         return RefTensor{{}, {0.0}};
                       }});
  return cases;
}

std::vector<OpCase> kl_div_cases() {
  std::vector<OpCase> cases;
  for (const std::string red : {"none", "mean", "sum", "batchmean"}) {
    for (bool log_target : {false, true}) {
      cases.push_back(
          {.name = std::string("kl_div/") + (log_target ? "log_target_" : "") + red,
           .inputs = {F({3, 4}, -3, 0), log_target ? F({3, 4}, -3, 0.5) : P({3, 4}, 0.05, 1)},
           .run =
               [red, log_target](const std::vector<Tensor>& in) {
                 return kl_div(in[0], in[1], red, log_target);
               },
           .reference = ref_loss(
               [log_target](const std::vector<double>& v) { return kl(v[0], v[1], log_target); },
               red)});
    }
    cases.push_back(
        {.name = "kl_div/broadcast_" + red,
         .inputs = {F({2, 3, 4}, -3, 0), P({4}, 0.05, 1)},
         .run = [red](const std::vector<Tensor>& in) { return kl_div(in[0], in[1], red); },
         .reference =
             ref_loss([](const std::vector<double>& v) { return kl(v[0], v[1], false); }, red)});
    // Zero targets contribute 0 (xlogy), not 0 * log 0 = NaN. The target is a constant of the
    // case: its own gradient at 0 is NaN in torch too, and finite differences would step below 0.
    const std::vector<double> zero_targets = {0, 0.5, 0, 0.25, 0, 0, 0.125, 0.125};
    cases.push_back(
        {.name = "kl_div/zero_targets_" + red,
         .inputs = {F({2, 4}, -3, 0)},
         .run =
             [red, zero_targets](const std::vector<Tensor>& in) {
               const Tensor t = from_vector(zero_targets, {2, 4}, {.dtype = DType::float64})
                                    .to(in[0].dtype())
                                    .to(in[0].device());
               return kl_div(in[0], t, red);
             },
         .reference =
             [red, zero_targets](const std::vector<RefTensor>& in) {
               return ref_reduce(ref_elementwise({in[0], RefTensor{{2, 4}, zero_targets}},
                                                 [](const std::vector<double>& v) {
                                                   return kl(v[0], v[1], false);
                                                 }),
                                 red, in[0].shape);
             }});
  }
  // batchmean of a 0-dim input is the plain sum (torch divides only when input.dim() != 0).
  cases.push_back(
      {.name = "kl_div/scalar_batchmean",
       .inputs = {F({}, -3, 0), P({}, 0.05, 1)},
       .run = [](const std::vector<Tensor>& in) { return kl_div(in[0], in[1], "batchmean"); },
       .reference = ref_loss([](const std::vector<double>& v) { return kl(v[0], v[1], false); },
                             "batchmean")});
  cases.push_back(
      {.name = "kl_div/empty_batchmean",
       .inputs = {F({0, 3}, -3, 0), P({0, 3}, 0.05, 1)},
       .run = [](const std::vector<Tensor>& in) { return kl_div(in[0], in[1], "batchmean"); },
       .reference =
           [](const std::vector<RefTensor>&) {
             return RefTensor{{}, {std::nan("")}};
           }});
  return cases;
}

std::vector<OpCase> elementwise_loss_cases() {
  std::vector<OpCase> cases = distance_cases();
  for (auto* family : {&bce_cases, &kl_div_cases})
    for (auto& c : (*family)()) cases.push_back(std::move(c));
  return cases;
}

}  // namespace

TEST(OpHarness, LossElementwise) { run_cases(elementwise_loss_cases()); }
TEST(OpHarnessCuda, LossElementwise) { run_cases_on_cuda(elementwise_loss_cases()); }

}  // namespace fabric::harness
