// torch 1.13's NaN-aware, paired and cumulative reductions that ops.h lacks: nansum, nanmean,
// var_mean, std_mean, aminmax, count_nonzero, linalg.vector_norm, logcumsumexp, cummax, cummin.
// Compositions of recorded ops (gradients, double backward, autocast and CUDA come with them),
// except where a composition cannot give torch's values: logcumsumexp's running fold and
// cummax/cummin's indices are computed on the host (CUDA tensors are copied there and back).
// Dims: empty = every dim, negative dims wrap, a repeated dim raises ValueError; errors name the
// op. In nn/, not tensor/: nansum, var_mean, std_mean and logcumsumexp build their own autograd
// nodes (torch's backward formulas), which the tensor layer may not include.
#pragma once
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

// torch.nansum: sum with NaN counted as 0 (torch's CPU kernel folds in sum's order with NaN
// loaded as 0, so the bits are sum(where(isnan(x), 0, x))'s). Gradient: torch's nansum_backward
// (NansumBackward0), grad times the not-NaN mask: 0 at NaN positions (-0.0 for a negative grad,
// as torch). Bool
// and integers are sum's (int64 unless dtype); a floating input with an integral dtype raises
// DTypeError, as torch's "nansum_cpu not implemented for 'Long'".
Tensor nansum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
              std::optional<DType> dtype = std::nullopt);
// torch.nanmean: nansum(x, dims, keepdim, dtype) / (number of non-NaN elements), torch's own
// composition (an all-NaN or empty slice gives NaN). Floating inputs only (DTypeError).
Tensor nanmean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
               std::optional<DType> dtype = std::nullopt);

// torch.var_mean / std_mean: (var or std, mean) over dims with `correction` (1 = Bessel). torch's
// CPU kernel is one Welford pass in double for every floating dtype: float32/float16/bfloat16
// here reduce a float64 copy and round, which gives torch's bits; float64 (and CUDA) reduce in the
// input's dtype, within a few ulps of Welford's. Floating inputs only (DTypeError); an empty
// reduction gives NaN for both. Known difference: an infinite element makes torch's Welford mean
// NaN (unless it is the slice's last element); here the mean is +-inf. Gradient: torch's
// var_mean_backward / std_mean_backward in x's dtype (VarMeanBackward0 / StdMeanBackward0; torch's
// bits), differentiable again.
std::tuple<Tensor, Tensor> var_mean(const Tensor& x, const std::vector<int64_t>& dims = {},
                                    double correction = 1, bool keepdim = false);
std::tuple<Tensor, Tensor> std_mean(const Tensor& x, const std::vector<int64_t>& dims = {},
                                    double correction = 1, bool keepdim = false);

// torch.aminmax: {amin, amax} over `dim` or, unset, every element (keepdim then keeps every dim
// as 1). NaN propagates; bool and integers keep their dtype. An empty reduction raises IndexError
// with torch's messages. torch 1.13 has no derivative for
// aminmax (backward raises); here each output carries amin's / amax's gradient (spread evenly
// over ties).
std::tuple<Tensor, Tensor> aminmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt,
                                   bool keepdim = false);

// torch.count_nonzero: int64 count of elements != 0 over dims (NaN counts, -0.0 does not); no
// keepdim, as torch. Never differentiable.
Tensor count_nonzero(const Tensor& x, const std::vector<int64_t>& dims = {});

// torch.linalg.vector_norm: ord 2 (default), inf (max |x|), -inf (min |x|), 0 (count of nonzeros,
// in the float dtype), any other real ord (sum |x|^ord)^(1/ord), as torch.norm's kernel (the CPU
// takes ord as a float, as torch 1.13's). dtype: computed in and returned as that floating dtype,
// which must hold x's without narrowing (ValueError otherwise). Floating inputs only. An empty
// input with ord < 0 or ord = inf raises (ValueError over everything, IndexError for an empty
// reduced dim), as torch. Gradients are norm()'s (torch's: 0 at a zero vector; inf spreads over
// ties); the node is named NormBackward1 where torch says LinalgVectorNormBackward0.
Tensor vector_norm(const Tensor& x, double ord = 2, const std::vector<int64_t>& dims = {},
                   bool keepdim = false, std::optional<DType> dtype = std::nullopt);

// torch.logcumsumexp along dim: torch's CPU fold (each step log1p(exp(min - max)) + max in the
// accumulator, double for float32/float64 and float for bfloat16; +-inf pairs kept, NaN
// propagated), so torch's bits. float64, float32, bfloat16 (float16 only on CUDA, as torch's CPU
// kernel refuses it); integers raise DTypeError. A 0-dim input is copied. Gradient: torch's
// formula (reverse logcumsumexp of log|grad| - result), made of recorded ops, so it
// differentiates again; the node is LogcumsumexpBackward0.
Tensor logcumsumexp(const Tensor& x, int64_t dim);

// torch.cummax / cummin along dim: (running max/min, int64 index of it). torch's rule: an element
// >= (<=) the running value replaces it, so on ties the index is the LAST occurrence; a NaN
// replaces it and sticks (later elements never beat it) except that every later NaN takes over
// the index. Any dtype but fp8 (bool included); an empty dim gives empty outputs. Values are
// gather(x, dim, indices), so the gradient is torch's scatter-add of grad at the indices.
std::tuple<Tensor, Tensor> cummax(const Tensor& x, int64_t dim);
std::tuple<Tensor, Tensor> cummin(const Tensor& x, int64_t dim);

}  // namespace fabric
