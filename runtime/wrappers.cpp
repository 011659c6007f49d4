// FabricModule and FabricOptimizer.
#include "runtime/wrappers.h"

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"

namespace fabric {

FabricModule::FabricModule(std::shared_ptr<nn::Module> module, std::shared_ptr<FabricContext> ctx)
    : module_(std::move(module)), ctx_(std::move(ctx)) {
  FABRIC_CHECK(module_ != nullptr, ValueError, "FabricModule: the module is null");
}

Tensor FabricModule::convert_input(const Tensor& input) const { return ctx_->precision->convert_input(input); }

Tensor FabricModule::finish(const Tensor& output) {
  Tensor out = ctx_->precision->convert_output(output);
  if (out.defined() && out.requires_grad() &&
      (ctx_->precision->requires_fabric_backward() || !ctx_->strategy_needing_fabric_backward.empty())) {
    std::weak_ptr<FabricContext> weak = ctx_;
    register_hook(out, [weak](const Tensor& g) -> Tensor {
      auto ctx = weak.lock();
      if (ctx && !ctx->in_fabric_backward)
        throw Error("The current strategy and precision selection requires you to call `fabric.backward(loss)` "
                    "instead of `loss.backward()` (" +
                    (ctx->strategy_needing_fabric_backward.empty()
                         ? "precision '" + ctx->precision->name() + "' scales or otherwise changes backward"
                         : "strategy '" + ctx->strategy_needing_fabric_backward +
                               "' synchronises gradients there") +
                    ").");
      return g;
    });
  }
  return out;
}

Tensor FabricModule::forward(const Tensor& input) {
  const Tensor x = convert_input(input);
  Tensor y;
  {
    precision::ContextGuard guard = ctx_->precision->forward_context();
    y = (*module_)(x);
  }
  return finish(y);
}

Tensor FabricModule::run(const std::function<Tensor()>& fn) {
  Tensor y;
  {
    precision::ContextGuard guard = ctx_->precision->forward_context();
    y = fn();
  }
  return finish(y);
}

FabricOptimizer::FabricOptimizer(optim::Optimizer& optimizer, std::shared_ptr<nn::Module> module,
                                 std::shared_ptr<FabricContext> ctx)
    : optimizer_(&optimizer), module_(std::move(module)), ctx_(std::move(ctx)) {}

void FabricOptimizer::zero_grad(bool set_to_none) {
  optimizer_->zero_grad(set_to_none);
  for (auto& fn : ctx_->after_zero_grad) fn(*optimizer_);
}

bool FabricOptimizer::step(const std::function<Tensor()>& closure) {
  // Every plugin runs a closure (forward + Fabric.backward) before its step (Precision's
  // contract); it runs here so that the strategy prepares the gradients it produced before the
  // plugin reads them (DeepSpeedPrecision's overflow check, unscale and clip).
  if (closure) {
    EnableGradGuard grad_on;
    closure();
  }
  for (auto& fn : ctx_->before_optimizer_step) fn(*optimizer_);
  const bool stepped = ctx_->precision->optimizer_step(*optimizer_, module_.get());
  for (auto& fn : ctx_->after_optimizer_step) fn(*optimizer_, stepped);
  return stepped;
}

}  // namespace fabric
