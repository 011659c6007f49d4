// The composed paths of cross_entropy and nll_loss (ops_loss_weighted.cpp): ops_loss.cpp's entry
// points hand them a per-class weight or class-probability targets, and keep their fused kernels
// for the common unweighted class-index case.
#pragma once
#include <cstdint>
#include <string_view>

#include "tensor/tensor.h"

namespace fabric::detail {

// Whether cross_entropy needs the composed path: a weight, or a floating target (probabilities).
bool cross_entropy_is_composed(const Tensor& target, const Tensor& weight);

Tensor cross_entropy_composed(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                              std::string_view reduction, double label_smoothing,
                              const Tensor& weight);
// nll_loss with a weight (class-index targets only, as torch).
Tensor nll_loss_weighted(const Tensor& log_probs, const Tensor& target, int64_t ignore_index,
                         std::string_view reduction, const Tensor& weight);

}  // namespace fabric::detail
