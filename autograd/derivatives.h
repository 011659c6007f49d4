// The derivative-rule registry: one rule per op, registered from derivatives_*.cpp. A rule reads
// the op's record (inputs, outputs, attrs) and returns the backward closure; the closure
// captures exactly what it needs, so backward frees saved tensors by dropping it.
#pragma once
#include "autograd/node.h"
#include "tensor/op_record.h"

namespace fabric {

using DerivativeRule = FunctionNode::Backward (*)(const OpRecord& rec);

void register_derivative(OpId op, DerivativeRule rule);
DerivativeRule derivative_rule(OpId op);
// Whether op's rule builds its gradient from differentiable ops (double_backward.cpp), so that a
// gradient taken with create_graph can be differentiated again.
bool double_backward_supported(OpId op);

#define FABRIC_DERIVATIVE(op_name)                                                              \
  static FunctionNode::Backward derivative_##op_name(const OpRecord& rec);                     \
  [[maybe_unused]] static const bool fabric_derivative_reg_##op_name =                           \
      (::fabric::register_derivative(::fabric::OpId::op_name, &derivative_##op_name), true);    \
  static FunctionNode::Backward derivative_##op_name(const OpRecord& rec)

// Sums a broadcast gradient back down to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& grad, const Shape& shape);

// gather's gradient of recorded ops: src scattered (added) at index into zeros of `shape`. The
// index rules use it in grad mode (create_graph), where the fused kernels would record nothing.
Tensor scatter_add_into_zeros(const Shape& shape, int64_t dim, const Tensor& index,
                              const Tensor& src);

// scatter, scatter_add and scatter_reduce read src only where index has an element: its leading
// block of index's shape. src_read_part is that block; grad_to_src_shape pads a gradient of that
// block with zeros to src's shape (torch's rules stop at the gather, which fails on a src larger
// than index; here the unread elements get a zero gradient).
Tensor src_read_part(const Tensor& src, const Shape& index_shape);
Tensor grad_to_src_shape(const Tensor& grad, const Shape& src_shape);

// d/dx of the tanh-form GELU x/2 (1 + tanh(k (x + c x^3))), of recorded ops (torch's GeluBackward
// with approximate='tanh' in grad mode): gelu's rule and gelu_mlp's use it under create_graph.
Tensor gelu_tanh_derivative(const Tensor& x);

}  // namespace fabric
