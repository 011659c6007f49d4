// Gradient helpers of the 3-d pools, adaptive max pooling and unfold/fold, and the attributes
// unfold/fold record. The pool gradients are recorded ops (a no-op outside grad mode), so a
// gradient taken with create_graph differentiates again; 3-d pools record Pool2dAttrs with
// three-element kernel, stride and padding.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/op_attrs.h"
#include "tensor/tensor.h"

namespace fabric {

// unfold/fold's geometry, (h, w) each.
struct FoldAttrs {
  std::vector<int64_t> kernel, dilation, padding, stride;
};

// The gradient w.r.t. x of max_pool3d(x, attrs): grad_out added at each window's first maximum.
Tensor max_pool3d_backward(const Tensor& grad_out, const Tensor& x, const Pool2dAttrs& attrs);
// The offset in its (D, H, W) plane of each window's maximum: int64, max_pool3d's output shape
// (torch's max_pool3d_with_indices indices). Records nothing.
Tensor max_pool3d_indices(const Tensor& x, const Pool2dAttrs& attrs);
// The gradient w.r.t. the input (of shape input_shape) of avg_pool3d (count_include_pad).
Tensor avg_pool3d_backward(const Tensor& grad_out, const Shape& input_shape,
                           const Pool2dAttrs& attrs);
// The gradient w.r.t. the input (of shape input_shape) of adaptive_avg_pool3d, whose output size
// is grad_out's last three sizes.
Tensor adaptive_avg_pool3d_backward(const Tensor& grad_out, const Shape& input_shape);

}  // namespace fabric
