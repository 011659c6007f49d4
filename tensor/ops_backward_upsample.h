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

}  // namespace fabric
