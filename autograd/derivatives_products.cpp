// Derivatives of the product ops that record their own node: addmm, baddbmm, addbmm (GEMMs on
// transposed views, scaled by alpha; self's gradient is beta times the output's, summed to its
// shape) and diagonal (the gradient written onto the diagonal of zeros). All are recorded ops,
// so they support double backward.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/products_internal.h"

namespace fabric {
namespace {

Tensor mT(const Tensor& t) { return t.transpose(-1, -2); }

// torch's maybe_multiply: a factor of 1 adds no op to the gradient's graph.
Tensor scaled(const Tensor& t, const Scalar& s) { return s.to_double() == 1.0 ? t : mul(t, s); }

// Saves what the factors' gradients need: a for b's, b for a's.
struct SavedFactors {
  Tensor a, b;
  bool need_self;
  Shape self_shape;
};
SavedFactors save_factors(const OpRecord& rec) {
  const bool need_a = rec.inputs[1].requires_grad(), need_b = rec.inputs[2].requires_grad();
  return {need_b ? saved(rec.inputs[1]) : Tensor(), need_a ? saved(rec.inputs[2]) : Tensor(),
          rec.inputs[0].requires_grad(), rec.inputs[0].sizes()};
}

FABRIC_DERIVATIVE(addmm) {
  const AddmmAttrs at = attrs_of<AddmmAttrs>(rec);
  const SavedFactors f = save_factors(rec);
  return [at, f](const Grads& g) {
    const Tensor& go = g[0];  // (M, N)
    return Grads{f.need_self ? sum_to(scaled(go, at.beta), f.self_shape) : Tensor(),
                 f.b.defined() ? scaled(mm(go, f.b.t()), at.alpha) : Tensor(),
                 f.a.defined() ? scaled(mm(f.a.t(), go), at.alpha) : Tensor()};
  };
}

FABRIC_DERIVATIVE(baddbmm) {
  const AddmmAttrs at = attrs_of<AddmmAttrs>(rec);
  const SavedFactors f = save_factors(rec);
  return [at, f](const Grads& g) {
    const Tensor& go = g[0];  // (B, M, N)
    return Grads{f.need_self ? sum_to(scaled(go, at.beta), f.self_shape) : Tensor(),
                 f.b.defined() ? scaled(bmm(go, mT(f.b)), at.alpha) : Tensor(),
                 f.a.defined() ? scaled(bmm(mT(f.a), go), at.alpha) : Tensor()};
  };
}

FABRIC_DERIVATIVE(addbmm) {
  const AddmmAttrs at = attrs_of<AddmmAttrs>(rec);
  const SavedFactors f = save_factors(rec);
  const int64_t batch = rec.inputs[1].size(0);
  return [at, f, batch](const Grads& g) {
    // Every batch entry's product received the same (M, N) gradient.
    const Tensor go = g[0].unsqueeze(0).expand({batch, g[0].size(0), g[0].size(1)});
    return Grads{f.need_self ? sum_to(scaled(g[0], at.beta), f.self_shape) : Tensor(),
                 f.b.defined() ? scaled(bmm(go, mT(f.b)), at.alpha) : Tensor(),
                 f.a.defined() ? scaled(bmm(mT(f.a), go), at.alpha) : Tensor()};
  };
}

FABRIC_DERIVATIVE(diagonal) {
  const DiagonalAttrs a = attrs_of<DiagonalAttrs>(rec);
  return [a](const Grads& g) {
    Tensor gi = zeros(a.input_shape, {.dtype = g[0].dtype(), .device = g[0].device()});
    diagonal(gi, a.offset, a.dim1, a.dim2).copy_(g[0]);
    return Grads{gi};
  };
}

}  // namespace
}  // namespace fabric
