// torch's remaining elementwise math (math_extra.h): compositions of existing ops, the kernels
// torch has no derivative for, and the forward values nn/math_extra.h differentiates. Kernels run
// on the host (host_elementwise.h); compositions run wherever their ops do.
#include "tensor/math_extra.h"

#include "tensor/elementwise_operands.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/host_elementwise.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"
#include "tensor/strided_loop.h"

namespace fabric {
namespace {

// pi / 180 and 180 / pi as torch's deg2rad / rad2deg write them.
constexpr double kPiOver180 = 0.017453292519943295769236907684886127134428718885417;
constexpr double k180OverPi = 57.295779513082320876798154814105170332405472466564;

// The dtypes a floating kernel takes: float64, float32, bfloat16, and float16 where torch's CPU
// kernel has it. DTypeError naming the op and the operands otherwise.
void check_float_kernel(const char* op, DType ct, bool half_ok, const Tensor& a,
                        const Tensor* b = nullptr) {
  const bool ok = ct == DType::float64 || ct == DType::float32 || ct == DType::bfloat16 ||
                  (half_ok && ct == DType::float16);
  FABRIC_CHECK(ok, DTypeError, op, ": not implemented for ", dtype_name(ct), " (input ",
               dtype_name(a.dtype()), b ? ", other " : "", b ? dtype_name(b->dtype()) : "",
               "); expected float64, float32", half_ok ? ", float16" : "", " or bfloat16 tensors");
}

// Integer floor division by zero has no value: refused before the kernel, as torch's
// "ZeroDivisionError".
void check_no_integer_zero(const char* op, DType ct, const Tensor& b) {
  if (!is_integral(ct)) return;
  FABRIC_CHECK(!any(eq(b.detach(), 0)).item<bool>(), ValueError, op,
               ": integer division by zero (ZeroDivisionError: a ", dtype_name(ct),
               " divisor holds 0)");
}

}  // namespace

// ---- compositions -------------------------------------------------------------------------------
Tensor true_divide(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor true_divide(const Tensor& a, const Scalar& b) { return div(a, b); }

Tensor deg2rad(const Tensor& a) {
  check_elementwise_operand("deg2rad", a);
  return mul(is_floating(a.dtype()) ? a : a.to(default_float_dtype()), kPiOver180);
}
Tensor rad2deg(const Tensor& a) {
  check_elementwise_operand("rad2deg", a);
  return mul(is_floating(a.dtype()) ? a : a.to(default_float_dtype()), k180OverPi);
}

Tensor sgn(const Tensor& a) { return sign(a); }

Tensor positive(const Tensor& a) {
  check_elementwise_operand("positive", a);
  FABRIC_CHECK(a.dtype() != DType::bool_, DTypeError,
               "positive: the `+` operator, on a bool tensor is not supported (got a bool tensor "
               "of shape ",
               shape_str(a.sizes()), "; use logical ops, or cast it to an integer dtype first)");
  return a;
}

Tensor square(const Tensor& a) {
  check_elementwise_operand("square", a);
  return pow(a.dtype() == DType::bool_ ? a.to(DType::int64) : a, 2);
}

Tensor frac(const Tensor& a) {
  check_floating_operand("frac", a);
  return sub(a, trunc(a));
}

Tensor clamp_min(const Tensor& a, const Scalar& min) { return clamp(a, min, std::nullopt); }
Tensor clamp_max(const Tensor& a, const Scalar& max) { return clamp(a, std::nullopt, max); }

Tensor float_power(const Tensor& a, const Tensor& exponent) {
  check_host_operands("float_power", a, &exponent);
  return pow(a.to(DType::float64), exponent.to(DType::float64));
}
Tensor float_power(const Tensor& a, const Scalar& exponent) {
  check_elementwise_operand("float_power", a);
  return pow(a.to(DType::float64), exponent.to_double());
}
Tensor float_power(const Scalar& a, const Tensor& exponent) {
  check_elementwise_operand("float_power", exponent);
  const Tensor e = exponent.to(DType::float64);
  return pow(full_like(e.detach(), a.to_double()), e);
}

// ---- no derivative ------------------------------------------------------------------------------
Tensor floor_divide(const Tensor& a, const Tensor& b) {
  check_host_operands("floor_divide", a, &b);
  const DType ct = result_type({&a, &b});
  FABRIC_CHECK(ct != DType::bool_, DTypeError,
               "floor_divide: not implemented for bool tensors (cast to an integer dtype first)");
  check_no_integer_zero("floor_divide", ct, b);
  return run_extra_binary("floor_divide", ExtraBinaryOp::floor_divide, a, b, ct);
}
Tensor floor_divide(const Tensor& a, const Scalar& b) {
  check_host_operands("floor_divide", a);
  const DType ct = result_type({&a}, {&b});
  return floor_divide(a, wrapped_scalar(a, b, ct));
}

Tensor nextafter(const Tensor& a, const Tensor& b) {
  check_host_operands("nextafter", a, &b);
  const DType ct = result_type({&a, &b});
  check_float_kernel("nextafter", ct, false, a, &b);
  return run_extra_binary("nextafter", ExtraBinaryOp::nextafter, a, b, ct);
}

Tensor heaviside(const Tensor& a, const Tensor& values) {
  check_host_operands("heaviside", a, &values);
  FABRIC_CHECK(a.dtype() == values.dtype(), DTypeError,
               "heaviside: not implemented for tensors of different dtypes (input ",
               dtype_name(a.dtype()), ", values ", dtype_name(values.dtype()),
               "); cast values to the input's dtype");
  return run_extra_binary("heaviside", ExtraBinaryOp::heaviside, a, values, a.dtype());
}

Tensor signbit(const Tensor& a) {
  check_host_operands("signbit", a);
  const Tensor ha = a.detach().to(Device::cpu());
  Tensor out =
      empty_like_operands(a.sizes(), {.dtype = DType::bool_, .device = Device::cpu()}, {&a});
  if (out.numel() > 0) {
    const StridedLoop loop = make_strided_loop("signbit", out, {&ha});
    signbit_stub(Device::cpu())(loop);
  }
  return a.device().is_cpu() ? out : out.to(a.device());
}

// ---- forward values -----------------------------------------------------------------------------
namespace math_values {

Tensor hypot(const Tensor& a, const Tensor& b) {
  check_host_operands("hypot", a, &b);
  const DType ct = result_type({&a, &b});
  check_float_kernel("hypot", ct, false, a, &b);
  return run_extra_binary("hypot", ExtraBinaryOp::hypot, a, b, ct);
}

Tensor logaddexp(const Tensor& a, const Tensor& b) {
  check_host_operands("logaddexp", a, &b);
  const DType ct = result_type({&a, &b});
  check_float_kernel("logaddexp", ct, false, a, &b);
  return run_extra_binary("logaddexp", ExtraBinaryOp::logaddexp, a, b, ct);
}

Tensor logaddexp2(const Tensor& a, const Tensor& b) {
  check_host_operands("logaddexp2", a, &b);
  const DType ct = result_type({&a, &b});
  check_float_kernel("logaddexp2", ct, false, a, &b);
  return run_extra_binary("logaddexp2", ExtraBinaryOp::logaddexp2, a, b, ct);
}

Tensor xlogy(const Tensor& x, const Tensor& y) {
  check_host_operands("xlogy", x, &y);
  const DType ct = float_result_dtype(result_type({&x, &y}));
  return run_extra_binary("xlogy", ExtraBinaryOp::xlogy, x, y, ct);
}

Tensor copysign(const Tensor& a, const Tensor& b) {
  check_host_operands("copysign", a, &b);
  const DType ct = float_result_dtype(result_type({&a, &b}));
  return run_extra_binary("copysign", ExtraBinaryOp::copysign, a, b, ct);
}

namespace {
Tensor compare_kernel(const char* op, ExtraBinaryOp kernel, const Tensor& a, const Tensor& b) {
  check_host_operands(op, a, &b);
  return run_extra_binary(op, kernel, a, b, result_type({&a, &b}));
}
}  // namespace

Tensor fmax(const Tensor& a, const Tensor& b) {
  return compare_kernel("fmax", ExtraBinaryOp::fmax, a, b);
}
Tensor fmin(const Tensor& a, const Tensor& b) {
  return compare_kernel("fmin", ExtraBinaryOp::fmin, a, b);
}
Tensor clamp_min(const Tensor& a, const Tensor& min) {
  return compare_kernel("clamp_min", ExtraBinaryOp::clamp_min, a, min);
}
Tensor clamp_max(const Tensor& a, const Tensor& max) {
  return compare_kernel("clamp_max", ExtraBinaryOp::clamp_max, a, max);
}

Tensor exp2(const Tensor& a) {
  check_host_operands("exp2", a);
  return run_extra_unary("exp2", ExtraUnaryOp::exp2, a, float_result_dtype(a.dtype()));
}

Tensor sinc(const Tensor& a) {
  check_host_operands("sinc", a);
  const DType ct = float_result_dtype(a.dtype());
  check_float_kernel("sinc", ct, false, a);
  return run_extra_unary("sinc", ExtraUnaryOp::sinc, a, ct);
}

Tensor logit(const Tensor& a, std::optional<double> eps) {
  check_host_operands("logit", a);
  const DType ct = float_result_dtype(a.dtype());
  check_float_kernel("logit", ct, false, a);
  return run_extra_unary("logit", ExtraUnaryOp::logit, a, ct, {.eps = eps.value_or(-1.0)});
}

Tensor logit_backward(const Tensor& grad, const Tensor& x, std::optional<double> eps) {
  check_host_operands("logit_backward", grad, &x);
  const DType ct = result_type({&grad, &x});
  check_float_kernel("logit_backward", ct, false, grad, &x);
  return run_extra_binary("logit_backward", ExtraBinaryOp::logit_backward, grad, x, ct,
                          {.eps = eps.value_or(-1.0)});
}

}  // namespace math_values
}  // namespace fabric
