// Kernel stubs of the pointwise activations added beside tensor/activation_kernels.h's:
// log_sigmoid, hardshrink, softshrink and threshold (tensor/ops_activation_extra.cpp). Each has a
// fused forward and a fused backward (grad * f'(x), one pass) with torch's values at the kinks.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/strided_loop.h"
#include "tensor/tensor.h"

namespace fabric {

// torch 1.13's formulas; each op reads only its own parameters.
//   log_sigmoid  min(x, 0) - log1p(exp(-|x|))         grad: g * sigmoid(-x) (1/2 at 0)
//   hardshrink   -lambd <= x <= lambd ? 0 : x         grad: -lambd <= x <= lambd ? 0 : g
//   softshrink   x > lambd ? x - lambd : x < -lambd ? x + lambd : 0 (NaN too, as torch's CPU
//                kernel)                              grad: as hardshrink's
//   threshold    x <= threshold ? value : x           grad: x <= threshold ? 0 : g
// NaN inputs propagate except in softshrink; their gradient passes g (the comparisons are false).
enum class ExtraActivation : uint8_t { log_sigmoid, hardshrink, softshrink, threshold };

struct ExtraActivationParams {
  double lambd = 0.5;
  double threshold = 0.0, value = 0.0;
};

// out = f(a); loop (out, a) of one floating dtype; fp16/bf16 compute in float, float64 in double.
using ExtraActivationFn = void (*)(ExtraActivation op, const ExtraActivationParams& params,
                                   const StridedLoop& loop);
FABRIC_DECLARE_STUB(extra_activation_stub, ExtraActivationFn);

// Loop operands: 0 = grad_input (out), 1 = grad_output, 2 = the saved input x; one dtype.
FABRIC_DECLARE_STUB(extra_activation_backward_stub, ExtraActivationFn);

// grad * f'(x) in x's dtype and shape (grad broadcasts to it); not recorded: autograd's rules
// call it outside grad mode.
Tensor extra_activation_backward(ExtraActivation op, const Tensor& grad, const Tensor& x,
                                 const ExtraActivationParams& params = {});

}  // namespace fabric
