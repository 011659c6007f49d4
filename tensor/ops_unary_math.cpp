// torch's trigonometric, hyperbolic and logarithm family and erfinv (integers and bool promote to
// the default float dtype), the NaN/inf masks and nan_to_num.
#include <cmath>
#include <limits>

#include "tensor/autocast.h"
#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"
#include "tensor/math_kernels.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

Tensor math_unary(OpId id, const char* name, MathUnaryOp op, const Tensor& a_in) {
  Tensor a = a_in;
  apply_autocast(id, {&a});
  check_elementwise_operand(name, a);
  const DType out_dt = float_result_dtype(a.dtype());
  Tensor out = empty_like_operands(a.sizes(), {.dtype = out_dt, .device = a.device()}, {&a});
  if (out.numel() > 0) {
    // The cast is internal: autograd records the op on `a` itself.
    const Tensor ac = a.dtype() == out_dt ? a : a.detach().to(out_dt);
    const StridedLoop loop = make_strided_loop(name, out, {&ac});
    math_unary_stub(out.device())(op, loop);
  }
  record_op(id, {a}, {&out});
  return out;
}

}  // namespace

#define FABRIC_MATH_UNARY(name) \
  Tensor name(const Tensor& a) { return math_unary(OpId::name, #name, MathUnaryOp::name, a); }
FABRIC_MATH_UNARY(tan)
FABRIC_MATH_UNARY(asin)
FABRIC_MATH_UNARY(acos)
FABRIC_MATH_UNARY(atan)
FABRIC_MATH_UNARY(sinh)
FABRIC_MATH_UNARY(cosh)
FABRIC_MATH_UNARY(asinh)
FABRIC_MATH_UNARY(acosh)
FABRIC_MATH_UNARY(atanh)
FABRIC_MATH_UNARY(log2)
FABRIC_MATH_UNARY(log10)
FABRIC_MATH_UNARY(erfinv)
#undef FABRIC_MATH_UNARY

// The masks are comparisons (x != x is NaN alone; |x| < inf is false for NaN and +-inf alone), so
// every device that compares has them; integers and bool hold neither NaN nor inf.
Tensor isnan(const Tensor& a) {
  check_elementwise_operand("isnan", a);
  const Tensor x = a.detach();
  return is_floating(x.dtype()) ? ne(x, x)
                                : zeros(x.sizes(), {.dtype = DType::bool_, .device = x.device()});
}
Tensor isinf(const Tensor& a) {
  check_elementwise_operand("isinf", a);
  const Tensor x = a.detach();
  return is_floating(x.dtype()) ? eq(abs(x), std::numeric_limits<double>::infinity())
                                : zeros(x.sizes(), {.dtype = DType::bool_, .device = x.device()});
}
Tensor isfinite(const Tensor& a) {
  check_elementwise_operand("isfinite", a);
  const Tensor x = a.detach();
  return is_floating(x.dtype()) ? lt(abs(x), std::numeric_limits<double>::infinity())
                                : ones(x.sizes(), {.dtype = DType::bool_, .device = x.device()});
}

Tensor nan_to_num(const Tensor& a_in, double nan, std::optional<double> posinf,
                  std::optional<double> neginf) {
  Tensor a = a_in;
  apply_autocast(OpId::nan_to_num, {&a});
  check_elementwise_operand("nan_to_num", a);
  // Integers and bool have nothing to replace: a copy, as torch.
  if (!is_floating(a.dtype())) return a.detach().clone();
  const double big = max_finite(a.dtype());
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor x = a.detach();
  // torch static_casts each replacement to the dtype: one past its range becomes +-inf (fill_
  // would refuse it), e.g. float16 posinf=1e6 leaves inf as it is.
  auto as_dtype = [&](double v) {
    return full_like(x, scalar_tensor(v, {.dtype = DType::float64}).to(x.dtype()).item<double>());
  };
  Tensor out = where(ne(x, x), as_dtype(nan), x);
  out = where(eq(x, inf), as_dtype(posinf.value_or(big)), out);
  out = where(eq(x, -inf), as_dtype(neginf.value_or(-big)), out);
  record_op(OpId::nan_to_num, {a}, {&out});
  return out;
}

}  // namespace fabric
