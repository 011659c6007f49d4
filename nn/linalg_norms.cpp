// linalg.vector_norm and linalg.matrix_norm (nn/linalg.h): torch 1.13's compositions, so the
// gradients are those of the ops composed (vector_norm's, amax/amin's even split over ties,
// svdvals'). matrix_norm's checks and dim handling follow torch's linalg_matrix_norm.
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "nn/linalg.h"
#include "nn/linalg_internal.h"
#include "nn/reduce_extra.h"
#include "tensor/promotion.h"

namespace fabric::linalg {
namespace {

using namespace detail;

std::string dims_str(const std::vector<int64_t>& dim) {
  std::string s;
  for (size_t i = 0; i < dim.size(); ++i) s += (i ? " " : "") + std::to_string(dim[i]);
  return s;
}

// torch's _linalg_matrix_norm_checks; returns the two wrapped dims.
std::pair<int64_t, int64_t> matrix_norm_checks(const Tensor& A, const std::vector<int64_t>& dim,
                                               std::optional<DType> dtype, bool low_precision) {
  const char* fn = "linalg.matrix_norm";
  check_matrix(fn, A);
  if (low_precision) {
    check_floating(fn, A);
  } else {
    check_float_or_double(fn, A);
  }
  FABRIC_CHECK(dim.size() == 2, ValueError, fn, ": dim must be a 2-tuple. Got ", dims_str(dim));
  const int64_t d0 = wrap_dim(dim[0], A.dim(), fn), d1 = wrap_dim(dim[1], A.dim(), fn);
  FABRIC_CHECK(d0 != d1, ValueError, fn, ": dims must be different. Got (", d0, ", ", d1, ")");
  if (dtype) {
    FABRIC_CHECK(is_floating(*dtype), DTypeError, fn,
                 ": dtype should be floating point or complex, but got ", torch_type_name(*dtype));
    FABRIC_CHECK(promote_types(A.dtype(), *dtype) == *dtype, ValueError, fn,
                 ": the dtype of the input (", torch_type_name(A.dtype()),
                 ") should be convertible without narrowing to the specified dtype (",
                 torch_type_name(*dtype), ")");
  }
  return {d0, d1};
}

// The permutation moving d0, d1 to the end (the others keep their order), and its inverse.
std::vector<int64_t> backshift(int64_t d0, int64_t d1, int64_t ndim) {
  std::vector<int64_t> p;
  for (int64_t i = 0; i < ndim; ++i)
    if (i != d0 && i != d1) p.push_back(i);
  p.push_back(d0);
  p.push_back(d1);
  return p;
}

std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& p) {
  std::vector<int64_t> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[p[i]] = static_cast<int64_t>(i);
  return inv;
}

// A reduction of A's singular values over the dims (d0, d1), torch's shape handling around it.
template <typename Reduce>
Tensor over_singular_values(const Tensor& A, int64_t d0, int64_t d1, bool keepdim,
                            std::optional<DType> dtype, Reduce&& reduce) {
  const std::vector<int64_t> perm = backshift(d0, d1, A.dim());
  const Tensor A_ = dtype ? A.to(*dtype) : A;
  Tensor r = reduce(svdvals(A_.permute(perm)));
  if (keepdim) r = r.unsqueeze(-1).permute(inverse_permutation(perm));
  return r;
}

}  // namespace

Tensor vector_norm(const Tensor& x, double ord, const std::vector<int64_t>& dim, bool keepdim,
                   std::optional<DType> dtype) {
  return ::fabric::vector_norm(x, ord, dim, keepdim, dtype);
}

Tensor matrix_norm(const Tensor& A, double ord, const std::vector<int64_t>& dim, bool keepdim,
                   std::optional<DType> dtype) {
  const double abs_ord = std::abs(ord);
  FABRIC_CHECK(abs_ord == 2 || abs_ord == 1 || std::isinf(abs_ord), ValueError,
               "linalg.matrix_norm: Order ", ord, " not supported.");
  auto [d0, d1] = matrix_norm_checks(A, dim, dtype, abs_ord != 2);
  const auto max_min = [&](const Tensor& t, int64_t d) {
    return ord > 0 ? amax(t, {d}, keepdim) : amin(t, {d}, keepdim);
  };
  if (abs_ord == 2) {
    return over_singular_values(A, d0, d1, keepdim, dtype,
                                [&](const Tensor& s) { return max_min(s, -1); });
  }
  // The inf norm is the 1 norm of the transpose: max over rows of the row sums of |a|.
  if (std::isinf(abs_ord)) std::swap(d0, d1);
  // Reducing d0 first shifts d1 down when it came after d0 (unless kept).
  if (!keepdim && d0 < d1) --d1;
  return max_min(linalg::vector_norm(A, 1.0, {d0}, keepdim, dtype), d1);
}

Tensor matrix_norm(const Tensor& A, std::string_view ord, const std::vector<int64_t>& dim,
                   bool keepdim, std::optional<DType> dtype) {
  FABRIC_CHECK(ord == "fro" || ord == "nuc", ValueError, "linalg.matrix_norm: Order ", ord,
               " not supported.");
  auto [d0, d1] = matrix_norm_checks(A, dim, dtype, ord != "nuc");
  if (ord == "fro") return linalg::vector_norm(A, 2.0, {d0, d1}, keepdim, dtype);
  return over_singular_values(A, d0, d1, keepdim, dtype,
                              [&](const Tensor& s) { return sum(s, {-1}, keepdim); });
}

}  // namespace fabric::linalg
