// conv3d's gradient helpers, as conv2d's in ops_backward_linalg.h. The attrs are a Conv2dAttrs
// (op_attrs.h) whose stride, padding and dilation hold three (depth, height, width) elements.
#pragma once
#include "tensor/op_attrs.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/tensor.h"

namespace fabric {

// Gradients of conv3d(x, weight, bias, attrs) for grad_out (N, OC, OD, OH, OW) (or unbatched
// (OC, OD, OH, OW) with x (C, D, H, W)). Each requested one is defined, the others undefined;
// computes, records nothing (the default backward).
Conv2dGrads conv3d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                            const Conv2dAttrs& attrs, bool need_input, bool need_weight,
                            bool need_bias);

// conv3d's input and weight gradients one at a time, as ops that record for autograd (OpId
// conv3d_backward_input / conv3d_backward_weight): the conv3d rule uses them in grad mode, and
// conv_transpose3d is the first. Both are bilinear, as conv2d's.
Tensor conv3d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dAttrs& attrs);
Tensor conv3d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dAttrs& attrs);

}  // namespace fabric
