// The common max pooling of CNNs, a 2x2 window with stride 2 and no padding, over one plane of
// float32, bfloat16 or float16 (computed in float32) with AVX-512: 16 windows per step, the four window elements split out of two rows by
// even/odd permutes. Same results as the generic loops of pool.cpp (first maximum in row-major
// window order; NaN wins, of several the last).
#pragma once
#include "tensor/conv_kernels.h"
#include "tensor/float_formats.h"

namespace fabric::cpu {

// True when every window is a full 2x2 block at (2*oh, 2*ow): kernel 2, stride 2, no padding.
inline bool is_max_pool_2x2(const Pool2dDesc& d) {
  return d.KH == 2 && d.KW == 2 && d.SH == 2 && d.SW == 2 && d.PH == 0 && d.PW == 0 &&
         2 * d.OH <= d.H && 2 * d.OW <= d.W;
}

// One plane: x (H, W) -> y (OH, OW). T: float, BFloat16 or Half.
template <typename T>
void max_pool_2x2_forward_plane(const Pool2dDesc& d, const T* x, T* y);
// One plane: dx (H, W), every element written (zero outside the chosen positions).
template <typename T>
void max_pool_2x2_backward_plane(const Pool2dDesc& d, const T* dy, const T* x, T* dx);

}  // namespace fabric::cpu
