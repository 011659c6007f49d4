// Products and fused multiply-adds whose rounding is written down, for the arithmetic the CPU and
// CUDA kernels share (norm_element.h, channel_norm_affine.h, upsample_math.h): the host compiler's
// -ffp-contract=fast and nvcc's -fmad=true would otherwise each choose which products to fuse.
//   mul(a, b)     a * b rounded on its own: __fmul_rn/__dmul_rn on the device, which -fmad=true
//                 cannot fuse with a following add. On the host a plain product: its callers never
//                 add to a product outside an fma, so GCC has nothing to contract.
//   fma(a, b, c)  a * b + c rounded once, on every host (libm's fma where the CPU has none).
#pragma once
#include <cmath>

#include "tensor/host_device.h"

namespace fabric::rounded {

FABRIC_HD_INLINE float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FABRIC_HD_INLINE double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

FABRIC_HD_INLINE float fma(float a, float b, float c) { return fmaf(a, b, c); }
FABRIC_HD_INLINE double fma(double a, double b, double c) { return ::fma(a, b, c); }

}  // namespace fabric::rounded
