// The node at a leaf: runs the leaf's gradient hooks, accumulates into .grad, then runs its
// post-accumulate-grad hooks (where DDP and FSDP launch communication).
#pragma once
#include <memory>

#include "autograd/node.h"

namespace fabric {

class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(Tensor variable);
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  // With create_graph the accumulated .grad keeps the gradient's history, as in PyTorch.
  bool supports_double_backward() const override { return true; }
  std::string name() const override { return "AccumulateGrad"; }
  const Tensor& variable() const { return variable_; }

 private:
  Tensor variable_;
};

// The leaf's accumulator (shared while a graph references it).
std::shared_ptr<AccumulateGrad> grad_accumulator(const Tensor& leaf);
// The edge a gradient for `t` flows along: its grad_fn, or its accumulator for a leaf.
Edge gradient_edge(const Tensor& t);
// After an in-place write gave `t` a new grad_fn: a .grad retained by retain_grad(t) is the new
// value's gradient from now on, taken at the new node (torch moves its retains_grad hook there);
// the hook left on the old node no longer fires. Nothing when t retains no grad.
void move_retained_grad(const Tensor& t);

}  // namespace fabric
