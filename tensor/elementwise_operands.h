// The operand checks and the kernel-side cast that the elementwise ops (binary, unary, the math
// family, the activations) share, so each op refuses the same inputs with the same message.
#pragma once
#include <initializer_list>

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

// A new elementwise result of shape `out`, laid out as torch's TensorIterator lays out a result
// it allocates: row-major when every operand is; the operands' strides when all are dense with the
// same ones (x.t() + y.t(), relu of a channels-last activation); otherwise the dims ordered by the
// first operand whose strides tell them apart (x.t() + y is transposed, y + x.t() row-major;
// broadcast dims have no say). make_strided_loop walks the output's memory order, so the kernel
// then runs over contiguous memory where the operands agree.
Tensor empty_like_operands(const Shape& out, const TensorOptions& options,
                           std::initializer_list<const Tensor*> operands);

// A new tensor of t's shape laid out as torch's memory_format=preserve_format lays out clone(),
// to() and the *_like factories: t's own strides when t is non-overlapping and dense (x.t() gives
// a transposed result), else t's dims in the order its strides give them, made dense (a slice
// x[:, ::2].t() gives (1, rows), an expanded tensor row-major), as torch's infer_dense_strides.
Tensor empty_preserving_layout(const Tensor& t, const TensorOptions& options);

}  // namespace fabric
