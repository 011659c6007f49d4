// The derivative rule of max_pool2d_backward and max_pool3d_backward (a max pool's gradient as a
// recorded op, for double backward): one rule for both ranks.
#pragma once
#include "autograd/node.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"

namespace fabric {

// The flat in-plane position of each window's maximum in x, shaped as the pool's output.
using MaxPoolIndicesFn = Tensor (*)(const Tensor& x, const Pool2dAttrs& attrs);

// max_poolNd_backward(g, x) routes g[o] to the first maximum of window o: linear in g, so d/dg
// gathers the upstream u at those positions (torch's max_pool_double_backward); piecewise constant
// in x, so d/dx is zeros, as in torch (defined: the engine hands x's producer what it gets).
// spatial_dims: the trailing dims of one plane (2 or 3); indices finds the maxima again in x.
FunctionNode::Backward max_pool_backward_rule(const OpRecord& rec, int spatial_dims,
                                              MaxPoolIndicesFn indices);

}  // namespace fabric
