// Unary elementwise ops: the transcendental ones promote integers to the default float dtype,
// neg/abs/relu and the rounding ops (floor ... sign) keep integer dtypes, gelu/silu take floating
// tensors only (as in PyTorch).
#include "tensor/autocast.h"
#include "tensor/elementwise_kernels.h"
#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

enum class Kind { promote_float, floating_only, keep_numeric };

Tensor run_unary(const char* name, UnaryOp op, const Tensor& a, DType out_dt) {
  Tensor out = empty_like_operands(a.sizes(), {.dtype = out_dt, .device = a.device()}, {&a});
  if (out.numel() == 0) return out;
  const Tensor ac = cast_for_kernel(a, out_dt);
  const StridedLoop loop = make_strided_loop(name, out, {&ac});
  unary_stub(out.device())(op, loop);
  return out;
}

Tensor unary(OpId id, const char* name, UnaryOp op, Kind kind, const Tensor& a_in,
             const void* attrs = nullptr) {
  Tensor a = a_in;
  apply_autocast(id, {&a});
  check_elementwise_operand(name, a);
  const DType dt = a.dtype();
  DType out_dt = dt;
  switch (kind) {
    case Kind::promote_float:
      out_dt = float_result_dtype(dt);
      break;
    case Kind::floating_only:
      FABRIC_CHECK(is_floating(dt), DTypeError, name, ": expects a floating-point tensor, got ",
                   dtype_name(dt), " (cast with .to(float32) first)");
      break;
    case Kind::keep_numeric:
      FABRIC_CHECK(dt != DType::bool_, DTypeError, name, ": not supported for bool tensors",
                   op == UnaryOp::neg
                       ? " (negation, the `-` operator, on a bool tensor; to invert a mask use "
                         "logical_not())"
                       : "");
      break;
  }
  Tensor out = run_unary(name, op, a, out_dt);
  record_op(id, {a}, {&out}, attrs);
  return out;
}

}  // namespace

Tensor neg(const Tensor& a) { return unary(OpId::neg, "neg", UnaryOp::neg, Kind::keep_numeric, a); }
Tensor abs(const Tensor& a) { return unary(OpId::abs, "abs", UnaryOp::abs, Kind::keep_numeric, a); }
Tensor relu(const Tensor& a) {
  return unary(OpId::relu, "relu", UnaryOp::relu, Kind::keep_numeric, a);
}
Tensor exp(const Tensor& a) {
  return unary(OpId::exp, "exp", UnaryOp::exp, Kind::promote_float, a);
}
Tensor log(const Tensor& a) {
  return unary(OpId::log, "log", UnaryOp::log, Kind::promote_float, a);
}
Tensor sqrt(const Tensor& a) {
  return unary(OpId::sqrt, "sqrt", UnaryOp::sqrt, Kind::promote_float, a);
}
Tensor rsqrt(const Tensor& a) {
  return unary(OpId::rsqrt, "rsqrt", UnaryOp::rsqrt, Kind::promote_float, a);
}
Tensor tanh(const Tensor& a) {
  return unary(OpId::tanh, "tanh", UnaryOp::tanh, Kind::promote_float, a);
}
Tensor sigmoid(const Tensor& a) {
  return unary(OpId::sigmoid, "sigmoid", UnaryOp::sigmoid, Kind::promote_float, a);
}
Tensor sin(const Tensor& a) {
  return unary(OpId::sin, "sin", UnaryOp::sin, Kind::promote_float, a);
}
Tensor cos(const Tensor& a) {
  return unary(OpId::cos, "cos", UnaryOp::cos, Kind::promote_float, a);
}
Tensor reciprocal(const Tensor& a) {
  return unary(OpId::reciprocal, "reciprocal", UnaryOp::reciprocal, Kind::promote_float, a);
}
Tensor log1p(const Tensor& a) {
  return unary(OpId::log1p, "log1p", UnaryOp::log1p, Kind::promote_float, a);
}
Tensor expm1(const Tensor& a) {
  return unary(OpId::expm1, "expm1", UnaryOp::expm1, Kind::promote_float, a);
}
Tensor erf(const Tensor& a) {
  return unary(OpId::erf, "erf", UnaryOp::erf, Kind::promote_float, a);
}
// The rounding ops keep integer dtypes (a copy: the values are whole) and refuse bool, as torch.
Tensor floor(const Tensor& a) {
  return unary(OpId::floor, "floor", UnaryOp::floor, Kind::keep_numeric, a);
}
Tensor ceil(const Tensor& a) {
  return unary(OpId::ceil, "ceil", UnaryOp::ceil, Kind::keep_numeric, a);
}
Tensor round(const Tensor& a) {
  return unary(OpId::round, "round", UnaryOp::round, Kind::keep_numeric, a);
}
Tensor trunc(const Tensor& a) {
  return unary(OpId::trunc, "trunc", UnaryOp::trunc, Kind::keep_numeric, a);
}
Tensor sign(const Tensor& a) {
  // torch.sign of a bool tensor is the tensor itself (a copy): true is +1, false 0.
  if (a.defined() && a.dtype() == DType::bool_) return a.detach().clone();
  return unary(OpId::sign, "sign", UnaryOp::sign, Kind::keep_numeric, a);
}
Tensor silu(const Tensor& a) {
  return unary(OpId::silu, "silu", UnaryOp::silu, Kind::floating_only, a);
}

