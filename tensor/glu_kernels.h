// glu's fused passes: the forward a * sigmoid(b) and the backward's two input-gradient halves,
// each one pass over the halves a, b of x along glu's dim (strided views when dim is not the
// last), instead of a sigmoid pass, a multiply and (backward) five more passes and a cat.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/strided_loop.h"
#include "tensor/tensor.h"

namespace fabric {

// Loop operands: 0 = out, 1 = a, 2 = b; out = a * sigmoid(b) (torch's a * (1 / (1 + exp(-b)))).
using GluFn = void (*)(const StridedLoop& loop);
FABRIC_DECLARE_STUB(glu_stub, GluFn);

// Loop operands: 0 = grad_a, 1 = grad_b (written too), 2 = grad, 3 = a, 4 = b; with s =
// sigmoid(b), grad_a = s * grad and grad_b = (1 - s) * s * a * grad, torch's glu_backward.
// One floating dtype; fp16/bf16 compute in float, float64 in double.
using GluBackwardFn = void (*)(const StridedLoop& loop);
FABRIC_DECLARE_STUB(glu_backward_stub, GluBackwardFn);

// a * sigmoid(b) for the halves of x along dim (wrapped, of even size): one fused pass where the
// device has the kernel, mul(a, sigmoid(b)) elsewhere. Records nothing (glu() records its node).
Tensor glu_halves(const Tensor& x, int64_t dim);

// The gradient w.r.t. x of sum(grad * glu(x, dim)) in x's dtype and shape: one fused pass where
// the device has the kernel, else glu_backward_composed. Not recorded: autograd's rule calls it
// outside grad mode.
Tensor glu_backward(const Tensor& grad, const Tensor& x, int64_t dim);

// The same gradient as recorded ops (sigmoid, muls and a cat), so that it differentiates again
// (create_graph).
Tensor glu_backward_composed(const Tensor& grad, const Tensor& x, int64_t dim);

}  // namespace fabric
