// torch's remaining elementwise math, differentiable: one include for all of it. The functions
// whose value is a kernel of their own (hypot, logaddexp, xlogy, exp2, logit, erfc, lgamma, ...)
// get their gradients from autograd Functions (autograd/custom_function.h) with torch's formulas
// from derivatives.yaml; a custom Function is a user of autograd, so these live above it, in nn/,
// although they are in namespace fabric beside the ops. The tensor layer's forward values are in
// tensor/math_extra.h (math_values) and tensor/special_functions.h; this header also brings in
// the compositions and non-differentiable functions declared there (fmax, clamp_min,
// floor_divide, nextafter, signbit, ...) and the bitwise ops (tensor/bitwise.h).
//
// Values are torch 1.13's CPU results bit for bit in float32 and float64 (which elements take
// SLEEF's vector function and which libm's follows torch's loops, run with one thread); bfloat16
// follows torch's rounding (once, or after each operation where torch's kernel does). float16
// where torch's CPU kernels take it (exp2, xlogy, xlog1py, copysign). CUDA tensors are computed on
// the host and copied back. Gradients are torch's formulas (double backward through differentiable
// ops; logit's second derivative is formed from ops).
#pragma once
#include <cstdint>
#include <optional>

#include "tensor/bitwise.h"
#include "tensor/math_extra.h"
#include "tensor/scalar.h"
#include "tensor/special_functions.h"
#include "tensor/tensor.h"

namespace fabric {

// sqrt(a^2 + b^2) without overflow (floating a, b; no float16).
Tensor hypot(const Tensor& a, const Tensor& b);
// log(exp(a) + exp(b)) and log2(2^a + 2^b), stable for large |a - b| (floating, no float16).
Tensor logaddexp(const Tensor& a, const Tensor& b);
Tensor logaddexp2(const Tensor& a, const Tensor& b);
// x * log(y) and x * log1p(y), 0 where x == 0 (unless y is NaN); integers promote to the default
// float dtype. The gradient to x is 0 where x == 0 and y <= 0 (y <= -1), as torch's.
Tensor xlogy(const Tensor& x, const Tensor& y);
Tensor xlogy(const Tensor& x, const Scalar& y);
Tensor xlogy(const Scalar& x, const Tensor& y);
Tensor xlog1py(const Tensor& x, const Tensor& y);
Tensor xlog1py(const Tensor& x, const Scalar& y);
Tensor xlog1py(const Scalar& x, const Tensor& y);
// |a| with b's sign bit (b's -0.0 and -NaN count as negative); integers promote to the default
// float dtype. No gradient to b; a's is 0 where a == 0.
Tensor copysign(const Tensor& a, const Tensor& b);
Tensor copysign(const Tensor& a, const Scalar& b);
// torch.fmax / fmin: the larger / smaller, a NaN ignored when the other is a number; any dtype.
// Gradient to a where a >= b (a <= b) or b is NaN, else to b, as torch's.
Tensor fmax(const Tensor& a, const Tensor& b);
Tensor fmin(const Tensor& a, const Tensor& b);
// torch.clamp_min / clamp_max with a tensor bound broadcast against a: torch.maximum / minimum
// (NaN in either gives NaN); the gradient goes to a where a >= min (a <= max), to the bound where
// a < min (a > max), as torch's ClampMinBackward1 / ClampMaxBackward1. (Scalar bounds:
// tensor/math_extra.h.)
Tensor clamp_min(const Tensor& a, const Tensor& min);
Tensor clamp_max(const Tensor& a, const Tensor& max);
Tensor exp2(const Tensor& a);  // 2^a
Tensor sinc(const Tensor& a);  // sin(pi a) / (pi a), 1 at 0 (no float16)
// log(a / (1 - a)); with eps, a is first clamped to [eps, 1 - eps] (and the gradient is 0 outside).
Tensor logit(const Tensor& a, std::optional<double> eps = std::nullopt);
Tensor erfc(const Tensor& a);     // 1 - erf(a), accurate where erf is near 1 (no float16)
Tensor lgamma(const Tensor& a);   // log|Gamma(a)| (no float16)
Tensor digamma(const Tensor& a);  // d lgamma / da (no float16)
// The n-th derivative of digamma, n >= 0 (ValueError otherwise); no float16.
Tensor polygamma(int64_t n, const Tensor& a);
// The multivariate log-gamma of dimension p >= 1 (ValueError otherwise): the sum of
// lgamma(a - j / 2), j < p, plus p (p - 1) / 4 log(pi).
Tensor mvlgamma(const Tensor& a, int64_t p);
Tensor i0(const Tensor& a);  // modified Bessel function of the first kind, order 0 (no float16)

// torch.special's names for these.
namespace special {
inline Tensor xlogy(const Tensor& x, const Tensor& y) { return fabric::xlogy(x, y); }
inline Tensor xlog1py(const Tensor& x, const Tensor& y) { return fabric::xlog1py(x, y); }
inline Tensor exp2(const Tensor& a) { return fabric::exp2(a); }
inline Tensor sinc(const Tensor& a) { return fabric::sinc(a); }
inline Tensor logit(const Tensor& a, std::optional<double> eps = std::nullopt) {
  return fabric::logit(a, eps);
}
inline Tensor erfc(const Tensor& a) { return fabric::erfc(a); }
inline Tensor gammaln(const Tensor& a) { return fabric::lgamma(a); }
inline Tensor digamma(const Tensor& a) { return fabric::digamma(a); }
inline Tensor psi(const Tensor& a) { return fabric::digamma(a); }
inline Tensor polygamma(int64_t n, const Tensor& a) { return fabric::polygamma(n, a); }
inline Tensor multigammaln(const Tensor& a, int64_t p) { return fabric::mvlgamma(a, p); }
inline Tensor i0(const Tensor& a) { return fabric::i0(a); }
// The order-1 modified Bessel function (i0's derivative), differentiable.
Tensor i1(const Tensor& a);
}  // namespace special

}  // namespace fabric
