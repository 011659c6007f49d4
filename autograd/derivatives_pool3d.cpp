// Derivatives of the 3-d pools, adaptive max pooling and unfold/fold, and of the 3-d pool
// gradients as recorded ops (double backward). Every gradient here is itself made of recorded
// ops, so a gradient taken with create_graph differentiates again.
#include "autograd/derivatives.h"
#include "autograd/max_pool_double_backward.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/max_pool3d_saved.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_pooling3d.h"

namespace fabric {
namespace {

// The gradient goes to the positions the forward chose (kept in the record, as torch's indices).
FABRIC_DERIVATIVE(max_pool3d) {
  const MaxPool3dRecord& r = attrs_of<MaxPool3dRecord>(rec);
  Pool2dAttrs a = r.window;
  Tensor x = saved(rec.inputs[0]), at = saved(r.indices);
  return [a, x, at](const Grads& g) { return Grads{max_pool3d_backward_at(g[0], x, at, a)}; };
}

// As max_pool2d_backward's rule (autograd/max_pool_double_backward.h).
FABRIC_DERIVATIVE(max_pool3d_backward) {
  return max_pool_backward_rule(rec, 3, &max_pool3d_indices);
}

FABRIC_DERIVATIVE(avg_pool3d) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  Shape shape = rec.inputs[0].sizes();
  return [a, shape](const Grads& g) { return Grads{avg_pool3d_backward(g[0], shape, a)}; };
}

// Linear in g and avg_pool3d's adjoint: d/dg = avg_pool3d(u), with the same divisors.
FABRIC_DERIVATIVE(avg_pool3d_backward) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  return [a](const Grads& u) { return Grads{avg_pool3d(u[0], a.kernel, a.stride, a.padding)}; };
}

FABRIC_DERIVATIVE(adaptive_avg_pool3d) {
  Shape shape = rec.inputs[0].sizes();
  return [shape](const Grads& g) { return Grads{adaptive_avg_pool3d_backward(g[0], shape)}; };
}

// Linear in g and adaptive_avg_pool3d's adjoint: d/dg = adaptive_avg_pool3d(u) to g's size.
FABRIC_DERIVATIVE(adaptive_avg_pool3d_backward) {
  const Shape& g = rec.inputs[0].sizes();
  std::vector<int64_t> out_size{g.end()[-3], g.end()[-2], g.end()[-1]};
  return [out_size](const Grads& u) { return Grads{adaptive_avg_pool3d(u[0], out_size)}; };
}

// The gradient goes to each window's recorded maximum: scatter_add of recorded ops, per plane of
// the last `spatial` dims (the indices are flat over them).
FunctionNode::Backward adaptive_max_pool_rule(const OpRecord& rec, int64_t spatial) {
  Tensor idx = saved(rec.outputs[1]);
  Shape shape = rec.inputs[0].sizes();
  return [idx, shape, spatial](const Grads& g) {
    int64_t in = 1, out = 1;
    for (int64_t d = 1; d <= spatial; ++d) {
      in *= shape.end()[-d];
      out *= idx.size(-d);
    }
    const int64_t planes = in > 0 ? numel_of(shape) / in : 0;
    Tensor gp = g[0].reshape({planes, out}), ip = idx.reshape({planes, out});
    return Grads{scatter_add_into_zeros({planes, in}, 1, ip, gp).reshape(shape)};
  };
}

FABRIC_DERIVATIVE(adaptive_max_pool2d) { return adaptive_max_pool_rule(rec, 2); }

FABRIC_DERIVATIVE(adaptive_max_pool3d) { return adaptive_max_pool_rule(rec, 3); }

// unfold copies each pixel into the columns that read it; its adjoint sums them back (fold).
FABRIC_DERIVATIVE(unfold) {
  FoldAttrs a = attrs_of<FoldAttrs>(rec);
  const Shape& x = rec.inputs[0].sizes();
  std::vector<int64_t> size{x.end()[-2], x.end()[-1]};
  return [a, size](const Grads& g) {
    return Grads{fold(g[0], size, a.kernel, a.dilation, a.padding, a.stride)};
  };
}

FABRIC_DERIVATIVE(fold) {
  FoldAttrs a = attrs_of<FoldAttrs>(rec);
  return [a](const Grads& g) {
    return Grads{unfold(g[0], a.kernel, a.dilation, a.padding, a.stride)};
  };
}

}  // namespace
}  // namespace fabric
