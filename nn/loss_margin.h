// Loss and distance modules over the margin, embedding and likelihood ops (torch.nn's
// MarginRankingLoss, HingeEmbeddingLoss, SoftMarginLoss, MultiLabelSoftMarginLoss,
// CosineEmbeddingLoss, TripletMarginLoss, PoissonNLLLoss, GaussianNLLLoss, MultiMarginLoss,
// MultiLabelMarginLoss, CosineSimilarity, PairwiseDistance). They print as torch's: no options.
#pragma once
#include <string>

#include "nn/loss.h"

namespace fabric::nn {

// A module taking three tensors: loss(a, b, c) (input1, input2, target; anchor, positive,
// negative; input, target, var).
class TernaryLossModule : public Module {
 public:
  using Module::forward;
  using Module::operator();
  virtual Tensor forward(const Tensor& a, const Tensor& b, const Tensor& c) = 0;
  Tensor operator()(const Tensor& a, const Tensor& b, const Tensor& c) {
    return call_with_hooks(a, [&](const Tensor& x) { return forward(x, b, c); });
  }
};

// A module comparing two tensors: distance(x1, x2).
class DistanceModule : public Module {
 public:
  using Module::forward;
  using Module::operator();
  virtual Tensor forward(const Tensor& x1, const Tensor& x2) = 0;
  Tensor operator()(const Tensor& x1, const Tensor& x2) {
    return call_with_hooks(x1, [&](const Tensor& x) { return forward(x, x2); });
  }
};

struct MarginRankingLossOptions {
  double margin = 0.0;
  std::string reduction = "mean";  // "mean" | "sum" | "none"
};

// max(0, -target * (input1 - input2) + margin), target 1 (input1 should rank higher) or -1
class MarginRankingLoss : public TernaryLossModule {
 public:
  using Options = MarginRankingLossOptions;
  explicit MarginRankingLoss(const MarginRankingLossOptions& options = {});
  using TernaryLossModule::forward;
  Tensor forward(const Tensor& input1, const Tensor& input2, const Tensor& target) override;
  std::string type_name() const override { return "MarginRankingLoss"; }

 private:
  MarginRankingLossOptions options_;
};

struct HingeEmbeddingLossOptions {
  double margin = 1.0;
  std::string reduction = "mean";
};

// input where target is 1, max(0, margin - input) where it is -1 (input: a distance)
class HingeEmbeddingLoss : public LossModule {
 public:
  using Options = HingeEmbeddingLossOptions;
  explicit HingeEmbeddingLoss(const HingeEmbeddingLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "HingeEmbeddingLoss"; }

 private:
  HingeEmbeddingLossOptions options_;
};

struct SoftMarginLossOptions {
  std::string reduction = "mean";
};

// log(1 + exp(-target * input)), target 1 or -1
class SoftMarginLoss : public LossModule {
 public:
  using Options = SoftMarginLossOptions;
  explicit SoftMarginLoss(const SoftMarginLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "SoftMarginLoss"; }

 private:
  SoftMarginLossOptions options_;
};

struct MultiLabelSoftMarginLossOptions {
  Tensor weight;  // optional, one per class (C); a buffer named "weight", as torch's
  std::string reduction = "mean";
};

// one binary logistic loss per class, averaged over the classes: logits (N, C), targets 0/1
class MultiLabelSoftMarginLoss : public LossModule {
 public:
  using Options = MultiLabelSoftMarginLossOptions;
  explicit MultiLabelSoftMarginLoss(const MultiLabelSoftMarginLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "MultiLabelSoftMarginLoss"; }

 private:
  std::string reduction_;
  Tensor weight_;  // the registered buffer (moves with to())
};

struct CosineEmbeddingLossOptions {
  double margin = 0.0;  // in [-1, 1]; 0 to 0.5 is torch's advice
  std::string reduction = "mean";
};

// 1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1: inputs (N, D)
// with targets (N), or (D) with a 0-d target
class CosineEmbeddingLoss : public TernaryLossModule {
 public:
  using Options = CosineEmbeddingLossOptions;
  explicit CosineEmbeddingLoss(const CosineEmbeddingLossOptions& options = {});
  using TernaryLossModule::forward;
  Tensor forward(const Tensor& input1, const Tensor& input2, const Tensor& target) override;
  std::string type_name() const override { return "CosineEmbeddingLoss"; }

