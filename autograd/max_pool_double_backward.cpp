// The rank-generic derivative of the max pools' gradients (autograd/max_pool_double_backward.h).
#include "autograd/max_pool_double_backward.h"

#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {

FunctionNode::Backward max_pool_backward_rule(const OpRecord& rec, int spatial_dims,
                                              MaxPoolIndicesFn indices) {
  Pool2dAttrs a = attrs_of<Pool2dAttrs>(rec);
  const bool need_g = rec.inputs[0].requires_grad(), need_x = rec.inputs[1].requires_grad();
  Tensor x = need_g ? saved(rec.inputs[1]) : Tensor();
  Shape g_shape = rec.inputs[0].sizes(), x_shape = rec.inputs[1].sizes();
  const TensorOptions x_opts{.dtype = rec.inputs[1].dtype(), .device = rec.inputs[1].device()};
  return [a, x, g_shape, x_shape, x_opts, need_g, need_x, spatial_dims, indices](const Grads& u) {
    Grads r{Tensor(), need_x ? zeros(x_shape, x_opts) : Tensor()};
    if (!need_g) return r;
    // Per plane: positions (planes, out) into u's (planes, in), in and out the plane sizes.
    int64_t in = 1, out = 1;
    for (int d = 1; d <= spatial_dims; ++d) {
      in *= x.size(-d);
      out *= g_shape.end()[-d];
    }
    const int64_t planes = in > 0 ? x.numel() / in : 0;
    Tensor at = indices(x, a).reshape({planes, out});
    r[0] = gather(u[0].reshape({planes, in}), 1, at).reshape(g_shape);
    return r;
  };
}

}  // namespace fabric
