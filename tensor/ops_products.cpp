// Products written as compositions of matmul/mm/bmm and elementwise ops: dot, outer, tensordot,
// cross, bilinear and addcdiv. Each applies its own autocast class once, at its entry, and runs
// its inner ops with autocast off (as ATen's autocast wrappers do); autograd, double backward
// and the CUDA backend come from the inner ops.
#include <algorithm>
#include <numeric>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/product_operands.h"
#include "tensor/products_internal.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

using detail::AutocastOff;

// The products torch computes for integers on the CPU (dot, tensordot) take them (matmul's integer
// path); bilinear does not.
void check_gemm_dtype(const char* op, const Tensor& a, bool integers = true) {
  const DType t = a.dtype();
  FABRIC_CHECK(t == DType::float32 || t == DType::float64 || t == DType::bfloat16 ||
                   t == DType::float16 || (integers && is_integral(t)),
               DTypeError, op, ": not implemented for ", dtype_name(t), " (shape ",
               shape_str(a.sizes()), "); supported: float64, float32, bfloat16, float16",
               integers ? " and the integer types" : "");
}

}  // namespace

Tensor dot(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::dot, {&a, &b});
  check_product_operands("dot", a, b);
  FABRIC_CHECK(a.dim() == 1 && b.dim() == 1, ShapeError, "dot: expected two 1-D tensors, got ",
               shape_str(a.sizes()), " and ", shape_str(b.sizes()));
  FABRIC_CHECK(a.size(0) == b.size(0), ShapeError, "dot: inconsistent tensor sizes ",
               shape_str(a.sizes()), " and ", shape_str(b.sizes()));
  check_gemm_dtype("dot", a);
  AutocastOff off(a.device());
  return matmul(a, b);  // matmul of two vectors is torch's dot (its node: DotBackward0)
}

Tensor outer(const Tensor& a, const Tensor& b) {
  FABRIC_CHECK(a.defined() && b.defined(), ValueError, "outer: undefined operand");
  FABRIC_CHECK(a.dim() == 1 && b.dim() == 1, ShapeError, "outer: expected two 1-D tensors, got ",
               shape_str(a.sizes()), " and ", shape_str(b.sizes()));
  return mul(a.unsqueeze(1), b.unsqueeze(0));  // (n, 1) * (1, m), dtypes promoted as torch
}

Tensor tensordot(const Tensor& a, const Tensor& b, int64_t dims) {
  FABRIC_CHECK(a.defined() && b.defined(), ValueError, "tensordot: undefined operand");
  FABRIC_CHECK(dims >= 0 && dims <= a.dim() && dims <= b.dim(), ShapeError,
               "tensordot: dims must be in [0, min(a.dim(), b.dim())] = [0, ",
               std::min(a.dim(), b.dim()), "], got ", dims, " for shapes ", shape_str(a.sizes()),
               " and ", shape_str(b.sizes()));
  std::vector<int64_t> da(dims), db(dims);
  std::iota(da.begin(), da.end(), a.dim() - dims);
  std::iota(db.begin(), db.end(), 0);
  return tensordot(a, b, da, db);
}

