// The composed paths of cross_entropy and nll_loss (ops_loss_weighted.cpp): ops_loss.cpp's entry
// points hand them a per-class weight or class-probability targets, and keep their fused kernels
// for the common unweighted class-index case.
#pragma once
#include <cstdint>
#include <string_view>

#include "tensor/loss_reduction.h"
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

// parse_loss_reduction plus torch's deprecated spelling "elementwise_mean" of "mean", which
// torch's _Reduction.get_enum accepts with a warning. (Its place is loss_reduction.h; it is here
// until that header takes it, for the losses of the ops_loss*.cpp files.)
LossReduction parse_loss_reduction_or_legacy(const char* op, std::string_view r);

// torch's uint8 class targets (its nll kernels take Byte as well as Long) as int64, which the
// kernels and the composition read; any other target as it is.
Tensor widened_class_target(const Tensor& target);

// torch 1.13's nll_loss reduction on the CPU (LossNLL.cpp's nll_loss_out_frame, LossNLL2d.cpp's
// nll_loss2d_forward_out_frame; every nll_loss and cross_entropy "sum"/"mean" ends there): the
// per-position losses of the positions whose target is not ignore_index, in position order, added
// by an 8-level cascade in the losses' dtype, and the positions' weights likewise (the total
// weight "mean" divides by; without weights the count of those positions). `losses` (float32 or
// float64) and `weights` (optional, the same dtype) hold one value per position, as `target`.
struct NllSums {
  double loss = 0, total_weight = 0;  // exact: values of the losses' dtype
};
NllSums nll_cascade_sums(const Tensor& losses, const Tensor& weights, const Tensor& target,
                         int64_t ignore_index);

}  // namespace fabric::detail
