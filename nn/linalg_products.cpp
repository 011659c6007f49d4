// linalg.matrix_power and linalg.multi_dot (nn/linalg.h): torch 1.13's compositions of matmul/mm
// (and inv for negative powers), in torch's order of products, so values and gradients are those
// of the products.
#include <limits>
#include <string>
#include <vector>

#include "nn/linalg.h"
#include "nn/linalg_internal.h"

namespace fabric::linalg {
namespace {

using namespace detail;

// torch's matrix_chain_order: s[i][j] is the split k of the cheapest (M_i..M_k)(M_k+1..M_j).
std::vector<std::vector<int64_t>> matrix_chain_order(const std::vector<Tensor>& t) {
  const size_t n = t.size();
  std::vector<int64_t> p(n + 1);
  for (size_t i = 0; i < n; ++i) p[i] = t[i].size(0);
  p[n] = t[n - 1].size(1);
  std::vector<std::vector<int64_t>> m(n, std::vector<int64_t>(n, 0));
  std::vector<std::vector<int64_t>> s(n, std::vector<int64_t>(n, 0));
  for (size_t l = 1; l < n; ++l) {
    for (size_t i = 0; i < n - l; ++i) {
      const size_t j = i + l;
      m[i][j] = std::numeric_limits<int64_t>::max();
      for (size_t k = i; k < j; ++k) {
        const int64_t q = m[i][k] + m[k + 1][j] + p[i] * p[k + 1] * p[j + 1];
        if (q < m[i][j]) {
          m[i][j] = q;
          s[i][j] = static_cast<int64_t>(k);
        }
      }
    }
  }
  return s;
}

Tensor chain(const std::vector<Tensor>& t, const std::vector<std::vector<int64_t>>& order,
             int64_t i, int64_t j) {
  if (i == j) return t[i];
  return mm(chain(t, order, i, order[i][j]), chain(t, order, order[i][j] + 1, j));
}

}  // namespace

Tensor matrix_power(const Tensor& A, int64_t n) {
  check_square("linalg.matrix_power", A);
  if (n == 0) {
    // The identity, still A's function (torch copies eye into a clone): a zero gradient.
    const Tensor id = eye(A.size(-1), std::nullopt, {.dtype = A.dtype(), .device = A.device()});
    return where(ones(A.sizes(), {.dtype = DType::bool_, .device = A.device()}), id, A);
  }
  if (n == 1) return A.clone();
  if (n == -1) return inv(A);
  const Tensor a = n < 0 ? inv(A) : A;
  uint64_t e = n < 0 ? 0 - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
  if (e == 2) return matmul(a, a);
  if (e == 3) return matmul(matmul(a, a), a);
  // Binary powering from the lowest bit, as torch: z runs through a^(2^i), result collects them.
  Tensor z, result;
  while (e > 0) {
    const bool bit = e % 2 == 1;
    e /= 2;
    z = z.defined() ? matmul(z, z) : a;
    if (bit) result = result.defined() ? matmul(result, z) : z;
  }
  return result;
}

Tensor multi_dot(const std::vector<Tensor>& tensors) {
  const size_t n = tensors.size();
  FABRIC_CHECK(n >= 2, ValueError, "multi_dot(): expected at least 2 tensors but got ", n);
  std::vector<Tensor> t(n);
  Shape out_shape;
  const Tensor& first = tensors[0];
  FABRIC_CHECK(first.dim() == 1 || first.dim() == 2, ShapeError,
               "multi_dot(): the first tensor must be 1D or 2D but got ", first.dim(), "D");
  t[0] = first.dim() == 1 ? first.unsqueeze(0) : first;
  if (first.dim() == 2) out_shape.push_back(first.size(0));
  const Tensor& last = tensors[n - 1];
  FABRIC_CHECK(last.dim() == 1 || last.dim() == 2, ShapeError,
               "multi_dot(): the last tensor must be 1D or 2D but got ", last.dim(), "D");
  t[n - 1] = last.dim() == 1 ? last.unsqueeze(-1) : last;
  if (last.dim() == 2) out_shape.push_back(last.size(1));
  for (size_t i = 1; i + 1 < n; ++i) {
    FABRIC_CHECK(tensors[i].dim() == 2, ShapeError, "multi_dot(): tensor ", i,
                 " must be 2D but got ", tensors[i].dim(), "D");
    t[i] = tensors[i];
  }
  for (size_t i = 1; i < n; ++i) {
    FABRIC_CHECK(t[i].dtype() == t[0].dtype(), DTypeError,
                 "multi_dot(): all tensors must have be the same dtype but tensor 0 is ",
                 dtype_name(t[0].dtype()), " and tensor ", i, " ", dtype_name(t[i].dtype()));
    FABRIC_CHECK(t[i].device() == t[0].device(), DeviceError,
                 "multi_dot(): all tensors must be on the same device but tensor 0 is on ",
                 t[0].device().str(), " and tensor ", i, " on ", t[i].device().str());
    FABRIC_CHECK(t[i - 1].size(-1) == t[i].size(0), ShapeError, "multi_dot(): tensors ", i - 1,
                 " and ", i, " with shapes ", torch_sizes(tensors[i - 1].sizes()), " and ",
                 torch_sizes(tensors[i].sizes()), " cannot be multiplied");
  }
  Tensor result;
  if (n == 2) {
    result = mm(t[0], t[1]);
  } else if (n == 3) {
    // (a x b)(b x c)(c x d): cost of (AB)C is a*c*(b + d), of A(BC) b*d*(a + c).
    const int64_t a = t[0].size(0), b = t[1].size(0), c = t[2].size(0), d = t[2].size(1);
    result =
        a * c * (b + d) > b * d * (a + c) ? mm(t[0], mm(t[1], t[2])) : mm(mm(t[0], t[1]), t[2]);
  } else {
    result = chain(t, matrix_chain_order(t), 0, static_cast<int64_t>(n) - 1);
  }
  return result.reshape(out_shape);
}

}  // namespace fabric::linalg
