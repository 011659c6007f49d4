// float32 max pooling's backward for any window, stride and padding (ResNet's 3x3/stride-2 stem,
// overlapping windows) with AVX-512: the first-maximum positions of 16 neighbouring windows of an
// output row at a time, each window element fetched by a gather, out-of-range columns (padding,
// the row's end) masked. The generic scalar search jumped on every comparison (a coin toss on
// real data) and took ~4x the forward's time. Same results as the generic loops of pool.cpp, bit
// for bit: the first maximum in row-major window order, NaN winning (of several, the last),
// gradients added in the same output order, so shared inputs of overlapping windows sum
// identically. (The forward keeps the generic loop: its branch-free max compiled faster than
// gathers, 10 vs 14 ms on (32, 64, 56, 56).)
#pragma once
#include "tensor/conv_kernels.h"

namespace fabric::cpu {

// Gathers index a plane with 32-bit offsets.
inline bool fits_max_pool_any(const Pool2dDesc& d) { return d.H * d.W < (int64_t{1} << 31); }

// One plane: dx (H, W), every element written.
void max_pool_any_backward_plane(const Pool2dDesc& d, const float* dy, const float* x, float* dx);

}  // namespace fabric::cpu
