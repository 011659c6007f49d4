// fabric::Fabric, the façade (Lightning Fabric in C++): resolves accelerator/strategy/devices/
// precision at construction, wraps modules and optimizers so the precision plugin applies, and
// offers the training verbs (backward, clip_gradients, autocast, save/load, log, ...).
//
//   fabric::Fabric fab({.accelerator = "cpu", .precision = "bf16-mixed"});
//   auto [model, opt] = fab.setup(gpt, adamw);
//   Tensor loss = cross_entropy(model(x).view({-1, V}), y.view({-1}));
//   fab.backward(loss);
//   fab.clip_gradients(model, opt, {.max_norm = 1.0});
//   opt.step();
//   fab.save("checkpoints/step-100", {{"model", model}, {"optimizer", opt}, {"step", 100}});
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "distributed/strategy.h"
#include "runtime/callbacks.h"
#include "runtime/checkpoint.h"
#include "runtime/connector.h"
#include "runtime/data_loader.h"
#include "runtime/loggers.h"
#include "runtime/wrappers.h"

namespace fabric::distributed {
class FSDPStrategy;
}

namespace fabric {

struct FabricOptions {
  std::string accelerator = "auto";
  std::string strategy = "auto";
  Devices devices;
  int64_t num_nodes = 1;
  std::string precision;  // empty = None: "32-true"
  // At most one precision plugin (instead of `precision`).
  std::vector<std::shared_ptr<precision::Precision>> plugins;
  // Notified after setup() and after each optimizer step, and run by call() (callbacks.h).
  std::vector<std::shared_ptr<Callback>> callbacks;
  std::vector<std::shared_ptr<Logger>> loggers;
  // Several processes: the limit on every collective and on the rendezvous (30 min, as PyTorch).
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
  // DDP's gradient buckets; find_unused_parameters is also set by strategy
  // 'ddp_find_unused_parameters_true'.
  distributed::DDPOptions ddp;
  // Strategy fsdp: sharding strategy, auto-wrap and activation-checkpointing policies (module
  // type names), CPU offload and the checkpoint layout. param/reduce/buffer_dtype: the precision
  // plugin's unless any is set here; then these win whole (unset: the parameters' own dtype), as
  // Lightning's FSDPStrategy(mixed_precision=...) overrides FSDPPrecision's config.
  distributed::FSDPOptions fsdp;
  // Strategy deepspeed*: a DeepSpeed config in DeepSpeed's key names, as a JSON text or the path of
  // a .json file (precision/deepspeed_precision.h lists the keys). Empty: none.
  std::string deepspeed_config;
  // The command line launch() re-runs for local ranks 1..N-1; empty: this process's own.
  std::vector<std::string> launch_argv;
};

struct ClipOptions {
  std::optional<double> clip_val;  // exactly one of clip_val / max_norm
  std::optional<double> max_norm;
  double norm_type = 2.0;
  bool error_if_nonfinite = true;
};

class Fabric {
 public:
  explicit Fabric(const FabricOptions& options = {});

  // ---- what was resolved -----------------------------------------------------------------------
  const std::string& accelerator() const { return resolved_.accelerator; }
  const std::string& strategy() const { return resolved_.strategy; }
  Device device() const { return resolved_.root_device(strategy_->local_rank()); }
  int64_t global_rank() const { return strategy_->global_rank(); }
  int64_t local_rank() const { return strategy_->local_rank(); }
  int64_t node_rank() const { return strategy_->node_rank(); }
  int64_t world_size() const { return strategy_->world_size(); }
  bool is_global_zero() const { return global_rank() == 0; }
  precision::Precision& precision() { return *ctx_->precision; }
  const std::string& precision_name() const { return resolved_.precision; }
  // Warnings the resolution produced (legacy precision values, strategy fall-backs) and those of
  // setting modules up (a Linear TransformerEngine leaves unconverted) or loading a checkpoint (a
  // precision state that does not fit the plugin); rank 0 prints each.
  const std::vector<std::string>& warnings() const { return resolved_.warnings; }
  const std::vector<std::shared_ptr<Logger>>& loggers() const { return loggers_; }
  // The first logger, the main one (the reference's `logger`); IndexError when there is none.
  const std::shared_ptr<Logger>& logger() const;
  const std::vector<std::shared_ptr<Callback>>& callbacks() const { return callbacks_; }
  // Loggers created after construction (e.g. only on rank 0, once the ranks are known).
  void add_logger(std::shared_ptr<Logger> logger);
  distributed::Strategy& strategy_object() { return *strategy_; }

