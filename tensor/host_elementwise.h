// Runs the extra elementwise kernels (math_extra_kernels.h), which exist for the CPU only: the
// operands are broadcast, cast to the op's compute dtype and, on another device, copied to the
// host; the result (laid out as torch lays out a result it allocates) is copied back to the
// operands' device. No autograd: callers that are differentiable wrap these.
#pragma once

#include "tensor/dtype.h"
#include "tensor/math_extra_kernels.h"
#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

// Refuses an undefined or fp8 operand (ValueError, DTypeError) and operands on two devices
// (DeviceError, unless b is 0-dim), naming `op`.
void check_host_operands(const char* op, const Tensor& a, const Tensor* b = nullptr);

// out = f(a) in dtype `ct`.
Tensor run_extra_unary(const char* op, ExtraUnaryOp kernel, const Tensor& a, DType ct,
                       const ExtraUnaryArgs& args = {});
// out = f(a, b) in dtype `ct`, a and b broadcast against each other.
Tensor run_extra_binary(const char* op, ExtraBinaryOp kernel, const Tensor& a, const Tensor& b,
                        DType ct, const ExtraBinaryArgs& args = {});
Tensor run_bitwise(const char* op, BitwiseOp kernel, const Tensor& a, const Tensor& b, DType ct);

// A Scalar operand as a 0-dim tensor of dtype `ct` on a's device (torch's wrapped number): made
// in its own kind and cast, so a value `ct` cannot hold wraps or rounds as torch's does.
Tensor wrapped_scalar(const Tensor& a, const Scalar& s, DType ct);

}  // namespace fabric
