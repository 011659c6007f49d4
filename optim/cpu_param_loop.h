// The dtype/device dispatch of the optimizers whose step is a plain per-element loop written here
// (NAdam, RAdam, Adamax, Adadelta, Rprop, ASGD): each PyTorch op of the step is one rounding in
// the loop body, so the loop is bit-exact with torch's CPU kernels without a vectorised kernel of
// its own. Parameters the loop does not take (on CUDA, or bfloat16/float16) run the same step as
// tensor ops, one op per PyTorch op, each rounding in the parameter's dtype as PyTorch's
// single-tensor step does (but a 16-bit addcdiv_, which torch rounds once: addcdiv_ below); on
// the CPU the two agree bit for bit (compose_everywhere, for tests).
#pragma once
#include <atomic>

#include "tensor/error.h"
#include "tensor/ops.h"
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

// The tensor-op step's Adam moments (NAdam, RAdam): exp_avg.mul_(beta1).add_(g, alpha=1 - beta1)
// and exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2), in place.
inline void adam_moments_(Tensor m, Tensor v, const Tensor& g, double beta1, double beta2) {
  mul_(m, beta1);
  add_(m, g, 1 - beta1);
  mul_(v, beta2);
  v.copy_(addcmul(v, g, g, 1 - beta2));
}

// param.addcdiv_(t1, t2, value=value) of NAdam's and Adamax's steps as torch 1.13's CPU kernel
// computes it: self + (value * t1) / t2, each op rounding in float32/float64, while bfloat16
// computes that in float32 and rounds once. float16, which that kernel refuses, rounds once too,
// as fabric's fused Adam does.
inline void addcdiv_(Tensor p, const Tensor& t1, const Tensor& t2, double value) {
  if (p.dtype() == DType::bfloat16 || p.dtype() == DType::float16) {
    const DType f32 = DType::float32;
    p.copy_(addcdiv(p.to(f32), t1.to(f32), t2.to(f32), value));
    return;
  }
  add_(p, div(mul(t1, value), t2));
}

}  // namespace fabric::optim::param_loop
