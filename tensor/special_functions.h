// The forward values of torch's special functions, tensor layer: lgamma, digamma, polygamma, i0
// (and i1, its derivative), erfc, xlog1py, computed as torch 1.13's CPU kernels compute them
// (SLEEF's lgamma_u1 / erfc_u15 on every element, ATen's Cephes functions for the rest), so
// float32 and float64 give torch's bits. No autograd here: nn/math_extra.h holds the
// differentiable functions (include that). Integers and bool promote to the default float dtype;
// float64, float32 and bfloat16 (computed in float), float16 refused as torch's CPU kernels.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fabric::math_values {

Tensor lgamma(const Tensor& a);   // log|Gamma(a)|; +inf at 0, the negative integers and +-inf
Tensor digamma(const Tensor& a);  // Gamma'/Gamma; -+inf at +-0, NaN at the negative integers
// The n-th derivative of digamma (n = 0 is digamma); n < 0 raises ValueError.
Tensor polygamma(int64_t n, const Tensor& a);
Tensor i0(const Tensor& a);  // modified Bessel function of the first kind, order 0
Tensor i1(const Tensor& a);  // order 1
Tensor erfc(const Tensor& a);
// x * log1p(y), 0 where x == 0 (unless y is NaN); float16 allowed.
Tensor xlog1py(const Tensor& x, const Tensor& y);

}  // namespace fabric::math_values