  // ---- launching ---------------------------------------------------------------------------------
  // With several devices or nodes: starts the other local processes (re-running this program's
  // command line with LOCAL_RANK set; call it early, before work that must not be repeated) unless
  // they were started externally (torchrun variables, SLURM, mpirun), and connects all ranks.
  // Watches the processes it started: when one fails, the others are killed and this process
  // exits with the failing rank's status. One process: nothing to do. Idempotent.
  void launch();
  // launch(), then fn(*this) on every rank; returns this rank's result, and every rank goes on
  // with the program after it (collectives included), as the reference's; rank 0 waits for the
  // processes it started when this Fabric is destroyed. If fn throws, the ranks this process
  // started are killed and the error rethrown.
  template <class F>
  auto launch(F&& fn) -> decltype(fn(std::declval<Fabric&>())) {
    launch();
    try {
      return fn(*this);
    } catch (const DistributedError&) {
      strategy_->abort(/*after_peer_failure=*/true);
      throw;
    } catch (...) {
      strategy_->abort(/*after_peer_failure=*/false);
      throw;
    }
  }
  ~Fabric();
  Fabric(const Fabric&) = delete;
  Fabric& operator=(const Fabric&) = delete;

  // ---- setup -------------------------------------------------------------------------------------
  // convert_module -> move to the device -> wrap. A module may be set up once per Fabric
  // (ValueError otherwise). Optimizers are held by reference: keep them alive.
  FabricModule setup_module(const std::shared_ptr<nn::Module>& module, bool move_to_device = true);
  FabricOptimizer setup_optimizer(optim::Optimizer& optimizer);
  // The reference's setup_optimizers(*optimizers): one wrapper, or a tuple of them.
  template <class... Opts>
    requires(sizeof...(Opts) > 0 && (std::derived_from<Opts, optim::Optimizer> && ...))
  auto setup_optimizers(Opts&... optimizers) {
      check_optimizers_can_be_set_up({static_cast<const optim::Optimizer*>(&optimizers)...});
      if constexpr (sizeof...(Opts) == 1) {
        return setup_optimizer(optimizers...);
    } else {
      return std::tuple<decltype(setup_optimizer(optimizers))...>(setup_optimizer(optimizers)...);
    }
  }
  template <class M, class... Opts>
    requires std::derived_from<M, nn::Module>
  auto setup(const std::shared_ptr<M>& module, Opts&... optimizers) {
    // Everything is checked before anything changes (the reference's _validate_setup): a refused
    // optimizer leaves the module unconverted and not set up, so a corrected call goes through.
    check_module_can_be_set_up(module);
    check_optimizers_can_be_set_up({static_cast<const optim::Optimizer*>(&optimizers)...});
    FabricModule m = setup_module(module);
    if constexpr (sizeof...(Opts) == 0) {
      fire_after_setup(*module);
      return m;
    } else {
      auto wrapped = std::tuple<FabricModule, decltype(wrap_optimizer(optimizers, module))...>(
          m, wrap_optimizer(optimizers, module)...);
      fire_after_setup(*module);  // once everything is wrapped, as Lightning (not by setup_module)
      return wrapped;
    }
  }

  // The reference's setup_dataloaders: the same data and options again, with this rank's share
  // (use_distributed_sampler, several processes, and a loader not sharded already, i.e. of
  // world_size 1: rank = global_rank, world_size = world_size, DistributedSampler's order, padded
  // as its default drop_last=False; the loader's own seed and shuffle) and its batches handed out
  // on this Fabric's device (move_to_device). As the reference's _get_distributed_sampler, a
  // RandomSampler or SequentialSampler (DataLoaderOptions::sampler) is replaced by that order
  // (shuffled for a RandomSampler), and any other sampler is split as DistributedSamplerWrapper
  // splits it. The new loader starts at the beginning. Setting a loader up again changes nothing
  // more. Needs launch() with several processes.
  data::DataLoader setup_dataloaders(const data::DataLoader& loader,
                                     bool use_distributed_sampler = true,
                                     bool move_to_device = true) const;
  // Several loaders at once: a tuple of them, in order.
  template <class... Loaders>
    requires(sizeof...(Loaders) > 1 && (std::same_as<Loaders, data::DataLoader> && ...))
  auto setup_dataloaders(const Loaders&... loaders) const {
    return std::tuple<Loaders...>(setup_dataloaders(loaders)...);
  }

