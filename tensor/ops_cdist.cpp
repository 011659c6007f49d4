// torch.cdist (p-norm distances between the rows of two batches of matrices) and torch.dist
// (the p-norm of a difference). cdist takes torch's two ways: p = 2 between more than 25 rows
// goes through one matmul (torch's use_mm_for_euclid_dist_if_necessary, a composition of
// differentiable ops; on the CPU one fused node with that composition's gradients), otherwise
// its own kernel (torch's _cdist_forward, cdist_kernels.h), recorded as one node whose backward
// is a kernel too and, as torch's, has no double backward.
#include <cmath>

#include "tensor/autocast.h"
#include "tensor/cdist_kernels.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/products_internal.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

// torch's _euclidean_dist: ||x1||^2 - 2 x1.x2 + ||x2||^2 as one matmul of augmented rows
// [-2 x1, ||x1||^2, 1] . [x2, 1, ||x2||^2], clamped at 1e-30 before the square root.
Tensor euclidean_dist_composed(const Tensor& x1, const Tensor& x2) {
  const auto [a, b] = cdist_mm_rows(x1, x2);
  const Tensor floor = full({}, 1e-30, {.dtype = x1.dtype(), .device = x1.device()});
  // maximum with a 0-d bound, not clamp: the same values and NaNs, the gradient differing only
  // at exactly 1e-30 (the CPU clamp kernel took 7 ms of 2048 x 2048, maximum 0.5 ms).
  return sqrt(maximum(matmul(a, b.transpose(-1, -2)), floor));
}

// The same on the CPU as one node: the GEMM writes the output and one in-place pass clamps and
// takes the root (the composition's maximum and sqrt were two more fresh (P, R) tensors, and
// their page faults cost more than the passes). The backward is cdist_mm_backward.
Tensor euclidean_dist_mm(const Tensor& x1, const Tensor& x2, const Shape& batch) {
  const bool fused = x1.device().type == DeviceType::cpu &&
                     (x1.dtype() == DType::float32 || x1.dtype() == DType::float64);
  if (!fused) return euclidean_dist_composed(x1, x2);
  const auto [a, b] = cdist_mm_rows(x1.detach(), x2.detach());
  Shape shape = batch;
  shape.insert(shape.end(), {x1.size(-2), x2.size(-2)});
  Tensor out = empty(shape, {.dtype = x1.dtype(), .device = x1.device()});
  if (out.numel() > 0) {
    detail::gemm_into(a, b.transpose(-1, -2), Tensor(), out, batch);
    cdist_mm_sqrt_stub(out.device())(out.numel(), out.dtype(), out.data_ptr());
  }
  const CdistAttrs attrs{.p = 2.0, .mm = true};
  record_op(OpId::cdist, {x1, x2}, {&out}, &attrs, "SqrtBackward0");
  return out;
}

// x1 (..., P, M) and x2 (..., R, M) of one batch shape as cdist_stub's problems.
CdistDesc cdist_desc(const Tensor& x1, const Tensor& x2, double p) {
  int64_t batch = 1;
  for (int64_t i = 0; i + 2 < x1.dim(); ++i) batch *= x1.size(i);
  return {.batch = batch,
          .rows1 = x1.size(-2),
          .rows2 = x2.size(-2),
          .features = x1.size(-1),
          .p = p,
          .dtype = x1.dtype()};
}

// Distances straight from the rows (never every pairwise difference), recorded as one node.
Tensor cdist_direct(const Tensor& a, const Tensor& b, double p, Shape out_shape) {
  Tensor out = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
  if (out.numel() > 0) {
    const Tensor ac = a.detach().contiguous(), bc = b.detach().contiguous();
    cdist_stub(a.device())(cdist_desc(ac, bc, p), ac.data_ptr(), bc.data_ptr(), out.data_ptr());
  }
  const CdistAttrs attrs{p};
  record_op(OpId::cdist, {a, b}, {&out}, &attrs, "CdistBackward0");
  return out;
}

}  // namespace

std::pair<Tensor, Tensor> cdist_mm_rows(const Tensor& x1, const Tensor& x2) {
  const Tensor n1 = sum(pow(x1, 2), {-1}, true), n2 = sum(pow(x2, 2), {-1}, true);
  return {cat({mul(x1, -2), n1, ones_like(n1)}, -1), cat({x2, ones_like(n2), n2}, -1)};
}

Tensor cdist_mm_input_grad(const Tensor& x, const Tensor& grad_rows, int64_t norm_col,
                           double scale) {
  const int64_t m = x.size(-1);
  return add(mul(grad_rows.narrow(-1, 0, m), scale),
             mul(x, mul(grad_rows.narrow(-1, norm_col, 1), 2)));
}

std::pair<Tensor, Tensor> cdist_mm_backward(const Tensor& grad, const Tensor& x1,
                                            const Tensor& x2, const Tensor& dist) {
  const auto [a, b] = cdist_mm_rows(x1, x2);
  const Shape batch(dist.sizes().begin(), dist.sizes().end() - 2);
  const Tensor g = grad.contiguous(), d = dist.contiguous();
  Tensor scale = empty(d.sizes(), {.dtype = d.dtype(), .device = d.device()});
  Tensor ga = zeros(a.sizes(), {.dtype = a.dtype(), .device = a.device()});
  Tensor gb = zeros(b.sizes(), {.dtype = b.dtype(), .device = b.device()});
  if (scale.numel() > 0) {
    cdist_mm_scale_stub(d.device())(d.numel(), d.dtype(), g.data_ptr(), d.data_ptr(),
                                    scale.data_ptr());
    detail::gemm_into(scale, b, Tensor(), ga, batch);
    detail::gemm_into(scale.transpose(-1, -2), a, Tensor(), gb, batch);
  }
  const int64_t m = x1.size(-1);
  return {cdist_mm_input_grad(x1, ga, m, -2.0), cdist_mm_input_grad(x2, gb, m + 1, 1.0)};
}

