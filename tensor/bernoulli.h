// Tensor.bernoulli_(p): every element 1 with probability p, else 0.
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric {

// Fills t (any dtype but fp8) with 0/1 draws of probability p in [0, 1]. A Philox generator
// compares a float32 uniform with p; a torch_cpu one draws CPU tensors as torch's CPU kernel
// (a float64 uniform below p, in t's memory order), so a seed gives torch's values.
Tensor& bernoulli_(Tensor& t, double p, Generator* gen = nullptr);

}  // namespace fabric
