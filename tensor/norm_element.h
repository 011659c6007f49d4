// layer_norm / rms_norm forward's per-element arithmetic, one definition for both devices:
// rstd from the row's sum of squares (about the mean for layer_norm) and each output element from
// x, mean, rstd, weight and bias, with every rounding written down. The CPU's definition is
// kernels/cpu/norm_forward_row.h (plain loops whose products GCC contracts, and an AVX-512 copy
// with explicit fused forms); kernels/cuda/norm_kernels.cu computes these functions, and
// tests/kernels/test_norm_element.cpp holds the CPU rows to them bit for bit, given the same
// statistics (the two devices sum the row in different orders: Welford on CUDA, two passes on
// the CPU, so their mean and rstd can differ in the last bits; the map from them cannot).
//
// The order (the CPU's): rstd = 1 / sqrt(fma(sum, 1/n, eps)); u = (x - mean) * rstd;
// y = fma(u, w, b) with weight and bias, u * w with weight only, fma(x - mean, rstd, b) with bias
// only, u without either. rms_norm is mean = 0 and no bias (x - 0 is x, -0 included).
#pragma once
#include <cmath>

#include "tensor/host_device.h"
#include "tensor/rounded_arith.h"

namespace fabric::norm {

using rounded::fma;
using rounded::mul;
FABRIC_HD_INLINE float sqrt_t(float v) { return sqrtf(v); }
FABRIC_HD_INLINE double sqrt_t(double v) { return ::sqrt(v); }

// 1 / sqrt(sum / n + eps) from sum (of squares, or of squared deviations) and inv_n = 1 / n.
template <typename A>
FABRIC_HD_INLINE A norm_rstd(A sum, A inv_n, A eps) {
  return A(1) / sqrt_t(fma(sum, inv_n, eps));
}

// One output element; kW, kB: whether the weight w and the bias b are there (else ignored).
template <bool kW, bool kB, typename A>
FABRIC_HD_INLINE A norm_element(A x, A mean, A rstd, A w, A b) {
  const A d = x - mean;
  if constexpr (kW && kB)
    return fma(mul(d, rstd), w, b);
  else if constexpr (kW)
    return mul(mul(d, rstd), w);
  else if constexpr (kB)
    return fma(d, rstd, b);
  else
    return mul(d, rstd);
}

}  // namespace fabric::norm
