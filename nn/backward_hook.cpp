// See backward_hook.h. The two identity nodes are torch's BackwardHookFunctionBackward: custom
// Function nodes, whose backward gets zeros for the gradients nobody sent (torch materializes
// them), which is what grad_input shows and what reaches the inputs.
#include "nn/backward_hook.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "nn/module.h"
#include "tensor/factory.h"

namespace fabric::nn {

struct BackwardHookCall::State {
  Module* module = nullptr;
  std::weak_ptr<const void> alive;  // the module's lifetime(): no hook runs once it is destroyed
  std::vector<ModuleBackwardPreHook> pre_hooks;
  std::vector<ModuleBackwardHook> hooks;
  // torch's n_inputs and input_tensors_index: every argument, and which are tensors (defined).
  std::vector<bool> is_tensor;
  std::vector<InputMeta> input_meta;  // the tensors' shape, dtype and device (for zeros)
  bool inputs_wrapped = false;        // the inputs' node exists
  // Set by the output's node, taken by the inputs' node: unset when a gradient reaches the inputs
  // without passing through the output (torch then runs no hook).
  std::optional<std::vector<Tensor>> grad_outputs;

  bool hooks_alive() const { return !alive.expired(); }
};

namespace {

constexpr const char* kNodeName = "BackwardHookFunctionBackward";

// torch's error for an in-place write into an output of a custom Function that returned its
// input as is (the identity nodes' outputs are such views there).
std::string inplace_message(size_t output_nr) {
  return detail::cat(
      "Output ", output_nr, " of ", kNodeName,
      " is a view and is being modified inplace. This view was created inside a custom Function "
      "(or because an input was returned as-is) and the autograd logic to handle view+inplace "
      "would override the custom backward associated with the custom Function, leading to "
      "incorrect gradients. This behavior is forbidden. You can fix this by cloning the output "
      "of the custom Function.");
}

Tensor zeros_like_meta(const InputMeta& m) {
  return zeros(m.shape, TensorOptions{.dtype = m.dtype, .device = m.device});
}

// The inputs' node: runs the backward hooks on grad_input once the module's backward is done.
class InputsNode final : public Node {
 public:
  explicit InputsNode(std::shared_ptr<BackwardHookCall::State> state) : state_(std::move(state)) {}
  std::string name() const override { return kNodeName; }
  bool supports_double_backward() const override { return true; }  // an identity (and hooks)

  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    State& s = *state_;
    for (size_t i = 0; i < grads.size(); ++i)
      if (s.is_tensor[i] && !grads[i].defined()) grads[i] = zeros_like_meta(s.input_meta[i]);
    if (!s.grad_outputs || !s.hooks_alive()) return std::move(grads);
    std::vector<Tensor> grad_input(grads.size());
    for (size_t i = 0; i < grads.size(); ++i)
      if (s.is_tensor[i]) grad_input[i] = grads[i];
    for (const ModuleBackwardHook& hook : s.hooks) {
      std::vector<Tensor> got = hook(*s.module, grad_input, *s.grad_outputs);
      if (got.empty()) continue;  // torch's None
      FABRIC_CHECK(got.size() == grad_input.size(), Error,
                   "Backward hook returned an invalid number of grad_input, got ", got.size(),
                   ", but expected ", grad_input.size());
      grad_input = std::move(got);
    }
    s.grad_outputs.reset();
    for (size_t i = 0; i < grad_input.size(); ++i)
      if (!s.is_tensor[i]) grad_input[i] = Tensor();  // None arguments get nothing
    return grad_input;
  }

 private:
  using State = BackwardHookCall::State;
  std::shared_ptr<State> state_;
};

// The output's node: runs the backward pre-hooks on grad_output and keeps it for the hooks.
class OutputNode final : public Node {
 public:
  OutputNode(std::shared_ptr<BackwardHookCall::State> state, const Tensor& output)
      : state_(std::move(state)),
        storage_(output.storage()),
        version_(output.storage()->version()),
        meta_{output.sizes(), output.dtype(), output.device()} {}
  std::string name() const override { return kNodeName; }
  bool supports_double_backward() const override { return true; }

  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    // torch refuses the write when it happens; the output's history here does not see it, so it
    // is caught when the gradient arrives.
    // (Held weakly: the node must not keep the activation's memory alive; once it is freed
    // nobody can have written into it.)
    const Storage storage = storage_.lock();
    FABRIC_CHECK(!storage || storage->version() == version_, Error, inplace_message(0));
    State& s = *state_;
    std::vector<Tensor> grad_output = std::move(grads);
    if (s.hooks_alive()) run_hooks(s, grad_output);
    for (Tensor& g : grad_output)
      if (!g.defined()) g = zeros_like_meta(meta_);
    return grad_output;
  }

