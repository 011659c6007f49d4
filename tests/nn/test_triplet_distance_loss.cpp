// TripletMarginWithDistanceLoss and triplet_margin_with_distance_loss against torch 1.13
// (tests/nn/triplet_distance_torch_rows.h, from tools/fixtures/make_triplet_distance_rows.py):
// values and the three input gradients bit for bit in float32 and float64 for the default
// distance, a custom function and 1 - cosine_similarity, swap, margins and reductions; the
// module's child distance (printout, hooks, a module given instead of a function) and its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/triplet_distance_loss.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/nn/triplet_distance_torch_rows.h"

namespace fabric {
namespace {

using triplet_distance_torch::Row;

// Bit for bit where tol is 0, else within tol * max(1, |want|).
void expect_bits(const Tensor& got, const std::vector<double>& want, const std::string& what,
                 double tol) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  int shown = 0;
  for (size_t i = 0; i < g.size() && shown < 5; ++i) {
    if (std::bit_cast<uint64_t>(g[i]) == std::bit_cast<uint64_t>(want[i])) continue;
    if (tol > 0 && std::abs(g[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i]))) continue;
    ADD_FAILURE() << what << "[" << i << "]: " << g[i] << " vs torch " << want[i];
    ++shown;
  }
}

// The fixture's distances, as the generator writes them in Python.
nn::DistanceFunction distance(const std::string& name) {
  if (name == "l1")  // (a - b).abs().sum(-1)
    return [](const Tensor& a, const Tensor& b) { return sum(abs(sub(a, b)), {-1}); };
  if (name == "one_minus_cosine")  // 1.0 - F.cosine_similarity(a, b): (-c) + 1 rounds as 1 - c
    return [](const Tensor& a, const Tensor& b) { return add(neg(cosine_similarity(a, b)), 1.0); };
  return nullptr;  // "pairwise": the default
}

struct Inputs {
  Tensor a, p, n, g;
};

Inputs inputs(const Row& r) {
  const TensorOptions o{.dtype = dtype_from_name(r.dtype)};
  return {from_vector(r.a, r.a_shape, o).set_requires_grad(true),
          from_vector(r.p, r.p_shape, o).set_requires_grad(true),
          from_vector(r.n, r.n_shape, o).set_requires_grad(true),
          from_vector(r.g, {static_cast<int64_t>(r.g.size())}, o).reshape(r.loss_shape)};
}

// The loss's own arithmetic (sub, add, minimum, clamp, the reduction) rounds as torch's, so the
// rows of a custom distance match bit for bit. The default distance does not yet:
// pairwise_distance's norm (forward and backward) differs from torch 1.13's in the last bits
// (float32 rows of 5 elements: torch accumulates the squares in float32, fabric in double; float64
// rows of 8: torch's vectorized order), so those rows hold to a few ulps.
void expect_row(const Row& r, const Inputs& in, const Tensor& loss) {
  EXPECT_EQ(loss.sizes(), r.loss_shape);
  EXPECT_EQ(loss.dtype(), dtype_from_name(r.dtype));
  const bool exact = std::string(r.distance) != "pairwise";
  const double tol = exact ? 0.0 : std::string(r.dtype) == "float32" ? 1e-6 : 1e-14;
  expect_bits(loss, r.loss, "loss", tol);
  const std::vector<Tensor> grads = fabric::grad({loss}, {in.a, in.p, in.n}, {in.g});
  expect_bits(grads[0], r.grad_a, "anchor gradient", tol);
  expect_bits(grads[1], r.grad_p, "positive gradient", tol);
  expect_bits(grads[2], r.grad_n, "negative gradient", tol);
}

TEST(TripletDistanceLoss, FunctionalBitForBitAsTorch) {
  for (const Row& r : triplet_distance_torch::rows()) {
    SCOPED_TRACE(std::string(r.name) + " " + r.dtype);
    const Inputs in = inputs(r);
    expect_row(r, in,
               nn::triplet_margin_with_distance_loss(in.a, in.p, in.n, distance(r.distance),
                                                     r.margin, r.swap, r.reduction));
  }
}

