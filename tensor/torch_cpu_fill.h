// Random fills of CPU tensors from a torch_cpu generator's stream, drawing as torch 1.13's CPU
// kernels draw for the same call: the same numbers in the same order, so the same values.
#pragma once
#include "tensor/random_kernels.h"
#include "tensor/tensor.h"

namespace fabric {

class TorchCpuRng;

// uniform_ / normal_ / random_(from, to) into t. The values go to t's elements in the order torch's
// TensorIterator visits them (memory order: dims by decreasing stride), except for normal_'s
// vectorised path, which torch takes for a contiguous tensor of >= 16 elements of a float dtype.
void torch_cpu_random_fill(Tensor& t, const RandomParams& params, TorchCpuRng& rng);

// bernoulli_(p) into t: 1 where a float64 uniform draw is below p, else 0, in t's memory order.
void torch_cpu_bernoulli_fill(Tensor& t, double p, TorchCpuRng& rng);

// exponential_(lambd) into t: (-1 / lambd) * log(1 - u) in float64 for a float64 uniform draw u
// (at::exponential_distribution<double>), rounded to t's dtype, in t's memory order.
void torch_cpu_exponential_fill(Tensor& t, double lambd, TorchCpuRng& rng);

// Dropout's multiplier for each element of `input`, as torch's CPU dropout makes it:
// empty_like(input, LEGACY_CONTIGUOUS_MEMORY_FORMAT).bernoulli_(1 - p).div_(1 - p), i.e. a float64
// uniform draw below 1 - p keeps the element (scale dropout_scale(p, dtype)), else 0, drawn in
// row-major order whatever input's layout. Contiguous, in input's dtype.
Tensor torch_cpu_dropout_mask(const Tensor& input, double p, TorchCpuRng& rng);

}  // namespace fabric
