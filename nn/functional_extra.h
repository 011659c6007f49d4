// torch.nn.functional's pdist, softmin and gumbel_softmax: small functionals the op layer does not
// declare.
#pragma once
#include <cstdint>
#include <optional>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric::nn {
inline namespace functional {

// input (N, M) -> (N * (N - 1) / 2,): the p-norm distance of every row pair i < j, in torch's
// order (row-major upper triangle). p >= 0; 0 counts differing features, inf takes the largest
// difference. float32 and float64 as torch's CPU kernel; values match torch's bits for p in
// {0, 1, 2, inf} (its AVX2 lane order), other p within a few ulps (torch's vector pow); the
// gradient is torch's (zero where a distance is zero).
Tensor pdist(const Tensor& input, double p = 2.0);

// softmax(-x) along dim; with dtype, x is negated first and then cast, as torch's.
Tensor softmin(const Tensor& x, int64_t dim, std::optional<DType> dtype = std::nullopt);

// torch's gumbel_softmax: softmax((logits + g) / tau) along dim with Gumbel(0, 1) noise
// g = -log(e), e ~ Exponential(1) drawn by exponential_ from `gen` (the default generator when
// null; a torch_cpu one gives torch's noise for a seed). hard: the one-hot of each argmax in the
// forward, y_soft's gradient in the backward (y_hard - y_soft.detach() + y_soft).
Tensor gumbel_softmax(const Tensor& logits, double tau = 1.0, bool hard = false, int64_t dim = -1,
                      Generator* gen = nullptr);

}  // namespace functional
}  // namespace fabric::nn
