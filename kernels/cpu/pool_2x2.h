// The common pooling of CNNs, a 2x2 window with stride 2 and no padding, over one plane of
// float32, bfloat16 or float16 (computed in float32) with AVX-512: 16 windows per step, the four
// window elements split out of two rows by even/odd permutes, a masked step for the rest of a
// row. Same results as the generic loops of pool.cpp, bit for bit (max: the first maximum in
// row-major window order, NaN winning, of several the last; avg: ((0 + e00 + e01) + e10) + e11,
// divided by 4).
#pragma once
#include "tensor/conv_kernels.h"
#include "tensor/float_formats.h"

namespace fabric::cpu {

// True when every window is a full 2x2 block at (2*oh, 2*ow): kernel 2, stride 2, no padding.
inline bool is_pool_2x2(const Pool2dDesc& d) {
  return d.KH == 2 && d.KW == 2 && d.SH == 2 && d.SW == 2 && d.PH == 0 && d.PW == 0 &&
         2 * d.OH <= d.H && 2 * d.OW <= d.W;
}

// One plane each; T: float, BFloat16 or Half. Forward: x (H, W) -> y (OH, OW). Backward: dx
// (H, W), every element written (zero where no window routes a gradient).
template <typename T>
void max_pool_2x2_forward_plane(const Pool2dDesc& d, const T* x, T* y);
template <typename T>
void max_pool_2x2_backward_plane(const Pool2dDesc& d, const T* dy, const T* x, T* dx);
template <typename T>
void avg_pool_2x2_forward_plane(const Pool2dDesc& d, const T* x, T* y);
template <typename T>
void avg_pool_2x2_backward_plane(const Pool2dDesc& d, const T* dy, T* dx);

}  // namespace fabric::cpu
