// Tensor.exponential_(lambd): exponentially distributed draws of rate lambd (mean 1 / lambd), as
// F.gumbel_softmax and samplers of waiting times use them.
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric {

// Fills a floating tensor with draws -1/lambd * log(1 - u), u uniform in [0, 1), lambd >= 0 (0
// gives inf, as torch's). A torch_cpu generator draws CPU tensors as torch 1.13's CPU kernel
// (non-MKL build: u a float64 uniform from one 64-bit draw, the value computed in float64 and
// rounded to the dtype, in t's memory order), so a seed gives torch's values; a Philox generator
// draws u as a float64 uniform of its own stream. ValueError for lambd < 0 or NaN, DTypeError for
// a non-floating tensor (torch's messages).
Tensor& exponential_(Tensor& t, double lambd = 1.0, Generator* gen = nullptr);

}  // namespace fabric
