// The Fabric façade: construction, setup, backward, clipping, logging, checkpoints.
#include "runtime/fabric.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "autograd/grad_mode.h"
#include "distributed/all_gather_grad.h"
#include "distributed/collective_staging.h"
#include "distributed/fsdp_strategy.h"
#include "distributed/zero.h"
#include "nn/init.h"
#include "nn/module.h"
#include "optim/clip_grad.h"
#include "precision/deepspeed_precision.h"
#include "precision/fp8_linear.h"
#include "precision/fsdp_precision.h"
#include "precision/mixed_precision.h"
#include "precision/transformer_engine_precision.h"
#include "runtime/sharded_checkpoint.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/warning.h"

namespace fabric {

Fabric::Fabric(const FabricOptions& options)
    : loggers_(options.loggers), callbacks_(options.callbacks) {
  ConnectorFlags flags{.accelerator = options.accelerator,
                       .strategy = options.strategy,
                       .devices = options.devices,
                       .num_nodes = options.num_nodes,
                       .precision = options.precision};
  if (!options.deepspeed_config.empty())
    flags.deepspeed = precision::DeepSpeedConfig::from_json_or_path(options.deepspeed_config);
  for (const auto& p : options.plugins) {
    FABRIC_CHECK(p != nullptr, ValueError, "Fabric: `plugins` holds a null plugin");
    FABRIC_CHECK(!flags.precision_plugin, ValueError,
                 "Received multiple values for precision plugins in `plugins`: '", flags.precision_plugin->name(),
                 "' and '", p->name(), "'. Expected at most one.");
    flags.precision_plugin = p;
  }
  for (const auto& l : loggers_) FABRIC_CHECK(l != nullptr, ValueError, "Fabric: `loggers` holds a null logger");
  for (const auto& c : callbacks_)
    FABRIC_CHECK(c != nullptr, ValueError, "Fabric: `callbacks` holds a null callback");
  resolved_ = resolve_connector(flags);
  ctx_ = std::make_shared<FabricContext>();
  ctx_->precision = resolved_.plugin;
  distributed::StrategyOptions so{.name = resolved_.strategy,
                                  .accelerator = resolved_.accelerator,
                                  .device_ids = resolved_.device_ids,
                                  .devices = static_cast<int>(resolved_.device_ids.size()),
                                  .num_nodes = static_cast<int>(resolved_.num_nodes),
                                  .timeout = options.timeout,
                                  .ddp = options.ddp,
                                  .zero_stage = resolved_.zero_stage,
                                  .offload = resolved_.offload,
                                  .fsdp = options.fsdp,
                                  .launch_argv = options.launch_argv};
  so.ddp.find_unused_parameters = so.ddp.find_unused_parameters || resolved_.find_unused_parameters;
  so.fsdp.cpu_offload = so.fsdp.cpu_offload || resolved_.offload;
  strategy_ = distributed::make_strategy(so);
  if (auto* fsdp = dynamic_cast<distributed::FSDPStrategy*>(strategy_.get()))
    configure_fsdp_precision(*fsdp, options.fsdp);
  // ZeRO-1/2 under a 16/bf16 mode hold half parameters with fp32 master partitions (DeepSpeed).
  if (auto* zero = dynamic_cast<distributed::ZeroStrategy*>(strategy_.get()))
    if (auto* ds = dynamic_cast<precision::DeepSpeedPrecision*>(ctx_->precision.get()))
      zero->set_half_dtype(ds->dtype());
  ctx_->before_optimizer_step.push_back(
      [strategy = strategy_.get()](optim::Optimizer& opt) { strategy->prepare_optimizer_gradients(opt); });
  ctx_->after_optimizer_step.push_back(
      [strategy = strategy_.get()](optim::Optimizer& opt, bool stepped) { strategy->post_optimizer_step(opt, stepped); });
  // After the strategy has finished the step (Lightning: after strategy.optimizer_step), skipped
  // steps included. The callbacks are fixed at construction, so the wrappers hold a copy.
  if (!callbacks_.empty())
    ctx_->after_optimizer_step.push_back(
        [strategy = strategy_.get(), callbacks = callbacks_](optim::Optimizer& opt, bool) {
          for (const auto& c : callbacks) c->on_after_optimizer_step(*strategy, opt);
        });
  ctx_->after_zero_grad.push_back(
      [strategy = strategy_.get()](optim::Optimizer& opt) { strategy->discard_gradients(opt); });
  // DeepSpeed's backward is its own on any number of processes (fabric-api.md: the grad hook raises
  // under DeepSpeed); one-process ZeRO reduces its half gradients into the master there. So is
  // FSDP's on one process (its post-backward moves the gradients into the flat shards the optimizer
  // steps: a plain loss.backward() left the step without effect), as Lightning's FSDPPrecision.
  if (strategy_->is_distributed() || resolved_.strategy == "deepspeed" ||
      strategy_->name() == "fsdp")
    ctx_->strategy_needing_fabric_backward = resolved_.strategy;
  if (auto* ds = dynamic_cast<precision::DeepSpeedPrecision*>(ctx_->precision.get())) {
    // The clip norm over every rank's shard: the strategy's clip_grad_norm with an infinite
    // max_norm (coefficient 1) reduces it the way clip_gradients does.
    ds->set_grad_norm_fn([strategy = strategy_.get()](optim::Optimizer& opt) {
      return strategy->clip_grad_norm(opt, std::numeric_limits<double>::infinity(), 2.0, false).item<double>();
    });
  }
  if (global_rank() == 0)
    for (const auto& w : resolved_.warnings) warn(w);
}

void Fabric::configure_fsdp_precision(distributed::FSDPStrategy& fsdp,
                                      const distributed::FSDPOptions& given) {
  // spec §9 / fabric-api.md §3: the plugin's param, reduce and buffer dtypes, unless the user gave
  // the strategy its own (FabricOptions::fsdp's), which then win whole, as Lightning's
  // FSDPStrategy(mixed_precision=...) overrides FSDPPrecision's config ("compute in bf16, reduce in
  // float32" was otherwise impossible: the plugin's replaced them silently).
  const bool user_dtypes = given.param_dtype || given.reduce_dtype || given.buffer_dtype;
  if (auto* p = dynamic_cast<precision::FSDPPrecision*>(ctx_->precision.get())) {
    const precision::FSDPMixedPrecisionConfig c = p->mixed_precision_config();
    if (!user_dtypes) fsdp.set_mixed_precision(c.param_dtype, c.reduce_dtype, c.buffer_dtype);
    // The sharded grad scaler: a rank sees inf/NaN only in its own gradient shard, so found_inf is
    // MAX-reduced over every rank and all skip the step together. The group exists only after
    // launch(), hence the lookup at each call; like the after-step hook, this holds the strategy by
    // address, for as long as this Fabric lives.
    if (precision::GradScaler* scaler = p->scaler()) {
      scaler->set_found_inf_reducer([&fsdp](Tensor& found) {
        // On the host when the shards are (cpu_offload): staged through the group's device.
        if (const auto& pg = fsdp.process_group())
          distributed::staged_all_reduce(*pg, found, distributed::ReduceOp::max);
      });
    }
    return;
  }
  // ZeRO-3 (DeepSpeedPrecision, or a user's plugin): a mixed mode gathers and reduces in its half
  // dtype from float32 shards. A true mode has cast the module already; its shards are float32
  // masters all the same (DeepSpeed keeps fp32 partitions for a half model, else updates below one
  // half step would be lost), gathered and reduced in the module's half dtype.
  if (user_dtypes) return;
  const std::string p = ctx_->precision->name();
  if (p == "16-mixed" || p == "bf16-mixed") {
    const DType half = p == "16-mixed" ? DType::float16 : DType::bfloat16;
    fsdp.set_mixed_precision(half, half, half);
  } else if (fsdp.is_zero3() && (p == "16-true" || p == "bf16-true")) {
    const DType half = p == "16-true" ? DType::float16 : DType::bfloat16;
    fsdp.set_mixed_precision(half, half, std::nullopt);
    fsdp.set_master_dtype(DType::float32);
  }
}

Fabric::~Fabric() {
  if (ctx_)
    ctx_->fabric_alive = false;  // the wrappers' hooks call into strategy_, which goes with this
  // Rank 0 of a script-style launch() reaches the end of its program here: wait for the ranks it
  // started. While unwinding from an error, the strategy kills them instead.
  if (std::uncaught_exceptions() > 0) return;
  try {
    const int status = strategy_->join();
    if (status != 0) {
      std::cerr << "fabric: a rank started by this process failed with status " << status << "\n";
      std::_Exit(status);
    }
  } catch (const std::exception& e) {
    // The ranks could not be collected as they should: the run did not end well.
    std::cerr << "fabric: " << e.what() << "\n";
    std::_Exit(1);
  }
}

void Fabric::launch() { strategy_->launch(); }

void Fabric::check_launched(const char* what) const {
  FABRIC_CHECK(!strategy_->is_distributed() || strategy_->launched(), Error, "Fabric.", what, " with ",
               world_size(), " processes needs the processes to be launched first: call `fabric.launch()` "
               "(or `fabric.launch(fn)`) before it");
}

data::Batch Fabric::to_device(const data::Batch& batch) const {
  data::Batch moved;
  if (batch.inputs.defined()) moved.inputs = to_device(batch.inputs);
  if (batch.targets.defined()) moved.targets = to_device(batch.targets);
  return moved;
}

std::vector<Tensor> Fabric::to_device(const std::vector<Tensor>& tensors) const {
  std::vector<Tensor> moved;
  moved.reserve(tensors.size());
  for (const Tensor& t : tensors) moved.push_back(t.defined() ? to_device(t) : t);
  return moved;
}

const std::shared_ptr<Logger>& Fabric::logger() const {
  FABRIC_CHECK(
      !loggers_.empty(), IndexError,
      "Fabric.logger: this Fabric has no logger; pass one in FabricOptions::loggers or add_logger");
  return loggers_.front();
}

void Fabric::add_logger(std::shared_ptr<Logger> logger) {
  FABRIC_CHECK(logger != nullptr, ValueError, "Fabric.add_logger: the logger is null");
  loggers_.push_back(std::move(logger));
}

void Fabric::check_module_can_be_set_up(const std::shared_ptr<nn::Module>& module) {
  FABRIC_CHECK(module != nullptr, ValueError, "Fabric.setup: the module is null");
  // Weak references: a module destroyed after setup may have its address reused by a new one.
  std::erase_if(set_up_modules_, [](const std::weak_ptr<nn::Module>& w) { return w.expired(); });
  FABRIC_CHECK(std::none_of(set_up_modules_.begin(), set_up_modules_.end(),
                            [&](const std::weak_ptr<nn::Module>& w) { return w.lock() == module; }),
               ValueError, "Fabric.setup: this ", module->type_name(),
               " has already been set up; set up each module once");
}

void Fabric::check_optimizers_can_be_set_up(
    const std::vector<const optim::Optimizer*>& optimizers) {
  // Entries of destroyed optimizers go first: a live one at this address is this optimizer.
  std::erase_if(set_up_optimizers_, [](const auto& o) { return o.second.expired(); });
  for (size_t i = 0; i < optimizers.size(); ++i) {
    const optim::Optimizer& opt = *optimizers[i];
    FABRIC_CHECK(std::none_of(set_up_optimizers_.begin(), set_up_optimizers_.end(),
                              [&](const auto& o) { return o.first == &opt; }),
                 ValueError, "Fabric.setup: this ", opt.name(),
                 " optimizer has already been set up");
    FABRIC_CHECK(
        std::find(optimizers.begin(), optimizers.begin() + i, &opt) == optimizers.begin() + i,
        ValueError, "Fabric.setup: this ", opt.name(),
        " optimizer is given twice; pass each optimizer once");
    FABRIC_CHECK(!opt.parameters().empty(), ValueError, "Fabric.setup: the ", opt.name(),
                 " optimizer has no parameters");
  }
}

FabricModule Fabric::setup_module(const std::shared_ptr<nn::Module>& module, bool move_to_device) {
  check_module_can_be_set_up(module);
  check_launched("setup");
  // FSDP (and ZeRO-3, on the same machinery) replaces the module's parameters by flat shards and
  // makes the optimizers it sets up afterwards step those: one set up before would go on holding
  // the old parameters and train nothing, silently.
  if (dynamic_cast<distributed::FSDPStrategy*>(strategy_.get()) != nullptr) {
    std::erase_if(set_up_optimizers_, [](const auto& o) { return o.second.expired(); });
    const std::vector<Tensor> params = module->parameters();
    for (const auto& [opt, alive] : set_up_optimizers_)
      for (const Tensor& p : opt->parameters())
        FABRIC_CHECK(
            std::none_of(params.begin(), params.end(),
                         [&](const Tensor& q) { return q.is_same(p); }),
            ValueError, "Fabric.setup_module: the ", opt->name(), " optimizer set up before this ",
            module->type_name(), " holds its parameters, but under ", strategy_->name(),
            " the module's parameters become flat shards that only an optimizer set up after it "
            "steps; set up the module first (setup(model, optimizer), or setup_module, then "
            "setup_optimizers)");
  }
  ctx_->precision->convert_module(*module);
  // The reference warns (rank zero) for each Linear that TransformerEngine leaves unconverted.
  if (auto* te = dynamic_cast<precision::TransformerEnginePrecision*>(ctx_->precision.get()))
    for (const auto& w : te->warnings()) {
      resolved_.warnings.push_back(w);
      if (global_rank() == 0) warn(w);
    }
  if (move_to_device) module->to(device());
  strategy_->setup_module(*module);
  if (strategy_->is_distributed()) connect_reductions(*module);
  set_up_modules_.push_back(module);
  return FabricModule(module, ctx_);
}

FabricOptimizer Fabric::wrap_optimizer(optim::Optimizer& opt, const std::shared_ptr<nn::Module>& module) {
  check_optimizers_can_be_set_up({&opt});
  set_up_optimizers_.emplace_back(&opt, opt.lifetime());
  strategy_->setup_optimizer(opt, module.get());
  return FabricOptimizer(opt, module, ctx_);
}

FabricOptimizer Fabric::setup_optimizer(optim::Optimizer& optimizer) { return wrap_optimizer(optimizer, nullptr); }

data::DataLoader Fabric::setup_dataloaders(const data::DataLoader& loader,
                                           bool use_distributed_sampler,
                                           bool move_to_device) const {
  check_launched("setup_dataloaders");  // the ranks must be known before the data is split by them
  data::DataLoaderOptions options = loader.options();
  // As the reference's _requires_distributed_sampler: a loader that is sharded already (the
  // reference: whose sampler is a DistributedSampler) keeps its share.
  if (use_distributed_sampler && strategy_->is_distributed() && options.world_size == 1) {
    options.rank = global_rank();
    options.world_size = world_size();
    // The reference's _get_distributed_sampler: a RandomSampler or SequentialSampler gives way to
    // DistributedSampler over the dataset (shuffling for a RandomSampler; the loader's seed); any
    // other sampler is split by DistributedSamplerWrapper (the loader does that with world_size).
    const data::Sampler* sampler = options.sampler.get();
    if (dynamic_cast<const data::RandomSampler*>(sampler) ||
        dynamic_cast<const data::SequentialSampler*>(sampler)) {
      options.shuffle = dynamic_cast<const data::RandomSampler*>(sampler) != nullptr;
      options.sampler = nullptr;
    }
  }
  if (move_to_device) options.device = device();
  return data::DataLoader(loader.dataset_ptr(), options);
}

// As the reference's module_init_context: the empty-init switch is entered first and left last,
// around the precision plugin's context.
precision::ContextGuard Fabric::init_module(std::optional<bool> empty_init) {
  precision::ContextGuard guard;
  if (empty_init.value_or(false)) {
    auto empty = std::make_shared<nn::init::EmptyInitGuard>();
    guard = precision::ContextGuard([empty]() mutable { empty.reset(); });
  }
  guard.then(ctx_->precision->module_init_context());
  return guard;
}

void Fabric::backward(const Tensor& loss, const Tensor& gradient, std::optional<bool> retain_graph,
                      bool create_graph) {
  FABRIC_CHECK(loss.defined(), ValueError, "Fabric.backward: the loss is undefined");
  precision::Precision& p = *ctx_->precision;
  ctx_->in_fabric_backward = true;
  try {
    const Tensor l = p.pre_backward(loss, nullptr);
    p.backward(l, nullptr, gradient, retain_graph, create_graph);
    p.post_backward(l, nullptr);
    strategy_->post_backward();
  } catch (...) {
    ctx_->in_fabric_backward = false;
    try {
      strategy_->abandon_backward();
    } catch (...) {  // the backward's error is the one to report
    }
    throw;
  }
  ctx_->in_fabric_backward = false;
}

Tensor Fabric::clip_gradients(FabricModule& module, FabricOptimizer& optimizer, const ClipOptions& o) {
  (void)module;
  FABRIC_CHECK(o.clip_val.has_value() != o.max_norm.has_value(), ValueError,
               "Fabric.clip_gradients: pass exactly one of `clip_val` (clip by value) and `max_norm` (clip by norm)");
  FABRIC_CHECK(strategy_->supports_clip_gradients(), NotImplementedError, "Fabric.clip_gradients: strategy '",
               strategy_->name(), "' does not support it (DeepSpeed clips through its config's gradient_clipping)");
  strategy_->prepare_optimizer_gradients(optimizer.optimizer());  // before the plugin unscales them
  ctx_->precision->unscale_gradients(optimizer.optimizer());
  const std::vector<Tensor> params = optimizer.parameters();
  if (o.clip_val) {
    optim::clip_grad_value_(params, *o.clip_val);
    return Tensor();
  }
  return strategy_->clip_grad_norm(optimizer.optimizer(), *o.max_norm, o.norm_type, o.error_if_nonfinite);
}

namespace {

// The reference's bounds (numpy's uint32 seeds), kept so that a seed valid here is valid there.
constexpr int64_t kMaxSeed = 4294967295;  // 2^32 - 1

// PL_GLOBAL_SEED as the reference's int(env_seed): optional sign and surrounding spaces allowed.
int64_t seed_from_environment(const char* text) {
  std::string s(text);
  const auto first = s.find_first_not_of(" \t\n");
  const auto last = s.find_last_not_of(" \t\n");
  s = first == std::string::npos ? "" : s.substr(first, last - first + 1);
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(s, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  FABRIC_CHECK(!s.empty() && used == s.size(), ValueError,
               "Invalid seed specified via PL_GLOBAL_SEED: '", text,
               "'. Expected an integer in 0..", kMaxSeed);
  return value;
}

}  // namespace

uint64_t Fabric::seed_everything(std::optional<int64_t> seed_in, bool workers) {
  int64_t seed = 0;
  if (seed_in) {
    seed = *seed_in;
  } else if (const char* env = std::getenv("PL_GLOBAL_SEED")) {
    seed = seed_from_environment(env);
  } else {
    warn("No seed found, seed set to 0");
  }
  FABRIC_CHECK(seed >= 0 && seed <= kMaxSeed, ValueError, seed,
               " is not in bounds, numpy accepts from 0 to ", kMaxSeed);
  manual_seed(static_cast<uint64_t>(seed));
  ::setenv("PL_GLOBAL_SEED", std::to_string(seed).c_str(), 1);
  // Fabric's seed_everything seeds data-loader workers by default (workers=True): the flag the
  // launched ranks and loaders read, as the reference sets it.
  ::setenv("PL_SEED_WORKERS", workers ? "1" : "0", 1);
  return static_cast<uint64_t>(seed);
}

void Fabric::fire_after_setup(nn::Module& module) {
  for (const auto& c : callbacks_) c->on_after_setup(*this, module);
}

void Fabric::call(const std::string& hook_name, const HookArgs& args) {
  for (const auto& c : callbacks_)
    if (c->has_hook(hook_name)) c->run_hook(hook_name, args);
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
  if (global_rank() != 0) return;
  for (const auto& l : loggers_) l->log_metrics(metrics, step);
}

namespace {

// The plugin's state is saved by default under "precision" (checkpoint.h), which the writer skips
// when the caller's state holds that key for a value of its own: the scaler's state was then lost
// without a word. The plugin goes under the first free key of "precision_plugin",
// "precision_plugin_1", ... instead; load() restores a plugin entry by its kind, whatever its key.
State with_plugin_entry(const State& state, precision::Precision& plugin) {
  std::string key = "precision_plugin";
  for (int i = 1; state.count(key); ++i) key = "precision_plugin_" + std::to_string(i);
  State with = state;
  with.emplace(key, StateEntry(plugin));
  return with;
}

bool needs_plugin_entry(const State& state) {
  if (!state.count("precision")) return false;
  for (const auto& [key, entry] : state)
    if (std::holds_alternative<precision::Precision*>(entry.value())) return false;
  return true;
}

// The FP8 amaxes an evaluation recorded wait per rank for the next update's reduction; the
// checkpoint rank 0 writes must hold every rank's, or a run resumed right after a validation
// step scales differently from one that went on (FP8Meta::reduce_current_amaxes). Collective:
// every rank walks the same modules in the same order.
void reduce_pending_fp8_amaxes(const State& state) {
  std::set<const nn::Module*> seen;
  for (const auto& [key, entry] : state) {
    auto* const* root = std::get_if<nn::Module*>(&entry.value());
    if (!root || !seen.insert(*root).second) continue;
    std::vector<nn::Module*> all{*root};
    for (auto& [name, child] : (*root)->named_modules()) all.push_back(child.get());
    for (nn::Module* m : all)
      if (auto* fp8 = dynamic_cast<precision::FP8Linear*>(m))
        fp8->fp8_meta().reduce_current_amaxes();
  }
}

}  // namespace

void Fabric::save(const std::string& path, const State& state_in, const SaveFilters& filter) const {
  FABRIC_CHECK(strategy_->supports_checkpoints(), NotImplementedError, "Fabric.save: strategy '",
               strategy_->name(), "' cannot write checkpoints in this build yet");
  check_launched("save");  // before anything is written: every rank takes part
  check_save_filters(state_in, filter);  // on every rank: none enters a collective for a bad filter
  check_savable(state_in);  // keys, undefined tensors, strings JSON cannot hold: on every rank too
  State with_plugin;
  const State& state = needs_plugin_entry(state_in)
                           ? (with_plugin = with_plugin_entry(state_in, *ctx_->precision))
                           : state_in;
  reduce_pending_fp8_amaxes(state);
  // Every rank first asks the strategy for each optimizer's single-process state (a sharding
  // strategy gathers its partitions: collective, in the state's key order on every rank).
  if (strategy_->checkpoint_layout() == "sharded" && holds_sharded_module(state, *strategy_)) {
    save_sharded_checkpoint(path, state, ctx_->precision.get(), *strategy_, filter);
    barrier("save");
    return;
  }
  std::map<const optim::Optimizer*, optim::OptimizerState> optimizer_states;
  std::map<const nn::Module*, nn::StateDict> module_states;
  for (const auto& [key, entry] : state) {
    if (auto* o = std::get_if<optim::Optimizer*>(&entry.value()))
      if (!optimizer_states.count(*o)) optimizer_states.emplace(*o, strategy_->optimizer_state_to_save(**o));
    if (auto* m = std::get_if<nn::Module*>(&entry.value()))
      if (!module_states.count(*m)) module_states.emplace(*m, strategy_->module_state_to_save(**m));
  }
  // Only rank 0 writes (the ranks hold the same replicated state); the others wait so that no rank
  // reads the path before it is complete, and learn how it went: a save that fails on rank 0 fails
  // on every rank, so that a caller who catches it finds the ranks still in step.
  if (world_size() == 1) {
    save_checkpoint(
        path, state, ctx_->precision.get(), [&](const optim::Optimizer& o) { return optimizer_states.at(&o); },
        [&](const nn::Module& m) { return module_states.at(&m); }, filter);
    return;
  }
  std::exception_ptr error;
  std::string status;
  if (global_rank() == 0) {
    try {
      save_checkpoint(
          path, state, ctx_->precision.get(),
          [&](const optim::Optimizer& o) { return optimizer_states.at(&o); },
          [&](const nn::Module& m) { return module_states.at(&m); }, filter);
    } catch (const std::exception& e) {
      error = std::current_exception();
      status = std::string(e.what()).empty() ? "unknown error" : e.what();
    }
  }
  status = broadcast(status, 0);
  if (error) std::rethrow_exception(error);
  if (!status.empty()) throw IOError("Fabric.save: rank 0 could not write " + path + ": " + status);
}

Checkpoint Fabric::load(const std::string& path) {
  FABRIC_CHECK(strategy_->supports_checkpoints(), NotImplementedError, "Fabric.load: strategy '",
               strategy_->name(), "' cannot read checkpoints in this build yet");
  // As the reference's FSDPStrategy / DeepSpeedStrategy.load_checkpoint: their checkpoints are
  // restored into a model, not returned.
  const std::string& name = strategy_->name();
  FABRIC_CHECK(name != "fsdp" && name != "deepspeed", ValueError,
               "Fabric.load(path) got no state, but strategy '", name,
               "' needs a state with at least a model instance to reload. Pass it in like so: ",
               "fabric.load(path, {{\"model\", model}, ...})");
  check_launched("load");
  Checkpoint contents = read_checkpoint_contents(path);
  barrier("load");
  return contents;
}

void Fabric::load_raw(const std::string& path, StateEntry target, bool strict) {
  check_launched("load_raw");
  if (auto* m = std::get_if<nn::Module*>(&target.value())) {
    strategy_->load_module_state(**m, read_raw_module_state(path), strict);
  } else if (auto* o = std::get_if<optim::Optimizer*>(&target.value())) {
    FABRIC_CHECK(strategy_->name() != "fsdp", NotImplementedError,
                 "Fabric.load_raw: loading a single optimizer object from a checkpoint is not "
                 "supported yet with the FSDP strategy");
    strategy_->load_optimizer_state(**o, read_raw_optimizer_state(path, (*o)->name()));
  } else {
    throw ValueError("Fabric.load_raw: loads into a module or an optimizer, not a " +
                     target.kind() + " (" + path +
                     "); a checkpoint's plain values load with Fabric.load");
  }
}

State Fabric::load(const std::string& path, State& state, bool strict) {
  FABRIC_CHECK(strategy_->supports_checkpoints(), NotImplementedError, "Fabric.load: strategy '",
               strategy_->name(), "' cannot read checkpoints in this build yet");
  check_launched("load");
  // A precision state saved by another kind of plugin is carried over or skipped, with a warning.
  std::vector<std::string> warnings;
  State rest =
      is_sharded_checkpoint(path)
          ? load_sharded_checkpoint(path, state, ctx_->precision.get(), strict, *strategy_, &warnings)
          : load_checkpoint(
                path, state, ctx_->precision.get(), strict,
                [this](optim::Optimizer& o, const optim::OptimizerState& sd) { strategy_->load_optimizer_state(o, sd); },
                [this](nn::Module& m, const nn::StateDict& sd, bool strict) {
                  strategy_->load_module_state(m, sd, strict);
                },
                &warnings);
  for (const auto& w : warnings) {
    resolved_.warnings.push_back(w);
    if (global_rank() == 0) warn(w);
  }
  barrier("load");
  return rest;
}

void Fabric::barrier(const std::string& name) const {
  check_launched("barrier");
  try {
    strategy_->barrier();
  } catch (const TimeoutError& e) {
    if (name.empty()) throw;
    throw TimeoutError("barrier '" + name + "': " + e.what());
  }
}

// ---- collectives ---------------------------------------------------------------------------------

Tensor Fabric::all_reduce(const Tensor& t, const std::string& reduce_op) const {
  check_launched("all_reduce");
  FABRIC_CHECK(t.defined(), ValueError, "Fabric.all_reduce: the tensor is undefined");
  const distributed::ReduceOp op = distributed::parse_reduce_op(reduce_op);
  if (!strategy_->is_distributed()) return t;  // one process: the tensor itself, unchanged
  // In place, as the reference (torch.distributed.all_reduce): the caller's tensor holds the
  // result. An integer mean is the sum divided by the world size, truncated toward zero back into
  // the integer dtype (the reference's result.copy_(result / world_size)).
  const bool integer_mean = op == distributed::ReduceOp::avg && !is_floating(t.dtype());
  Tensor reduced = strategy_->all_reduce(t, integer_mean ? distributed::ReduceOp::sum : op);
  if (integer_mean) reduced = div(reduced, Scalar(world_size()));
  NoGradGuard no_grad;
  Tensor out = t;
  out.copy_(reduced);
  return out;
}

double Fabric::all_reduce(double value, const std::string& reduce_op) const {
  return all_reduce(scalar_tensor(value, {.dtype = DType::float64}), reduce_op).item<double>();
}

Tensor Fabric::all_gather(const Tensor& t, bool sync_grads) const {
  check_launched("all_gather");
  Tensor gathered = strategy_->all_gather(t);
  if (!sync_grads) return gathered;
  return distributed::connect_all_gather_grad(gathered, t, strategy_->process_group());
}

Tensor Fabric::all_gather(double value) const {
  return all_gather(scalar_tensor(value, {.dtype = DType::float64}));
}

Tensor Fabric::all_gather_uneven(const Tensor& t) const {
  check_launched("all_gather_uneven");
  return strategy_->all_gather_uneven(t);
}

Tensor Fabric::broadcast(const Tensor& t, int src) const {
  check_launched("broadcast");
  // A rank that passes no tensor receives src's on this Fabric's device.
  if (!t.defined() && global_rank() != src)
    return strategy_->broadcast(empty({0}, {.device = device()}), src);
  return strategy_->broadcast(t, src);
}

std::string Fabric::broadcast(const std::string& bytes, int src) const {
  check_launched("broadcast");
  const distributed::Bytes b = strategy_->broadcast(distributed::Bytes(bytes.begin(), bytes.end()), src);
  return std::string(b.begin(), b.end());
}

Fabric::RankZeroFirst::RankZeroFirst(const Fabric& f, bool local)
    : f_(f), first_((local ? f.local_rank() : f.global_rank()) == 0) {
  f_.check_launched("rank_zero_first");
  const auto& store = f_.strategy_->store();
  if (!f_.strategy_->is_distributed() || !store) return;
  // The scope's number: every rank enters the scopes in the same order, so each rank's own count
  // names the same scope. Released through the store rather than a collective: a Gloo barrier
  // gives up after fabric.timeout (30 min), which preparing data on rank 0 may take.
  const int64_t n = store->add("rank_zero_first/entered/" + std::to_string(f.global_rank()), 1);
  released_key_ = "rank_zero_first/released/" + std::to_string(n) +
                  (local ? "/node" + std::to_string(f.node_rank()) : std::string());
  // 30 days: the store's wire format carries waits below 49.7 days.
  if (!first_) store->wait({released_key_}, std::chrono::hours(24 * 30));
}

Fabric::RankZeroFirst::~RankZeroFirst() noexcept(false) {
  // Rank 0 releases the others; when it unwinds from an error they see it exit (the launcher, or
  // the store server going with it) instead.
  if (first_ && !released_key_.empty() && std::uncaught_exceptions() == 0)
    f_.strategy_->store()->set(released_key_, distributed::Bytes{1});
}

Fabric::NoBackwardSync::NoBackwardSync(Fabric& f, FabricModule& m, bool enabled) : f_(f), m_(m), enabled_(enabled) {
  if (enabled_) f_.strategy_->set_backward_sync(m_.module(), false);
}

Fabric::NoBackwardSync::~NoBackwardSync() {
  if (enabled_) f_.strategy_->set_backward_sync(m_.module(), true);
}

// Reductions the precision plugin needs across ranks: the loss scaler's found_inf (every rank
// skips the step together) and the FP8 amaxes (one scale for all ranks). The plugins build these
// on the host (DeepSpeed's overflow flag, the FP8 amax row) or on the gradients' device: staged
// through the group's device, which costs nothing where they are there already.
void Fabric::connect_reductions(nn::Module& module) {
  const auto pg = strategy_->process_group();
  if (!pg) return;
  if (auto* mixed = dynamic_cast<precision::MixedPrecision*>(ctx_->precision.get())) {
    if (precision::GradScaler* scaler = mixed->scaler())
      scaler->set_found_inf_reducer([pg](Tensor& found) {
        distributed::staged_all_reduce(*pg, found, distributed::ReduceOp::max);
      });
  }
  if (auto* ds = dynamic_cast<precision::DeepSpeedPrecision*>(ctx_->precision.get()))
    ds->set_overflow_reducer([pg](Tensor& flag) {
      distributed::staged_all_reduce(*pg, flag, distributed::ReduceOp::max);
    });
  std::vector<nn::Module*> all{&module};
  for (auto& [name, child] : module.named_modules()) all.push_back(child.get());
  for (nn::Module* m : all) {
    if (auto* fp8 = dynamic_cast<precision::FP8Linear*>(m))
      fp8->fp8_meta().set_amax_reducer(
          [pg](Tensor& amax) {
            distributed::staged_all_reduce(*pg, amax, distributed::ReduceOp::max);
          },
          pg->size());
  }
}

}  // namespace fabric
