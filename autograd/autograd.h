// The autograd API: backward from a loss, torch.autograd.grad-style gradients without touching
// .grad, gradient accumulation and the hooks DDP/FSDP build on.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "tensor/tensor.h"

namespace fabric {

// Accumulates d(roots)/d(leaf) into every leaf's .grad. A root without a gradient must have one
// element (its gradient is 1). With retain_graph = false the graph's saved tensors are freed.
void backward(const Tensor& root, const Tensor& gradient = Tensor(), bool retain_graph = false);
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients, bool retain_graph = false);

// Returns d(outputs)/d(inputs) without accumulating into .grad (torch.autograd.grad).
// allow_unused = false raises when an input is not reachable from the outputs.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool allow_unused = false);

// .grad management (optimizers, zero_grad, gradient scaling).
void set_grad(const Tensor& t, const Tensor& grad);
void zero_grad(const Tensor& t, bool set_to_none = true);

// Registers fn to run on the gradient flowing into t; a defined return value replaces it.
void register_hook(const Tensor& t, std::function<Tensor(const Tensor&)> fn);
// Leaf only: fn(param) runs right after param.grad was accumulated in backward, in backward order.
void register_post_accumulate_grad_hook(const Tensor& t, std::function<void(Tensor&)> fn);
// Keeps .grad on a non-leaf tensor.
void retain_grad(const Tensor& t);

bool is_leaf(const Tensor& t);
// The name of the node that produced t, as PyTorch names it ("MulBackward0", ...), or "" for leaves.
std::string grad_fn_name(const Tensor& t);

}  // namespace fabric
