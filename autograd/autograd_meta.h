// What autograd keeps on a tensor: its gradient, the node that produced it, the leaf's gradient
// accumulator, and hooks (per-tensor gradient hooks and post-accumulate-grad hooks).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "autograd/node.h"
#include "tensor/tensor.h"

namespace fabric {

class AccumulateGrad;

class AutogradMeta final : public AutogradMetaBase {
 public:
  bool is_leaf() const override { return grad_fn == nullptr; }
  Tensor grad() const override { return grad_; }
  void clear_grad_fn() override {
    grad_fn.reset();
    output_nr = 0;
  }

  Tensor grad_;
  std::shared_ptr<Node> grad_fn;
  int output_nr = 0;
  std::weak_ptr<AccumulateGrad> accumulator;
  bool retains_grad = false;
  // The node whose output the retained .grad is taken at (the grad_fn when retain_grad was called
  // or when an in-place write last moved it; see move_retained_grad).
  const Node* retained_at = nullptr;
  // A view made in no-grad mode from a tensor that requires grad (PyTorch's
  // CreationMeta::NO_GRAD_MODE): whether a later in-place write through it, or through its base,
  // should be followed is ambiguous, so autograd refuses both.
  bool view_made_without_grad = false;
  // Hooks on the gradient flowing into this tensor: may return a replacement (defined) tensor.
  std::vector<std::function<Tensor(const Tensor&)>> grad_hooks;
  // Leaf only: run after the gradient was accumulated into .grad (DDP/FSDP hang communication here).
  std::vector<std::function<void(Tensor&)>> post_accumulate_hooks;
};

// The tensor's AutogradMeta, created on first use.
AutogradMeta& autograd_meta(const Tensor& t);
// Null when the tensor has none.
AutogradMeta* autograd_meta_if(const Tensor& t);

}  // namespace fabric
