// max_pool3d keeps its forward's argmax positions for the backward, as torch's
// max_pool3d_with_indices: recomputing them from x costs a second forward pass. The record's
// attributes carry the window and the positions; the backward scatters grad_out to them directly.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/op_attrs.h"
#include "tensor/pool3d_kernels.h"
#include "tensor/tensor.h"

namespace fabric {

// What max_pool3d records: its window and, per output, the offset of the window's maximum in its
// (D, H, W) plane (int64, the output's shape).
struct MaxPool3dRecord {
  Pool2dAttrs window;
  Tensor indices;
};

// max_pool3d_backward with the forward's positions (max_pool3d_indices(x, attrs)) given: dx is
// zero but for grad_out added at them. Recorded as max_pool3d_backward (double backward).
Tensor max_pool3d_backward_at(const Tensor& grad_out, const Tensor& x, const Tensor& indices,
                              const Pool2dAttrs& attrs);

// dx (planes, D*H*W, all written) = dy (planes, OD*OH*OW) added at idx's positions in its plane.
using Pool3dMaxBackwardFn = void (*)(const Pool3dDesc& d, const void* dy, const int64_t* idx,
                                     void* dx);
FABRIC_DECLARE_STUB(pool3d_max_backward_stub, Pool3dMaxBackwardFn);

}  // namespace fabric