  // ---- training verbs ----------------------------------------------------------------------------
  // precision.pre_backward -> backward (scales the loss under 16-mixed) -> post_backward.
  // retain_graph and create_graph as Tensor::backward's (the reference passes them through).
  void backward(const Tensor& loss, const Tensor& gradient = Tensor(),
                std::optional<bool> retain_graph = std::nullopt, bool create_graph = false);
  // Unscales the optimizer's gradients first, then clips by value or by total norm over the
  // optimizer's parameters. Returns the total norm before clipping (undefined for clip_val).
  Tensor clip_gradients(FabricModule& module, FabricOptimizer& optimizer, const ClipOptions& options);
  // The precision plugin's forward context (an autocast region under mixed precision).
  precision::ContextGuard autocast() { return ctx_->precision->forward_context(); }
  // Creating modules / tensors inside these scopes uses the plugin's dtype (64-true, *-true).
  // init_module(empty_init = true) also skips parameter initialisation for a model whose weights
  // are loaded right after (the reference's _EmptyInit, nn::init::EmptyInitGuard): every nn::init
  // fill is a no-op in the scope, so parameters hold unspecified values and no generator draws;
  // buffers that carry meaning (BatchNorm's running statistics) are still set. nullopt or false:
  // normal initialisation. Thread-local, as the dtype context: build the model on this thread.
  precision::ContextGuard init_module(std::optional<bool> empty_init = std::nullopt);
  precision::ContextGuard init_tensor() { return ctx_->precision->tensor_init_context(); }
  // An undefined tensor comes back as it is (the reference returns None for None).
  Tensor to_device(const Tensor& t) const { return t.defined() ? t.to(device()) : t; }
  void to_device(nn::Module& m) const { m.to(device()); }
  // Collections move element by element, as the reference's move_data_to_device: a loader's batch
  // (undefined members stay undefined), a list of tensors.
  data::Batch to_device(const data::Batch& batch) const;
  std::vector<Tensor> to_device(const std::vector<Tensor>& tensors) const;

  // ---- utilities ---------------------------------------------------------------------------------
  // Seeds the default generator (every random op without an explicit Generator) and records the
  // seed in PL_GLOBAL_SEED, as the reference. Returns the seed. As the reference: the seed must lie
  // in 0..2^32-1 (ValueError otherwise); without one, PL_GLOBAL_SEED's is used (ValueError when it
  // is not such an integer), else 0 with a warning; `workers` sets PL_SEED_WORKERS to 1 or 0
  // (Fabric's default: true).
  static uint64_t seed_everything(std::optional<int64_t> seed = std::nullopt, bool workers = true);
  // ---- collectives (fabric-api.md §2; identities on one process) ---------------------------------
  // With several processes each needs launch() first (Error otherwise), as do barrier,
  // rank_zero_first, save and load.
  // reduce_op: "mean" (default), "sum", "max", "min", "product". In place, as the reference: `t`
  // receives the result (same dtype; an integer mean truncates toward zero) and is returned.
  Tensor all_reduce(const Tensor& t, const std::string& reduce_op = "mean") const;
  double all_reduce(double value, const std::string& reduce_op = "mean") const;
  // (world_size, *t.shape) on every rank, also on one process (shapes must agree across ranks).
  // Without sync_grads the result is outside autograd (the reference gathers under no_grad). With
  // sync_grads and `t` requiring grad (grad mode on), the gather is differentiable, as
  // torch.distributed.nn.functional.all_gather: backward gives rank r's `t` the sum over every rank
  // j of j's gradient for row r (a sum all-reduce of the gradient, then row r). That backward is a
  // collective: every rank must run it, in the same order as its other collectives. One process:
  // the gradient of unsqueeze(0).
  Tensor all_gather(const Tensor& t, bool sync_grads = false) const;
  Tensor all_gather(double value) const;  // (world_size,) float64
  // Concatenated along dim 0; the ranks' dim-0 sizes may differ.
  Tensor all_gather_uneven(const Tensor& t) const;
  Tensor broadcast(const Tensor& t, int src = 0) const;
  std::string broadcast(const std::string& bytes, int src = 0) const;
  // Rank 0 runs the guarded scope first, the others after it (e.g. a download, a cache file).
  class RankZeroFirst {
   public:
    RankZeroFirst(const Fabric& f, bool local);
    ~RankZeroFirst() noexcept(false);
   private:
    const Fabric& f_;
    bool first_;
    // The store key rank 0 (of the node, with local) sets on leaving the scope, which the others
    // wait for with no practical time limit; empty on one process.
    std::string released_key_;
  };
  // Rank 0 (of each node with local) runs the scope first; the others wait, as long as it takes
  // (the reference's barrier with a practically infinite timeout: downloading or preparing data
  // may outlast fabric.timeout), and fail at once when rank 0 dies.
  RankZeroFirst rank_zero_first(bool local = false) const { return RankZeroFirst(*this, local); }
  // Gradient accumulation without the all-reduce: backward inside the scope only accumulates
  // locally (both forward and backward must run inside it). No-op on one process.
  class NoBackwardSync {
   public:
    NoBackwardSync(Fabric& f, FabricModule& m, bool enabled);
    ~NoBackwardSync();
   private:
    Fabric& f_;
    FabricModule& m_;
    bool enabled_;
  };
  NoBackwardSync no_backward_sync(FabricModule& module, bool enabled = true) {
    return NoBackwardSync(*this, module, enabled);
  }

