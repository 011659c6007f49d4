// torch.as_strided: a view of a tensor's storage with sizes, strides and a storage offset of one's
// choosing, with torch 1.13's AsStridedBackward0. In nn/, not tensor/: its gradient is its own
// autograd node, which the tensor layer may not build (as nn/reduce_extra.h's).
#pragma once
#include <cstdint>
#include <optional>

#include "tensor/tensor.h"

namespace fabric {

// torch.as_strided(x, size, stride, storage_offset): the elements of x's storage at
// storage_offset + sum_d i_d * stride[d] (unset offset: x's own), a view sharing x's storage
// whatever x's own geometry (a transposed or offset x is read through its storage, as torch's).
// Strides must be >= 0 and the view must fit the storage; elements may repeat (stride 0,
// overlapping windows). Gradient: torch's as_strided_backward, on a zero buffer laid out as the
// storage span the input and the view cover: the view's gradient is added in (summed where view
// elements share a storage element), each input element reads its storage element back, divided
// by how many input elements share it (an input that repeats elements itself); a view element
// outside the input's elements passes no gradient. Differentiable again. Runs on any device.
Tensor as_strided(const Tensor& x, const Shape& size, const Strides& stride,
                  std::optional<int64_t> storage_offset = std::nullopt);

}  // namespace fabric
