// Loss modules over the loss ops (torch.nn.CrossEntropyLoss, NLLLoss, MSELoss, L1Loss,
// SmoothL1Loss, HuberLoss, BCELoss, BCEWithLogitsLoss, KLDivLoss).
#pragma once
#include <string>

#include "nn/module.h"

namespace fabric::nn {

struct CrossEntropyLossOptions {
  Tensor weight;  // optional, one per class (C); a buffer named "weight" of the module, as torch's
  int64_t ignore_index = -100;
  std::string reduction = "mean";  // "mean" | "sum" | "none"
  double label_smoothing = 0.0;
};

// A module taking two tensors: loss(input, target).
class LossModule : public Module {
 public:
  using Module::forward;
  using Module::operator();
  virtual Tensor forward(const Tensor& input, const Tensor& target) = 0;
  Tensor operator()(const Tensor& input, const Tensor& target) {
    return call_with_hooks(input, [&](const Tensor& x) { return forward(x, target); });
  }
};

class CrossEntropyLoss : public LossModule {
 public:
  using Options = CrossEntropyLossOptions;
  explicit CrossEntropyLoss(const CrossEntropyLossOptions& options = {});
  using LossModule::forward;
  // logits (N, C) or (N, C, d...) and int64 class targets (N) / (N, d...), or class
  // probabilities of the logits' shape
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "CrossEntropyLoss"; }
  std::string extra_repr() const override;

 private:
  CrossEntropyLossOptions options_;  // its weight is the registered buffer (moves with to())
};

struct NLLLossOptions {
  Tensor weight;  // optional, one per class (C); a buffer named "weight", as torch's
  int64_t ignore_index = -100;
  std::string reduction = "mean";
};

class NLLLoss : public LossModule {
 public:
  using Options = NLLLossOptions;
  explicit NLLLoss(const NLLLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& log_probs, const Tensor& target) override;
  std::string type_name() const override { return "NLLLoss"; }
  std::string extra_repr() const override;

 private:
  NLLLossOptions options_;  // its weight is the registered buffer
};

struct MSELossOptions {
  std::string reduction = "mean";
};

class MSELoss : public LossModule {
 public:
  using Options = MSELossOptions;
  explicit MSELoss(const MSELossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "MSELoss"; }
  std::string extra_repr() const override;

 private:
  MSELossOptions options_;
};

struct L1LossOptions {
  std::string reduction = "mean";
};

class L1Loss : public LossModule {
 public:
  using Options = L1LossOptions;
  explicit L1Loss(const L1LossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "L1Loss"; }
  std::string extra_repr() const override;

 private:
  L1LossOptions options_;
};

struct SmoothL1LossOptions {
  std::string reduction = "mean";
  double beta = 1.0;  // >= 0; 0 is L1Loss
};

class SmoothL1Loss : public LossModule {
 public:
  using Options = SmoothL1LossOptions;
  explicit SmoothL1Loss(const SmoothL1LossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "SmoothL1Loss"; }
  std::string extra_repr() const override;

 private:
  SmoothL1LossOptions options_;
};

struct HuberLossOptions {
  std::string reduction = "mean";
  double delta = 1.0;  // > 0
};

class HuberLoss : public LossModule {
 public:
  using Options = HuberLossOptions;
  explicit HuberLoss(const HuberLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "HuberLoss"; }
  std::string extra_repr() const override;

 private:
  HuberLossOptions options_;
};

struct BCELossOptions {
  Tensor weight;  // optional, broadcast to the input's shape; a buffer of the module, as torch's
  std::string reduction = "mean";
};

class BCELoss : public LossModule {
 public:
  using Options = BCELossOptions;
  explicit BCELoss(const BCELossOptions& options = {});
  using LossModule::forward;
  // probabilities in [0, 1] and targets of the same shape and dtype
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "BCELoss"; }
  std::string extra_repr() const override;

 private:
  std::string reduction_;
  Tensor weight_;  // the registered buffer (moves with to())
};

struct BCEWithLogitsLossOptions {
  Tensor weight;  // optional, broadcast to the input's shape
  std::string reduction = "mean";
  Tensor pos_weight;  // optional, one weight per class of the last dim (broadcast)
};

class BCEWithLogitsLoss : public LossModule {
 public:
  using Options = BCEWithLogitsLossOptions;
  explicit BCEWithLogitsLoss(const BCEWithLogitsLossOptions& options = {});
  using LossModule::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "BCEWithLogitsLoss"; }
  std::string extra_repr() const override;

 private:
  std::string reduction_;
  Tensor weight_, pos_weight_;  // registered buffers
};

struct KLDivLossOptions {
  std::string reduction = "mean";  // also "batchmean", the KL divergence's own definition
  bool log_target = false;
};

class KLDivLoss : public LossModule {
 public:
  using Options = KLDivLossOptions;
  explicit KLDivLoss(const KLDivLossOptions& options = {});
  using LossModule::forward;
  // input: log-probabilities; target: probabilities (log-probabilities with log_target)
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "KLDivLoss"; }
  std::string extra_repr() const override;

 private:
  KLDivLossOptions options_;
};

}  // namespace fabric::nn
