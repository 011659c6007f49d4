// Loss modules: validate options once, then call the loss ops.
#include "nn/loss.h"

#include "tensor/ops.h"

namespace fabric::nn {

namespace {
// "elementwise_mean" is torch's deprecated spelling of "mean": accepted here, the loss op warns.
void check_reduction(const char* loss, const std::string& r) {
  FABRIC_CHECK(r == "mean" || r == "sum" || r == "none" || r == "elementwise_mean", ValueError,
               loss, ": reduction must be \"mean\", \"sum\" or ", "\"none\", got \"", r, "\"");
}

// An optional weight tensor becomes a buffer (so it follows to(device/dtype)), as in torch.
Tensor weight_buffer(Module& m, const char* loss, const char* name, const Tensor& w) {
  if (!w.defined()) return w;
  FABRIC_CHECK(w.is_floating_point(), DTypeError, loss, ": ", name,
               " must be a floating tensor, got ", dtype_name(w.dtype()));
  return m.register_buffer(name, w);
}
}  // namespace

CrossEntropyLoss::CrossEntropyLoss(const CrossEntropyLossOptions& options) : options_(options) {
  check_reduction("CrossEntropyLoss", options.reduction);
  // torch smooths only by a value > 0 (a negative one is no smoothing) and refuses one > 1.
  FABRIC_CHECK(!(options.label_smoothing > 1.0), ValueError,
               "CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got ",
               options.label_smoothing);
  options_.weight = weight_buffer(*this, "CrossEntropyLoss", "weight", options.weight);
}

Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target) {
  return cross_entropy(input, target, options_.ignore_index, options_.reduction,
                       options_.label_smoothing, options_.weight);
}

// The losses print nothing between the parentheses (CrossEntropyLoss()): torch's _Loss has no
// extra_repr, whatever the options.
std::string CrossEntropyLoss::extra_repr() const { return ""; }

NLLLoss::NLLLoss(const NLLLossOptions& options) : options_(options) {
  check_reduction("NLLLoss", options.reduction);
  options_.weight = weight_buffer(*this, "NLLLoss", "weight", options.weight);
}

Tensor NLLLoss::forward(const Tensor& log_probs, const Tensor& target) {
  return nll_loss(log_probs, target, options_.ignore_index, options_.reduction, options_.weight);
}

std::string NLLLoss::extra_repr() const { return ""; }

MSELoss::MSELoss(const MSELossOptions& options) : options_(options) {
  check_reduction("MSELoss", options.reduction);
}

Tensor MSELoss::forward(const Tensor& input, const Tensor& target) {
  return mse_loss(input, target, options_.reduction);
}

std::string MSELoss::extra_repr() const { return ""; }

L1Loss::L1Loss(const L1LossOptions& options) : options_(options) {
  check_reduction("L1Loss", options.reduction);
}

Tensor L1Loss::forward(const Tensor& input, const Tensor& target) {
  return l1_loss(input, target, options_.reduction);
}

std::string L1Loss::extra_repr() const { return ""; }

SmoothL1Loss::SmoothL1Loss(const SmoothL1LossOptions& options) : options_(options) {
  check_reduction("SmoothL1Loss", options.reduction);
  FABRIC_CHECK(options.beta >= 0, ValueError, "SmoothL1Loss: beta must be >= 0, got ",
               options.beta);
}

Tensor SmoothL1Loss::forward(const Tensor& input, const Tensor& target) {
  return smooth_l1_loss(input, target, options_.reduction, options_.beta);
}

std::string SmoothL1Loss::extra_repr() const { return ""; }

HuberLoss::HuberLoss(const HuberLossOptions& options) : options_(options) {
  check_reduction("HuberLoss", options.reduction);
  FABRIC_CHECK(options.delta > 0, ValueError, "HuberLoss: delta must be > 0, got ", options.delta);
}

Tensor HuberLoss::forward(const Tensor& input, const Tensor& target) {
  return huber_loss(input, target, options_.reduction, options_.delta);
}

std::string HuberLoss::extra_repr() const { return ""; }

BCELoss::BCELoss(const BCELossOptions& options) : reduction_(options.reduction) {
  check_reduction("BCELoss", options.reduction);
  weight_ = weight_buffer(*this, "BCELoss", "weight", options.weight);
}

Tensor BCELoss::forward(const Tensor& input, const Tensor& target) {
  return binary_cross_entropy(input, target, weight_, reduction_);
}

std::string BCELoss::extra_repr() const { return ""; }

BCEWithLogitsLoss::BCEWithLogitsLoss(const BCEWithLogitsLossOptions& options)
    : reduction_(options.reduction) {
  check_reduction("BCEWithLogitsLoss", options.reduction);
  weight_ = weight_buffer(*this, "BCEWithLogitsLoss", "weight", options.weight);
  pos_weight_ = weight_buffer(*this, "BCEWithLogitsLoss", "pos_weight", options.pos_weight);
}

Tensor BCEWithLogitsLoss::forward(const Tensor& input, const Tensor& target) {
  return binary_cross_entropy_with_logits(input, target, weight_, pos_weight_, reduction_);
}

std::string BCEWithLogitsLoss::extra_repr() const { return ""; }

KLDivLoss::KLDivLoss(const KLDivLossOptions& options) : options_(options) {
  const std::string& r = options.reduction;
  FABRIC_CHECK(r == "mean" || r == "sum" || r == "none" || r == "batchmean", ValueError,
               "KLDivLoss: reduction must be \"mean\", \"sum\", \"none\" or \"batchmean\", got \"",
               r, "\"");
}

Tensor KLDivLoss::forward(const Tensor& input, const Tensor& target) {
  return kl_div(input, target, options_.reduction, options_.log_target);
}

std::string KLDivLoss::extra_repr() const { return ""; }

}  // namespace fabric::nn