  // Prints only on local rank 0, the arguments separated by spaces as Python's print.
  template <class... Args>
  void print(const Args&... args) const {
    if (local_rank() != 0) return;
    std::ostringstream os;
    os << std::boolalpha;
    const char* sep = "";
    ((os << sep << args, sep = " "), ...);
    std::cout << os.str() << std::endl;
  }
  // Logging happens on global rank 0 only.
  void log(const std::string& name, double value, std::optional<int64_t> step = std::nullopt);
  // A tensor value must hold exactly one element (ValueError otherwise).
  void log(const std::string& name, const Tensor& value, std::optional<int64_t> step = std::nullopt);
  void log_dict(const Metrics& metrics, std::optional<int64_t> step = std::nullopt);
  // Waits for every rank (no-op on one process). `name` appears in a timeout's message.
  void barrier(const std::string& name = "") const;
  // Runs the hook `hook_name` of every callback that defines it, in the order of
  // FabricOptions::callbacks; callbacks without it are skipped. Each hook reads the arguments it
  // needs from `args` by name; an error a hook raises propagates (SpikeDetection's, for one).
  void call(const std::string& hook_name, const HookArgs& args = {});

  // ---- checkpoints (checkpoint.h) ----------------------------------------------------------------
  // Unlike the reference, the precision plugin's state (the loss scaler) is saved and restored by
  // default, under "precision". Rank 0 writes, every rank waits for it; every rank loads. A
  // precision state saved by another kind of plugin (32-true into 16-mixed, GradScaler into
  // DeepSpeed) never fails the load: the loss scale is carried over where both have one, else the
  // state is skipped; either way a warning is printed on rank 0 and added to warnings().
  // `filter` (checkpoint.h SaveFilter): per module or optimizer key, which tensors to write, e.g.
  // only the LoRA weights; ValueError for a key not in `state`. Every strategy filters (FSDP's
  // sharded layout by name: sharded_checkpoint.h).
  void save(const std::string& path, const State& state, const SaveFilters& filter = {}) const;
  // Restores `state` in place and returns what the checkpoint holds beyond it.
  State load(const std::string& path, State& state, bool strict = true);
  State load(const std::string& path, State&& state, bool strict = true) { return load(path, state, strict); }
  // No state: the whole checkpoint (every entry, modules and optimizers as their tensors),
  // restoring nothing. FSDP and DeepSpeed need a state (ValueError, as the reference).
  Checkpoint load(const std::string& path);
  // Loads a plain state-dict file (checkpoint.h read_raw_module_state / read_raw_optimizer_state)
  // into one module or optimizer, as obj.load_state_dict(file) would. strict: missing or
  // unexpected module keys fail as in load (not used for optimizers). Under FSDP a module loads the
  // full file into its shards; an optimizer alone is a NotImplementedError, as in the reference.
  void load_raw(const std::string& path, StateEntry module_or_optimizer, bool strict = true);

 private:
  void fire_after_setup(nn::Module& module);
  void connect_reductions(nn::Module& module);
  void check_launched(const char* what) const;
  FabricOptimizer wrap_optimizer(optim::Optimizer& opt, const std::shared_ptr<nn::Module>& module);
  // ValueError for a module that is null or already set up (nothing recorded).
  void check_module_can_be_set_up(const std::shared_ptr<nn::Module>& module);
  // ValueError for an optimizer already set up, given twice, or without parameters (nothing
  // recorded).
  void check_optimizers_can_be_set_up(const std::vector<const optim::Optimizer*>& optimizers);
  Resolved resolved_;
  std::shared_ptr<FabricContext> ctx_;
  void configure_fsdp_precision(distributed::FSDPStrategy& fsdp,
                                const distributed::FSDPOptions& given);
  std::unique_ptr<distributed::Strategy> strategy_;
  std::vector<std::shared_ptr<Logger>> loggers_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::vector<std::weak_ptr<nn::Module>> set_up_modules_;
  // Each optimizer set up, by address and lifetime (an address alone may come back with a new one).
  std::vector<std::pair<const optim::Optimizer*, std::weak_ptr<const void>>> set_up_optimizers_;
};

}  // namespace fabric
