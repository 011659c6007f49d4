// ZeroStrategy's state in the single-process layout: the sharded optimizer state gathered into (and
// cut back out of) one entry per original parameter, and module state with fp32 master values.
#include <algorithm>
#include <map>
#include <string>

#include "autograd/grad_mode.h"
#include "distributed/zero.h"
#include "distributed/zero_detail.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::distributed {
namespace {

// Whether `t` (a state_dict entry: a detached view) is the parameter `p`: the same memory, layout
// and dtype.
bool same_view(const Tensor& t, const Tensor& p) {
  return t.defined() && t.storage().get() == p.storage().get() && t.storage_offset() == p.storage_offset() &&
         t.sizes() == p.sizes() && t.strides() == p.strides() && t.dtype() == p.dtype();
}

}  // namespace

optim::OptimizerState ZeroStrategy::optimizer_state_to_save(const optim::Optimizer& optimizer) {
  const Sharded* sharded = find(optimizer);
  if (!sharded) return optimizer.state_dict();
  NoGradGuard no_grad;
  const optim::OptimizerState live = optimizer.state_dict();  // indices of the shards
  optim::OptimizerState out;
  int64_t index = 0, live_index = 0;
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    const auto& subs = sharded->by_group[gi];
    const auto& slots = sharded->slots[gi];
    optim::GroupState gs{live.param_groups.at(gi).options, {}};
    if (subs.empty()) {
      for (size_t j = 0; j < slots.size(); ++j, ++index, ++live_index) {
        gs.params.push_back(index);
        if (auto it = live.state.find(live_index); it != live.state.end()) out.state[index] = it->second;
      }
    } else {
      // Per Group: key -> (tensor, gathered). Every rank holds the same keys (same optimizer, same
      // steps): the gathers line up.
      std::vector<std::map<std::string, std::pair<Tensor, bool>>> whole(subs.size());
      for (size_t k = 0; k < subs.size(); ++k, ++live_index) {
        const Group* g = subs[k];
        auto it = live.state.find(live_index);
        if (it == live.state.end()) continue;
        for (const auto& [key, t] : it->second) {
          if (key != "step" && t.dim() == 1 && t.numel() == g->partition) {
            Tensor flat = empty({g->padded}, {.dtype = t.dtype(), .device = t.device()});
            group().all_gather(flat, t.contiguous())->wait();
            whole[k][key] = {flat, true};
          } else {
            whole[k][key] = {t, false};
          }
        }
      }
      for (const auto& slot : slots) {
        gs.params.push_back(index);
        if (slot.sub >= 0 && !whole[size_t(slot.sub)].empty()) {
          const Group* g = subs[size_t(slot.sub)];
          const Tensor& p = g->params[size_t(slot.index)];
          optim::ParamState st;
          for (const auto& [key, w] : whole[size_t(slot.sub)])
            st[key] = w.second ? w.first.narrow(0, g->offsets[size_t(slot.index)], p.numel())
                                     .view(p.sizes())
                                     .clone()
                               : w.first.clone();
          out.state[index] = std::move(st);
        }
        ++index;
      }
    }
    out.param_groups.push_back(std::move(gs));
  }
  return out;
}

