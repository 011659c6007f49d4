// Margin, embedding and likelihood loss modules and the distance modules:
// validate options once (as the other loss modules do), then call the ops of
// tensor/ops_loss_margin*.cpp.
#include "nn/loss_margin.h"

#include "tensor/ops.h"

namespace fabric::nn {
namespace {

void check_reduction(const char *loss, const std::string &r) {
  FABRIC_CHECK(r == "mean" || r == "sum" || r == "none", ValueError, loss,
               ": reduction must be \"mean\", \"sum\" or \"none\", got \"", r,
               "\"");
}

// An optional weight becomes a buffer named "weight" (so it follows
// to(device/dtype)), as torch's _WeightedLoss.
Tensor weight_buffer(Module &m, const char *loss, const Tensor &w) {
  if (!w.defined())
    return w;
  FABRIC_CHECK(w.is_floating_point(), DTypeError, loss,
               ": weight must be a floating tensor, got ",
               dtype_name(w.dtype()));
  return m.register_buffer("weight", w);
}

} // namespace

MarginRankingLoss::MarginRankingLoss(const MarginRankingLossOptions &options)
    : options_(options) {
  check_reduction("MarginRankingLoss", options.reduction);
}

Tensor MarginRankingLoss::forward(const Tensor &input1, const Tensor &input2,
                                  const Tensor &target) {
  return margin_ranking_loss(input1, input2, target, options_.margin,
                             options_.reduction);
}

HingeEmbeddingLoss::HingeEmbeddingLoss(const HingeEmbeddingLossOptions &options)
    : options_(options) {
  check_reduction("HingeEmbeddingLoss", options.reduction);
}

Tensor HingeEmbeddingLoss::forward(const Tensor &input, const Tensor &target) {
  return hinge_embedding_loss(input, target, options_.margin,
                              options_.reduction);
}

SoftMarginLoss::SoftMarginLoss(const SoftMarginLossOptions &options)
    : options_(options) {
  check_reduction("SoftMarginLoss", options.reduction);
}

Tensor SoftMarginLoss::forward(const Tensor &input, const Tensor &target) {
  return soft_margin_loss(input, target, options_.reduction);
}

MultiLabelSoftMarginLoss::MultiLabelSoftMarginLoss(
    const MultiLabelSoftMarginLossOptions &options)
    : reduction_(options.reduction) {
  check_reduction("MultiLabelSoftMarginLoss", options.reduction);
  weight_ = weight_buffer(*this, "MultiLabelSoftMarginLoss", options.weight);
}

Tensor MultiLabelSoftMarginLoss::forward(const Tensor &input,
                                         const Tensor &target) {
  return multilabel_soft_margin_loss(input, target, weight_, reduction_);
}

CosineEmbeddingLoss::CosineEmbeddingLoss(
    const CosineEmbeddingLossOptions &options)
    : options_(options) {
  check_reduction("CosineEmbeddingLoss", options.reduction);
}

Tensor CosineEmbeddingLoss::forward(const Tensor &input1, const Tensor &input2,
                                    const Tensor &target) {
  return cosine_embedding_loss(input1, input2, target, options_.margin,
                               options_.reduction);
}

TripletMarginLoss::TripletMarginLoss(const TripletMarginLossOptions &options)
    : options_(options) {
  check_reduction("TripletMarginLoss", options.reduction);
}

Tensor TripletMarginLoss::forward(const Tensor &anchor, const Tensor &positive,
                                  const Tensor &negative) {
  return triplet_margin_loss(anchor, positive, negative, options_.margin,
                             options_.p, options_.eps, options_.swap,
                             options_.reduction);
}

PoissonNLLLoss::PoissonNLLLoss(const PoissonNLLLossOptions &options)
    : options_(options) {
  check_reduction("PoissonNLLLoss", options.reduction);
}

Tensor PoissonNLLLoss::forward(const Tensor &input, const Tensor &target) {
  return poisson_nll_loss(input, target, options_.log_input, options_.full,
                          options_.eps, options_.reduction);
}

GaussianNLLLoss::GaussianNLLLoss(const GaussianNLLLossOptions &options)
    : options_(options) {
  check_reduction("GaussianNLLLoss", options.reduction);
}

Tensor GaussianNLLLoss::forward(const Tensor &input, const Tensor &target,
                                const Tensor &var) {
  return gaussian_nll_loss(input, target, var, options_.full, options_.eps,
                           options_.reduction);
}

MultiMarginLoss::MultiMarginLoss(const MultiMarginLossOptions &options)
    : p_(options.p), margin_(options.margin), reduction_(options.reduction) {
  check_reduction("MultiMarginLoss", options.reduction);
  FABRIC_CHECK(
      options.p == 1 || options.p == 2, ValueError,
      "MultiMarginLoss: only p == 1 and p == 2 are supported, got p = ",
      options.p);
  FABRIC_CHECK(!options.weight.defined() || options.weight.dim() == 1,
               ValueError,
               "MultiMarginLoss: weight must be one-dimensional (one per "
               "class), got shape ",
               shape_str(options.weight.sizes()));
  weight_ = weight_buffer(*this, "MultiMarginLoss", options.weight);
}

Tensor MultiMarginLoss::forward(const Tensor &input, const Tensor &target) {
  return multi_margin_loss(input, target, p_, margin_, weight_, reduction_);
}

MultiLabelMarginLoss::MultiLabelMarginLoss(
    const MultiLabelMarginLossOptions &options)
    : options_(options) {
  check_reduction("MultiLabelMarginLoss", options.reduction);
}

Tensor MultiLabelMarginLoss::forward(const Tensor &input,
                                     const Tensor &target) {
  return multilabel_margin_loss(input, target, options_.reduction);
}

Tensor CosineSimilarity::forward(const Tensor &x1, const Tensor &x2) {
  return cosine_similarity(x1, x2, options_.dim, options_.eps);
}

Tensor PairwiseDistance::forward(const Tensor &x1, const Tensor &x2) {
  return pairwise_distance(x1, x2, options_.p, options_.eps, options_.keepdim);
}

} // namespace fabric::nn
