// cdist's derivative. Where it ran its own kernel (torch's _cdist_backward): the gradient w.r.t.
// x1 from the backward kernel, and w.r.t. x2 the same kernel with the operands swapped; not
// recorded ops, so the node refuses double backward, as torch's _cdist_backward has no
// derivative either. Where it ran torch's matmul formula as one node (p = 2, more than 25 rows,
// CPU): the formula's gradient, fused outside grad mode, and in grad mode (create_graph) the same
// steps as recorded ops, so that it differentiates again as torch's composition does.
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/cdist_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

// The matmul formula's gradient as recorded ops: sqrt's and clamp_min's (torch passes the
// gradient where r >= 1e-30), then matmul's w.r.t. the augmented rows.
std::pair<Tensor, Tensor> cdist_mm_backward_composed(const Tensor& grad, const Tensor& x1,
                                                     const Tensor& x2) {
  const auto [a, b] = cdist_mm_rows(x1, x2);
  const Tensor r = matmul(a, b.transpose(-1, -2));
  const Tensor floor = full({}, 1e-30, {.dtype = r.dtype(), .device = r.device()});
  const Tensor dist = sqrt(maximum(r, floor));
  const Tensor scale = where(ge(r, floor), div(grad, mul(dist, 2)), 0.0);
  const int64_t m = x1.size(-1);
  return {cdist_mm_input_grad(x1, matmul(scale, b), m, -2.0),
          cdist_mm_input_grad(x2, matmul(scale.transpose(-1, -2), a), m + 1, 1.0)};
}

FABRIC_DERIVATIVE(cdist) {
  const double p = attrs_of<CdistAttrs>(rec).p;
  const bool need1 = rec.inputs[0].requires_grad(), need2 = rec.inputs[1].requires_grad();
  Tensor x1 = saved(rec.inputs[0]), x2 = saved(rec.inputs[1]), dist = saved(rec.outputs[0]);
  if (attrs_of<CdistAttrs>(rec).mm) {
    return [need1, need2, x1, x2, dist](const Grads& g) {
      auto [d1, d2] = grad_enabled() ? cdist_mm_backward_composed(g[0], x1, x2)
                                     : cdist_mm_backward(g[0], x1, x2, dist);
      Grads r(2);
      if (need1) r[0] = d1;
      if (need2) r[1] = d2;
      return r;
    };
  }
  refuse_double_backward();
  return [p, need1, need2, x1, x2, dist](const Grads& g) {
    Grads r(2);
    if (need1) r[0] = cdist_backward(g[0], x1, x2, p, dist, /*wrt_x2=*/false);
    if (need2) r[1] = cdist_backward(g[0], x1, x2, p, dist, /*wrt_x2=*/true);
    return r;
  };
}

}  // namespace
}  // namespace fabric
