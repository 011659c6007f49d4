// FullyShardedModule and the optimizers set up with it: each optimizer steps the shards of the flat
// parameters in place of the parameters they hold (regrouped by optimizer group first).
#include <algorithm>

#include "autograd/grad_mode.h"
#include "distributed/fsdp.h"
#include "distributed/fsdp_detail.h"
#include "tensor/error.h"

namespace fabric::distributed {

void FullyShardedModule::shard_optimizer(optim::Optimizer& optimizer) {
  NoGradGuard no_grad;
  FABRIC_CHECK(!owns_optimizer(optimizer), ValueError, options_.label, ": this ", optimizer.name(), " optimizer is already set up");
  auto group_of = [&](const Tensor& p) -> int64_t {
    for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi)
      for (const Tensor& q : optimizer.group_params(gi))
        if (q.is_same(p)) return static_cast<int64_t>(gi);
    return -1;
  };
  for (auto& u : units_) {
    bool regroup = false;
    for (auto& f : u->flats) {
      for (const Tensor& p : f->params) regroup = regroup || (p.requires_grad() && group_of(p) != f->group);
    }
    // Every rank takes the same branch (same module, same optimizer): the gathers line up.
    if (regroup) build_flats(*u, group_of);
  }
  auto& original = original_params_[&optimizer];
  original.clear();
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) original.push_back(optimizer.group_params(gi));
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    std::vector<Tensor> replacement;
    for (const Tensor& p : optimizer.group_params(gi)) {
      bool ours = false;
      for (auto& u : units_)
        for (auto& f : u->flats)
          for (const Tensor& q : f->params) ours = ours || q.is_same(p);
      if (!ours) replacement.push_back(p);
    }
    for (auto& u : units_) {
      for (auto& f : u->flats) {
        if (f->group != static_cast<int64_t>(gi) || !f->trainable) continue;
        for (const Tensor& s : replacement)
          FABRIC_CHECK(!s.is_same(f->shard), ValueError, options_.label, ": a shard is already in ", optimizer.name(), " group ", gi);
        replacement.push_back(f->shard);
      }
    }
    optimizer.replace_group_params(gi, std::move(replacement));
  }
  optimizers_.push_back(&optimizer);
}

const std::vector<std::vector<Tensor>>& FullyShardedModule::original_params(const optim::Optimizer& optimizer) const {
  const auto it = original_params_.find(&optimizer);
  FABRIC_CHECK(it != original_params_.end() && owns_optimizer(optimizer), ValueError, options_.label, ": this ", optimizer.name(),
               " optimizer was not set up with this module");
  return it->second;
}

bool FullyShardedModule::owns_optimizer(const optim::Optimizer& optimizer) const {
  if (std::find(optimizers_.begin(), optimizers_.end(), &optimizer) == optimizers_.end()) return false;
  // The same address may be a new optimizer: it is ours only while it steps our shards.
  for (const Tensor& p : optimizer.parameters())
    if (is_shard(p)) return true;
  return false;
}

}  // namespace fabric::distributed
