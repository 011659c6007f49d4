// What weight_norm and spectral_norm share: torch's old-style reparametrisations replace a
// module's parameter by a tensor computed in a forward pre-hook. A layer reads its weight through
// the handle it registered (Linear::weight, ...), so the computed value is put into THAT handle:
// its data and autograd history become the computation's, and the parameter's name is registered
// as None (out of parameters() and state_dict, as torch's `del module._parameters[name]`).
#pragma once
#include <functional>
#include <string>

#include "nn/module.h"

namespace fabric::nn::reparam {

// The handle module registered as its own parameter `name` (ValueError naming `op` when absent).
Tensor own_parameter(const char* op, const Module& module, const std::string& name);

// handle takes value's data and autograd history: the layer's forward reads value through it and
// gradients flow to what value was computed from.
void set_computed(const Tensor& handle, const Tensor& value);

// handle becomes a leaf parameter again holding value's data (the remove_* functions), registered
// under `name`.
void restore_parameter(Module& module, const std::string& name, const Tensor& handle,
                       const Tensor& value);

// The forward pre-hook installed per (module, parameter name): at most one reparametrisation
// each, as torch ("Cannot register two ... hooks on the same parameter").
enum class Kind { weight_norm, spectral_norm };
struct Installed {
  Kind kind;
  int64_t hook_id;  // Module::register_forward_pre_hook's
  Tensor handle;    // the layer's own handle, which the hook computes into
  // The weight from the module's current state, without updating it (what remove_* keeps).
  std::function<Tensor(const Module&)> weight_now;
};
// ValueError naming `op` when module already has a hook for name (checked before anything changes).
void check_no_hook(const char* op, Kind kind, const Module& module, const std::string& name);
void add_hook(const char* op, const Module& module, const std::string& name, Installed hook);
// Forgets and returns module's hook for name; ValueError naming `op` when it has none of `kind`.
Installed take_hook(const char* op, Kind kind, const Module& module, const std::string& name);

}  // namespace fabric::nn::reparam
