// torch 1.13's functions that build a matrix or grid out of smaller tensors: meshgrid,
// cartesian_prod, combinations, kron, block_diag and vander. Compositions of recorded ops
// (expand, masked_select, stack, mul, cat, cumprod, flip), so gradients, autocast and CUDA tensors
// come with them; values and dtypes are torch's (type promotion where torch promotes).
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

// torch.meshgrid: for N 0-D or 1-D tensors of one dtype and device, N grids of shape
// (n_0, ..., n_{N-1}) (a 0-D tensor counts as one element), grid i holding tensor i's values along
// dim i: expanded views of the inputs (stride 0 elsewhere). indexing "ij" (matrix) or "xy"
// (Cartesian: the first two dims, and the first two grids, swap). Unset, it is "ij" and, as torch
// 1.13, warns that a later release will require the argument.
std::vector<Tensor> meshgrid(const std::vector<Tensor>& tensors,
                             std::optional<std::string_view> indexing = std::nullopt);

// torch.cartesian_prod: the Cartesian product of 1-D tensors of one dtype, as a (prod n_i, N)
// matrix in row-major order of the tuples; one tensor is returned as it is.
Tensor cartesian_prod(const std::vector<Tensor>& tensors);

// torch.combinations: the length-r combinations of a 1-D tensor's elements as rows of an (C, r)
// matrix, in lexicographic order of their positions (with_replacement: positions may repeat).
// r = 0 gives an empty (0) tensor; r < 0 raises. Builds an n^r grid, as torch does.
Tensor combinations(const Tensor& x, int64_t r = 2, bool with_replacement = false);

// torch.kron: the Kronecker product; the smaller-rank operand gets leading size-1 dims, and result
// dim d has size a.size(d) * b.size(d). The dtype is mul's promotion (bool * bool stays bool).
// Unlike torch 1.13, whose views refuse some non-contiguous inputs, any layout is taken.
Tensor kron(const Tensor& a, const Tensor& b);

// torch.block_diag: the inputs (0-D as (1, 1), 1-D (n) as a row (1, n), 2-D as they are) placed
// along the diagonal of a zero matrix of their summed sizes, in the dtype torch.result_type gives
// over them all (0-D tensors rank below dimensioned ones). No inputs: an empty (1, 0) tensor of the
// default float dtype.
Tensor block_diag(const std::vector<Tensor>& tensors);

// torch.vander: the Vandermonde matrix of a 1-D x with N columns (unset: x.size(0)), powers
// x^(N-1) ... x^0, or x^0 ... x^(N-1) when increasing. Powers are cumprod's running products (the
// bits of torch's); integer and bool inputs give int64. Differentiable: torch 1.13's own
// backward raises (its cumprod's input is overwritten in place); here the gradient is the
// cumprod's. Unlike torch's CPU, float16 is computed (torch has no Half cumprod there).
Tensor vander(const Tensor& x, std::optional<int64_t> N = std::nullopt, bool increasing = false);

}  // namespace fabric
