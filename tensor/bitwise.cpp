// The bitwise ops and gcd / lcm (bitwise.h): promotion and dtype checks, then the host kernels of
// kernels/cpu/bitwise.cpp.
#include "tensor/bitwise.h"

#include "tensor/elementwise_operands.h"
#include "tensor/error.h"
#include "tensor/host_elementwise.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"
#include "tensor/strided_loop.h"

namespace fabric {
namespace {

Tensor bitwise(const char* op, BitwiseOp kernel, const Tensor& a, const Tensor& b, bool bool_ok) {
  check_host_operands(op, a, &b);
  const DType ct = result_type({&a, &b});
  FABRIC_CHECK(is_integral(ct) || (bool_ok && ct == DType::bool_), DTypeError, op,
               ": not implemented for ", dtype_name(ct), " (input ", dtype_name(a.dtype()),
               ", other ", dtype_name(b.dtype()), "); expected integer", bool_ok ? " or bool" : "",
               " tensors");
  return run_bitwise(op, kernel, a, b, ct);
}

Tensor bitwise(const char* op, BitwiseOp kernel, const Tensor& a, const Scalar& b, bool bool_ok) {
  check_host_operands(op, a);
  return bitwise(op, kernel, a, wrapped_scalar(a, b, result_type({&a}, {&b})), bool_ok);
}

}  // namespace

Tensor bitwise_and(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_and", BitwiseOp::bit_and, a, b, true);
}
Tensor bitwise_and(const Tensor& a, const Scalar& b) {
  return bitwise("bitwise_and", BitwiseOp::bit_and, a, b, true);
}
Tensor bitwise_or(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_or", BitwiseOp::bit_or, a, b, true);
}
Tensor bitwise_or(const Tensor& a, const Scalar& b) {
  return bitwise("bitwise_or", BitwiseOp::bit_or, a, b, true);
}
Tensor bitwise_xor(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_xor", BitwiseOp::bit_xor, a, b, true);
}
Tensor bitwise_xor(const Tensor& a, const Scalar& b) {
  return bitwise("bitwise_xor", BitwiseOp::bit_xor, a, b, true);
}
Tensor bitwise_left_shift(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_left_shift", BitwiseOp::shift_left, a, b, false);
}
Tensor bitwise_left_shift(const Tensor& a, const Scalar& b) {
  return bitwise("bitwise_left_shift", BitwiseOp::shift_left, a, b, false);
}
Tensor bitwise_right_shift(const Tensor& a, const Tensor& b) {
  return bitwise("bitwise_right_shift", BitwiseOp::shift_right, a, b, false);
}
Tensor bitwise_right_shift(const Tensor& a, const Scalar& b) {
  return bitwise("bitwise_right_shift", BitwiseOp::shift_right, a, b, false);
}
Tensor gcd(const Tensor& a, const Tensor& b) { return bitwise("gcd", BitwiseOp::gcd, a, b, false); }
Tensor lcm(const Tensor& a, const Tensor& b) { return bitwise("lcm", BitwiseOp::lcm, a, b, false); }

Tensor bitwise_not(const Tensor& a) {
  check_host_operands("bitwise_not", a);
  const DType dt = a.dtype();
  FABRIC_CHECK(is_integral(dt, true), DTypeError, "bitwise_not: not implemented for ",
               dtype_name(dt), " (shape ", shape_str(a.sizes()),
               "); expected an integer or bool tensor");
  const Tensor ha = a.detach().to(Device::cpu());
  Tensor out = empty_like_operands(a.sizes(), {.dtype = dt, .device = Device::cpu()}, {&a});
  if (out.numel() > 0) {
    const StridedLoop loop = make_strided_loop("bitwise_not", out, {&ha});
    bitwise_not_stub(Device::cpu())(loop);
  }
  return a.device().is_cpu() ? out : out.to(a.device());
}

}  // namespace fabric
