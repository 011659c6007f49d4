// The Fabric façade: construction, setup, backward, clipping, logging, checkpoints.
#include "runtime/fabric.h"

#include <algorithm>
#include <cstdlib>

#include "optim/clip_grad.h"
#include "tensor/random.h"

namespace fabric {

Fabric::Fabric(const FabricOptions& options) : loggers_(options.loggers) {
  ConnectorFlags flags{.accelerator = options.accelerator,
                       .strategy = options.strategy,
                       .devices = options.devices,
                       .num_nodes = options.num_nodes,
                       .precision = options.precision};
  for (const auto& p : options.plugins) {
    FABRIC_CHECK(p != nullptr, ValueError, "Fabric: `plugins` holds a null plugin");
    FABRIC_CHECK(!flags.precision_plugin, ValueError,
                 "Received multiple values for precision plugins in `plugins`: '", flags.precision_plugin->name(),
                 "' and '", p->name(), "'. Expected at most one.");
    flags.precision_plugin = p;
  }
  for (const auto& l : loggers_) FABRIC_CHECK(l != nullptr, ValueError, "Fabric: `loggers` holds a null logger");
  resolved_ = resolve_connector(flags);
  ctx_ = std::make_shared<FabricContext>();
  ctx_->precision = resolved_.plugin;
  for (const auto& w : resolved_.warnings) std::cerr << "fabric: warning: " << w << "\n";
}

FabricModule Fabric::setup_module(const std::shared_ptr<nn::Module>& module, bool move_to_device) {
  FABRIC_CHECK(module != nullptr, ValueError, "Fabric.setup: the module is null");
  FABRIC_CHECK(std::find(set_up_modules_.begin(), set_up_modules_.end(), module.get()) == set_up_modules_.end(),
               ValueError, "Fabric.setup: this ", module->type_name(),
               " has already been set up; set up each module once");
  ctx_->precision->convert_module(*module);
  if (move_to_device) module->to(device());
  set_up_modules_.push_back(module.get());
  return FabricModule(module, ctx_);
}

FabricOptimizer Fabric::wrap_optimizer(optim::Optimizer& opt, const std::shared_ptr<nn::Module>& module) {
  FABRIC_CHECK(std::find(set_up_optimizers_.begin(), set_up_optimizers_.end(), &opt) == set_up_optimizers_.end(),
               ValueError, "Fabric.setup: this ", opt.name(), " optimizer has already been set up");
  FABRIC_CHECK(!opt.parameters().empty(), ValueError, "Fabric.setup: the ", opt.name(),
               " optimizer has no parameters");
  set_up_optimizers_.push_back(&opt);
  return FabricOptimizer(opt, module, ctx_);
}

FabricOptimizer Fabric::setup_optimizer(optim::Optimizer& optimizer) { return wrap_optimizer(optimizer, nullptr); }

void Fabric::backward(const Tensor& loss, const Tensor& gradient, bool retain_graph) {
  FABRIC_CHECK(loss.defined(), ValueError, "Fabric.backward: the loss is undefined");
  precision::Precision& p = *ctx_->precision;
  ctx_->in_fabric_backward = true;
  try {
    const Tensor l = p.pre_backward(loss, nullptr);
    p.backward(l, nullptr, gradient, retain_graph);
    p.post_backward(l, nullptr);
  } catch (...) {
    ctx_->in_fabric_backward = false;
    throw;
  }
  ctx_->in_fabric_backward = false;
}

Tensor Fabric::clip_gradients(FabricModule& module, FabricOptimizer& optimizer, const ClipOptions& o) {
  (void)module;
  FABRIC_CHECK(o.clip_val.has_value() != o.max_norm.has_value(), ValueError,
               "Fabric.clip_gradients: pass exactly one of `clip_val` (clip by value) and `max_norm` (clip by norm)");
  ctx_->precision->unscale_gradients(optimizer.optimizer());
  const std::vector<Tensor> params = optimizer.parameters();
  if (o.clip_val) {
    optim::clip_grad_value_(params, *o.clip_val);
    return Tensor();
  }
  return optim::clip_grad_norm_(params, *o.max_norm, o.norm_type, o.error_if_nonfinite);
}

uint64_t Fabric::seed_everything(uint64_t seed) {
  manual_seed(seed);
  ::setenv("PL_GLOBAL_SEED", std::to_string(seed).c_str(), 1);
  return seed;
}

void Fabric::log(const std::string& name, double value, std::optional<int64_t> step) {
  log_dict({{name, value}}, step);
}

void Fabric::log(const std::string& name, const Tensor& value, std::optional<int64_t> step) {
  FABRIC_CHECK(value.defined() && value.numel() == 1, ValueError, "Fabric.log: '", name,
               "' must be a number or a one-element tensor, got a tensor of ",
               value.defined() ? value.numel() : 0, " elements");
  log_dict({{name, value.item<double>()}}, step);
}

void Fabric::log_dict(const Metrics& metrics, std::optional<int64_t> step) {
  for (const auto& l : loggers_) l->log_metrics(metrics, step);
}

void Fabric::save(const std::string& path, const State& state) const {
  save_checkpoint(path, state, ctx_->precision.get());
}

State Fabric::load(const std::string& path, State& state, bool strict) {
  return load_checkpoint(path, state, ctx_->precision.get(), strict);
}

}  // namespace fabric
