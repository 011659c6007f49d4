// Gradient helpers for the linear-algebra, indexing and convolution/pooling ops: the plain
// functions the autograd derivative rules call. They compute; they record nothing.
#pragma once
#include <cstdint>

#include "tensor/op_attrs.h"
#include "tensor/tensor.h"

namespace fabric {

// Gradients of conv2d(x, weight, bias, attrs) for grad_out (N, OC, OH, OW). Each requested one is
// defined (grad_bias (OC) = sum of grad_out over N, OH, OW); the others are undefined. x may be
// unbatched (C, H, W) when grad_out is (OC, OH, OW), as in conv2d.
struct Conv2dGrads {
  Tensor grad_input, grad_weight, grad_bias;
};
Conv2dGrads conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                            const Conv2dAttrs& attrs, bool need_input, bool need_weight,
                            bool need_bias);

// conv2d's input and weight gradients one at a time, as ops that record for autograd (OpId
// conv2d_backward_input / conv2d_backward_weight): the conv2d rule uses them in grad mode
// (create_graph), so the gradient can be differentiated again. Both are bilinear: input's is
// (grad_out, weight) -> dx of shape input_shape, weight's (grad_out, x) -> dw of weight_shape.
// Rows/columns of x that no output window reaches get a zero gradient.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dAttrs& attrs);
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dAttrs& attrs);

// The gradient w.r.t. x of max_pool2d(x, attrs): grad_out routed to the first maximum of each
// window (recomputed from x; NaN counts as the maximum, as in the forward). attrs.stride must
// be the resolved one (the forward records it that way). Records for autograd (linear in
// grad_out; zero derivative in x, as torch).
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& x, const Pool2dAttrs& attrs);
// The offset in its (H, W) plane of each window's first maximum of x: int64, max_pool2d's output
// shape (torch's max_pool2d_with_indices indices). Records nothing.
Tensor max_pool2d_indices(const Tensor& x, const Pool2dAttrs& attrs);
// The gradient w.r.t. the input (of shape input_shape) of avg_pool2d (count_include_pad).
// Records for autograd (linear in grad_out).
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape,
                           const Pool2dAttrs& attrs);
// The gradient w.r.t. the input (of shape input_shape) of adaptive_avg_pool2d, whose output size
// is grad_out's last two sizes. Records for autograd (linear in grad_out).
Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape);

// (num_weights, C): rows of grad_out (..., C) summed into the rows their indices (...) name.
Tensor embedding_backward(const Tensor& grad_out, const Tensor& indices, int64_t num_weights);
// zeros(input_shape).index_add(dim, index, grad).
Tensor index_select_backward(const Tensor& grad, const Shape& input_shape, int64_t dim,
                             const Tensor& index);
// zeros(input_shape).scatter_add(dim, index, grad).
Tensor gather_backward(const Tensor& grad, const Shape& input_shape, int64_t dim,
                       const Tensor& index);

}  // namespace fabric
