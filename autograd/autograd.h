// The autograd API: backward from a loss, torch.autograd.grad-style gradients without touching
// .grad, gradient accumulation and the hooks DDP/FSDP build on.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/anomaly_mode.h"
#include "autograd/grad_mode.h"
#include "tensor/tensor.h"

namespace fabric {

// Accumulates d(roots)/d(leaf) into every leaf's .grad. A root without a gradient must have one
// element (its gradient is 1). With retain_graph = false the graph's saved tensors are freed;
// unset, it is create_graph (as in PyTorch). create_graph = true records the backward pass itself,
// so the gradients have a history and can be differentiated again (gradient penalties,
// Hessian-vector products); ops whose derivative is a fused kernel raise NotImplementedError when
// such a gradient is differentiated again (README, "Higher-order gradients").
// `inputs` non-empty (torch's backward(inputs=...)): only those tensors accumulate (a non-leaf
// one into its .grad, which it then retains, as torch's); every other leaf is left alone and only
// the nodes on a path to one of them run.
void backward(const Tensor& root, const Tensor& gradient = Tensor(),
              std::optional<bool> retain_graph = std::nullopt, bool create_graph = false,
              const std::vector<Tensor>& inputs = {});
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients,
              std::optional<bool> retain_graph = std::nullopt, bool create_graph = false,
              const std::vector<Tensor>& inputs = {});

// Returns d(outputs)/d(inputs) without accumulating into .grad (torch.autograd.grad), arguments
// in torch's order. allow_unused = false raises when an input is not reachable from the outputs.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {},
                         std::optional<bool> retain_graph = std::nullopt, bool create_graph = false,
                         bool allow_unused = false);

// .grad management (optimizers, zero_grad, gradient scaling). set_grad checks, as torch's
// `.grad =`, that a defined gradient has t's dtype, device and shape (an undefined one clears it).
void set_grad(const Tensor& t, const Tensor& grad);
// Without those checks, as torch's C++ mutable_grad(): for a strategy that keeps a gradient in
// another dtype than its parameter until the optimizer step (ZeRO's half partition gradients).
void set_grad_unchecked(const Tensor& t, const Tensor& grad);
void zero_grad(const Tensor& t, bool set_to_none = true);

// What registering a hook returns (torch's RemovableHandle): remove() unregisters it, also from
// inside the hook itself, and releases what it captured. Dropping the handle keeps the hook.
class RemovableHandle {
 public:
  RemovableHandle() = default;
  explicit RemovableHandle(std::function<void()> remove) : remove_(std::move(remove)) {}
  void remove() {
    if (auto r = std::exchange(remove_, nullptr)) r();
  }

 private:
  std::function<void()> remove_;
};

// Registers fn to run on the gradient flowing into t; a defined return value replaces it.
RemovableHandle register_hook(const Tensor& t, std::function<Tensor(const Tensor&)> fn);
// Leaf only: fn(param) runs right after param.grad was accumulated in backward, in backward order.
RemovableHandle register_post_accumulate_grad_hook(const Tensor& t,
                                                   std::function<void(Tensor&)> fn);
// Keeps .grad on a non-leaf tensor.
void retain_grad(const Tensor& t);

bool is_leaf(const Tensor& t);
// The name of the node that produced t, as PyTorch names it ("MulBackward0", ...), or "" for leaves.
std::string grad_fn_name(const Tensor& t);

}  // namespace fabric
