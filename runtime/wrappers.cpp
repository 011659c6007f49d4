// FabricModule and FabricOptimizer.
#include "runtime/wrappers.h"

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "optim/lbfgs.h"

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

namespace {

void check_fabric_alive(const FabricContext& ctx, const char* what) {
  FABRIC_CHECK(ctx.fabric_alive, ValueError, what,
               ": the Fabric that set this optimizer up has been destroyed (its strategy went with "
               "it); keep the Fabric alive for as long as its wrappers are used");
}

}  // namespace

void FabricOptimizer::zero_grad(bool set_to_none) {
  check_fabric_alive(*ctx_, "FabricOptimizer.zero_grad");
  optimizer_->zero_grad(set_to_none);
  for (auto& fn : ctx_->after_zero_grad) fn(*optimizer_);
}

namespace {

// Optimizers whose step(closure) calls the closure itself, several times per step (optim's
// Optimizer::step(closure) is virtual for them; their plain step() raises).
bool evaluates_closure_in_step(const optim::Optimizer& optimizer) {
  return dynamic_cast<const optim::LBFGS*>(&optimizer) != nullptr;
}

}  // namespace

FabricOptimizer::StepResult FabricOptimizer::step(const std::function<Tensor()>& closure) {
  check_fabric_alive(*ctx_, "FabricOptimizer.step");
  StepResult result;
  if (closure && evaluates_closure_in_step(*optimizer_)) {
    // Each evaluation's gradients are what the optimizer reads next (its line search, its new
    // direction), so the strategy prepares them after every one. The first evaluation's loss is
    // the one the optimizer's step returns. A plugin that cannot let the optimizer evaluate the
    // loss (16-mixed's GradScaler) refuses it before the closure runs.
    bool evaluated = false;
    const std::function<Tensor()> evaluate = [&]() -> Tensor {
      Tensor loss = closure();
      for (auto& fn : ctx_->before_optimizer_step) fn(*optimizer_);
      if (!evaluated) result.loss = loss;
      evaluated = true;
      return loss;
    };
    result.stepped = ctx_->precision->optimizer_step(*optimizer_, module_.get(), evaluate);
  } else {
    // Every plugin runs a closure (forward + Fabric.backward) before its step (Precision's
    // contract); it runs here so that the strategy prepares the gradients it produced before the
    // plugin reads them (DeepSpeedPrecision's overflow check, unscale and clip).
    if (closure) {
      EnableGradGuard grad_on;
      result.loss = closure();
    }
    for (auto& fn : ctx_->before_optimizer_step) fn(*optimizer_);
    result.stepped = ctx_->precision->optimizer_step(*optimizer_, module_.get());
  }
  for (auto& fn : ctx_->after_optimizer_step) fn(*optimizer_, result.stepped);
  return result;
}

}  // namespace fabric
