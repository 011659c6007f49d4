// Loss modules: validate options once, then call the loss ops.
#include "nn/loss.h"

#include "tensor/ops.h"

namespace fabric::nn {

namespace {
void check_reduction(const char* loss, const std::string& r) {
  FABRIC_CHECK(r == "mean" || r == "sum" || r == "none", ValueError, loss,
               ": reduction must be \"mean\", \"sum\" or ", "\"none\", got \"", r, "\"");
}
}  // namespace

CrossEntropyLoss::CrossEntropyLoss(const CrossEntropyLossOptions& options) : options_(options) {
  check_reduction("CrossEntropyLoss", options.reduction);
  FABRIC_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0, ValueError,
               "CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got ",
               options.label_smoothing);
}

Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target) {
  return cross_entropy(input, target, options_.ignore_index, options_.reduction,
                       options_.label_smoothing);
}

std::string CrossEntropyLoss::extra_repr() const {
  return detail::cat("ignore_index=", options_.ignore_index, ", reduction='", options_.reduction,
                     "', label_smoothing=", options_.label_smoothing);
}

NLLLoss::NLLLoss(const NLLLossOptions& options) : options_(options) {
  check_reduction("NLLLoss", options.reduction);
}

Tensor NLLLoss::forward(const Tensor& log_probs, const Tensor& target) {
  return nll_loss(log_probs, target, options_.ignore_index, options_.reduction);
}

std::string NLLLoss::extra_repr() const {
  return detail::cat("ignore_index=", options_.ignore_index, ", reduction='", options_.reduction,
                     "'");
}

MSELoss::MSELoss(const MSELossOptions& options) : options_(options) {
  check_reduction("MSELoss", options.reduction);
}

Tensor MSELoss::forward(const Tensor& input, const Tensor& target) {
  return mse_loss(input, target, options_.reduction);
}

std::string MSELoss::extra_repr() const { return "reduction='" + options_.reduction + "'"; }

}  // namespace fabric::nn
