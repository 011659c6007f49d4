// How a Fabric spreads work over processes: the ranks of this process (from the cluster
// environment), launching the local processes, the process group, and what a strategy does to a
// module at setup and after backward. Strategy itself is the single-process case (collectives are
// identities); DDPStrategy averages gradients over the group.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/cluster_env.h"
#include "distributed/ddp.h"
#include "distributed/fsdp.h"
#include "distributed/process_group.h"
#include "distributed/store.h"
#include "nn/module.h"
#include "optim/clip_grad.h"
#include "optim/optimizer.h"

namespace fabric::distributed {

class SubprocessLauncher;

struct StrategyOptions {
  std::string name = "single_device";  // "single_device" | "ddp"
  // "cpu": Gloo on CPU tensors; "cuda": NCCL, local rank i on device_ids[i].
  std::string accelerator = "cpu";
  std::vector<int> device_ids = {0};
  int devices = 1;                     // processes per node
  int num_nodes = 1;
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};  // every collective and rendezvous
  DDPOptions ddp;
  int zero_stage = 0;  // "deepspeed": ZeRO stage 1, 2 or 3
  // ZeRO: keep the optimizer state (stage 3: the parameter shards too) in host memory. On the
  // CPU accelerator everything is there already.
  bool offload = false;
  FSDPOptions fsdp;    // "fsdp" (and ZeRO-3, which runs on the same machinery)
  // The command line the launcher re-runs for local ranks 1..N-1; empty: this process's own.
  std::vector<std::string> launch_argv;
};

class Strategy {
 public:
  explicit Strategy(StrategyOptions options);
  virtual ~Strategy();
  Strategy(const Strategy&) = delete;
  Strategy& operator=(const Strategy&) = delete;

  const std::string& name() const { return options_.name; }
  const StrategyOptions& options() const { return options_; }
  const ClusterEnvironment& cluster() const { return env_; }
  int world_size() const { return env_.world_size; }
  int global_rank() const { return env_.global_rank; }
  int local_rank() const { return env_.local_rank; }
  int node_rank() const { return env_.node_rank; }
  bool is_distributed() const { return env_.world_size > 1; }

  // Starts local ranks 1..N-1 when this process is the one the user started (re-running its
  // command line with LOCAL_RANK set), then connects every rank through the TCP store on
  // MASTER_ADDR:MASTER_PORT and creates the process group (Gloo on cpu, NCCL on cuda).
  // Idempotent. One process: nothing to do.
  void launch();
  bool launched() const { return launched_; }
  // Rank 0 finished: waits for the local ranks it started; returns the first non-zero exit status.
  int join();
  // Rank 0 failed: kills the local ranks it started. After a collective failed because a peer
  // died (after_peer_failure), it first gives the launcher's watchdog a moment to end this
  // process with that rank's status, which says more than rank 0's own error.
  void abort(bool after_peer_failure = false);

  // The default group (null before launch or on one process).
  const std::shared_ptr<ProcessGroup>& process_group() const { return pg_; }
  const std::shared_ptr<Store>& store() const { return store_; }