 private:
  using State = BackwardHookCall::State;

  static void run_hooks(State& s, std::vector<Tensor>& grad_output) {
    const size_t expected = grad_output.size();
    for (const ModuleBackwardPreHook& hook : s.pre_hooks) {
      std::vector<Tensor> got = hook(*s.module, grad_output);
      if (got.empty()) continue;
      FABRIC_CHECK(got.size() == expected, Error,
                   "Backward pre hook returned an invalid number of grad_output, got ", got.size(),
                   ", but expected ", expected);
      grad_output = std::move(got);
    }
    if (s.inputs_wrapped) {
      s.grad_outputs = grad_output;
      return;
    }
    // No input requires grad: no inputs' node will run, so the hooks run here, with every
    // grad_input None, and may not send anything.
    const std::vector<Tensor> none(s.is_tensor.size());
    for (const ModuleBackwardHook& hook : s.hooks) {
      std::vector<Tensor> got = hook(*s.module, none, grad_output);
      const bool all_none =
          std::none_of(got.begin(), got.end(), [](const Tensor& t) { return t.defined(); });
      FABRIC_CHECK(all_none, Error,
                   "Backward hook for Modules where no input requires gradient should always "
                   "return None or None for all gradients.");
    }
  }

  std::shared_ptr<State> state_;
  std::weak_ptr<StorageImpl> storage_;
  uint64_t version_;
  InputMeta meta_;
};

}  // namespace

BackwardHookCall::BackwardHookCall(Module& module, std::vector<ModuleBackwardPreHook> pre_hooks,
                                   std::vector<ModuleBackwardHook> hooks)
    : state_(std::make_shared<State>()) {
  state_->module = &module;
  state_->alive = module.lifetime();
  state_->pre_hooks = std::move(pre_hooks);
  state_->hooks = std::move(hooks);
}

std::vector<Tensor> BackwardHookCall::setup_inputs(std::vector<Tensor> inputs) {
  State& s = *state_;
  s.is_tensor.clear();
  s.input_meta.clear();
  bool any_requires_grad = false;
  for (const Tensor& x : inputs) {
    s.is_tensor.push_back(x.defined());
    s.input_meta.push_back(x.defined() ? InputMeta{x.sizes(), x.dtype(), x.device()} : InputMeta{});
    any_requires_grad |= x.defined() && x.requires_grad();
  }
  if (!any_requires_grad || !grad_enabled()) return inputs;

  auto node = std::make_shared<InputsNode>(state_);
  node->num_outputs = static_cast<int>(inputs.size());
  add_input_edges(*node, inputs);
  size_t tensor_nr = 0;  // torch's node has an output per tensor argument (None ones: none)
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& x = inputs[i];
    if (!x.defined()) continue;
    const size_t nr = tensor_nr++;
    if (!x.requires_grad()) continue;  // torch marks them non-differentiable
    x = x.detach();                    // a handle of its own, sharing the caller's storage
    set_grad_fn(x, node, static_cast<int>(i));
    wrapped_.push_back(x);
    versions_.push_back(x.storage()->version());
    output_nrs_.push_back(nr);
  }
  s.inputs_wrapped = true;
  return inputs;
}

void BackwardHookCall::check_inputs_unmodified() const {
  for (size_t w = 0; w < wrapped_.size(); ++w)
    FABRIC_CHECK(wrapped_[w].storage()->version() == versions_[w], Error,
                 inplace_message(output_nrs_[w]));
}

Tensor BackwardHookCall::setup_output(Tensor output) {
  if (!output.defined() || !output.requires_grad() || !grad_enabled()) return output;
  auto node = std::make_shared<OutputNode>(state_, output);
  add_input_edges(*node, {output});
  Tensor wrapped = output.detach();
  set_grad_fn(wrapped, node, 0);
  return wrapped;
}

}  // namespace fabric::nn
