// Derivatives of indexing, joining, masking and dropout (convolution and pooling:
// derivatives_conv.cpp). The heavy ones call the backward helpers of the op layer
// (ops_backward_linalg.h), which own their kernels.
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"

namespace fabric {

Tensor scatter_add_into_zeros(const Shape& shape, int64_t dim, const Tensor& index,
                              const Tensor& src) {
  Tensor base = zeros(shape, {.dtype = src.dtype(), .device = src.device()});
  return scatter_add(base, dim, index.contiguous(), src);
}

namespace {

FABRIC_DERIVATIVE(tril) {
  int64_t d = attrs_of<TriAttrs>(rec).diagonal;
  return [d](const Grads& g) { return Grads{tril(g[0], d)}; };
}
FABRIC_DERIVATIVE(triu) {
  int64_t d = attrs_of<TriAttrs>(rec).diagonal;
  return [d](const Grads& g) { return Grads{triu(g[0], d)}; };
}

// The index ops' gradients are fused kernels (ops_backward_linalg.h), which record nothing; in
// grad mode (create_graph) they are scatter_adds into zeros instead, which differentiate again.
FABRIC_DERIVATIVE(embedding) {
  Tensor idx = saved(rec.inputs[1]);
  const int64_t n = rec.inputs[0].size(0);
  return [idx, n](const Grads& g) {
    if (!grad_enabled()) return Grads{embedding_backward(g[0], idx, n), Tensor()};
    // Row idx[i] of the (n, C) weight gets row i of the gradient.
    const int64_t rows = idx.numel(), c = g[0].size(-1);
    Tensor at = idx.to(DType::int64).reshape({rows, 1}).expand({rows, c});
    return Grads{scatter_add_into_zeros({n, c}, 0, at, g[0].reshape({rows, c})), Tensor()};
  };
}

FABRIC_DERIVATIVE(index_select) {
  Tensor idx = saved(rec.inputs[1]);
  Shape shape = rec.inputs[0].sizes();
  int64_t dim = attrs_of<IndexAttrs>(rec).dim;
  return [idx, shape, dim](const Grads& g) {
    if (!grad_enabled() || shape.empty())
      return Grads{index_select_backward(g[0], shape, dim, idx), Tensor()};
    // The 1-D index along dim, broadcast over the gradient's other dims.
    Shape along(g[0].dim(), 1);
    along[dim] = idx.numel();
    Tensor at = idx.to(DType::int64).reshape(along).expand(g[0].sizes());
    return Grads{scatter_add_into_zeros(shape, dim, at, g[0]), Tensor()};
  };
}

FABRIC_DERIVATIVE(gather) {
  Tensor idx = saved(rec.inputs[1]);
  Shape shape = rec.inputs[0].sizes();
  int64_t dim = attrs_of<IndexAttrs>(rec).dim;
  return [idx, shape, dim](const Grads& g) {
    if (!grad_enabled()) return Grads{gather_backward(g[0], shape, dim, idx), Tensor()};
    return Grads{scatter_add_into_zeros(shape, dim, idx, g[0]), Tensor()};
  };
}

// torch's masked_select_backward: the gradient scattered back to the masked positions of the
// broadcast shape (zeros elsewhere), summed down to the input's shape. index_add at the masked
// offsets is a recorded, differentiable op, so double backward works.
FABRIC_DERIVATIVE(masked_select) {
  Tensor mask = saved(rec.inputs[1]);  // already broadcast
  Shape shape = rec.inputs[0].sizes();
  DType dtype = rec.inputs[0].dtype();
  return [mask, shape, dtype](const Grads& g) {
    const Tensor offsets = nonzero(mask.reshape({-1})).reshape({-1});
    const Tensor zero = zeros({mask.numel()}, {.dtype = dtype, .device = g[0].device()});
    const Tensor full = index_add(zero, 0, offsets, g[0].to(dtype)).reshape(mask.sizes());
    return Grads{sum_to(full, shape), Tensor()};
  };
}

FABRIC_DERIVATIVE(scatter_add) {
  Tensor idx = saved(rec.inputs[1]);
  int64_t dim = attrs_of<IndexAttrs>(rec).dim;
  const bool need_src = rec.inputs[2].requires_grad();
  const Shape src_shape = rec.inputs[2].sizes();
  return [idx, dim, need_src, src_shape](const Grads& g) {
    return Grads{g[0], Tensor(),
                 need_src ? grad_to_src_shape(gather(g[0], dim, idx), src_shape) : Tensor()};
  };
}

FABRIC_DERIVATIVE(cat) {
  CatAttrs a = attrs_of<CatAttrs>(rec);
  // An input with nothing along dim (or a skipped legacy-empty one) still gets a gradient, empty
  // and of its own shape, as in PyTorch: a leaf's .grad is then defined.
  std::vector<Shape> shapes(rec.num_inputs);
  for (size_t i = 0; i < rec.num_inputs; ++i) shapes[i] = rec.inputs[i].sizes();
  return [a, shapes](const Grads& g) {
    Grads out(a.sizes.size());
    int64_t offset = 0;
    for (size_t i = 0; i < a.sizes.size(); ++i) {
      if (a.sizes[i] == 0) {
        out[i] = empty(shapes[i], {.dtype = g[0].dtype(), .device = g[0].device()});
        continue;
      }
      out[i] = g[0].narrow(a.dim, offset, a.sizes[i]);
      offset += a.sizes[i];
    }
    return out;
  };
}

FABRIC_DERIVATIVE(stack) {
  CatAttrs a = attrs_of<CatAttrs>(rec);
  return [a](const Grads& g) {
    Grads out(a.sizes.size());
    for (size_t i = 0; i < a.sizes.size(); ++i) out[i] = g[0].select(a.dim, static_cast<int64_t>(i));
    return out;
  };
}

FABRIC_DERIVATIVE(dropout) {
  Tensor mask = saved(rec.inputs[1]);
  return [mask](const Grads& g) { return Grads{mul(g[0], mask), Tensor()}; };
}

}  // namespace
}  // namespace fabric
