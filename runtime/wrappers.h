// What Fabric::setup returns: a module whose forward applies the precision plugin
// (convert_input -> forward_context -> forward -> convert_output), and an optimizer whose step goes
// through the plugin (loss-scaler skips, unscaling). Both forward everything else to the wrapped
// object, which stays reachable with module() / optimizer().
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "optim/optimizer.h"
#include "precision/precision.h"

namespace fabric {

// State shared by a Fabric object and the wrappers it hands out.
struct FabricContext {
  std::shared_ptr<precision::Precision> precision;
  bool in_fabric_backward = false;
  // The strategy finishes gradient synchronisation in Fabric.backward (DDP on several processes),
  // so a plain loss.backward() would leave the ranks' gradients different.
  std::string strategy_needing_fabric_backward;
  // Called before every optimizer step, ahead of the precision plugin's step (the strategy's
  // prepare_optimizer_gradients: ZeRO's half partition gradients become float32 there).
  std::vector<std::function<void(optim::Optimizer&)>> before_optimizer_step;
  // Called after every optimizer step (the on_after_optimizer_step callback).
  std::vector<std::function<void(optim::Optimizer&, bool stepped)>> after_optimizer_step;
  // Called after every FabricOptimizer.zero_grad (the strategy's discard_gradients).
  std::vector<std::function<void(optim::Optimizer&)>> after_zero_grad;
  // False once the Fabric is destroyed: the hooks above call into its strategy, which went with
  // it, so the optimizer wrapper refuses to step instead of calling them.
  bool fabric_alive = true;
};

class FabricModule {
 public:
  FabricModule(std::shared_ptr<nn::Module> module, std::shared_ptr<FabricContext> ctx);

  // The wrapped forward. Floating outputs that require grad get a hook that raises when the
  // plugin needs Fabric::backward but a plain loss.backward() reached them.
  Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }
  // Runs any other computation of the module (GPT::loss, a method taking several inputs) under
  // the same precision treatment: inputs are converted by the caller with convert_input(),
  // fn runs inside forward_context, a tensor result is converted back. (The reference's
  // mark_forward_method.)
  Tensor run(const std::function<Tensor()>& fn);
  Tensor convert_input(const Tensor& input) const;

  nn::Module& module() { return *module_; }
  const nn::Module& module() const { return *module_; }
  const std::shared_ptr<nn::Module>& module_ptr() const { return module_; }
  // Typed access: model.as<nn::GPT>().generate(...).
  template <class M>
  M& as() {
    auto* m = dynamic_cast<M*>(module_.get());
    if (!m) throw DTypeError("FabricModule::as: the wrapped module is a " + module_->type_name());
    return *m;
  }

  // Forwarded to the module.
  nn::StateDict state_dict() const { return module_->state_dict(); }
  nn::LoadResult load_state_dict(const nn::StateDict& s, bool strict = true) { return module_->load_state_dict(s, strict); }
  std::vector<Tensor> parameters() const { return module_->parameters(); }
  nn::Module::NamedTensors named_parameters() const { return module_->named_parameters(); }
  FabricModule& train(bool mode = true) { module_->train(mode); return *this; }
  FabricModule& eval() { return train(false); }
  void zero_grad(bool set_to_none = true) { module_->zero_grad(set_to_none); }

 private:
  Tensor finish(const Tensor& output);
  std::shared_ptr<nn::Module> module_;
  std::shared_ptr<FabricContext> ctx_;
};

class FabricOptimizer {
 public:
  FabricOptimizer(optim::Optimizer& optimizer, std::shared_ptr<nn::Module> module,
                  std::shared_ptr<FabricContext> ctx);

  // What step returns: whether the parameters were updated (a loss scaler may skip the step), and,
  // with a closure, the loss of its first evaluation (what the reference's step returns: the
  // optimizer's step(closure) result, which LBFGS takes from its first closure call).
  // It converts to `stepped` (implicitly, NOLINT below), so that `if (opt.step())` and
  // `bool stepped = opt.step()` read as before.
  struct StepResult {
    bool stepped = false;
    // Undefined without a closure.
    Tensor loss;
    operator bool() const { return stepped; }  // NOLINT(google-explicit-constructor)
  };
  // The plugin's optimizer_step (a loss scaler may skip it), then the after-step callbacks.
  // The closure (forward + Fabric::backward, returning the loss) runs once before the step, except
  // for an optimizer whose step evaluates it itself, as often as it needs (LBFGS): the closure then
  // goes through the plugin to the optimizer's step(closure), as the reference's does.
  StepResult step(const std::function<Tensor()>& closure = nullptr);
  // The optimizer's zero_grad, and whatever gradients the strategy keeps elsewhere for it.
  void zero_grad(bool set_to_none = true);
  optim::Optimizer& optimizer() { return *optimizer_; }
  const optim::Optimizer& optimizer() const { return *optimizer_; }
  optim::OptimizerState state_dict() const { return optimizer_->state_dict(); }
  void load_state_dict(const optim::OptimizerState& s) { optimizer_->load_state_dict(s); }
  std::vector<Tensor> parameters() const { return optimizer_->parameters(); }

 private:
  optim::Optimizer* optimizer_;
  std::shared_ptr<nn::Module> module_;
  std::shared_ptr<FabricContext> ctx_;
};

}  // namespace fabric