Tensor cdist_backward(const Tensor& grad, const Tensor& x1, const Tensor& x2, double p,
                      const Tensor& dist, bool wrt_x2) {
  const Tensor& self = wrt_x2 ? x2 : x1;
  Tensor dx = zeros(self.sizes(), {.dtype = self.dtype(), .device = self.device()});
  if (dx.numel() == 0 || grad.numel() == 0) return dx;
  const Tensor g = grad.detach().contiguous(), a = x1.detach().contiguous(),
               b = x2.detach().contiguous(), d = dist.detach().contiguous();
  // For x2 the kernel runs with the operands swapped, reading grad and dist as stored (R, P).
  CdistDesc desc = wrt_x2 ? cdist_desc(b, a, p) : cdist_desc(a, b, p);
  desc.grad_transposed = wrt_x2;
  cdist_backward_stub(self.device())(desc, g.data_ptr(), wrt_x2 ? b.data_ptr() : a.data_ptr(),
                                     wrt_x2 ? a.data_ptr() : b.data_ptr(), d.data_ptr(),
                                     dx.data_ptr());
  return dx;
}

Tensor cdist(const Tensor& x1_in, const Tensor& x2_in, double p) {
  const char* op = "cdist";
  Tensor x1 = x1_in, x2 = x2_in;
  apply_autocast(OpId::cdist, {&x1, &x2});
  FABRIC_CHECK(x1.defined() && x2.defined(), ValueError, op, ": undefined operand");
  FABRIC_CHECK(x1.device() == x2.device(), DeviceError, op, ": x1 is on ", x1.device(), ", x2 on ",
               x2.device());
  FABRIC_CHECK(x1.dim() >= 2 && x2.dim() >= 2, ShapeError, op,
               ": x1 and x2 must be at least 2-D (..., rows, features), got ",
               shape_str(x1.sizes()), " and ", shape_str(x2.sizes()));
  FABRIC_CHECK(is_floating(x1.dtype()) && !is_fp8(x1.dtype()) && x1.dtype() == x2.dtype(),
               DTypeError, op, ": expected two floating tensors of one dtype, got ",
               dtype_name(x1.dtype()), " and ", dtype_name(x2.dtype()));
  FABRIC_CHECK(x1.size(-1) == x2.size(-1), ShapeError, op,
               ": x1 and x2 must have the same number of features (last dim), got ",
               shape_str(x1.sizes()), " and ", shape_str(x2.sizes()));
  FABRIC_CHECK(p >= 0 && !std::isnan(p), ValueError, op,
               ": only non-negative p values are supported, got ", p);
  const Shape batch = broadcast_shapes(Shape(x1.sizes().begin(), x1.sizes().end() - 2),
                                       Shape(x2.sizes().begin(), x2.sizes().end() - 2), op);
  const int64_t rows1 = x1.size(-2), rows2 = x2.size(-2), m = x1.size(-1);
  Shape s1 = batch, s2 = batch;
  s1.insert(s1.end(), {rows1, m});
  s2.insert(s2.end(), {rows2, m});
  const Tensor a = x1.expand(s1), b = x2.expand(s2);
  detail::AutocastOff off(x1.device());
  if (m == 0) {  // no features: every distance is 0 (the inf-norm of nothing would raise)
    Shape out = batch;
    out.insert(out.end(), {rows1, rows2});
    return add(zeros(out, {.dtype = x1.dtype(), .device = x1.device()}),
               mul(sum(a, {-1}, true), sum(b, {-1}, true).transpose(-1, -2)));
  }
  if (p == 2 && (rows1 > 25 || rows2 > 25)) return euclidean_dist_mm(a, b, batch);
  Shape out = batch;
  out.insert(out.end(), {rows1, rows2});
  return cdist_direct(a, b, p, out);
}

Tensor dist(const Tensor& a_in, const Tensor& b_in, double p) {
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::dist, {&a, &b});
  FABRIC_CHECK(a.defined() && b.defined(), ValueError, "dist: undefined operand");
  // The norm of a - b needs a float difference (an integer one is refused by norm, a bool or fp8
  // operand by sub): checked here, in dist's name and shapes.
  const auto plain = [](DType t) { return t != DType::bool_ && !is_fp8(t); };
  FABRIC_CHECK(
      plain(a.dtype()) && plain(b.dtype()) && is_floating(promote_types(a.dtype(), b.dtype())),
      DTypeError, "dist: expected floating-point operands (float64/float32/float16/bfloat16), got ",
      dtype_name(a.dtype()), " ", shape_str(a.sizes()), " and ", dtype_name(b.dtype()), " ",
      shape_str(b.sizes()));
  detail::AutocastOff off(a.device());
  return norm(sub(a, b), p);
}

}  // namespace fabric
