// torch 1.13's finite differences, trapezoidal integration and covariance: diff, trapezoid/trapz,
// cumulative_trapezoid, cov and corrcoef. Each is torch's own formula written with recorded ops
// (narrow, sub, mul, sum, cumsum, mm), so gradients, autocast and CUDA tensors come with them and
// the dtypes are torch's (integer inputs give the default float dtype where torch's division
// does). Negative dims wrap; errors name the function and carry torch's message.
#pragma once
#include <cstdint>

#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

// torch.diff: the n-th forward difference along dim (out[i] = in[i + 1] - in[i], n times; bool
// inputs use logical_xor), after concatenating `prepend` before and `append` after the input along
// dim (undefined: none; they need the input's rank and its sizes off dim; cat promotes dtypes).
// Each difference shortens dim by one; n past its size leaves it empty. As torch 1.13: n == 0
// returns a copy of the input (prepend and append ignored), and n < 0 returns the input (or the
// concatenation) itself. The input needs at least one dim.
Tensor diff(const Tensor& input, int64_t n = 1, int64_t dim = -1, const Tensor& prepend = Tensor(),
            const Tensor& append = Tensor());

// torch.trapezoid: the trapezoidal rule along dim, with sample spacing dx (a real number) or
// sample points x: 1-D with one point per sample, or a tensor that broadcasts against y after both
// are differenced along dim (fewer dims than y get leading 1s). Reduces dim away; an empty dim
// gives zeros of y's dtype. Bool y or x raise. Formulas as torch's: sum(y) - (y[0] + y[-1]) / 2
// times dx, or sum(dx_i * (y_i + y_{i+1}) / 2).
Tensor trapezoid(const Tensor& y, const Tensor& x, int64_t dim = -1);
Tensor trapezoid(const Tensor& y, const Scalar& dx = 1, int64_t dim = -1);
// torch.trapz: trapezoid under its older name.
Tensor trapz(const Tensor& y, const Tensor& x, int64_t dim = -1);
Tensor trapz(const Tensor& y, double dx = 1, int64_t dim = -1);
// torch.cumulative_trapezoid: the running trapezoidal integral along dim (one element shorter
// than y there): cumsum of dx / 2 * (y_i + y_{i+1}).
Tensor cumulative_trapezoid(const Tensor& y, const Tensor& x, int64_t dim = -1);
Tensor cumulative_trapezoid(const Tensor& y, const Scalar& dx = 1, int64_t dim = -1);

// torch.cov: the covariance matrix of the variables in the rows of a 2-D input (observations in
// columns; 0-D and 1-D inputs are one variable, giving a 0-D result), with `correction` (1:
// Bessel's) and optional integral frequency weights and floating observation weights (1-D, one
// per observation, non-negative; undefined: none). A non-positive normalisation warns, as torch,
// and gives inf/NaN. Bool inputs raise; integer inputs give the default float dtype. The result
// is squeezed, as torch's.
Tensor cov(const Tensor& input, int64_t correction = 1, const Tensor& fweights = Tensor(),
           const Tensor& aweights = Tensor());
// torch.corrcoef: cov(input) normalised by the standard deviations and clipped to [-1, 1]; a 0-D
// covariance c gives c / c (NaN for 0, inf or NaN; else 1).
Tensor corrcoef(const Tensor& input);

}  // namespace fabric
