// torch.addmm / baddbmm / addbmm: beta * self + alpha * (a @ b), one GEMM each. The GEMM's own
// epilogue does the rest: self broadcast as a row becomes its bias, a full self is copied into
// the output and read back through beta, and beta == 0 never reads self (its NaNs ignored, as
// torch). Each records one node (autograd/derivatives_products.cpp).
#include <string_view>

#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/products_internal.h"

namespace fabric {
namespace {

void check_operand(const char* op, const char* name, const Tensor& t, const Tensor& first) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  FABRIC_CHECK(t.device() == first.device(), DeviceError, op, ": ", name, " is on ", t.device(),
               ", the first factor on ", first.device());
  FABRIC_CHECK(t.dtype() == first.dtype(), DTypeError, op, ": expected ", name,
               " to have the first factor's dtype ", dtype_name(first.dtype()), ", but got ",
               dtype_name(t.dtype()), " ", shape_str(t.sizes()));
  const DType d = t.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, op, ": not implemented for ", dtype_name(d), " (", name, " ",
      shape_str(t.sizes()), "); supported: float64, float32, bfloat16, float16");
}

void check_rank(const char* op, const char* name, const Tensor& t, int64_t rank) {
  FABRIC_CHECK(t.dim() == rank, ShapeError, op, ": expected ", name, " to be ", rank, "-D, got ",
               shape_str(t.sizes()));
}

// baddbmm's and addbmm's operands: batch1 (B, M, K) and batch2 (B, K, N) of one float dtype and
// device, self of the same.
void check_batched_factors(const char* op, const Tensor& self, const Tensor& a, const Tensor& b) {
  FABRIC_CHECK(a.defined(), ValueError, op, ": batch1 is undefined");
  check_operand(op, "batch1", a, a);
  check_operand(op, "batch2", b, a);
  check_operand(op, "self", self, a);
  check_rank(op, "batch1", a, 3);
  check_rank(op, "batch2", b, 3);
  FABRIC_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), ShapeError, op, ": batch1 ",
               shape_str(a.sizes()), " and batch2 ", shape_str(b.sizes()),
               " cannot be multiplied (expected (B, M, K) and (B, K, N))");
}

// The GEMM takes alpha and beta as float: a float64 product whose scalars float cannot hold
// exactly scales after the GEMM instead, in float64.
bool float_exact(const Scalar& s) {
  const double v = s.to_double();
  return static_cast<double>(static_cast<float>(v)) == v;
}

// beta * self + alpha * (a @ b) of shape (batch..., M, N), self broadcast to it. Records nothing.
Tensor add_product(const char* op, const Tensor& self, const Tensor& a, const Tensor& b,
                   const Shape& out_shape, const Shape& batch, const Scalar& beta_s,
                   const Scalar& alpha_s) {
  bool broadcasts = self.dim() <= static_cast<int64_t>(out_shape.size());
  for (int64_t i = 1; broadcasts && i <= self.dim(); ++i) {
    const int64_t s = self.size(-i), o = out_shape[out_shape.size() - i];
    broadcasts = s == o || s == 1;
  }
  FABRIC_CHECK(broadcasts, ShapeError, op, ": self ", shape_str(self.sizes()),
               " does not broadcast to the product's shape ", shape_str(out_shape));
  const double beta = beta_s.to_double(), alpha = alpha_s.to_double();
  const Tensor s = self.detach();
  // alpha = 0: the product is not read, as BLAS (and torch's addmm/addbmm) skip it, so an inf or
  // NaN in the factors does not reach the result. torch's baddbmm computes it (NaN there too).
  if (alpha == 0 && std::string_view(op) != "baddbmm") {
    Tensor out = zeros(out_shape, {.dtype = a.dtype(), .device = a.device()});
    if (beta != 0) out.copy_(beta == 1 ? s : mul(s, beta_s));
    return out;
  }
  Tensor out = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
  if (a.dtype() == DType::float64 && !(float_exact(beta_s) && float_exact(alpha_s))) {
    detail::gemm_into(a, b, Tensor(), out, batch);
    Tensor r = alpha == 1 ? out : mul(out, alpha_s);
    if (beta != 0) r = add(r, beta == 1 ? s : mul(s, beta_s));
    return r.contiguous();
  }
  const float alpha_f = static_cast<float>(alpha), beta_f = static_cast<float>(beta);
  if (beta == 0) {
    detail::gemm_into(a, b, Tensor(), out, batch, alpha_f);
    return out;
  }
  // A self that is one row (..., 1, N), (N) or a scalar: the GEMM's bias, added after alpha.
  bool row = true;
  for (int64_t d = 0; d + 1 < s.dim(); ++d) row = row && s.size(d) == 1;
  if (row) {
    const Tensor scaled = beta == 1 ? s : mul(s, beta_s);
    detail::gemm_into(a, b, scaled.reshape({-1}).expand({out_shape.back()}), out, batch, alpha_f);
    return out;
  }
  out.copy_(s);
  detail::gemm_into(a, b, Tensor(), out, batch, alpha_f, beta_f);
  return out;
}