Tensor tensordot(const Tensor& a_in, const Tensor& b_in, const std::vector<int64_t>& dims_a,
                 const std::vector<int64_t>& dims_b) {
  const char* op = "tensordot";
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::tensordot, {&a, &b});
  check_product_operands(op, a, b);
  check_gemm_dtype(op, a);
  FABRIC_CHECK(dims_a.size() == dims_b.size(), ShapeError, op,
               ": both dim lists must have the same length, got ", dims_a.size(), " and ",
               dims_b.size());
  // a -> (free_a, contracted) and b -> (contracted, free_b): one mm.
  std::vector<bool> ca(a.dim(), false), cb(b.dim(), false);
  std::vector<int64_t> perm_a, perm_b, contracted_b;
  int64_t k = 1;
  for (size_t i = 0; i < dims_a.size(); ++i) {
    const int64_t x = wrap_dim(dims_a[i], a.dim(), op), y = wrap_dim(dims_b[i], b.dim(), op);
    FABRIC_CHECK(!ca[x] && !cb[y], ShapeError, op, ": dim ", ca[x] ? x : y,
                 " is listed twice (dims ", shape_str(dims_a), " and ", shape_str(dims_b), ")");
    FABRIC_CHECK(a.size(x) == b.size(y), ShapeError, op,
                 ": contracted dimensions need to match, but the first has size ", a.size(x),
                 " in dim ", x, " and the second has size ", b.size(y), " in dim ", y, " (shapes ",
                 shape_str(a.sizes()), " and ", shape_str(b.sizes()), ")");
    ca[x] = cb[y] = true;
    contracted_b.push_back(y);
    k *= a.size(x);
  }
  Shape out_shape;
  int64_t m = 1, n = 1;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (!ca[d]) {
      perm_a.push_back(d);
      out_shape.push_back(a.size(d));
      m *= a.size(d);
    }
  for (size_t i = 0; i < dims_a.size(); ++i) perm_a.push_back(wrap_dim(dims_a[i], a.dim(), op));
  perm_b = contracted_b;
  for (int64_t d = 0; d < b.dim(); ++d)
    if (!cb[d]) {
      perm_b.push_back(d);
      out_shape.push_back(b.size(d));
      n *= b.size(d);
    }
  AutocastOff off(a.device());
  const Tensor a2 = a.permute(perm_a).reshape({m, k}), b2 = b.permute(perm_b).reshape({k, n});
  return mm(a2, b2).reshape(out_shape);
}

Tensor cross(const Tensor& a_in, const Tensor& b_in, int64_t dim) {
  const char* op = "cross";
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::cross, {&a, &b});
  check_product_operands(op, a, b);
  // As torch ("cross" not implemented for 'Bool'): its subtraction would refuse it in sub's name.
  FABRIC_CHECK(a.dtype() != DType::bool_ && b.dtype() != DType::bool_, DTypeError, op,
               ": not implemented for bool (shapes ", shape_str(a.sizes()), " and ",
               shape_str(b.sizes()), ")");
  FABRIC_CHECK(a.dim() == b.dim(), ShapeError, op,
               ": inputs must have the same number of dimensions, got ", shape_str(a.sizes()),
               " and ", shape_str(b.sizes()));
  FABRIC_CHECK(a.dim() > 0, ShapeError, op, ": inputs must have at least one dimension");
  const Shape shape = broadcast_shapes(a.sizes(), b.sizes(), op);
  const int64_t d = wrap_dim(dim, a.dim(), op);
  FABRIC_CHECK(a.size(d) == 3 && b.size(d) == 3, ShapeError, op, ": dimension ", dim,
               " must have length 3, got ", a.size(d), " and ", b.size(d), " (shapes ",
               shape_str(a.sizes()), " and ", shape_str(b.sizes()), ")");
  AutocastOff off(a.device());
  const Tensor x = a.expand(shape), y = b.expand(shape);
  auto c = [&](const Tensor& t, int64_t i) { return t.select(d, i); };
  // torch's CPU kernel computes x_i * y_j - x_k * y_l with the first product fused (g++ contracts
  // it into fma(x_i, y_j, -(x_k * y_l))) in float32 and float64: addcmul with value 1 is that
  // fma, so the bits are torch's. float16/bfloat16 round every product to the dtype (c10's
  // arithmetic) and integers wrap: there the plain difference of products is torch's.
  const bool fused = a.dtype() == DType::float32 || a.dtype() == DType::float64;
  auto component = [&](int64_t i, int64_t j) {
    return fused ? addcmul(neg(mul(c(x, j), c(y, i))), c(x, i), c(y, j))
                 : sub(mul(c(x, i), c(y, j)), mul(c(x, j), c(y, i)));
  };
  return stack({component(1, 2), component(2, 0), component(0, 1)}, d);
}

