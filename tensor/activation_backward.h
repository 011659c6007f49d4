// Fused backward passes of the pointwise activations: one read of the gradient and of the saved
// tensor, one write, instead of the several passes a composition of ops would take. Plain
// functions (not recorded): autograd's derivative rules call them.
#pragma once
#include <cstdint>

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
};

// grad * f'(saved), in saved's dtype and shape (grad broadcasts to it).
Tensor activation_backward(ActGrad kind, const Tensor& grad, const Tensor& saved);

// Loop operands: 0 = grad_input (out), 1 = grad_output, 2 = saved; all of one dtype.
using ActivationBackwardFn = void (*)(ActGrad kind, const StridedLoop& loop);
FABRIC_DECLARE_STUB(activation_backward_stub, ActivationBackwardFn);

}  // namespace fabric
