// Module: the base of every layer and model. It owns named parameters, buffers and child modules
// in registration order, and gives PyTorch's traversal, train/eval, dtype/device moves and
// state_dict/load_state_dict on top of them.
//
// Style: a module is built from ONE options struct written with C++20 designated initializers,
// and held by std::shared_ptr:
//   auto fc = nn::make<nn::Linear>({.in_features = 784, .out_features = 10});
//   auto h  = register_module<nn::Linear>("c_fc", {.in_features = C, .out_features = 4 * C});
// Every module class names its options type `Options`; layers call it `<Layer>Options`, models
// `<Model>Config`.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "nn/backward_hook.h"
#include "tensor/tensor.h"

namespace fabric {
class Generator;
}

namespace fabric::nn {

// An ordered name -> tensor map: what state_dict returns and load_state_dict reads.
class StateDict {
 public:
  using Item = std::pair<std::string, Tensor>;

  // Adds (or, for an existing key, replaces in place) an entry.
  void insert(const std::string& name, const Tensor& t);
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  // Null when absent.
  const Tensor* find(std::string_view name) const;
  // Throws ValueError naming the key (and the number of keys held) when absent.
  const Tensor& at(std::string_view name) const;
  // Removes a key; returns whether it was there.
  bool erase(std::string_view name);
  std::vector<std::string> keys() const;
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;
};

// What a non-strict load_state_dict reports (PyTorch's _IncompatibleKeys).
struct LoadResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

class Module {
 public:
  using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
  using NamedModules = std::vector<std::pair<std::string, std::shared_ptr<Module>>>;

  Module() = default;
  virtual ~Module() = default;
  // Registration stores handles (and children) by identity: a copy would silently alias.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- registration (names: non-empty, no '.', unique across parameters/buffers/children;
  // registering an existing parameter/buffer/child name again replaces the registered entry,
  // which state_dict, parameters() and load_state_dict see). A layer's forward reads its typed
  // members (Linear::weight), so tying weights sets both, as GPT ties its embedding:
  // `wte->weight = wte->register_parameter("weight", lm_head->weight)` ---------------------------
  // Stores t as a parameter (an undefined t registers "None": skipped everywhere, like PyTorch's
  // `register_parameter(name, None)`), sets its requires_grad and returns the stored handle.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // Non-persistent buffers move with to() but stay out of state_dict.
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  // A floating buffer Module::to(dtype) leaves in its dtype: statistics a layer reads in their own
  // dtype (a quantized layer's absmax and code tables, LLM.int8's SCB, an FP8 layer's scales and
  // amax history), which the reference libraries keep outside the module's buffers, so that
  // `model.to(bfloat16)` leaves them as they are. ValueError when `name` is not a buffer here.
  void keep_buffer_dtype(const std::string& name);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  // Builds and registers in one step: register_module<Linear>("fc", {.in_features = 4, ...}).
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, const typename M::Options& options) {
    return register_module(name, std::make_shared<M>(options));
  }

  // ---- traversal (PyTorch's order: modules in pre-order, each module's own entries in
  // registration order; parameters, buffers and modules deduplicated by identity) ------------
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  // The direct children, each once (a module registered under two names: under the first),
  // as torch's named_children; children() and apply() walk the same list.
  NamedModules named_children() const;
  // The registered child `name`. Forward passes call their layers through this, not through typed
  // members, so that replacing a child (register_module with the same name: a quantized layer,
  // a LoRA wrapper, an FP8 linear) takes effect. ValueError naming the child when absent.
  Module& child(const std::string& name) const;
  std::vector<std::shared_ptr<Module>> children() const;
  // Descendants with dotted names; the module itself is not included (it is not owned by a
  // shared_ptr here) — see apply() to visit it as well.
  NamedModules named_modules() const;
  // The descendant at a dotted path ("transformer.h.0.attn"); ValueError naming the missing part.
  std::shared_ptr<Module> get_submodule(const std::string& path) const;
  // The parameter at a dotted path ("transformer.h.0.attn.c_attn.weight").
  Tensor get_parameter(const std::string& path) const;
  // Total number of elements of the (deduplicated) parameters.
  int64_t num_parameters() const;

  // ---- modes and moves ---------------------------------------------------------------------
  Module& train(bool mode = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }
  // Floating parameters and buffers (and existing .grad) become `dtype`; the handles keep their
  // identity (Tensor::set_data), so optimizers and layer members see the change.
  Module& to(DType dtype);
  Module& to(Device device);
  // fn(module) on every descendant, children first, then on this module (torch's Module.apply).
  Module& apply(const std::function<void(Module&)>& fn);
  void zero_grad(bool set_to_none = true);
  // Sets requires_grad on every parameter (freezing/unfreezing).
  Module& requires_grad_(bool requires_grad = true);

