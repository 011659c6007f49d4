// torch.nn.CTCLoss (torch 1.13): the module over ctc_loss (tensor/ctc_loss.h), called as
// loss(log_probs, targets, input_lengths, target_lengths) with the lengths as integral tensors or
// int64 vectors. Prints as torch's: "CTCLoss()".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

struct CTCLossOptions {
  int64_t blank = 0;
  std::string reduction = "mean";  // "mean" | "sum" | "none"
  bool zero_infinity = false;
};

class CTCLoss : public Module {
 public:
  using Options = CTCLossOptions;
  explicit CTCLoss(const CTCLossOptions& options = {});
  using Module::forward;
  using Module::operator();
  Tensor forward(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                 const Tensor& target_lengths);
  Tensor forward(const Tensor& log_probs, const Tensor& targets,
                 const std::vector<int64_t>& input_lengths,
                 const std::vector<int64_t>& target_lengths);
  Tensor operator()(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                    const Tensor& target_lengths) {
    return call_with_hooks(log_probs, [&](const Tensor& x) {
      return forward(x, targets, input_lengths, target_lengths);
    });
  }
  Tensor operator()(const Tensor& log_probs, const Tensor& targets,
                    const std::vector<int64_t>& input_lengths,
                    const std::vector<int64_t>& target_lengths) {
    return call_with_hooks(log_probs, [&](const Tensor& x) {
      return forward(x, targets, input_lengths, target_lengths);
    });
  }
  std::string type_name() const override { return "CTCLoss"; }
  const CTCLossOptions& options() const { return options_; }

 private:
  CTCLossOptions options_;
};

}  // namespace fabric::nn
