// torch.nn.TripletMarginWithDistanceLoss and torch.nn.functional.triplet_margin_with_distance_loss:
// the triplet loss over any distance, max(d(anchor, positive) - d(anchor, negative) + margin, 0),
// computed as torch 1.13's Python composition (so autograd, dtypes and devices are those of the
// distance and of the elementwise ops), with d pairwise_distance (p = 2, eps = 1e-6) by default.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "nn/loss_margin.h"

namespace fabric::nn {

// A distance between two batches of embeddings: one value per pair (torch's Callable).
using DistanceFunction = std::function<Tensor(const Tensor&, const Tensor&)>;

inline namespace functional {

// d = distance_function (empty: pairwise_distance); with swap, d(anchor, negative) becomes
// min(d(anchor, negative), d(positive, negative)). reduction "mean" | "sum" | "none" (checked
// first; torch checks it after computing). torch 1.13 checks neither dims nor dtypes here: what
// the distance takes is taken (pairwise_distance broadcasts its inputs).
Tensor triplet_margin_with_distance_loss(const Tensor& anchor, const Tensor& positive,
                                         const Tensor& negative,
                                         const DistanceFunction& distance_function = nullptr,
                                         double margin = 1.0, bool swap = false,
                                         std::string_view reduction = "mean");

}  // namespace functional

struct TripletMarginWithDistanceLossOptions {
  // A plain function (no child module; the printout is then "TripletMarginWithDistanceLoss()").
  DistanceFunction distance_function = nullptr;
  // Or a module (CosineSimilarity, a PairwiseDistance with options, your own DistanceModule),
  // registered as the child "distance_function" and called with its hooks, as torch registers a
  // Module passed as distance_function. With neither set: PairwiseDistance(), torch's default.
  std::shared_ptr<DistanceModule> distance_module = nullptr;
  double margin = 1.0;
  bool swap = false;
  std::string reduction = "mean";
};

class TripletMarginWithDistanceLoss : public TernaryLossModule {
 public:
  using Options = TripletMarginWithDistanceLossOptions;
  explicit TripletMarginWithDistanceLoss(const TripletMarginWithDistanceLossOptions& options = {});
  using TernaryLossModule::forward;
  Tensor forward(const Tensor& anchor, const Tensor& positive, const Tensor& negative) override;
  std::string type_name() const override { return "TripletMarginWithDistanceLoss"; }

 private:
  TripletMarginWithDistanceLossOptions options_;
};

}  // namespace fabric::nn