void record_add_product(OpId id, const Tensor& self, const Tensor& a, const Tensor& b, Tensor& out,
                        const Scalar& beta, const Scalar& alpha) {
  const AddmmAttrs attrs{beta, alpha};
  record_op(id, {self, a, b}, {&out}, &attrs);
}

}  // namespace

Tensor addmm(const Tensor& self_in, const Tensor& a_in, const Tensor& b_in, const Scalar& beta,
             const Scalar& alpha) {
  const char* op = "addmm";
  Tensor self = self_in, a = a_in, b = b_in;
  apply_autocast(OpId::addmm, {&self, &a, &b});
  FABRIC_CHECK(a.defined(), ValueError, op, ": mat1 is undefined");
  check_operand(op, "mat1", a, a);
  check_operand(op, "mat2", b, a);
  check_operand(op, "self", self, a);
  check_rank(op, "mat1", a, 2);
  check_rank(op, "mat2", b, 2);
  FABRIC_CHECK(a.size(1) == b.size(0), ShapeError, op, ": mat1 ", shape_str(a.sizes()),
               " and mat2 ", shape_str(b.sizes()), " cannot be multiplied (", a.size(1),
               " != ", b.size(0), ")");
  Tensor out = add_product(op, self, a, b, {a.size(0), b.size(1)}, {}, beta, alpha);
  if (counting_flops()) report_flops("addmm", 2 * a.size(0) * a.size(1) * b.size(1));
  record_add_product(OpId::addmm, self, a, b, out, beta, alpha);
  return out;
}

Tensor baddbmm(const Tensor& self_in, const Tensor& a_in, const Tensor& b_in, const Scalar& beta,
               const Scalar& alpha) {
  const char* op = "baddbmm";
  Tensor self = self_in, a = a_in, b = b_in;
  apply_autocast(OpId::baddbmm, {&self, &a, &b});
  check_batched_factors(op, self, a, b);
  Tensor out =
      add_product(op, self, a, b, {a.size(0), a.size(1), b.size(2)}, {a.size(0)}, beta, alpha);
  if (counting_flops()) report_flops("baddbmm", 2 * a.size(0) * a.size(1) * a.size(2) * b.size(2));
  record_add_product(OpId::baddbmm, self, a, b, out, beta, alpha);
  return out;
}

Tensor addbmm(const Tensor& self_in, const Tensor& a_in, const Tensor& b_in, const Scalar& beta,
              const Scalar& alpha) {
  const char* op = "addbmm";
  Tensor self = self_in, a = a_in, b = b_in;
  apply_autocast(OpId::addbmm, {&self, &a, &b});
  check_batched_factors(op, self, a, b);
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  // The sum over the batch is one GEMM over a contraction of B * K: (M, B*K) @ (B*K, N).
  const Tensor a2 = a.detach().permute({1, 0, 2}).reshape({M, B * K});
  const Tensor b2 = b.detach().reshape({B * K, N});
  Tensor out = add_product(op, self, a2, b2, {M, N}, {}, beta, alpha);
  // No FLOPs reported: torch.utils.flop_counter has no rule for addbmm.
  record_add_product(OpId::addbmm, self, a, b, out, beta, alpha);
  return out;
}

}  // namespace fabric