  // ---- state -------------------------------------------------------------------------------
  // Parameters and persistent buffers under dotted names (tied tensors under each of their
  // names), detached handles sharing the module's storage.
  StateDict state_dict() const;
  // Copies values into the existing tensors (converting dtype/device). A shape mismatch always
  // raises; with strict, missing or unexpected keys raise too. The ValueError lists every
  // missing key, unexpected key and mis-shaped key at once.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // ---- calling -----------------------------------------------------------------------------
  virtual std::string type_name() const { return "Module"; }
  // Whether DDP's per-forward buffer broadcast (DDPOptions::broadcast_buffers) covers this
  // module's own buffers. False for state each rank keeps by design (FP8 scaling metadata, reduced
  // across ranks only when its recipe says so) or that never changes after construction
  // (quantized weights' statistics), where a broadcast would overwrite or only cost.
  virtual bool ddp_broadcasts_buffers() const { return true; }
  // The part of the printout between the parentheses, e.g. "in_features=4, out_features=3".
  virtual std::string extra_repr() const { return ""; }
  // A PyTorch-style multi-line printout of the module tree.
  std::string str() const;
  virtual Tensor forward(const Tensor& x);
  // Calls forward between the forward hooks. Forward passes call their children this way (and so
  // should user models): forward(x) called directly skips the hooks, as in PyTorch.
  Tensor operator()(const Tensor& x);
  // The same for a forward of several tensors (Bilinear's operator()(x1, x2), the losses'): `run`
  // is forward with the other inputs bound; the hooks see, and a pre-hook may replace, the first.
  Tensor call_with_hooks(const Tensor& first, const std::function<Tensor(const Tensor&)>& run);
  // A forward of several tensor inputs (a layer's masks, a decoder's memory) as operator() calls
  // one: between the hooks (which see, and a pre-hook may replace, inputs[0]) and under activation
  // checkpointing when set, with every input a checkpoint input so that gradients reach them all.
  // `run` is forward over the inputs; under checkpointing it is called again in backward, so it
  // must capture what it uses by value (the module's raw pointer), not the caller's locals.
  using MultiInputForward = std::function<Tensor(const std::vector<Tensor>& inputs)>;
  Tensor call_forward(std::vector<Tensor> inputs, MultiInputForward run);
  // The same for a forward of several outputs (a recurrent layer's output and final states,
  // attention's output and weights): a forward hook sees and may replace outputs[0], the only
  // output the backward hooks see; under activation checkpointing every output comes out of the
  // checkpoint, so the others carry gradients too. Returns every output of run, the first as the
  // hooks left it.
  using MultiOutputForward = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;
  std::vector<Tensor> call_forward_outputs(std::vector<Tensor> inputs, MultiOutputForward run);

  // ---- forward hooks (torch's register_forward_pre_hook / register_forward_hook) --------------
  // A pre-hook sees the input before forward and returns the input forward gets (itself, or a
  // cast); a hook sees the output and returns the output the caller gets. An undefined result
  // changes nothing (torch's hook returning None). Hooks run in registration order. FSDP and ZeRO-3
  // gather a unit's parameters in them.
  using ForwardPreHook = std::function<Tensor(Module&, const Tensor& input)>;
  using ForwardHook = std::function<Tensor(Module&, const Tensor& input, const Tensor& output)>;
  // Return a handle for remove_forward_hook.
  int64_t register_forward_pre_hook(ForwardPreHook hook);
  int64_t register_forward_hook(ForwardHook hook);
  // Removes the pre-hook or hook with this handle; false when there is none.
  bool remove_forward_hook(int64_t handle);
  // Whether any forward pre-hook or hook is registered (a fused forward that skips calling this
  // module would skip them).
  bool has_forward_hooks() const { return !pre_hooks_.empty() || !post_hooks_.empty(); }
  // ---- backward hooks (torch's register_full_backward_pre_hook / register_full_backward_hook) ---
  // Each call in grad mode whose inputs or output require grad ties its own hooks to the graph;
  // the hooks registered at the call run in its backward, once, in registration order:
  // - a pre-hook gets grad_output (one entry: the gradient w.r.t. the output the caller got, after
  //   the forward hooks) before the module's backward runs; a non-empty result replaces it, so
  //   the parameters and inputs get the gradients of the replacement.
  // - a hook gets grad_input (one entry per input of the call: for operator() the input, for
  //   call_forward each input, for call_with_hooks the first only) and grad_output once the
  //   module's backward is done. Inputs that do not require grad get zeros, undefined inputs stay
  //   undefined; when no input requires grad, every entry is undefined (and the hook may return
  //   nothing defined). A non-empty result (one entry per input) replaces the gradients the inputs
  //   get; the parameters keep theirs. A gradient that reaches the inputs without passing through
  //   the output runs no hook.
  // Forward writing in place into an input that requires grad raises, as torch (after forward
  // here); so does an in-place write into the output (when its gradient arrives here). No hook
  // runs for a call under no-grad, or once the module is destroyed.
  using BackwardPreHook = ModuleBackwardPreHook;
  using BackwardHook = ModuleBackwardHook;
  // Return a handle for remove_backward_hook (numbered with the forward hooks: never the same).
  int64_t register_full_backward_pre_hook(BackwardPreHook hook);
  int64_t register_full_backward_hook(BackwardHook hook);
  // Removes the backward pre-hook or hook with this handle; false when there is none. Calls made
  // before keep the hooks they were made with.
  bool remove_backward_hook(int64_t handle);
  bool has_backward_hooks() const {
    return !backward_pre_hooks_.empty() || !backward_hooks_.empty();
  }
  // Whether operator() is just forward(): no forward or backward hooks and no activation
  // checkpointing. Only such a module may be skipped by a fused forward of its parent.
  bool is_called_plainly() const {
    return !has_forward_hooks() && !has_backward_hooks() && !checkpointing_;
  }
  // When set, operator() runs forward under activation checkpointing (autograd/checkpoint.h):
  // its activations are recomputed in backward instead of saved. Hooks still run once, outside.
  void set_activation_checkpointing(bool enabled) { checkpointing_ = enabled; }
  bool activation_checkpointing() const { return checkpointing_; }

