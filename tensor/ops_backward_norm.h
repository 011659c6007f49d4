// Backward computations of batch_norm and group_norm, called by their derivative rules (and
// usable directly, as torch.ops.aten.native_batch_norm_backward / native_group_norm_backward).
#pragma once
#include <tuple>

#include "tensor/tensor.h"

namespace fabric {

// batch_norm plus the statistics its backward needs: {out, save_mean, save_invstd}, each (C) in
// float32 (float64 for float64 x), as torch.native_batch_norm. Training: the batch mean and
// 1 / sqrt(biased var + eps), running stats updated as batch_norm does. Eval: the running
// statistics (copied), invstd = 1 / sqrt(running_var + eps).
std::tuple<Tensor, Tensor, Tensor> batch_norm_with_stats(
    const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
    const Tensor& bias, bool training, double momentum, double eps);
// {dx, dweight, dbias} (dweight undefined without weight; dbias in weight's dtype, or x's without
// one). training: the batch statistics depend on x (torch's training formula); otherwise they are
// constants and dx = dy * weight * save_invstd.
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& grad_out, const Tensor& x,
                                                       const Tensor& weight,
                                                       const Tensor& save_mean,
                                                       const Tensor& save_invstd, bool training);

// group_norm plus {out, mean, rstd}, mean and rstd (N, num_groups) in the accumulation dtype, as
// torch.native_group_norm.
std::tuple<Tensor, Tensor, Tensor> group_norm_with_stats(const Tensor& x, int64_t num_groups,
                                                         const Tensor& weight, const Tensor& bias,
                                                         double eps);
std::tuple<Tensor, Tensor, Tensor> group_norm_backward(const Tensor& grad_out, const Tensor& x,
                                                       int64_t num_groups, const Tensor& weight,
                                                       const Tensor& mean, const Tensor& rstd);

}  // namespace fabric
