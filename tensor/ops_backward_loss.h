// Backward computations of the losses beyond cross_entropy's (ops_backward.h), called by their
// derivative rules: plain functions, which record nothing and apply no autocast.
#pragma once
#include <cstdint>
#include <string_view>

#include "tensor/tensor.h"

namespace fabric {

// d loss / d log_probs of nll_loss(log_probs, target, ignore_index, reduction) without a class
// weight: grad_loss is 0-dim for "mean"/"sum" and target-shaped for "none". The result has the
// log_probs' dtype: -grad_loss (over the valid target count for "mean", computed in that dtype as
// torch does) at each position's target class, 0 elsewhere and at ignored positions.
Tensor nll_loss_backward(const Tensor& grad_loss, const Tensor& log_probs, const Tensor& target,
                         int64_t ignore_index = -100, std::string_view reduction = "mean");

}  // namespace fabric