 private:
  CosineEmbeddingLossOptions options_;
};

struct TripletMarginLossOptions {
  double margin = 1.0;
  double p = 2.0;     // the norm of the pairwise distances
  double eps = 1e-6;  // added to the differences before the norm
  bool swap = false;  // use the positive-negative distance where it is smaller
  std::string reduction = "mean";
};

// max(0, d(anchor, positive) - d(anchor, negative) + margin), d the p-norm pairwise distance
class TripletMarginLoss : public TernaryLossModule {
 public:
  using Options = TripletMarginLossOptions;
  explicit TripletMarginLoss(const TripletMarginLossOptions& options = {});
  using TernaryLossModule::forward;
  Tensor forward(const Tensor& anchor, const Tensor& positive, const Tensor& negative) override;
  std::string type_name() const override { return "TripletMarginLoss"; }

 private:
  TripletMarginLossOptions options_;
};

struct PoissonNLLLossOptions {
  bool log_input = true;  // input is log(rate): exp(input) - target * input
  bool full = false;      // add Stirling's approximation of log(target!) where target > 1
  double eps = 1e-8;      // log(input + eps) when log_input is false
  std::string reduction = "mean";
};

class PoissonNLLLoss : public LossModule {
 public:
  using Options = PoissonNLLLossOptions;
  explicit PoissonNLLLoss(const PoissonNLLLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "PoissonNLLLoss"; }

 private:
  PoissonNLLLossOptions options_;
};

struct GaussianNLLLossOptions {
  bool full = false;  // add the constant 0.5 * log(2 * pi)
  double eps = 1e-6;  // var is clamped to at least eps (the gradient ignores the clamp)
  std::string reduction = "mean";
};

// 0.5 * (log(var) + (input - target)^2 / var): var of the input's shape, or one per sample
class GaussianNLLLoss : public TernaryLossModule {
 public:
  using Options = GaussianNLLLossOptions;
  explicit GaussianNLLLoss(const GaussianNLLLossOptions& options = {});
  using TernaryLossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target, const Tensor& var) override;
  std::string type_name() const override { return "GaussianNLLLoss"; }

 private:
  GaussianNLLLossOptions options_;
};

struct MultiMarginLossOptions {
  int64_t p = 1;  // 1 or 2
  double margin = 1.0;
  Tensor weight;  // optional, one per class (C); a buffer named "weight", as torch's
  std::string reduction = "mean";
};

// the multi-class hinge: logits (N, C) or (C), int64 class targets (N) or 0-d
class MultiMarginLoss : public LossModule {
 public:
  using Options = MultiMarginLossOptions;
  explicit MultiMarginLoss(const MultiMarginLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "MultiMarginLoss"; }

 private:
  int64_t p_;
  double margin_;
  std::string reduction_;
  Tensor weight_;  // the registered buffer
};

struct MultiLabelMarginLossOptions {
  std::string reduction = "mean";
};

// the multi-label hinge: logits (N, C) or (C), int64 targets of the same shape listing each
// sample's classes, ended by -1 where fewer than C
class MultiLabelMarginLoss : public LossModule {
 public:
  using Options = MultiLabelMarginLossOptions;
  explicit MultiLabelMarginLoss(const MultiLabelMarginLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "MultiLabelMarginLoss"; }

 private:
  MultiLabelMarginLossOptions options_;
};

struct CosineSimilarityOptions {
  int64_t dim = 1;
  double eps = 1e-8;
};

class CosineSimilarity : public DistanceModule {
 public:
  using Options = CosineSimilarityOptions;
  explicit CosineSimilarity(const CosineSimilarityOptions& options = {}) : options_(options) {}
  using DistanceModule::forward;
  Tensor forward(const Tensor& x1, const Tensor& x2) override;
  std::string type_name() const override { return "CosineSimilarity"; }

 private:
  CosineSimilarityOptions options_;
};

struct PairwiseDistanceOptions {
  double p = 2.0;
  double eps = 1e-6;
  bool keepdim = false;
};

class PairwiseDistance : public DistanceModule {
 public:
  using Options = PairwiseDistanceOptions;
  explicit PairwiseDistance(const PairwiseDistanceOptions& options = {}) : options_(options) {}
  using DistanceModule::forward;
  Tensor forward(const Tensor& x1, const Tensor& x2) override;
  std::string type_name() const override { return "PairwiseDistance"; }

 private:
  PairwiseDistanceOptions options_;
};

}  // namespace fabric::nn
