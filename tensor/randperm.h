// torch.randperm: a random permutation of 0 .. n-1.
#pragma once
#include <cstdint>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric {

// The values 0 .. n-1 in random order, in opts.dtype (int64 by default; any dtype but bool and
// fp8) on opts.device. A torch_cpu generator gives torch's permutation for CPU tensors (its
// Fisher–Yates swaps, each with one 32-bit draw modulo the count left), a Philox one its own.
// As torch 1.13: n < 0 is a ValueError, and so is an n whose values the dtype cannot all hold
// (int8 above 128, uint8 above 256, float16 above 2049, float32 above 2^24 + 1, float64 above
// 2^53 + 1; bfloat16 is not checked and its values round, as torch's).
Tensor randperm(int64_t n, const TensorOptions& opts = {.dtype = DType::int64},
                Generator* gen = nullptr);

}  // namespace fabric