void ZeroStrategy::load_optimizer_state(optim::Optimizer& optimizer, const optim::OptimizerState& sd) {
  const Sharded* sharded = find(optimizer);
  if (!sharded) return optimizer.load_state_dict(sd);
  NoGradGuard no_grad;
  const char* who = optimizer.name();
  FABRIC_CHECK(sd.param_groups.size() == optimizer.num_param_groups(), ValueError, "ZeRO: ", who,
               ".load_state_dict: the state dict has ", sd.param_groups.size(),
               " parameter groups but the optimizer has ", optimizer.num_param_groups());
  const int64_t rank = global_rank();
  optim::OptimizerState mine;
  int64_t live_index = 0;
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    const auto& subs = sharded->by_group[gi];
    const auto& slots = sharded->slots[gi];
    const auto& ids = sd.param_groups[gi].params;
    FABRIC_CHECK(ids.size() == slots.size(), ValueError, "ZeRO: ", who, ".load_state_dict: parameter group ", gi,
                 " holds ", ids.size(), " parameters in the state dict but ", slots.size(),
                 " in the optimizer (before sharding)");
    optim::GroupState gs{sd.param_groups[gi].options, {}};
    if (subs.empty()) {
      for (size_t j = 0; j < ids.size(); ++j, ++live_index) {
        gs.params.push_back(live_index);
        if (auto it = sd.state.find(ids[j]); it != sd.state.end()) mine.state[live_index] = it->second;
      }
    } else {
      // Per Group and key: a flat buffer laid out like its parameters, or the scalar of the first.
      std::vector<std::map<std::string, Tensor>> flat(subs.size()), scalar(subs.size());
      for (size_t j = 0; j < ids.size(); ++j) {
        auto it = sd.state.find(ids[j]);
        if (slots[j].sub < 0 || it == sd.state.end()) continue;
        const size_t k = size_t(slots[j].sub);
        const Group* g = subs[k];
        const Tensor& p = g->params[size_t(slots[j].index)];
        for (const auto& [key, t] : it->second) {
          FABRIC_CHECK(t.defined(), ValueError, "ZeRO: ", who, ".load_state_dict: state.", ids[j], ".", key,
                       " is undefined");
          // Scalars of the flat group: the step, integer state, and 0-dim float state of a
          // parameter that is not itself 0-dim (NAdam's mu_product, the same for every parameter).
          if (key == "step" || !is_floating(t.dtype()) || (t.dim() == 0 && p.dim() != 0)) {
            if (!scalar[k].count(key)) scalar[k][key] = t;
            continue;
          }
          FABRIC_CHECK(t.sizes() == p.sizes(), ValueError, "ZeRO: ", who, ".load_state_dict: state.", ids[j], ".",
                       key, " has shape ", shape_str(t.sizes()), " but parameter ", ids[j], " has shape ",
                       shape_str(p.sizes()));
          Tensor& f = flat[k][key];
          if (!f.defined()) f = zeros({g->padded}, {.dtype = DType::float32, .device = g->flat.device()});
          const Tensor src = t.detach().reshape({-1}).to(f.device()).to(DType::float32);
          f.narrow(0, g->offsets[size_t(slots[j].index)], p.numel()).copy_(src);
        }
      }
      for (size_t k = 0; k < subs.size(); ++k) {
        if (!flat[k].empty() || !scalar[k].empty()) {
          optim::ParamState st = scalar[k];
          for (const auto& [key, f] : flat[k])
            st[key] = f.narrow(0, rank * subs[k]->partition, subs[k]->partition).clone();
          mine.state[live_index] = std::move(st);
        }
        gs.params.push_back(live_index++);
      }
    }
    mine.param_groups.push_back(std::move(gs));
  }
  optimizer.load_state_dict(mine);
}

nn::StateDict ZeroStrategy::module_state_to_save(nn::Module& module) {
  nn::StateDict sd = module.state_dict();
  NoGradGuard no_grad;
  // Every rank holds the same modules and optimizers, so the same groups match here and the
  // gathers line up. Float32 groups need nothing: their parameters are what the optimizer steps.
  for (const auto& s : sharded_) {
    for (const auto& g : s->groups) {
      if (!g->half()) continue;
      std::vector<std::pair<std::string, size_t>> hits;  // (state_dict name, parameter)
      for (const auto& [name, t] : sd)
        for (size_t i = 0; i < g->params.size(); ++i)
          if (same_view(t, g->params[i])) hits.emplace_back(name, i);
      if (hits.empty()) continue;
      Tensor whole = empty({g->padded}, {.dtype = DType::float32, .device = g->shard.device()});
      group().all_gather(whole, g->shard.detach())->wait();
      for (const auto& [name, i] : hits) {
        const Tensor& p = g->params[i];
        sd.insert(name, whole.narrow(0, g->offsets[i], p.numel()).view(p.sizes()).clone());
      }
    }
  }
  return sd;
}

nn::LoadResult ZeroStrategy::load_module_state(nn::Module& module, const nn::StateDict& state, bool strict) {
  // Validates everything before it copies: on an error neither the module nor a master changed.
  nn::LoadResult result = module.load_state_dict(state, strict);
  NoGradGuard no_grad;
  const int64_t rank = global_rank();
  for (const auto& [name, t] : module.state_dict()) {
    const Tensor* src = state.find(name);
    if (src == nullptr || !src->defined()) continue;
    for (const auto& s : sharded_) {
      for (const auto& g : s->groups) {
        if (!g->half()) continue;
        for (size_t i = 0; i < g->params.size(); ++i) {
          if (!same_view(t, g->params[i])) continue;
          const int64_t lo = g->offsets[i], mine = rank * g->partition;
          const int64_t a = std::max(lo, mine), e = std::min(lo + t.numel(), mine + g->partition);
          if (a >= e) continue;
          const Tensor values = src->detach().reshape({-1}).narrow(0, a - lo, e - a);
          g->shard.narrow(0, a - mine, e - a).copy_(values.to(g->shard.device()).to(DType::float32));
        }
      }
    }
  }
  return result;
}

}  // namespace fabric::distributed
