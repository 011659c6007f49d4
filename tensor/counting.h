// torch 1.13's counting and closeness tests: histc, bincount, isclose, allclose and equal. None
// is differentiable (as torch's). histc and bincount are plain loops over the elements on the host
// (CUDA tensors are copied there and the result copied back); isclose, allclose and equal are
// compositions of recorded comparisons, which run on any device. torch.count_nonzero lives in
// nn/reduce_extra.h.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fabric {

// torch.histc: counts of x's elements in `bins` equal-width bins over [min, max], in x's dtype
// (float32, float64 or bfloat16, as torch's CPU kernel; others raise DTypeError). min == max
// takes the range from x's smallest and largest element (and an empty or constant x widens it to
// [min - 1, max + 1]). Elements outside the range are left out; NaN counts in the first bin, as
// torch 1.13's CPU kernel puts it there (its int64(NaN) bin index wraps to offset 0). The bin edges
// are torch.linspace(min, max, bins + 1)'s in x's dtype, and an element's bin is torch's int((x -
// lo) * bins / (hi - lo)) in that dtype's arithmetic (each bfloat16 step rounded, as
// c10::BFloat16's), lo and hi being the first and last edge; an element equal to hi goes to the
// last bin. bfloat16 counts add in bfloat16, so a bin stops at 256 (torch with one thread does the
// same; with several, its per-thread counts add at the end). A non-finite range, min > max or
// bins <= 0 raise.
Tensor histc(const Tensor& x, int64_t bins = 100, double min = 0, double max = 0);

// torch.bincount: how often each value 0..max(x) occurs in a 1-D tensor of non-negative integers
// (uint8, int8, int32, int64), at least `minlength` bins. Without weights the counts are int64;
// with 1-D weights of x's length each occurrence adds its weight: float32 weights add in float32
// (a float32 result), any other dtype adds in float64 (a float64 result), element by element in
// x's order, as torch's CPU loop. An empty x gives int64 zeros(minlength), weights or not. torch
// has no derivative for the weights (its backward raises): weights that require grad raise here
// while autograd records (NotImplementedError); detach them, or call under no-grad.
Tensor bincount(const Tensor& x, const Tensor& weights = Tensor(), int64_t minlength = 0);

// torch.isclose: |a - b| <= atol + rtol * |b| elementwise (a bool tensor of the broadcast shape),
// or a == b; NaN is close to NaN only with equal_nan, infinities only to themselves. a and b must
// share a dtype. As torch: integer and bool b are converted to the default float dtype before the
// arithmetic (so the difference is taken in it: no integer wrap-around), rtol and atol are
// rounded to the computation's dtype, and zero tolerances reduce to a == b. rtol and atol must be
// >= 0.
Tensor isclose(const Tensor& a, const Tensor& b, double rtol = 1e-05, double atol = 1e-08,
               bool equal_nan = false);
// torch.allclose: whether isclose holds everywhere.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-05, double atol = 1e-08,
              bool equal_nan = false);
// torch.equal: true when a and b have the same sizes and equal elements (compared after type
// promotion, as torch 1.13's: NaN is never equal, -0.0 equals 0.0). Different devices raise.
bool equal(const Tensor& a, const Tensor& b);

}  // namespace fabric
