// torch's remaining elementwise math, tensor layer: the functions that are compositions of ops
// (autograd comes with them) or have no derivative in torch, and — in math_values — the forward
// values of those whose gradient needs an autograd Function of its own (nn/math_extra.h wraps
// them; include that header for the differentiable hypot, logaddexp, xlogy, exp2, logit, ...).
// Type promotion, dtypes taken and errors follow torch 1.13; values are its CPU kernels' bits.
#pragma once
#include <optional>

#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

// ---- compositions of existing ops (differentiable through them) ---------------------------------
// torch.true_divide: an alias of div (integers promote to the default float dtype).
Tensor true_divide(const Tensor& a, const Tensor& b);
Tensor true_divide(const Tensor& a, const Scalar& b);
// a * pi / 180 and a * 180 / pi; integers and bool give the default float dtype.
Tensor deg2rad(const Tensor& a);
Tensor rad2deg(const Tensor& a);
// torch.sgn: sign for real tensors.
Tensor sgn(const Tensor& a);
// torch.positive: a itself; a bool tensor raises DTypeError, as torch's unary +.
Tensor positive(const Tensor& a);
// torch.square: pow(a, 2); bool gives int64.
Tensor square(const Tensor& a);
// torch.frac: a - trunc(a), sign of a kept (floating tensors only; gradient 1).
Tensor frac(const Tensor& a);
// torch.clamp_min / clamp_max with a Scalar bound: clamp with one bound. (The tensor-bound forms
// are in nn/math_extra.h.)
Tensor clamp_min(const Tensor& a, const Scalar& min);
Tensor clamp_max(const Tensor& a, const Scalar& max);
// torch.float_power: pow in float64, whatever the inputs' dtypes (the result is float64).
Tensor float_power(const Tensor& a, const Tensor& exponent);
Tensor float_power(const Tensor& a, const Scalar& exponent);
Tensor float_power(const Scalar& a, const Tensor& exponent);

// ---- no derivative in torch (results carry no autograd history) --------------------------------
// torch.floor_divide (1.13: rounding toward -inf, Python's //). Floating: c10's fmod-based
// quotient (division by 0 gives +-inf or NaN); integers: exact, a zero divisor raises ValueError.
Tensor floor_divide(const Tensor& a, const Tensor& b);
Tensor floor_divide(const Tensor& a, const Scalar& b);
// torch.nextafter: the next representable value after a toward b (float64, float32, bfloat16).
Tensor nextafter(const Tensor& a, const Tensor& b);
// torch.heaviside: values where a == 0, else a > 0 (0 for NaN); a and values of one dtype.
Tensor heaviside(const Tensor& a, const Tensor& values);
// torch.signbit: the sign bit as bool (-0.0 and -NaN included; false for unsigned and bool).
Tensor signbit(const Tensor& a);

namespace math_values {
// The forward values of the differentiable functions of nn/math_extra.h, without autograd.
// Floating dtypes as torch's CPU kernels (hypot, logaddexp, logaddexp2, nextafter: float64,
// float32, bfloat16; xlogy, copysign, exp2 also float16 and promote integers to the default float
// dtype; fmax, fmin, clamp_min, clamp_max any dtype); see nn/math_extra.h for what each computes.
Tensor hypot(const Tensor& a, const Tensor& b);
Tensor logaddexp(const Tensor& a, const Tensor& b);
Tensor logaddexp2(const Tensor& a, const Tensor& b);
Tensor xlogy(const Tensor& x, const Tensor& y);
Tensor copysign(const Tensor& a, const Tensor& b);
Tensor fmax(const Tensor& a, const Tensor& b);
Tensor fmin(const Tensor& a, const Tensor& b);
Tensor clamp_min(const Tensor& a, const Tensor& min);
Tensor clamp_max(const Tensor& a, const Tensor& max);
Tensor exp2(const Tensor& a);
Tensor sinc(const Tensor& a);
Tensor logit(const Tensor& a, std::optional<double> eps = std::nullopt);
// d logit / dx times grad, as torch's logit_backward (NaN outside [0, 1] without eps, 0 outside
// [eps, 1 - eps] with it).
Tensor logit_backward(const Tensor& grad, const Tensor& x,
                      std::optional<double> eps = std::nullopt);
}  // namespace math_values

}  // namespace fabric
