// Derivatives of scatter, scatter_reduce and index_add (the index-write ops with their own kernel;
// index_copy, index_fill, index, index_put and the mask ops are compositions whose parts
// differentiate). scatter_reduce follows torch's scatter_reduce_backward, reduction by reduction.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/index_write_attrs.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"

namespace fabric {

Tensor src_read_part(const Tensor& src, const Shape& index_shape) {
  Tensor part = src;
  for (size_t d = 0; d < index_shape.size(); ++d)
    if (part.size(static_cast<int64_t>(d)) != index_shape[d])
      part = part.narrow(static_cast<int64_t>(d), 0, index_shape[d]);
  return part;
}

Tensor grad_to_src_shape(const Tensor& grad, const Shape& src_shape) {
  if (grad.sizes() == src_shape) return grad;
  std::vector<int64_t> pads;  // pad's order: the last dim first, (before, after) each
  for (size_t d = src_shape.size(); d-- > 0;) {
    pads.push_back(0);
    pads.push_back(src_shape[d] - grad.size(static_cast<int64_t>(d)));
  }
  return pad(grad, pads);
}

namespace {

// scatter: self keeps its gradient where nothing was written; src gets the written positions'.
FABRIC_DERIVATIVE(scatter) {
  Tensor idx = saved(rec.inputs[1]);
  const int64_t dim = attrs_of<IndexAttrs>(rec).dim;
  const bool has_src = rec.num_inputs > 2;  // scatter(a, dim, index, value) records no src
  const bool need_src = has_src && rec.inputs[2].requires_grad();
  const Shape src_shape = has_src ? rec.inputs[2].sizes() : Shape{};
  return [idx, dim, has_src, need_src, src_shape](const Grads& g) {
    Grads out{scatter(g[0], dim, idx, Scalar(0)), Tensor()};
    if (has_src)
      out.push_back(need_src ? grad_to_src_shape(gather(g[0], dim, idx), src_shape) : Tensor());
    return out;
  };
}

// index_add: self passes the gradient through; source gets the rows it was added into (alpha is
// already in the recorded source, which index_add scales before the node).
FABRIC_DERIVATIVE(index_add) {
  Tensor idx = saved(rec.inputs[1]);
  const int64_t dim = attrs_of<IndexAttrs>(rec).dim;
  const bool need_src = rec.inputs[2].requires_grad();
  return [idx, dim, need_src](const Grads& g) {
    return Grads{g[0], Tensor(), need_src ? index_select(g[0], dim, idx.reshape({-1})) : Tensor()};
  };
}

// src's gradient for "prod": the product of the others at its position, i.e. result / src, or,
// for the one zero of its group, the product of the rest (torch's rule; two or more zeros give 0).
Tensor prod_src_grad(const Tensor& grad, const Tensor& self, const Tensor& src,
                     const Tensor& result, const Tensor& idx, int64_t dim, bool include_self) {
  const Tensor src_zero = eq(src, Scalar(0));
  const Tensor zeros_in_group =
      gather(scatter_add(zeros_like(self), dim, idx, src_zero.to(self.dtype())), dim, idx);
  const Tensor single_zero = logical_and(src_zero, eq(zeros_in_group, Scalar(1)));
  const Tensor without_zero = scatter_reduce(
      self, dim, idx, masked_fill(src, single_zero, Scalar(1)), "prod", include_self);
  return where(single_zero, gather(mul(grad, without_zero), dim, idx),
               div(gather(mul(grad, result), dim, idx), masked_fill(src, src_zero, Scalar(1))));
}

FABRIC_DERIVATIVE(scatter_reduce) {
  const ScatterReduceAttrs a = attrs_of<ScatterReduceAttrs>(rec);
  Tensor self = saved(rec.inputs[0]), idx = saved(rec.inputs[1]), src_in = saved(rec.inputs[2]);
  Tensor result = saved(rec.outputs[0]);
  return [a, self, idx, src_in, result](const Grads& gs) {
    const Tensor& grad = gs[0];
    const Tensor src = src_read_part(src_in, idx.sizes());
    const int64_t dim = a.dim;
    Tensor grad_self, grad_src;
    switch (a.reduce) {
      case ScatterReduction::sum:
        grad_self = grad;
        grad_src = gather(grad, dim, idx);
        break;
      case ScatterReduction::mean: {
        Tensor n = a.include_self ? ones_like(grad) : zeros_like(grad);
        n = scatter_add(n, dim, idx, ones_like(src));
        n = masked_fill(n, eq(n, Scalar(0)), Scalar(1));
        grad_self = div(grad, n);
        grad_src = div(gather(grad, dim, idx), gather(n, dim, idx));
        break;
      }
      case ScatterReduction::prod: {
        // self's zeros count as ones, so its share is the product of the rest.
        const Tensor self_one = masked_fill(self, eq(self, Scalar(0)), Scalar(1));
        grad_self = div(mul(grad, scatter_reduce(self_one, dim, idx, src, "prod", a.include_self)),
                        self_one);
        grad_src = prod_src_grad(grad, self, src, result, idx, dim, a.include_self);
        break;
      }
      default: {  // amax / amin: ties share the gradient evenly
        const Tensor value = gather(result, dim, idx);
        const Tensor self_is = eq(self, result), src_is = eq(src, value);
        const Tensor n = scatter_add(self_is.to(grad.dtype()), dim, idx, src_is.to(grad.dtype()));
        const Tensor share = div(grad, n);
        grad_self = mul(self_is.to(grad.dtype()), share);
        grad_src = mul(src_is.to(grad.dtype()), gather(share, dim, idx));
        break;
      }
    }
    // Without self in the reduction, the written positions owe self nothing.
    if (!a.include_self) grad_self = scatter(grad_self, dim, idx, Scalar(0));
    return Grads{grad_self, Tensor(), grad_to_src_shape(grad_src, src_in.sizes())};
  };
}

}  // namespace
}  // namespace fabric
