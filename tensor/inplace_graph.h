// The tensor layer's side of in-place ops under autograd (the hooks are in op_record.h): the raw
// write every in-place op ends with, its overlap check, and the history of a write that overwrites
// every value.
#pragma once
#include "tensor/tensor.h"

namespace fabric {

// Refuses a write into a tensor whose elements share memory (an expanded view, stride 0): which
// value would land there depends on the kernel's order. PyTorch raises the same for copy_ and the
// in-place arithmetic ops (fill_ and zero_ write one value everywhere, so they stay allowed).
void check_no_internal_overlap(const char* op, const Tensor& self);

// dst's values := src's (broadcast to dst's shape, converted to its dtype, staged across devices),
// then dst's version is bumped. Records nothing: the in-place ops' own write.
void write_values(Tensor& dst, const Tensor& src);

// For a write that replaces all of self's values by ones that need no gradient (fill_, uniform_,
// copy_ from a tensor that does not require grad): called before the write, it gives self's old
// value a zero gradient, so that after rebase_history(self, it) self still requires grad and its
// producers still run in backward (PyTorch's FillBackward0 / CopyBackwards do the same).
Tensor overwritten_history(const Tensor& self);

}  // namespace fabric
