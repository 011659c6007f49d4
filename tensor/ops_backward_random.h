// Random ops whose backward needs what the forward drew: dropout returns its mask so autograd
// (and fused kernels) can reuse it instead of drawing again.
#pragma once
#include <tuple>

#include "tensor/tensor.h"

namespace fabric {

class Generator;

// Inverted dropout returning (out, mask) with mask[i] = 0 or 1/(1-p) in a's dtype and
// out = a * mask. p must lie in [0, 1] (ValueError otherwise). When !train or p == 0 the result
// is `a` itself and the mask is undefined (nothing was drawn or recorded). p == 1 gives a zero
// mask (out = a * 0) without consuming the generator. The op records
// OpId::dropout with inputs {a, mask} and DropoutAttrs{p}: the derivative is grad * mask.
std::tuple<Tensor, Tensor> dropout_with_mask(const Tensor& a, double p, bool train, Generator* gen = nullptr);

}  // namespace fabric
