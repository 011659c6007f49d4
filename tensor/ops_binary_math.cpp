// atan2, fmod, remainder and logical_xor: torch's type promotion and broadcasting. fmod is C's
// fmod (the result has the sign of a), remainder Python's % (the sign of b). On integers both are
// exact and a zero divisor raises, as torch's CPU kernels ("ZeroDivisionError"; torch's CUDA
// kernels give garbage instead).
#include "tensor/autocast.h"
#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"
#include "tensor/math_kernels.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  for (const Tensor* t : {&a, &b}) {
    FABRIC_CHECK(t->defined(), ValueError, op, ": got an undefined tensor");
    FABRIC_CHECK(!is_fp8(t->dtype()), DTypeError, op, ": ", dtype_name(t->dtype()),
                 " tensors are not supported (fp8 is a storage format here; cast to a wider "
                 "dtype first)");
  }
  FABRIC_CHECK(a.device() == b.device() || b.dim() == 0, DeviceError, op,
               ": tensors on different devices (", a.device(), " and ", b.device(), ")");
}

// node_name: torch's for the Tensor overloads of fmod/remainder (FmodBackward1; the Scalar ones
// are ...Backward0).
Tensor math_binary(OpId id, const char* name, MathBinaryOp op, const Tensor& a_in,
                   const Tensor& b_in, DType ct, const char* node_name = nullptr) {
  Tensor a = a_in, b = b_in;
  apply_autocast(id, {&a, &b});
  const Shape shape = broadcast_shapes(a.sizes(), b.sizes(), name);
  FABRIC_CHECK(ct != DType::bool_, DTypeError, name, ": not supported for bool tensors (",
               dtype_name(a.dtype()), ", ", dtype_name(b.dtype()), ")");
  const Tensor ac = a.dtype() == ct ? a : a.detach().to(ct);
  Tensor bc = b.dtype() == ct ? b : b.detach().to(ct);
  if (bc.device() != a.device()) bc = bc.detach().to(a.device());
  if (is_integral(ct))
    FABRIC_CHECK(!any(eq(bc.detach(), 0)).item<bool>(), ValueError, name,
                 ": integer division by zero (a ", dtype_name(ct),
                 " divisor holds 0; integers have no NaN to give)");
  Tensor out = empty_like_operands(shape, {.dtype = ct, .device = a.device()}, {&a, &b});
  if (out.numel() > 0) {
    const StridedLoop loop = make_strided_loop(name, out, {&ac, &bc});
    math_binary_stub(out.device())(op, loop);
  }
  record_op(id, {a, b}, {&out}, nullptr, node_name);
  return out;
}

// A scalar divisor as a 0-dim tensor of the promoted dtype (torch's wrapped number): made in its
// own kind (int64, float64, bool) and cast, so a value the dtype cannot hold wraps or becomes inf
// as torch's does (fmod(int8, 300) divides by 44), instead of failing a fill_ range check.
Tensor scalar_operand(const Tensor& a, const Scalar& b, DType ct) {
  const DType own = b.is_floating() ? DType::float64 : b.is_bool() ? DType::bool_ : DType::int64;
  return full({}, b, {.dtype = own, .device = a.device()}).to(ct);
}

}  // namespace

Tensor atan2(const Tensor& a, const Tensor& b) {
  check_pair("atan2", a, b);
  return math_binary(OpId::atan2, "atan2", MathBinaryOp::atan2, a, b,
                     float_result_dtype(result_type({&a, &b})));
}

Tensor fmod(const Tensor& a, const Tensor& b) {
  check_pair("fmod", a, b);
  return math_binary(OpId::fmod, "fmod", MathBinaryOp::fmod, a, b, result_type({&a, &b}),
                     "FmodBackward1");
}
Tensor fmod(const Tensor& a, const Scalar& b) {
  check_pair("fmod", a, a);
  const DType ct = result_type({&a}, {&b});
  return math_binary(OpId::fmod, "fmod", MathBinaryOp::fmod, a, scalar_operand(a, b, ct), ct);
}

Tensor remainder(const Tensor& a, const Tensor& b) {
  check_pair("remainder", a, b);
  return math_binary(OpId::remainder, "remainder", MathBinaryOp::remainder, a, b,
                     result_type({&a, &b}), "RemainderBackward1");
}
Tensor remainder(const Tensor& a, const Scalar& b) {
  check_pair("remainder", a, a);
  const DType ct = result_type({&a}, {&b});
  return math_binary(OpId::remainder, "remainder", MathBinaryOp::remainder, a,
                     scalar_operand(a, b, ct), ct);
}

// Truthiness of each side (nonzero; NaN is true), then inequality: no derivative, nothing
// recorded.
Tensor logical_xor(const Tensor& a, const Tensor& b) {
  check_pair("logical_xor", a, b);
  return ne(ne(a.detach(), 0), ne(b.detach(), 0));
}

}  // namespace fabric
