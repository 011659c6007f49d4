// cdist's derivative where it ran its own kernel (torch's _cdist_backward): the gradient w.r.t.
// x1 from the backward kernel, and w.r.t. x2 the same kernel with the operands swapped. Not
// recorded ops, and not in double_backward.cpp's list: torch's _cdist_backward has no derivative
// either, so a second backward raises, as torch's does.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/cdist_kernels.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

FABRIC_DERIVATIVE(cdist) {
  const double p = attrs_of<CdistAttrs>(rec).p;
  const bool need1 = rec.inputs[0].requires_grad(), need2 = rec.inputs[1].requires_grad();
  Tensor x1 = saved(rec.inputs[0]), x2 = saved(rec.inputs[1]), dist = saved(rec.outputs[0]);
  return [p, need1, need2, x1, x2, dist](const Grads& g) {
    Grads r(2);
    if (need1) r[0] = cdist_backward(g[0], x1, x2, p, dist, /*wrt_x2=*/false);
    if (need2) r[1] = cdist_backward(g[0], x1, x2, p, dist, /*wrt_x2=*/true);
    return r;
  };
}

}  // namespace
}  // namespace fabric