Tensor bilinear(const Tensor& x1_in, const Tensor& x2_in, const Tensor& weight_in,
                const Tensor& bias_in) {
  const char* op = "bilinear";
  Tensor x1 = x1_in, x2 = x2_in, w = weight_in, bias = bias_in;
  apply_autocast(OpId::bilinear, {&x1, &x2, &w, &bias});
  check_product_operands(op, x1, x2);
  check_product_operands(op, x1, w);
  check_gemm_dtype(op, x1, /*integers=*/false);
  FABRIC_CHECK(w.dim() == 3, ShapeError, op,
               ": weight must be 3-D (out_features, in1_features, in2_features), got ",
               shape_str(w.sizes()));
  FABRIC_CHECK(x1.dim() >= 1 && x1.dim() == x2.dim(), ShapeError, op,
               ": input1 and input2 must have the same number of (at least 1) dimensions, got ",
               shape_str(x1.sizes()), " and ", shape_str(x2.sizes()));
  for (int64_t d = 0; d + 1 < x1.dim(); ++d)
    FABRIC_CHECK(x1.size(d) == x2.size(d), ShapeError, op,
                 ": input batch dimensions do not match: ", shape_str(x1.sizes()), " and ",
                 shape_str(x2.sizes()), " differ in dim ", d);
  const int64_t out_f = w.size(0), in1 = w.size(1), in2 = w.size(2);
  FABRIC_CHECK(x1.size(-1) == in1 && x2.size(-1) == in2, ShapeError, op, ": input1 ",
               shape_str(x1.sizes()), " and input2 ", shape_str(x2.sizes()),
               " must end in the weight's in1_features ", in1, " and in2_features ", in2,
               " (weight ", shape_str(w.sizes()), ")");
  if (bias.defined()) {
    check_product_operands(op, x1, bias);
    FABRIC_CHECK(bias.dim() == 1 && bias.size(0) == out_f, ShapeError, op, ": bias ",
                 shape_str(bias.sizes()), " must be 1-D with out_features = ", out_f, " elements");
  }
  AutocastOff off(x1.device());
  // y[n, o] = sum_ij x1[n, i] W[o, i, j] x2[n, j]: x1 @ W (as (in1, out * in2)) gives
  // t[n, o, j], then a batched row-times-column with x2.
  const int64_t rows = x1.numel() / std::max<int64_t>(in1, 1);
  Shape out_shape = x1.sizes();
  out_shape.back() = out_f;
  const Tensor a = x1.reshape({rows, in1});
  const Tensor t =
      mm(a, w.permute({1, 0, 2}).reshape({in1, out_f * in2})).reshape({rows, out_f, in2});
  Tensor y = bmm(t, x2.reshape({rows, in2, 1})).reshape(out_shape);
  return bias.defined() ? add(y, bias) : y;
}

Tensor addcdiv(const Tensor& self_in, const Tensor& t1_in, const Tensor& t2_in,
               const Scalar& value) {
  const char* op = "addcdiv";
  Tensor self = self_in, t1 = t1_in, t2 = t2_in;
  apply_autocast(OpId::addcdiv, {&self, &t1, &t2});
  FABRIC_CHECK(self.defined() && t1.defined() && t2.defined(), ValueError, op,
               ": undefined operand");
  FABRIC_CHECK(self.device() == t1.device() && self.device() == t2.device(), DeviceError, op,
               ": operands on different devices (", self.device(), ", ", t1.device(), ", ",
               t2.device(), ")");
  FABRIC_CHECK(!is_integral(t1.dtype(), true) || !is_integral(t2.dtype(), true), DTypeError, op,
               ": integer division is not supported (tensor1 ", dtype_name(t1.dtype()),
               ", tensor2 ", dtype_name(t2.dtype()), "); divide with div() instead");
  const DType ct = result_type({&self, &t1, &t2});
  FABRIC_CHECK(!(is_integral(ct, true) && value.is_floating()), ValueError, op,
               ": for integral input tensors (", dtype_name(ct),
               "), argument value must not be a floating point number, got ", value.to_double());
  broadcast_shapes(broadcast_shapes(self.sizes(), t1.sizes(), op), t2.sizes(), op);
  AutocastOff off(self.device());
  // torch's order, self + value * t1 / t2 ((value * t1) / t2, then the sum), in the result dtype
  // (a float64 self makes the division float64); bfloat16 (and float16 off the CPU) in float32
  // with one rounding at the end, float16 on the CPU in Half arithmetic (value cast to float16,
  // every operation rounding), as torch 1.13's kernels do.
  const bool in_float32 =
      ct == DType::bfloat16 || (ct == DType::float16 && !self.device().is_cpu());
  const DType work = in_float32 ? DType::float32 : ct;
  const Tensor r = add(self.to(work), div(mul(t1.to(work), value), t2.to(work)));
  return in_float32 ? r.to(ct) : r;
}

}  // namespace fabric
