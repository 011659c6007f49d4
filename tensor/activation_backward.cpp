// The op side of the fused activation backward: dtype/shape decisions, then the device kernel.
#include "tensor/activation_backward.h"

#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"

namespace fabric {

FABRIC_DEFINE_STUB(activation_backward_stub, ActivationBackwardFn);

Tensor activation_backward(ActGrad kind, const Tensor& grad, const Tensor& saved,
                           const ActivationParams& params) {
  FABRIC_CHECK(is_floating(saved.dtype()) && !is_fp8(saved.dtype()), DTypeError,
               "activation_backward: expects a floating tensor, got ", dtype_name(saved.dtype()));
  const Tensor g = grad.dtype() == saved.dtype() ? grad : grad.to(saved.dtype());
  Tensor out = empty_like_operands(
      saved.sizes(), {.dtype = saved.dtype(), .device = saved.device()}, {&g, &saved});
  if (out.numel() == 0) return out;
  const StridedLoop loop = make_strided_loop("activation_backward", out, {&g, &saved});
  activation_backward_stub(out.device())(kind, params, loop);
  return out;
}

}  // namespace fabric
