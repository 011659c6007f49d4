// Shared pieces of the fabric::linalg op files (nn/linalg_*.cpp): torch 1.13's argument checks and
// error texts, the host round trip every decomposition makes (kernels/cpu/linalg_eigen.h runs on
// the CPU; other devices copy there and back), the float/double dispatch, and the small matrix
// helpers the backward formulas are written with. Not a public header.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tensor/torch_names.h"

namespace fabric::linalg::detail {

// torch's ScalarType names ("Float", "BFloat16", ...) and int lists ("[2, 3]"), as its messages
// print them (tensor/torch_names.h).
inline const char* torch_type_name(DType t) { return torch_scalar_type_name(t); }
inline std::string torch_sizes(const Shape& s) { return torch_int_list(s); }

// "fn: The input tensor A must have at least 2 dimensions." (ShapeError)
void check_matrix(const char* fn, const Tensor& t, const char* name = "A");
// check_matrix, then "fn: A must be batches of square matrices, but they are 2 by 3 matrices".
void check_square(const char* fn, const Tensor& t, const char* name = "A");
// "fn: Expected a floating point or complex tensor as input. Got Long" (DTypeError).
void check_floating(const char* fn, const Tensor& t);
// check_floating, then "fn: Low precision dtypes not supported. Got BFloat16" (torch's
// checkFloatingOrComplex without low precision).
void check_float_or_double(const char* fn, const Tensor& t);
// For the ops whose low-precision refusal in torch is the CPU kernel's dispatch error:
// "fn: \"lu_cpu\" not implemented for 'BFloat16'" (DTypeError).
void check_kernel_dtype(const char* fn, const char* kernel, const Tensor& t);

// The leading (batch) dims of a (..., m, n) tensor and their element count.
Shape batch_shape(const Tensor& t);
int64_t batch_count(const Tensor& t);
// batch followed by the given trailing dims.
Shape with_dims(Shape batch, std::initializer_list<int64_t> tail);

// A detached, contiguous CPU copy (or the tensor itself when it already is one): what the Eigen
// kernels read.
Tensor host(const Tensor& t);
// host(t), except for a transposed view of a contiguous CPU tensor (the last two dims swapped, as
// mH gives): that is returned as its contiguous base, read in place, and col_major is set (the
// memory holds t's matrices column-major, which the triangular-solve kernel reads as they are).
Tensor host_either_layout(const Tensor& t, bool& col_major);
// An empty CPU tensor of t's dtype, for a kernel to write; moved to `device` by the caller.
Tensor host_empty(const Shape& shape, DType dtype);

// Calls f(float{}) or f(double{}) for a float32/float64 dtype.
template <typename F>
void visit_float(DType dt, F&& f) {
  if (dt == DType::float64) {
    f(double{});
  } else {
    f(float{});
  }
}

// Raises torch's LinAlgError text for the first non-zero info of a kernel's per-matrix infos (a
// CPU int32 tensor of the batch shape; `batched`: A had batch dims, so the message names the
// element). kind: "inv" (singular: the zero pivot), "solve" (singular) or "cholesky" (the leading
// minor that is not positive-definite). ValueError.
void raise_on_info(const char* api, const char* kind, const Tensor& info, bool batched);

// The conjugate transpose of the last two dims (the transpose: real dtypes only here).
inline Tensor mH(const Tensor& t) { return t.transpose(-2, -1); }
// (..., n) -> (..., n, n) with v on the diagonal: differentiable (a product with eye(n)).
Tensor diag_embed(const Tensor& v);
// torch's pinv_backward: the gradient reaching A from a gradient `grad` of pinvA = pinv(A) (the
// derivative of the pseudo-inverse at constant rank), made of matmuls: pinv's and lstsq's backward.
Tensor pinv_backward(const Tensor& grad, const Tensor& pinvA, const Tensor& A);
// torch's machine epsilon of a floating dtype (float64: 2^-52, float32: 2^-23).
double epsilon(DType t);

}  // namespace fabric::linalg::detail
