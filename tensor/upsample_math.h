// The per-element arithmetic of 2-D bilinear upsampling (upsample2d_forward/backward_stub,
// tensor/upsample_kernels.h), one definition for both devices: kernels/cpu/upsample.cpp and
// kernels/cuda/upsample_kernels.cu compile these functions, so that the rounding order is written
// down instead of left to each compiler's contraction (GCC's -ffp-contract=fast and nvcc's
// -fmad=true each pick which product of `l0 * x0 + l1 * x1` to fuse).
// tests/ops/test_upsample_math.cpp holds the forms to a float128 reference and the CPU kernels to
// these functions; tests/cuda/test_cuda_rounding_order.cpp the CUDA kernels to the CPU's bits.
//
// The order is the one GCC had picked, with FMA, for the CPU's float32/float64/bfloat16 kernels
// (kept bit for bit; its float16 forward had fused the other products, a last-bit difference now
// gone):
// lerp(l0, x0, l1, x1) = fma(l0, x0, l1 * x1), rows of columns: lerp(rl0, top, rl1, bottom) with
// top and bottom the column lerps; the backward's term acc + (wh * wc) * g = fma(wh * wc, g, acc).
// A host without FMA (a build without -march=native on an old CPU) rounds the sum separately
// instead: libm's software fma would cost more than the whole kernel; there the CPU and CUDA can
// differ in the last bit.
#pragma once
#include <cmath>

#include "tensor/host_device.h"
#include "tensor/rounded_arith.h"

namespace fabric::upsample {

// a * b rounded (never fused: on the host a product feeding an fma's addend cannot be).
using rounded::mul;

// acc + p * g rounded once (where the host has FMA; see the file comment).
FABRIC_HD_INLINE float mul_add(float p, float g, float acc) {
#if defined(__CUDA_ARCH__) || defined(__FMA__)
  return rounded::fma(p, g, acc);
#else
  return acc + p * g;
#endif
}
FABRIC_HD_INLINE double mul_add(double p, double g, double acc) {
#if defined(__CUDA_ARCH__) || defined(__FMA__)
  return rounded::fma(p, g, acc);
#else
  return acc + p * g;
#endif
}

// l0 x0 + l1 x1: fma(l0, x0, l1 * x1).
template <typename A>
FABRIC_HD_INLINE A lerp(A l0, A x0, A l1, A x1) {
  return mul_add(l0, x0, mul(l1, x1));
}

// The bilinear value from the four inputs x[row][column] and the row and column weights.
template <typename A>
FABRIC_HD_INLINE A bilinear(A rl0, A rl1, A cl0, A cl1, A x00, A x01, A x10, A x11) {
  return lerp(rl0, lerp(cl0, x00, cl1, x01), rl1, lerp(cl0, x10, cl1, x11));
}

// The trilinear value: the two depth planes' bilinear values, lerped (torch 1.13's CPU kernel for
// inputs that are not channels-last: each dimension's two taps t0 * w0 + t1 * w1, as lerp).
template <typename A>
FABRIC_HD_INLINE A trilinear(A dl0, A dl1, A rl0, A rl1, A cl0, A cl1, const A x0[4],
                             const A x1[4]) {
  return lerp(dl0, bilinear(rl0, rl1, cl0, cl1, x0[0], x0[1], x0[2], x0[3]), dl1,
              bilinear(rl0, rl1, cl0, cl1, x1[0], x1[1], x1[2], x1[3]));
}

// The 3-D backward's step: acc + ((wd * wh) * ww) * g, as torch's term for one tap.
template <typename A>
FABRIC_HD_INLINE A gather_step3(A wd, A wh, A ww, A g, A acc) {
  return mul_add(mul(mul(wd, wh), ww), g, acc);
}

// The backward's gather step: acc + (wh * wc) * g, the weight product rounded first.
template <typename A>
FABRIC_HD_INLINE A gather_step(A wh, A wc, A g, A acc) {
  return mul_add(mul(wh, wc), g, acc);
}

}  // namespace fabric::upsample