  // ---- module hooks ----------------------------------------------------------------------------
  // Called by Fabric.setup after the precision plugin converted the module and it was moved.
  virtual void setup_module(nn::Module& module) { (void)module; }
  // Called after every Fabric.backward (DDP: waits for the gradient all-reduces).
  virtual void post_backward() {}
  // Called when a Fabric.backward raised instead: the collectives that backward launched are let
  // finish (their own errors dropped: the backward's error is the one reported) and the
  // per-backward state is reset, so that the next backward starts clean. Every rank must have
  // failed alike; a rank whose backward went through issued collectives the others never will.
  virtual void abandon_backward() {}
  // no_backward_sync: while disabled, gradients accumulate locally only.
  virtual void set_backward_sync(nn::Module& module, bool enabled) { (void)module, (void)enabled; }
  // Called by Fabric.setup for each optimizer, after its module was set up (`module` may be null
  // for setup_optimizers): a sharding strategy takes over the optimizer's parameters here.
  virtual void setup_optimizer(optim::Optimizer& optimizer, nn::Module* module) { (void)optimizer, (void)module; }
  // Called after every optimizer step through Fabric, `stepped` false when a loss scaler skipped
  // it (ZeRO: all-gather the updated parameter shards).
  virtual void post_optimizer_step(optim::Optimizer& optimizer, bool stepped) { (void)optimizer, (void)stepped; }
  // Called by FabricOptimizer.zero_grad after the optimizer's own zero_grad: a strategy that keeps
  // gradients outside the optimizer's parameters until the step (ZeRO-1's module gradients) drops
  // them too, so that a discarded backward cannot reach the next step.
  virtual void discard_gradients(optim::Optimizer& optimizer) { (void)optimizer; }
  // Called before anything reads the gradients `optimizer` steps (Fabric.clip_gradients, and
  // FabricOptimizer.step before the precision plugin's step): a strategy that keeps them in
  // another form until then makes them the optimizer's .grad here (ZeRO-1/2 in a half mode cast
  // their half partition gradients to float32, as DeepSpeed does inside its step). Idempotent.
  virtual void prepare_optimizer_gradients(optim::Optimizer& optimizer) { (void)optimizer; }
  // Whether Fabric.save/load can write and read this strategy's state (sharded optimizer state
  // needs its own checkpoint layout); Fabric raises NotImplementedError naming the strategy if not.
  virtual bool supports_checkpoints() const { return true; }
  // Whether Fabric.clip_gradients works here (the norm of sharded gradients needs the strategy).
  virtual bool supports_clip_gradients() const { return true; }
  // Fabric.clip_gradients by norm, after the precision plugin unscaled: the total norm_type-norm
  // of the gradients `optimizer` steps, every gradient scaled by min(1, max_norm / (total + 1e-6)).
  // Returns the total norm (the same on every rank). Default: optim::clip_grad_norm_ on
  // optimizer.parameters(); a sharding strategy reduces the shards' norms across ranks.
  virtual Tensor clip_grad_norm(optim::Optimizer& optimizer, double max_norm, double norm_type,
                                bool error_if_nonfinite) {
    return optim::clip_grad_norm_(optimizer.parameters(), max_norm, norm_type, error_if_nonfinite);
  }
  // What Fabric.save writes for `optimizer`: its state_dict in the single-process layout (one
  // entry per original parameter). Collective for sharding strategies: every rank calls it, in the
  // same order, before rank 0 writes. Default: optimizer.state_dict().
  virtual optim::OptimizerState optimizer_state_to_save(const optim::Optimizer& optimizer) {
    return optimizer.state_dict();
  }
  // Fabric.load: restores `state` (single-process layout) into `optimizer`. Default:
  // optimizer.load_state_dict(state); a sharding strategy keeps this rank's partition.
  virtual void load_optimizer_state(optim::Optimizer& optimizer, const optim::OptimizerState& state) {
    optimizer.load_state_dict(state);
  }
  // What Fabric.save writes for a module in the single-process layout (collective for sharded
  // parameters: they are gathered), and how Fabric.load restores it.
  virtual nn::StateDict module_state_to_save(nn::Module& module) { return module.state_dict(); }
  virtual nn::LoadResult load_module_state(nn::Module& module, const nn::StateDict& state, bool strict) {
    return module.load_state_dict(state, strict);
  }
  // "full": Fabric.save writes the single-process layout from rank 0; "sharded": every rank writes
  // the pieces of the modules and optimizers sharded_module(_for) returns (FSDP's default).
  virtual std::string checkpoint_layout() const { return "full"; }
  virtual FullyShardedModule* sharded_module(const nn::Module& module) const { (void)module; return nullptr; }
  virtual FullyShardedModule* sharded_module_for(const optim::Optimizer& optimizer) const {
    (void)optimizer;
    return nullptr;
  }

  // ---- collectives (identity on one process) -----------------------------------------------------
  // `t` may be on any device: what the process group does not take (a CPU tensor under NCCL) goes
  // through its device (collective_staging.h), and results are on t's device.
  // Returns the reduced tensor (a new one; `t` is not modified). "avg" of an integer tensor is the
  // sum divided by the world size, as float32.
  Tensor all_reduce(const Tensor& t, ReduceOp op) const;
  // (world_size, *t.shape): every rank's tensor, stacked (also on one process).
  Tensor all_gather(const Tensor& t) const;
  // Concatenation along dim 0 of every rank's tensor; the ranks' dim-0 sizes may differ (the
  // other dims must agree: ShapeError naming the ranks otherwise).
  Tensor all_gather_uneven(const Tensor& t) const;
  // src's tensor on every rank, whatever the others pass (the reference broadcasts an object): its
  // dtype and shape go first, so a placeholder of another dtype, shape or size is fine, and so is
  // none (an undefined tensor receives on the CPU; Fabric::broadcast receives on its device). An
  // undefined tensor at src is a ValueError on every rank.
  Tensor broadcast(const Tensor& t, int src = 0) const;
  Bytes broadcast(const Bytes& bytes, int src = 0) const;
  void barrier() const;

 protected:
  std::vector<std::pair<int64_t, Shape>> gather_shapes(const Tensor& t, const char* op) const;
  // A process group over `size` ranks that share `name` (this rank is `rank` in it), on the default
  // group's backend and store. Every member creates it, in the same order as its other groups.
  std::shared_ptr<ProcessGroup> new_group(const std::string& name, int rank, int size) const;
  StrategyOptions options_;
  ClusterEnvironment env_;
  std::shared_ptr<Store> store_;
  std::shared_ptr<ProcessGroup> pg_;
  std::unique_ptr<SubprocessLauncher> launcher_;
  bool launched_ = false;
  bool joined_ = false;
};

class DDPStrategy : public Strategy {
 public:
  explicit DDPStrategy(StrategyOptions options);
  void setup_module(nn::Module& module) override;
  void post_backward() override;
  void abandon_backward() override;
  void set_backward_sync(nn::Module& module, bool enabled) override;

 private:
  struct Reducer {
    const nn::Module* module;          // identity only: never dereferenced
    std::weak_ptr<const void> lifetime;  // the module's: expired once it is destroyed
    std::unique_ptr<GradientReducer> reducer;
  };
  // Drops the reducers of modules destroyed since setup (their parameters and buckets).
  void forget_destroyed_modules();
  std::vector<Reducer> reducers_;
};

// "single_device" -> Strategy, "ddp" -> DDPStrategy, "deepspeed" -> ZeroStrategy (zero.h; stage 3:
// FSDPStrategy), "fsdp" -> FSDPStrategy (fsdp_strategy.h);
// NotImplementedError for the others.
std::unique_ptr<Strategy> make_strategy(const StrategyOptions& options);

}  // namespace fabric::distributed
