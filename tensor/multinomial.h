// torch.multinomial: draws category indices from rows of non-negative weights.
#pragma once
#include <cstdint>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric {

// probs: (n,) or (rows, n) non-negative weights (need not sum to 1) in a float dtype. Returns
// int64 indices, (num_samples,) or (rows, num_samples), on probs' device, as torch 1.13's CPU:
//  - without replacement, or a single sample: argmax / topk of probs / q with q ~ Exp(1) drawn per
//    element (q = -log(1 - u), u a float64 uniform, rounded to probs' dtype; the division in it);
//  - with replacement: per row the cumulative sums of probs in its dtype, divided by the total,
//    the last set to 1, and a binary search for each float64 uniform.
// A torch_cpu generator gives torch's indices for a contiguous CPU probs (float32/float64; 16-bit
// dtypes with replacement are sampled in float32); a Philox one draws its uniforms the same way
// from its own stream. Errors as torch's: 1 or 2 dims, a float dtype, num_samples > 0, no more
// samples than categories without replacement, at most 2^24 categories, weights finite and >= 0,
// no row summing to 0.
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement = false,
                   Generator* gen = nullptr);

}  // namespace fabric
