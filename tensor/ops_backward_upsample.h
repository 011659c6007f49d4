// interpolate's gradient as a plain function for its derivative rule (autograd/
// derivatives_upsample.cpp): it computes and records nothing.
#pragma once
#include "tensor/shape.h"
#include "tensor/tensor.h"
#include "tensor/upsample_kernels.h"

namespace fabric {

// What autograd keeps of an interpolate call (OpRecord::attrs of upsample_nearest2d and
// upsample_bilinear2d): the kernel geometry and the input's (N, C, H, W).
struct UpsampleAttrs {
  UpsampleDesc desc;
  Shape input_shape;
};

// dx (input_shape) for grad_out (N, C, OH, OW): each input element sums the outputs that read it,
// weighted as the forward read it.
Tensor upsample2d_backward(const Tensor& grad_out, const UpsampleAttrs& attrs);

// What autograd keeps of a 3-D interpolate call (upsample_nearest3d, upsample_trilinear3d): the
// kernel geometry and the input's (N, C, D, H, W).
struct Upsample3dAttrs {
  Upsample3dDesc desc;
  Shape input_shape;
};

// dx (input_shape) for grad_out (N, C, OD, OH, OW), summed in torch 1.13's order
// (upsample3d_backward_stub).
Tensor upsample3d_backward(const Tensor& grad_out, const Upsample3dAttrs& attrs);

}  // namespace fabric
