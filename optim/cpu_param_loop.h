// The dtype/device dispatch of the optimizers whose step is a plain per-element loop written here
// (Adamax, Adadelta): each PyTorch op of the step is one rounding in the loop body, so the loop is
// bit-exact with torch's CPU kernels without a vectorised kernel of its own.
#pragma once
#include "tensor/error.h"
#include "tensor/tensor.h"

namespace fabric::optim::param_loop {

// Calls body(T{}) with T = float or double for a CPU parameter of that dtype; DeviceError or
// DTypeError naming the optimizer otherwise.
template <class Body>
void dispatch_float_cpu(const char* who, const Tensor& param, Body&& body) {
  FABRIC_CHECK(param.device().is_cpu(), DeviceError, who,
               ": parameters on CPU are supported (got one on ", param.device().str(), ")");
  if (param.dtype() == DType::float32) return body(float{});
  if (param.dtype() == DType::float64) return body(double{});
  FABRIC_CHECK(false, DTypeError, who, ": float32 and float64 parameters are supported (got ",
               dtype_name(param.dtype()), ")");
}

}  // namespace fabric::optim::param_loop
