// triplet_margin_with_distance_loss in torch 1.13's order of operations:
// clamp(d_pos - d_neg + margin, min=0.0), then the reduction (torch.nn.functional's Python, not
// aten's triplet_margin_loss, which adds the margin first and so rounds differently).
#include "nn/triplet_distance_loss.h"

#include "tensor/loss_margin_helpers.h"
#include "tensor/ops.h"

namespace fabric::nn {

inline namespace functional {

Tensor triplet_margin_with_distance_loss(const Tensor& anchor, const Tensor& positive,
                                         const Tensor& negative,
                                         const DistanceFunction& distance_function, double margin,
                                         bool swap, std::string_view reduction) {
  const char* op = "triplet_margin_with_distance_loss";
  const auto red = detail::parse_loss_reduction(op, reduction);
  FABRIC_CHECK(anchor.defined() && positive.defined() && negative.defined(), ValueError, op,
               ": anchor, positive and negative must be defined");
  const DistanceFunction d = distance_function
                                 ? distance_function
                                 : DistanceFunction([](const Tensor& a, const Tensor& b) {
                                     return pairwise_distance(a, b);
                                   });
  const Tensor positive_dist = d(anchor, positive);
  Tensor negative_dist = d(anchor, negative);
  // The swap (Balntas et al.): the harder of the two negatives' distances; NaN propagates.
  if (swap) negative_dist = minimum(negative_dist, d(positive, negative));
  const Tensor output = clamp(add(sub(positive_dist, negative_dist), margin), 0.0, std::nullopt);
  return detail::apply_loss_reduction(output, red);
}

}  // namespace functional

TripletMarginWithDistanceLoss::TripletMarginWithDistanceLoss(
    const TripletMarginWithDistanceLossOptions& options)
    : options_(options) {
  const char* name = "TripletMarginWithDistanceLoss";
  (void)detail::parse_loss_reduction(name, options.reduction);
  FABRIC_CHECK(!(options.distance_function && options.distance_module), ValueError, name,
               ": give distance_function or distance_module, not both");
  if (options.distance_function) return;
  std::shared_ptr<DistanceModule> m = options.distance_module;
  if (!m) m = std::make_shared<PairwiseDistance>();
  register_module("distance_function", m);
  options_.distance_module = nullptr;  // the registered child is called (it may be replaced)
}

Tensor TripletMarginWithDistanceLoss::forward(const Tensor& anchor, const Tensor& positive,
                                              const Tensor& negative) {
  DistanceFunction d = options_.distance_function;
  if (!d) {
    auto* m = dynamic_cast<DistanceModule*>(&child("distance_function"));
    FABRIC_CHECK(m != nullptr, ValueError, type_name(),
                 ": the child distance_function must be a DistanceModule (a module called with "
                 "two tensors)");
    d = [m](const Tensor& a, const Tensor& b) { return (*m)(a, b); };
  }
  return triplet_margin_with_distance_loss(anchor, positive, negative, d, options_.margin,
                                           options_.swap, options_.reduction);
}

}  // namespace fabric::nn
