// The precision plugin interface (Lightning's Precision, in C++). The base class is "32-true":
// every hook is the identity and the optimizer steps plainly. Plugins override what their mode
// changes; Fabric calls the hooks in the reference's order (see runtime/fabric.h). Users may
// subclass it and pass the instance to Fabric, or register it under a name (registry.h).
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "nn/module.h"
#include "optim/optimizer.h"
#include "precision/context_guard.h"
#include "precision/precision_state.h"
#include "tensor/tensor.h"

namespace fabric::precision {

class Precision {
 public:
  virtual ~Precision() = default;

  // The canonical precision string ("32-true", "bf16-mixed", ...) or a custom plugin's name.
  virtual std::string name() const { return "32-true"; }

  // Casts the module's floating parameters and buffers as the mode requires (once, at setup).
  virtual void convert_module(nn::Module& module) { (void)module; }
  // Floating inputs to the compute dtype; integer and bool tensors pass untouched.
  virtual Tensor convert_input(const Tensor& input) const { return input; }
  // Floating outputs back to the default dtype (float32).
  virtual Tensor convert_output(const Tensor& output) const { return output; }

  // Entered around the module's forward (a dtype context, an autocast region, ...).
  virtual ContextGuard forward_context() { return {}; }
  // Entered while modules / tensors are created (Fabric::init_module, Fabric::init_tensor).
  virtual ContextGuard module_init_context() { return tensor_init_context(); }
  virtual ContextGuard tensor_init_context() { return {}; }

  // backward(loss) runs pre_backward -> backward -> post_backward. `module` may be null.
  virtual Tensor pre_backward(const Tensor& loss, nn::Module* module) {
    (void)module;
    return loss;
  }
  virtual void backward(const Tensor& loss, nn::Module* module, const Tensor& gradient = Tensor(),
                        std::optional<bool> retain_graph = std::nullopt, bool create_graph = false) {
    (void)module;
    loss.backward(gradient, retain_graph, create_graph);
  }
  virtual Tensor post_backward(const Tensor& loss, nn::Module* module) {
    (void)module;
    return loss;
  }
  // True when gradients must come from Fabric::backward (the plugin scales the loss or otherwise
  // changes backward): a plain loss.backward() through a wrapped module then raises.
  virtual bool requires_fabric_backward() const { return false; }

  // Steps the optimizer; with a closure, the closure (forward + backward) runs first and its
  // loss is returned. Returns whether the parameters were updated (a loss scaler may skip the
  // step when gradients overflowed).
  virtual bool optimizer_step(optim::Optimizer& optimizer, nn::Module* module,
                              const std::function<Tensor()>& closure = nullptr) {
    (void)module;
    if (closure) {
      optimizer.step(closure);
    } else {
      optimizer.step();
    }
    return true;
  }
  // Brings the optimizer's gradients to their true scale (before clipping). Identity here.
  virtual void unscale_gradients(optim::Optimizer& optimizer) { (void)optimizer; }

  // The plugin's checkpoint state (a loss scaler's); empty for stateless plugins.
  virtual PrecisionState state_dict() const { return {}; }
  virtual void load_state_dict(const PrecisionState& state) { (void)state; }
};

}  // namespace fabric::precision