TEST(TripletDistanceLoss, ModuleBitForBitAsTorch) {
  for (const Row& r : triplet_distance_torch::rows()) {
    SCOPED_TRACE(std::string(r.name) + " " + r.dtype);
    const Inputs in = inputs(r);
    auto loss =
        nn::make<nn::TripletMarginWithDistanceLoss>({.distance_function = distance(r.distance),
                                                     .margin = r.margin,
                                                     .swap = r.swap,
                                                     .reduction = r.reduction});
    expect_row(r, in, (*loss)(in.a, in.p, in.n));
  }
}

// torch registers the default PairwiseDistance (or a Module given as distance_function) as the
// child "distance_function"; a plain function is no child.
TEST(TripletDistanceLoss, ChildDistanceAndReprAsTorch) {
  nn::TripletMarginWithDistanceLoss dflt;
  EXPECT_EQ(dflt.str(),
            "TripletMarginWithDistanceLoss(\n  (distance_function): PairwiseDistance()\n)");
  ASSERT_EQ(dflt.named_modules().size(), 1u);
  EXPECT_EQ(dflt.named_modules()[0].first, "distance_function");
  EXPECT_TRUE(dflt.state_dict().empty());

  nn::TripletMarginWithDistanceLoss fn({.distance_function = distance("l1"), .swap = true});
  EXPECT_EQ(fn.str(), "TripletMarginWithDistanceLoss()");
  EXPECT_TRUE(fn.named_modules().empty());

  nn::TripletMarginWithDistanceLoss cos(
      {.distance_module = std::make_shared<nn::CosineSimilarity>()});
  EXPECT_EQ(cos.str(),
            "TripletMarginWithDistanceLoss(\n  (distance_function): CosineSimilarity()\n)");
}

// The child is called as a module (its hooks run): twice, three times with swap.
TEST(TripletDistanceLoss, ChildDistanceRunsWithItsHooks) {
  for (bool swap : {false, true}) {
    nn::TripletMarginWithDistanceLoss loss({.swap = swap});
    int calls = 0;
    loss.child("distance_function")
        .register_forward_hook([&](nn::Module&, const Tensor&, const Tensor&) {
          ++calls;
          return Tensor();
        });
    const Tensor a = randn({3, 4}), p = randn({3, 4}), n = randn({3, 4});
    const Tensor got = loss(a, p, n);
    EXPECT_EQ(calls, swap ? 3 : 2);
    EXPECT_EQ(got.item<float>(),
              nn::triplet_margin_with_distance_loss(a, p, n, nullptr, 1.0, swap).item<float>());
  }
  // A module distance with options (PairwiseDistance(p = 1)) is the functional with it.
  nn::TripletMarginWithDistanceLoss l1({.distance_module = std::make_shared<nn::PairwiseDistance>(
                                            nn::PairwiseDistanceOptions{.p = 1})});
  const Tensor a = randn({5, 3}), p = randn({5, 3}), n = randn({5, 3});
  EXPECT_EQ(l1(a, p, n).item<float>(),
            nn::triplet_margin_with_distance_loss(a, p, n, [](const Tensor& x, const Tensor& y) {
              return pairwise_distance(x, y, 1.0);
            }).item<float>());
}

TEST(TripletDistanceLoss, Errors) {
  const Tensor a = randn({2, 3});
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    nn::triplet_margin_with_distance_loss(a, a, a, nullptr, 1.0, false, "avg");
                  }),
                  "reduction must be \"mean\", \"sum\" or \"none\", got \"avg\"");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    nn::TripletMarginWithDistanceLoss({.reduction = "elementwise_mean"});
                  }),
                  "TripletMarginWithDistanceLoss: reduction must be");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    nn::TripletMarginWithDistanceLoss(
                        {.distance_function = distance("l1"),
                         .distance_module = std::make_shared<nn::PairwiseDistance>()});
                  }),
                  "give distance_function or distance_module, not both");
  // torch 1.13 checks no shapes itself: the distance's own error surfaces.
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    nn::triplet_margin_with_distance_loss(a, randn({4, 3}), a);
                  }),
                  "pairwise_distance");
}

}  // namespace
}  // namespace fabric
