// clip_gradients by norm over gradients that are partly sharded (ZeRO partitions, FSDP shards):
// the norm terms of the shards are reduced across the group that splits them; every other gradient
// the optimizer steps is replicated and counted once. Shared by ZeroStrategy and FSDPStrategy.
#pragma once
#include <functional>
#include <string>

#include "distributed/process_group.h"
#include "optim/optimizer.h"

namespace fabric::distributed {

// Returns the total norm_type-norm (the same on every rank) after scaling every gradient of
// `optimizer` as clip_grad_norm_ does. `is_shard(p)`: p's gradient is this rank's disjoint piece;
// `group` (null: nothing to reduce) splits the shards. Norm terms are summed (p-norms: |g|^p) or
// maxed (inf) in float64. `who` names the strategy in errors (NotImplementedError for norm types
// other than a positive p or inf).
Tensor clip_sharded_grad_norm(optim::Optimizer& optimizer, const std::function<bool(const Tensor&)>& is_shard,
                              ProcessGroup* group, double max_norm, double norm_type, bool error_if_nonfinite,
                              const std::string& who);

}  // namespace fabric::distributed
