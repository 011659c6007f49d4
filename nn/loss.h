// Loss modules over the loss ops (torch.nn.CrossEntropyLoss, NLLLoss, MSELoss).
#pragma once
#include <string>

#include "nn/module.h"

namespace fabric::nn {

struct CrossEntropyLossOptions {
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
  Tensor operator()(const Tensor& input, const Tensor& target) { return forward(input, target); }
};

class CrossEntropyLoss : public LossModule {
 public:
  using Options = CrossEntropyLossOptions;
  explicit CrossEntropyLoss(const CrossEntropyLossOptions& options = {});
  using LossModule::forward;
  // logits (N, C) or (N, C, d...) and int64 class targets (N) / (N, d...)
  Tensor forward(const Tensor& input, const Tensor& target) override;
  std::string type_name() const override { return "CrossEntropyLoss"; }
  std::string extra_repr() const override;

 private:
  CrossEntropyLossOptions options_;
};

struct NLLLossOptions {
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
  NLLLossOptions options_;
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

}  // namespace fabric::nn
