// torch.nn.CTCLoss: the options checked once, as the other loss modules do, then ctc_loss.
#include "nn/ctc_loss.h"

#include "tensor/ctc_loss.h"

namespace fabric::nn {

CTCLoss::CTCLoss(const CTCLossOptions& options) : options_(options) {
  const std::string& r = options.reduction;
  FABRIC_CHECK(r == "mean" || r == "sum" || r == "none", ValueError,
               "CTCLoss: reduction must be \"mean\", \"sum\" or \"none\", got \"", r, "\"");
}

Tensor CTCLoss::forward(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                        const Tensor& target_lengths) {
  return ctc_loss(log_probs, targets, input_lengths, target_lengths, options_.blank,
                  options_.reduction, options_.zero_infinity);
}

Tensor CTCLoss::forward(const Tensor& log_probs, const Tensor& targets,
                        const std::vector<int64_t>& input_lengths,
                        const std::vector<int64_t>& target_lengths) {
  return ctc_loss(log_probs, targets, input_lengths, target_lengths, options_.blank,
                  options_.reduction, options_.zero_infinity);
}

}  // namespace fabric::nn
