// A view sharing a tensor's storage with its own sizes, strides and offset, which autograd follows
// to the base as it does Tensor's own views (view, slice, select, transpose, diagonal, ...).
#pragma once
#include <cstdint>

#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace fabric {

// Records nothing: the op that makes the view records itself on `base`.
Tensor make_view(const Tensor& base, Shape sizes, Strides strides, int64_t offset);

}  // namespace fabric
