// The special functions' forward values (special_functions.h), run on the host kernels of
// kernels/cpu/math_extra_unary.cpp and math_extra_binary.cpp.
#include "tensor/special_functions.h"

#include "tensor/error.h"
#include "tensor/host_elementwise.h"
#include "tensor/promotion.h"

namespace fabric::math_values {
namespace {

Tensor special_unary(const char* op, ExtraUnaryOp kernel, const Tensor& a,
                     const ExtraUnaryArgs& args = {}) {
  check_host_operands(op, a);
  const DType ct = float_result_dtype(a.dtype());
  FABRIC_CHECK(ct != DType::float16, DTypeError, op,
               ": not implemented for float16 (torch's CPU kernel has none); cast to float32 or "
               "bfloat16 first");
  return run_extra_unary(op, kernel, a, ct, args);
}

}  // namespace

Tensor lgamma(const Tensor& a) { return special_unary("lgamma", ExtraUnaryOp::lgamma, a); }
Tensor digamma(const Tensor& a) { return special_unary("digamma", ExtraUnaryOp::digamma, a); }
Tensor i0(const Tensor& a) { return special_unary("i0", ExtraUnaryOp::i0, a); }
Tensor i1(const Tensor& a) { return special_unary("special_i1", ExtraUnaryOp::i1, a); }
Tensor erfc(const Tensor& a) { return special_unary("erfc", ExtraUnaryOp::erfc, a); }

Tensor polygamma(int64_t n, const Tensor& a) {
  FABRIC_CHECK(n >= 0, ValueError, "polygamma(n, x): n must be >= 0, got ", n,
               " (torch: polygamma does not support negative n)");
  return special_unary("polygamma", ExtraUnaryOp::polygamma, a, {.n = n});
}

Tensor xlog1py(const Tensor& x, const Tensor& y) {
  check_host_operands("xlog1py", x, &y);
  const DType ct = float_result_dtype(result_type({&x, &y}));
  return run_extra_binary("xlog1py", ExtraBinaryOp::xlog1py, x, y, ct);
}

}  // namespace fabric::math_values
