// The base of torch 1.13's lazy modules (torch/nn/modules/lazy.py's LazyModuleMixin): layers
// built without their input size, which the first call infers from its input. The layers are in
// nn/lazy.h (LazyLinear, and the include for all), nn/lazy_conv.h and nn/lazy_norm.h.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "nn/module.h"

namespace fabric::nn {

// Whether `t` is a lazy module's uninitialized parameter or buffer, or a state_dict value of one
// (torch's torch.nn.parameter.is_lazy): a 0-element placeholder that the module's first call
// gives its shape and values. (Once the module is moved to another dtype or device the
// placeholders are ordinary empty tensors of it, and this answers false for them.)
bool is_lazy(const Tensor& t);

// torch's LazyModuleMixin. Until the first call, the parameters and buffers are registered under
// the eager layer's names as 0-element placeholders of the default dtype (that Module::to may
// convert), so optimizers can be built over parameters() and the module moved. The first
// module(x) (a forward pre-hook registered first, so later pre-hooks see the values) infers the
// size from x, gives each placeholder its shape IN PLACE (Tensor::set_data: the handles held by
// the user or an optimizer carry the data), fills them as the eager layer's reset_parameters does
// (same draws from the default generator, in the placeholder's dtype), and from then on the
// module behaves as the eager layer: forward, reprs and type_name() are the eager one's.
// load_state_dict into a module not yet called gives the placeholders the checkpoint's shapes
// (torch's _lazy_load_hook) and copies the values; the first call then draws nothing.
// Differences from torch: the class itself cannot change (type_name() and str() do); after a
// load, the reprs show the size the first call infers, where torch prints 0; and the
// placeholders are plain empty tensors to the tensor layer, so ops on them run on 0 elements
// where torch raises.
class LazyModule : public Module {
 public:
  // Whether a parameter or buffer is still a placeholder (torch's has_uninitialized_params).
  bool has_uninitialized_params() const { return !uninitialized_.empty(); }
  // Whether the first call has made the eager layer (forward is its forward from then on).
  bool materialized() const { return eager_ != nullptr; }
  // That eager layer (null before the first call): it holds this module's very handles, so code
  // that looks for a layer type (swa_utils::update_bn's BatchNorm, LoRA's Linear) can look
  // through a lazy module with it, as torch's class change lets isinstance see the eager class.
  Module* eager_layer() const { return eager_.get(); }
  // The lazy class's name ("LazyLinear") until the first call, then the eager layer's ("Linear").
  std::string type_name() const override;
  std::string extra_repr() const override;
  // The eager layer's forward. Before the first module(x) it raises, as torch's forward on
  // uninitialized parameters does: calling forward directly skips the pre-hook that initialises.
  Tensor forward(const Tensor& x) override;

 protected:
  // `lazy_name` is the class's name ("LazyLinear"); registers the initialising pre-hook.
  explicit LazyModule(std::string lazy_name);
  // Registers a placeholder parameter (requires grad) or persistent buffer named `name`.
  Tensor lazy_parameter(const std::string& name);
  Tensor lazy_buffer(const std::string& name);
  // The extra_repr until the first call (the eager layer's from then on).
  void set_lazy_repr(std::string repr) { lazy_repr_ = std::move(repr); }

  // The size the eager layer is built with (in_features, in_channels, num_features), or nullopt
  // when x's dim count is not one the eager layer takes.
  virtual std::optional<int64_t> infer_size(const Tensor& x) const = 0;
  // The eager layer of that size (called under init::EmptyInitGuard, so it draws nothing).
  virtual std::shared_ptr<Module> build_eager(int64_t size) const = 0;
  // A size build_eager accepts whatever the input: the layer whose forward names a bad input.
  virtual int64_t probe_size() const = 0;
  // Points the eager layer's typed members and registrations at this module's handles, then,
  // when `reset`, fills them as its reset_parameters does.
  virtual void adopt(Module& eager, bool reset) = 0;

  // The lazy load hook: gives each placeholder named in `state` (under `prefix`) its shape.
  void prepare_loaded_state(const std::string& prefix, StateDict& state) const override;

 private:
  // Infers the size from x, builds the eager layer and materializes what is still lazy.
  void materialize(const Tensor& x);
  // Gives the placeholder `name` the shape `shape` (its dtype and device stay).
  void materialize_entry(const std::string& name, const Shape& shape) const;
  [[noreturn]] void raise_bad_input(const Tensor& x) const;

  std::string lazy_name_;
  std::string lazy_repr_;
  // Names of the placeholders not yet materialized (mutable: the load hook is const in Module).
  mutable std::set<std::string> uninitialized_;
  std::shared_ptr<Module> eager_;
  int64_t init_hook_ = 0;
};

// m as a T, looking through a materialized lazy layer to its eager one (as torch's class change
// lets isinstance see the eager class: update_bn finds a LazyBatchNorm's BatchNorm); null when
// it is neither.
template <class T>
T* as_layer(Module& m) {
  if (auto* t = dynamic_cast<T*>(&m)) return t;
  if (auto* lazy = dynamic_cast<LazyModule*>(&m)) return dynamic_cast<T*>(lazy->eager_layer());
  return nullptr;
}
template <class T>
const T* as_layer(const Module& m) {
  return as_layer<T>(const_cast<Module&>(m));
}

// The leading size of an eager layer's repr (the `probe` it was built with) printed as 0, as
// torch prints a lazy layer before its first call: "LazyConv2d(0, 4, kernel_size=(3, 3), ...)".
std::string lazy_size_repr(const std::string& eager_repr, int64_t probe);

}  // namespace fabric::nn