  // Expires when this module is destroyed. Holders of a plain reference (a strategy's DDP reducer
  // or FSDP wrapper) check it, so that they can let go of what they keep for a dead module and
  // never mistake a new module at the same address for it.
  std::weak_ptr<const void> lifetime() const { return lifetime_; }

 protected:
  // The stored handle of a parameter or buffer registered by this module (undefined if None).
  Tensor own_tensor(const std::string& name) const;
  // Saves and loads the parameter or buffer `name` under `key` in state_dict (relative to this
  // module; it may contain dots), so a layer can keep another library's checkpoint layout:
  // bitsandbytes' Linear4bit stores `weight.absmax`, `weight.quant_state.bitsandbytes__nf4`, ...
  // ValueError when `name` is not registered here.
  void set_state_key(const std::string& name, const std::string& key);
  // A 1-D buffer whose length follows the checkpoint (another library's JSON blob, whose length
  // varies): load_state_dict replaces it with a copy of the checkpoint's tensor when the lengths
  // differ, instead of reporting a size mismatch. ValueError when `name` is not a buffer here.
  void set_state_resizable(const std::string& name);
  // Called by load_state_dict on this module, before anything is checked or copied, with the
  // module's key prefix ("transformer.h.0.attn.c_attn.") and the state being loaded (a copy): a
  // layer may rewrite its own entries there, as torch's load_state_dict pre-hooks do. A quantized
  // linear quantizes a float weight of the unconverted layer this way.
  virtual void prepare_loaded_state(const std::string& prefix, StateDict& state) const {
    (void)prefix;
    (void)state;
  }
  // Called after register_module replaced the child `name` by `now` (a quantized, LoRA or FP8
  // layer): modules that keep typed handles to their children update them here, so the replaced
  // layer (and its weights) is released rather than kept alive by a stale member.
  virtual void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) {
    (void)name;
    (void)now;
  }
  // Every registered child under every name it has, in registration order (torch's _modules:
  // what containers index and count).
  const NamedModules& registered_children() const { return children_; }
  // Called after register_module added a child under a new name (containers that index their
  // children, as Sequential, take it into their list, as torch's add_module does).
  virtual void child_added(const std::string& name, const std::shared_ptr<Module>& now) {
    (void)name;
    (void)now;
  }

 private:
  struct Entry {
    std::string name;
    Tensor tensor;
    bool persistent = true;  // buffers only
    std::string key;         // its state_dict name when not `name` (set_state_key)
    bool resizable = false;  // 1-D buffer replaced on load when the lengths differ
    bool keeps_dtype = false;  // buffers only: to(dtype) leaves it (keep_buffer_dtype)
    const std::string& state_key() const { return key.empty() ? name : key; }
  };
  void check_new_name(const std::string& name, const char* what) const;
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  // `seen`: the modules met so far (a set: a deep model has thousands, searched per child).
  void collect_modules(const std::string& prefix, NamedModules& out,
                       std::unordered_set<const Module*>& seen) const;
  void collect_state(const std::string& prefix, StateDict& out) const;
  // The forward hooks and backward hooks around run(inputs) (operator(), call_with_hooks and
  // call_forward all come here).
  Tensor run_with_hooks(std::vector<Tensor> inputs, const MultiInputForward& run);
  // This module (named "") followed by named_modules(), as raw pointers.
  std::vector<std::pair<std::string, const Module*>> all_modules() const;

  std::vector<Entry> params_;
  std::vector<Entry> buffers_;
  NamedModules children_;
  bool training_ = true;
  bool checkpointing_ = false;
  std::vector<std::pair<int64_t, ForwardPreHook>> pre_hooks_;
  std::vector<std::pair<int64_t, ForwardHook>> post_hooks_;
  std::vector<std::pair<int64_t, BackwardPreHook>> backward_pre_hooks_;
  std::vector<std::pair<int64_t, BackwardHook>> backward_hooks_;
  std::shared_ptr<const bool> lifetime_ = std::make_shared<const bool>(true);
};

// Builds a module from its options: nn::make<nn::Linear>({.in_features = 4, .out_features = 3}).
template <class M>
std::shared_ptr<M> make(const typename M::Options& options) {
  return std::make_shared<M>(options);
}
template <class M>
std::shared_ptr<M> make() {
  return std::make_shared<M>();
}

std::ostream& operator<<(std::ostream& os, const Module& m);

}  // namespace fabric::nn
