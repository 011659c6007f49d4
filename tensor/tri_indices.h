// torch.tril_indices / torch.triu_indices: the (row, column) coordinates of the lower or upper
// triangle of a row-by-col matrix, as a (2, N) tensor in row-major order (row coordinates in the
// first row of the result, column coordinates in the second). Kept out of factory.h, which most
// of the tree includes.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fabric {

// tril: the cells (i, j) with j - i <= offset; triu: those with j - i >= offset. offset 0 is the
// main diagonal, a positive one lies above it and a negative one below; any int64 offset is
// accepted and one beyond the matrix gives all or none of its cells. dtype must be int64 or int32
// (torch 1.13 dispatches only those: others are a DTypeError); a negative row or col is a
// ValueError ("row must be non-negative, got -1", as torch). The values are built on the host and
// then moved to `device`.
Tensor tril_indices(int64_t row, int64_t col, int64_t offset = 0, DType dtype = DType::int64,
                    Device device = Device::cpu());
Tensor triu_indices(int64_t row, int64_t col, int64_t offset = 0, DType dtype = DType::int64,
                    Device device = Device::cpu());

}  // namespace fabric