Tensor gelu(const Tensor& a, std::string_view approximate) {
  FABRIC_CHECK(approximate == "none" || approximate == "tanh", ValueError,
               "gelu: approximate must be \"none\" or \"tanh\", got \"", approximate, "\"");
  const GeluAttrs attrs{approximate == "tanh"};
  return unary(OpId::gelu, "gelu", attrs.tanh_approx ? UnaryOp::gelu_tanh : UnaryOp::gelu_erf,
               Kind::floating_only, a, &attrs);
}

Tensor logical_not(const Tensor& a) {
  check_elementwise_operand("logical_not", a);
  // Not differentiable: nothing to record.
  return run_unary("logical_not", UnaryOp::logical_not, cast_for_kernel(a, DType::bool_),
                   DType::bool_);
}

Tensor clamp(const Tensor& a_in, std::optional<Scalar> min, std::optional<Scalar> max) {
  Tensor a = a_in;
  apply_autocast(OpId::clamp, {&a});
  check_elementwise_operand("clamp", a);
  FABRIC_CHECK(min.has_value() || max.has_value(), ValueError,
               "clamp: at least one of 'min' or 'max' must be given (tensor of shape ",
               shape_str(a.sizes()), ")");
  // The bounds take part in type promotion: clamp(int tensor, 0.5) is float.
  const DType ct = min && max ? result_type({&a}, {&*min, &*max})
                   : min      ? result_type({&a}, {&*min})
                              : result_type({&a}, {&*max});
  // Each bound is converted into the result dtype as PyTorch converts it: refused when out of its
  // range, and a negative integer wraps for uint8 (clamp(uint8, -1, 5) has the lower bound 255).
  for (std::optional<Scalar>* bound : {&min, &max}) {
    if (!*bound) continue;
    check_scalar_fits("clamp", **bound, ct);
    if (ct == DType::uint8 && (*bound)->is_integral())
      *bound = Scalar(static_cast<uint8_t>((*bound)->to_int()));
  }
  Tensor out = empty_like_operands(a.sizes(), {.dtype = ct, .device = a.device()}, {&a});
  if (out.numel() > 0) {
    const Tensor ac = cast_for_kernel(a, ct);
    const StridedLoop loop = make_strided_loop("clamp", out, {&ac});
    clamp_stub(out.device())(loop, min ? &*min : nullptr, max ? &*max : nullptr);
  }
  ClampAttrs attrs{min, max};
  // Torch's node for clamp with Scalar bounds (its second overload).
  record_op(OpId::clamp, {a}, {&out}, &attrs, "ClampBackward1");
  return out;
}

}  // namespace fabric
