// FSDPStrategy: builds the FullyShardedModule of each module set up, on the process groups its
// sharding strategy needs, and routes Fabric's hooks (backward, clipping, checkpoints) to it.
#include "distributed/fsdp_strategy.h"

#include "distributed/sharded_clip.h"
#include "distributed/sharded_optimizer_check.h"
#include "tensor/error.h"

namespace fabric::distributed {

FSDPStrategy::FSDPStrategy(StrategyOptions options) : Strategy(std::move(options)) {
  if (is_zero3()) {
    FABRIC_CHECK(options_.zero_stage == 3, ValueError, "FSDPStrategy runs ZeRO stage 3 only, not ", options_.zero_stage);
    options_.fsdp.sharding_strategy = ShardingStrategy::full_shard;
    options_.fsdp.divide_before_reduce = true;
    options_.fsdp.skip_flats_without_gradient = false;  // DeepSpeed steps its partitions whole
    options_.fsdp.label = "ZeRO-3";
    options_.fsdp.cpu_offload = options_.fsdp.cpu_offload || options_.offload;
    // Like ZeRO-1/2 here, ZeRO-3 checkpoints hold the single-process layout.
    options_.fsdp.state_dict_type = "full";
  }
  if (options_.fsdp.sharding_strategy == ShardingStrategy::hybrid_shard) {
    FABRIC_CHECK(!options_.fsdp.auto_wrap_policy.empty(), ValueError,
                 "FSDP: HYBRID_SHARD needs an auto_wrap_policy (the reference raises without a policy, "
                 "process group or device mesh)");
  }
}

FSDPStrategy::~FSDPStrategy() = default;

void FSDPStrategy::forget_destroyed_modules() {
  // Every rank destroys its module at the same point of the program, so every rank drops the entry
  // (and the collectives it would take part in) at the same call.
  std::erase_if(modules_, [](const auto& m) { return !m->root_alive(); });
}

void FSDPStrategy::set_mixed_precision(std::optional<DType> param, std::optional<DType> reduce,
                                       std::optional<DType> buffer) {
  forget_destroyed_modules();
  FABRIC_CHECK(modules_.empty(), ValueError, "FSDP: mixed precision must be set before the first module is set up");
  options_.fsdp.param_dtype = param;
  options_.fsdp.reduce_dtype = reduce;
  options_.fsdp.buffer_dtype = buffer;
}

void FSDPStrategy::set_master_dtype(std::optional<DType> dtype) {
  forget_destroyed_modules();
  FABRIC_CHECK(modules_.empty(), ValueError, "FSDP: the master dtype must be set before the first module is set up");
  FABRIC_CHECK(!dtype || is_floating(*dtype), DTypeError, "FSDP: the master dtype must be floating-point, got ",
               dtype_name(*dtype));
  options_.fsdp.master_dtype = dtype;
}

void FSDPStrategy::setup_module(nn::Module& module) {
  forget_destroyed_modules();
  for (const auto& m : modules_) FABRIC_CHECK(!m->wraps(module), ValueError, "FSDP: this module is already set up");
  if (pg_) broadcast_module_states(module, *pg_, 0);
  const int n = world_size();
  if (pg_ && !shard_group_ && !replicate_group_) {
    switch (options_.fsdp.sharding_strategy) {
      case ShardingStrategy::full_shard:
      case ShardingStrategy::shard_grad_op: shard_group_ = pg_; break;
      case ShardingStrategy::no_shard: replicate_group_ = pg_; break;
      case ShardingStrategy::hybrid_shard: {
        // Shard within a node, replicate across nodes (rank = node * devices + local rank).
        const int per_node = n / std::max(1, options_.num_nodes);
        FABRIC_CHECK(per_node * options_.num_nodes == n, ValueError, "FSDP HYBRID_SHARD: world size ", n,
                     " is not num_nodes (", options_.num_nodes, ") x devices");
        const int node = global_rank() / per_node, local = global_rank() % per_node;
        shard_group_ = per_node > 1 ? new_group("fsdp_node_" + std::to_string(node), local, per_node) : nullptr;
        replicate_group_ = options_.num_nodes > 1
                               ? new_group("fsdp_replica_" + std::to_string(local), node, options_.num_nodes)
                               : nullptr;
        break;
      }
    }
  }
  std::function<bool(const nn::Module&)> filter;
  if (is_zero3()) {
    // DeepSpeed gathers each module's own parameters around its forward.
    filter = [](const nn::Module& m) {
      for (auto& [name, p] : m.named_parameters(/*recurse=*/false))
        if (p.defined()) return true;
      return false;
    };
  }
  modules_.push_back(
      std::make_unique<FullyShardedModule>(module, shard_group_, replicate_group_, n, options_.fsdp, filter));
}

void FSDPStrategy::setup_optimizer(optim::Optimizer& optimizer, nn::Module* module) {
  forget_destroyed_modules();
  for (auto& m : modules_) {
    if (module && !m->wraps(*module)) continue;
    bool any = false;
    for (const Tensor& p : optimizer.parameters()) any = any || m->holds(p);
    if (!any) continue;
    check_shardable(optimizer, options_.fsdp.label + " (strategy '" + options_.name + "')");
    m->shard_optimizer(optimizer);
  }
}

void FSDPStrategy::post_backward() {
  forget_destroyed_modules();
  for (auto& m : modules_) m->finish_backward();
}

void FSDPStrategy::abandon_backward() {
  forget_destroyed_modules();
  for (auto& m : modules_) m->abandon_backward();
}

void FSDPStrategy::set_backward_sync(nn::Module& module, bool enabled) {
  forget_destroyed_modules();
  for (auto& m : modules_)
    if (m->wraps(module)) m->set_gradient_sync(enabled);
}

FullyShardedModule* FSDPStrategy::sharded_module(const nn::Module& module) const {
  for (const auto& m : modules_)
    if (m->wraps(module)) return m.get();
  return nullptr;
}

FullyShardedModule* FSDPStrategy::sharded_module_for(const optim::Optimizer& optimizer) const {
  for (const auto& m : modules_)
    if (m->owns_optimizer(optimizer)) return m.get();
  return nullptr;
}

Tensor FSDPStrategy::clip_grad_norm(optim::Optimizer& optimizer, double max_norm, double norm_type,
                                    bool error_if_nonfinite) {
  FullyShardedModule* fsdp = sharded_module_for(optimizer);
  if (!fsdp) return Strategy::clip_grad_norm(optimizer, max_norm, norm_type, error_if_nonfinite);
  // Shards are disjoint within the shard group; replicas (HYBRID_SHARD's other nodes) hold equal
  // copies of them, so the reduction spans the shard group only.
  return clip_sharded_grad_norm(
      optimizer, [&](const Tensor& p) { return fsdp->is_shard(p); }, fsdp->shard_group().get(), max_norm, norm_type,
      error_if_nonfinite, "FSDP (strategy '" + options_.name + "')");
}

optim::OptimizerState FSDPStrategy::optimizer_state_to_save(const optim::Optimizer& optimizer) {
  FullyShardedModule* fsdp = sharded_module_for(optimizer);
  return fsdp ? fsdp->full_optimizer_state(optimizer) : optimizer.state_dict();
}

void FSDPStrategy::load_optimizer_state(optim::Optimizer& optimizer, const optim::OptimizerState& state) {
  FullyShardedModule* fsdp = sharded_module_for(optimizer);
  if (fsdp) return fsdp->load_full_optimizer_state(optimizer, state);
  optimizer.load_state_dict(state);
}

nn::StateDict FSDPStrategy::module_state_to_save(nn::Module& module) {
  FullyShardedModule* fsdp = sharded_module(module);
  return fsdp ? fsdp->full_state_dict() : module.state_dict();
}

nn::LoadResult FSDPStrategy::load_module_state(nn::Module& module, const nn::StateDict& state, bool strict) {
  FullyShardedModule* fsdp = sharded_module(module);
  return fsdp ? fsdp->load_full_state_dict(state, strict) : module.load_state_dict(state, strict);
}

}  // namespace fabric::distributed
