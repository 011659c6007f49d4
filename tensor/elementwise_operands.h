// The operand checks and the kernel-side cast that the elementwise ops (binary, unary, the math
// family, the activations) share, so each op refuses the same inputs with the same message.
#pragma once
#include <initializer_list>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace fabric {

// ValueError for an undefined tensor; DTypeError for fp8 (a storage format here, no kernels).
void check_elementwise_operand(const char* op, const Tensor& t);

// The activations take floating tensors only, as torch's kernels (not built for integers):
// ValueError for an undefined tensor, DTypeError for anything but float64/32/16 and bfloat16.
void check_floating_operand(const char* op, const Tensor& t);

// t in dtype `dt` for a kernel that sees one dtype: t itself, or a detached copy (the cast is
// internal, so autograd records the op on the originals).
Tensor cast_for_kernel(const Tensor& t, DType dt);

// The dim order in which every operand is contiguous, when they all share one that is not
// row-major (transposed or permuted alike, none broadcast, the result's shape) on the CPU and
// hold enough elements to matter; empty otherwise. The elementwise ops then run their kernel in
// that order over contiguous memory and lay the result out row-major with one tiled copy: the
// row-major loop read such operands one element per cache line (add(a.t(), b.t()) of 2048^2 took
// 16 times torch's time, which gives the result the operands' layout instead).
std::vector<int64_t> shared_transposed_order(const Shape& out,
                                             std::initializer_list<const Tensor*> operands);

// `order`'s inverse permutation (result.permute(inverse) undoes result.permute(order)).
std::vector<int64_t> inverse_order(const std::vector<int64_t>& order);

}  // namespace fabric
