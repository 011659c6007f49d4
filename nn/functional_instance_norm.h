// torch.nn.functional.instance_norm: each (sample, channel) plane normalised by its own statistics.
#pragma once
#include "tensor/tensor.h"

namespace fabric::nn {
inline namespace functional {

// x (N, C, ...): batch_norm over x viewed as (1, N * C, ...), so each sample's channel is a
// "channel" of its own; weight/bias (C) are repeated over the batch. use_input_stats normalises
// with the plane statistics (then more than one spatial element is required) and, when
// running_mean/running_var (C) are given, updates them in place with the plane statistics
// averaged over the batch; otherwise it normalises with running_mean/running_var (then required).
Tensor instance_norm(const Tensor& x, const Tensor& running_mean = Tensor(),
                     const Tensor& running_var = Tensor(), const Tensor& weight = Tensor(),
                     const Tensor& bias = Tensor(), bool use_input_stats = true,
                     double momentum = 0.1, double eps = 1e-5);

}  // namespace functional
}  // namespace fabric::nn
