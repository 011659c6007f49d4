// Fused backward passes of the pointwise activations: one read of the gradient and of the saved
// tensor, one write, instead of the several passes a composition of ops would take. Plain
// functions (not recorded): autograd's derivative rules call them.
#pragma once
#include <cstdint>

#include "tensor/activation_kernels.h"
#include "tensor/dispatch_stub.h"
#include "tensor/strided_loop.h"
#include "tensor/tensor.h"

namespace fabric {

enum class ActGrad : uint8_t {
  gelu_erf,     // saved: input x
  gelu_tanh,    // saved: input x
  silu,         // saved: input x
  sigmoid,      // saved: output y
  tanh,         // saved: output y
  relu,         // saved: output y
  // The parameterised activations (tensor/activation_kernels.h), with torch's gradients at their
  // kinks; saved: input x.
  leaky_relu,   // x > 0 ? g : g * negative_slope
  elu,          // x <= 0 ? g * input_scale * alpha * scale * exp(input_scale * x) : g * scale
  softplus,     // beta * x > threshold ? g : g * sigmoid(beta * x)
  hardtanh,     // x <= min_val || x >= max_val ? 0 : g
  mish,         // g * (tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2)), sp = log1p(exp(x))
  hardswish,    // x < -3 ? 0 : x <= 3 ? g * (x / 3 + 1/2) : g
  hardsigmoid,  // -3 < x < 3 ? g * float(1/6) : 0 (torch's float constant, in float64 too)
};

// grad * f'(saved), in saved's dtype and shape (grad broadcasts to it). `params`: those of the
// parameterised kinds (the others ignore them).
Tensor activation_backward(ActGrad kind, const Tensor& grad, const Tensor& saved,
                           const ActivationParams& params = {});

// Loop operands: 0 = grad_input (out), 1 = grad_output, 2 = saved; all of one dtype.
using ActivationBackwardFn = void (*)(ActGrad kind, const ActivationParams& params,
                                      const StridedLoop& loop);
FABRIC_DECLARE_STUB(activation_backward_stub, ActivationBackwardFn);

}  // namespace fabric
