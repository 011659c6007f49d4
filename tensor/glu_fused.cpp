// glu's fused forward and backward on tensors (glu_kernels.h): the halves as views of x, one
// strided loop over them, and the compositions for devices without the kernels.
#include "tensor/factory.h"
#include "tensor/glu_kernels.h"
#include "tensor/ops.h"

namespace fabric {

FABRIC_DEFINE_STUB(glu_stub, GluFn);
FABRIC_DEFINE_STUB(glu_backward_stub, GluBackwardFn);

Tensor glu_halves(const Tensor& x, int64_t dim) {
  const int64_t half = x.size(dim) / 2;
  const Tensor a = x.narrow(dim, 0, half), b = x.narrow(dim, half, half);
  const GluFn kernel = glu_stub.find(x.device());
  if (!kernel) return mul(a, sigmoid(b));
  Tensor out = empty(a.sizes(), {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) kernel(make_strided_loop("glu", out, {&a, &b}));
  return out;
}

Tensor glu_backward(const Tensor& grad, const Tensor& x, int64_t dim) {
  const GluBackwardFn kernel = glu_backward_stub.find(x.device());
  if (!kernel) return glu_backward_composed(grad, x, dim);
  const Tensor g = grad.dtype() == x.dtype() ? grad : grad.to(x.dtype());
  const int64_t half = x.size(dim) / 2;
  Tensor grad_x = empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()});
  if (grad_x.numel() == 0) return grad_x;
  const Tensor a = x.narrow(dim, 0, half), b = x.narrow(dim, half, half);
  const Tensor grad_a = grad_x.narrow(dim, 0, half), grad_b = grad_x.narrow(dim, half, half);
  kernel(make_strided_loop("glu_backward", grad_a, {&grad_b, &g, &a, &b}));
  return grad_x;
}

Tensor glu_backward_composed(const Tensor& grad, const Tensor& x, int64_t dim) {
  const int64_t half = x.size(dim) / 2;
  const Tensor a = x.narrow(dim, 0, half), sb = sigmoid(x.narrow(dim, half, half));
  const Tensor ga = mul(grad, sb);
  const Tensor gb = mul(mul(ga, a), add(neg(sb), 1.0));
  return cat({ga, gb}, dim);
}

}  // namespace fabric
