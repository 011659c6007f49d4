// fabric::linalg's shared checks and helpers (nn/linalg_internal.h), with torch 1.13's texts
// (LinearAlgebraUtils.h: checkIsMatrix, squareCheckInputs, checkFloatingOrComplex,
// _linalg_check_errors).
#include "nn/linalg_internal.h"

#include <string>

#include "tensor/error.h"

namespace fabric::linalg::detail {

void check_matrix(const char* fn, const Tensor& t, const char* name) {
  FABRIC_CHECK(t.dim() >= 2, ShapeError, fn, ": The input tensor ", name,
               " must have at least 2 dimensions. (got shape ", shape_str(t.sizes()), ")");
}

void check_square(const char* fn, const Tensor& t, const char* name) {
  check_matrix(fn, t, name);
  FABRIC_CHECK(t.size(-1) == t.size(-2), ShapeError, fn, ": ", name,
               " must be batches of square matrices, but they are ", t.size(-2), " by ", t.size(-1),
               " matrices");
}

void check_floating(const char* fn, const Tensor& t) {
  FABRIC_CHECK(is_floating(t.dtype()), DTypeError, fn,
               ": Expected a floating point or complex tensor as input. Got ",
               torch_type_name(t.dtype()), " (supported: float32, float64)");
}

void check_float_or_double(const char* fn, const Tensor& t) {
  check_floating(fn, t);
  FABRIC_CHECK(t.dtype() == DType::float32 || t.dtype() == DType::float64, DTypeError, fn,
               ": Low precision dtypes not supported. Got ", torch_type_name(t.dtype()),
               " (supported: float32, float64)");
}

void check_kernel_dtype(const char* fn, const char* kernel, const Tensor& t) {
  FABRIC_CHECK(t.dtype() == DType::float32 || t.dtype() == DType::float64, DTypeError, fn, ": \"",
               kernel, "\" not implemented for '", torch_type_name(t.dtype()),
               "' (supported: float32, float64)");
}

Shape batch_shape(const Tensor& t) { return Shape(t.sizes().begin(), t.sizes().end() - 2); }

int64_t batch_count(const Tensor& t) { return numel_of(batch_shape(t)); }

Shape with_dims(Shape batch, std::initializer_list<int64_t> tail) {
  batch.insert(batch.end(), tail.begin(), tail.end());
  return batch;
}

Tensor host(const Tensor& t) { return t.detach().to(Device::cpu()).contiguous(); }

Tensor host_either_layout(const Tensor& t, bool& col_major) {
  col_major = false;
  if (t.device().is_cpu() && t.dim() >= 2 && !t.is_contiguous()) {
    const Tensor base = mH(t);
    if (base.is_contiguous()) {
      col_major = true;
      return base.detach();
    }
  }
  return host(t);
}

Tensor host_empty(const Shape& shape, DType dtype) { return empty(shape, {.dtype = dtype}); }

void raise_on_info(const char* api, const char* kind, const Tensor& info, bool batched) {
  const std::vector<int32_t> v = info.to_vector<int32_t>();
  size_t i = 0;
  while (i < v.size() && v[i] == 0) ++i;
  if (i == v.size()) return;
  const std::string where = batched ? ": (Batch element " + std::to_string(i) + ")" : "";
  const std::string k = kind;
  if (k == "inv") {
    throw ValueError(
        ::fabric::detail::cat(api, where, ": The diagonal element ", v[i],
                              " is zero, the inversion could not be completed because the "
                              "input matrix is singular."));
  }
  if (k == "solve") {
    throw ValueError(::fabric::detail::cat(
        api, where, ": The solver failed because the input matrix is singular."));
  }
  throw ValueError(
      ::fabric::detail::cat(api, where,
                            ": The factorization could not be completed because the input is "
                            "not positive-definite (the leading minor of order ",
                            v[i], " is not positive-definite)."));
}

Tensor diag_embed(const Tensor& v) {
  const int64_t n = v.size(-1);
  return mul(v.unsqueeze(-1), eye(n, std::nullopt, {.dtype = v.dtype(), .device = v.device()}));
}

Tensor pinv_backward(const Tensor& grad, const Tensor& pinvA, const Tensor& A) {
  const Tensor pinvAh = mH(pinvA), gradh = mH(grad);
  if (A.size(-2) <= A.size(-1)) {
    const Tensor K = matmul(gradh, pinvA);
    const Tensor KpinvAh = matmul(K, pinvAh);
    return add(sub(add(neg(mH(matmul(pinvA, K))), KpinvAh), matmul(matmul(A, pinvA), KpinvAh)),
               matmul(matmul(pinvAh, pinvA), sub(gradh, matmul(K, A))));
  }
  const Tensor K = matmul(pinvA, gradh);
  const Tensor pinvAhK = matmul(pinvAh, K);
  return sub(
      add(add(neg(mH(matmul(K, pinvA))), matmul(matmul(sub(gradh, matmul(A, K)), pinvA), pinvAh)),
          pinvAhK),
      matmul(matmul(pinvAhK, pinvA), A));
}

double epsilon(DType t) {
  switch (t) {
    case DType::float64:
      return 2.220446049250313e-16;
    case DType::float32:
      return 1.1920928955078125e-07;
    case DType::float16:
      return 0.0009765625;
    case DType::bfloat16:
      return 0.0078125;
    default:
      return 1.1920928955078125e-07;
  }
}

}  // namespace fabric::linalg::detail
