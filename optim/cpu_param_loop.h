// The dtype/device dispatch of the optimizers whose step is a plain per-element loop written here
// (NAdam, RAdam, Adamax, Adadelta, Rprop, ASGD): each PyTorch op of the step is one rounding in
// the loop body, so the loop is bit-exact with torch's CPU kernels without a vectorised kernel of
// its own. Parameters the loop does not take (on CUDA, or bfloat16/float16) run the same step as
// tensor ops, one op per PyTorch op, each rounding in the parameter's dtype as PyTorch's
// single-tensor step does; on the CPU the two agree bit for bit (compose_everywhere, for tests).
#pragma once
#include <atomic>

#include "tensor/error.h"
#include "tensor/tensor.h"

namespace fabric::optim::param_loop {

// Tests: every parameter takes the tensor-op step, CPU float32/float64 ones included.
inline std::atomic<bool> compose_everywhere{false};

// Whether `param` takes the per-element loop (float32/float64 on the CPU) rather than the
// tensor-op step; DTypeError naming the optimizer for a parameter neither can update.
inline bool takes_loop(const char* who, const Tensor& param) {
  const DType dt = param.dtype();
  FABRIC_CHECK(is_floating(dt) && !is_fp8(dt), DTypeError, who,
               ": floating-point parameters are supported (got ", dtype_name(dt), ")");
  return !compose_everywhere.load(std::memory_order_relaxed) && param.device().is_cpu() &&
         (dt == DType::float32 || dt == DType::float64);
}

// Calls body(T{}) with T = float or double for a CPU parameter of that dtype (one takes_loop
// accepted).
template <class Body>
void dispatch_float_cpu(const Tensor& param, Body&& body) {
  if (param.dtype() == DType::float32) return body(float{});
  return body(double{});
}

}  // namespace fabric::optim::param_loop
