// Module full backward hooks (torch.utils.hooks.BackwardHook): one call of a module with such
// hooks puts an identity node before its inputs and one after its output. The output's node runs
// first in backward: it sees the gradient w.r.t. the output (grad_output), runs the backward
// pre-hooks on it and keeps it. The inputs' node runs once the module's whole backward is done: it
// sees the gradients w.r.t. the inputs (grad_input) and runs the backward hooks on both.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::nn {

class Module;

// torch's hook(module, grad_output) -> tuple or None: an empty result changes nothing; otherwise
// it replaces grad_output (one entry per output, undefined for none).
using ModuleBackwardPreHook =
    std::function<std::vector<Tensor>(Module&, const std::vector<Tensor>& grad_output)>;
// torch's hook(module, grad_input, grad_output) -> tuple or None: an empty result changes nothing;
// otherwise it replaces grad_input (one entry per input; an undefined entry sends no gradient).
using ModuleBackwardHook = std::function<std::vector<Tensor>(
    Module&, const std::vector<Tensor>& grad_input, const std::vector<Tensor>& grad_output)>;

// The backward hooks of one module call: built by the module's call with the hooks registered
// then (removing one later does not affect a backward through that call, as in torch).
class BackwardHookCall {
 public:
  BackwardHookCall(Module& module, std::vector<ModuleBackwardPreHook> pre_hooks,
                   std::vector<ModuleBackwardHook> hooks);

  // The inputs forward gets: those requiring grad become outputs of the inputs' identity node
  // (when grad mode is on and any does). Undefined inputs stand for torch's None arguments.
  std::vector<Tensor> setup_inputs(std::vector<Tensor> inputs);
  // After forward: an input forward got from setup_inputs (requiring grad) and wrote in place
  // raises torch's error (its gradient would bypass the hook).
  void check_inputs_unmodified() const;
  // The output the caller gets: the output's identity node's output (when grad mode is on and
  // the output requires grad); otherwise `output` itself, and no hook runs.
  Tensor setup_output(Tensor output);

  struct State;

 private:
  std::shared_ptr<State> state_;
  // The inputs wrapped by setup_inputs, their storages' versions then, and their output numbers
  // in torch's node (which counts the tensor arguments only).
  std::vector<Tensor> wrapped_;
  std::vector<uint64_t> versions_;
  std::vector<size_t> output_nrs_;
};

}  // namespace fabric::nn
