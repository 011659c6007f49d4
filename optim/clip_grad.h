// Gradient clipping as torch.nn.utils does it: by the total norm of all gradients, or by value.
// Both act in place on the parameters' .grad (parameters without a gradient are skipped).
#pragma once
#include <optional>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::optim {

// total_norm = the norm_type-norm of the per-gradient norm_type-norms (inf: the largest |g|);
// every gradient is multiplied by min(1, max_norm / (total_norm + 1e-6)). Returns the total norm
// (before clipping) as a 0-dim tensor in the gradients' promoted dtype, like PyTorch; a float32
// zero when no parameter has a gradient. With error_if_nonfinite a NaN/inf total norm raises
// ValueError (naming the norm) and leaves the gradients untouched. `foreach` is accepted for
// PyTorch's signature; the per-gradient norms always run on the fused reduction kernels.
Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false, std::optional<bool> foreach = std::nullopt);
// The second half of clip_grad_norm_, for callers that computed the total norm themselves (a
// sharded strategy reduces it across ranks): checks it is finite when asked, then multiplies every
// gradient by min(1, max_norm / (total + 1e-6)). Returns `total`.
Tensor scale_by_clip_coefficient(const std::vector<Tensor>& grads, const Tensor& total, double max_norm,
                                 double norm_type, bool error_if_nonfinite);

// Clamps every gradient to [-clip_value, clip_value], as torch's clamp_(min=-clip_value,
// max=clip_value): the lower bound first, then the upper, so a negative clip_value sets every
// element to clip_value, and a NaN one makes every element NaN (torch takes both unchecked).
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value,
                      std::optional<bool> foreach = std::nullopt);

}  // namespace fabric::optim
