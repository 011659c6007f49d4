// torch 1.13's order statistics: median, nanmedian, kthvalue, mode, quantile and nanquantile.
// The selection (which element, which index) runs on a contiguous host copy with torch's own CPU
// algorithms (std::nth_element with torch's comparators, its quick-select, std::sort over
// (value, index) pairs), so indices among equal values are torch's too; CUDA inputs are copied to
// the host and the indices back. Values are re-read with a recorded gather at the indices, so the
// gradient goes to the chosen element (torch's value_selecting_reduction_backward). No OpIds of
// their own: every differentiable step is an existing op.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>

#include "tensor/tensor.h"

namespace fabric {

// torch.median(x) over every element: the lower of the two middle values ((n - 1) / 2 in sorted
// order); NaN (the positive quiet NaN) if any element is NaN. An empty input gives NaN (integer
// dtypes: torch's cast of NaN, INT64_MIN/INT32_MIN, 0 for int8/uint8), as torch 1.13. The
// gradient is shared evenly among the elements equal to the result (among the NaNs for a NaN
// result), torch's evenly_distribute_backward. bool: DTypeError, as torch's median_cpu.
Tensor median(const Tensor& x);
// torch.nanmedian(x): as median over the non-NaN elements; all NaN (or empty) gives NaN.
Tensor nanmedian(const Tensor& x);

// torch.median(x, dim, keepdim) -> (values, int64 indices): the element at sorted position
// (n - 1) / 2 of each slice, equal values ordered by index (torch's comparator); a slice holding
// NaN gives its first NaN and that NaN's index. An empty reduced dim: IndexError.
std::tuple<Tensor, Tensor> median(const Tensor& x, int64_t dim, bool keepdim = false);
// torch.nanmedian(x, dim, keepdim): the median of each slice's non-NaN values; an all-NaN slice
// gives NaN and the index torch's std::nth_element leaves there.
std::tuple<Tensor, Tensor> nanmedian(const Tensor& x, int64_t dim, bool keepdim = false);

// torch.kthvalue: the k-th smallest (1-based) of each slice along dim and its index, NaN the
// largest value; among equal values the index torch's quick-select leaves at k - 1. k outside
// [1, n]: IndexError; an empty reduced dim: IndexError. bool: DTypeError.
std::tuple<Tensor, Tensor> kthvalue(const Tensor& x, int64_t k, int64_t dim = -1,
                                    bool keepdim = false);

// torch.mode: the most frequent value of each slice (the smallest of equally frequent ones;
// each NaN counts alone) and an index of it: torch's, the last of its run after std::sort of the
// (value, index) pairs by value, which is not in general the first or last occurrence. bool too.
std::tuple<Tensor, Tensor> mode(const Tensor& x, int64_t dim = -1, bool keepdim = false);

// torch.quantile / nanquantile over every element (dim unset) or along dim. q: one value in
// [0, 1] (ValueError otherwise, NaN too) or a 0-/1-D tensor of x's dtype (a 1-D q's size leads
// the output). x float32 or float64, non-empty. Ranks q * (n - 1) computed in x's dtype (for
// nanquantile n counts the non-NaN values; an all-NaN slice gives NaN; for quantile a slice with
// NaN gives NaN); interpolation "linear" (torch's lerp, with its fused multiply-add: w < 0.5 ?
// fma(w, hi - lo, lo) : fma(-(hi - lo), 1 - w, hi)), "lower" (floor), "higher" (ceil),
// "midpoint" (lerp with w = 0.5) or "nearest" (round half to even). The gradient is torch's:
// grad * (1 - w) to the lower value and grad * w to the upper, through the sort to x; a q that
// requires grad gets none here (torch's reaches it through the weights).
Tensor quantile(const Tensor& x, double q, std::optional<int64_t> dim = std::nullopt,
                bool keepdim = false, std::string_view interpolation = "linear");
Tensor quantile(const Tensor& x, const Tensor& q, std::optional<int64_t> dim = std::nullopt,
                bool keepdim = false, std::string_view interpolation = "linear");
Tensor nanquantile(const Tensor& x, double q, std::optional<int64_t> dim = std::nullopt,
                   bool keepdim = false, std::string_view interpolation = "linear");
Tensor nanquantile(const Tensor& x, const Tensor& q, std::optional<int64_t> dim = std::nullopt,
                   bool keepdim = false, std::string_view interpolation = "linear");

}  // namespace fabric
