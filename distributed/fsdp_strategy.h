// FSDPStrategy (`strategy: fsdp`) and ZeRO stage 3 (`deepspeed` with stage 3): each module set up
// through Fabric becomes a FullyShardedModule over the default group (FULL_SHARD, SHARD_GRAD_OP),
// none (NO_SHARD: replicated, gradients all-reduced) or a node's ranks with the other nodes as
// replicas (HYBRID_SHARD). ZeRO-3 is FULL_SHARD with every module that holds parameters as a unit
// and DeepSpeed's gradient division (by the world size before the sum).
#pragma once
#include <memory>
#include <vector>

#include "distributed/fsdp.h"
#include "distributed/strategy.h"

namespace fabric::distributed {

class FSDPStrategy : public Strategy {
 public:
  explicit FSDPStrategy(StrategyOptions options);
  ~FSDPStrategy() override;

  bool is_zero3() const { return options_.name == "deepspeed"; }
  // Mixed precision from the precision plugin (FSDPPrecision / DeepSpeedPrecision): call before
  // setup_module.
  void set_mixed_precision(std::optional<DType> param, std::optional<DType> reduce, std::optional<DType> buffer);
  // The shards' dtype (FSDPOptions::master_dtype): call before setup_module.
  void set_master_dtype(std::optional<DType> dtype);

  // Broadcasts rank 0's parameters and buffers, then shards the module (its parameters become
  // views of released unsharded buffers, gathered by the units' forward hooks).
  void setup_module(nn::Module& module) override;
  void setup_optimizer(optim::Optimizer& optimizer, nn::Module* module) override;
  void post_backward() override;
  void abandon_backward() override;
  void set_backward_sync(nn::Module& module, bool enabled) override;
  bool supports_checkpoints() const override { return true; }
  bool supports_clip_gradients() const override { return true; }
  // The norm over the shards' gradients (each shard counted once), reduced across the shard
  // group in float64; every gradient the optimizer steps is scaled as clip_grad_norm_ does.
  Tensor clip_grad_norm(optim::Optimizer& optimizer, double max_norm, double norm_type,
                        bool error_if_nonfinite) override;
  optim::OptimizerState optimizer_state_to_save(const optim::Optimizer& optimizer) override;
  void load_optimizer_state(optim::Optimizer& optimizer, const optim::OptimizerState& state) override;
  nn::StateDict module_state_to_save(nn::Module& module) override;
  nn::LoadResult load_module_state(nn::Module& module, const nn::StateDict& state, bool strict) override;
  std::string checkpoint_layout() const override { return options_.fsdp.state_dict_type; }
  FullyShardedModule* sharded_module(const nn::Module& module) const override;
  FullyShardedModule* sharded_module_for(const optim::Optimizer& optimizer) const override;

 private:
  // Drops the entries of modules destroyed since they were set up, with their shards.
  void forget_destroyed_modules();

  std::shared_ptr<ProcessGroup> shard_group_, replicate_group_;
  std::vector<std::unique_ptr<FullyShardedModule>> modules_;
};

}  // namespace fabric::distributed
