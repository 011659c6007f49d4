// FullyShardedModule's state: the module and optimizer state in the single-process layout
// (gathered, for full checkpoints) and as this rank's pieces of each parameter (sharded
// checkpoints, loadable by any world size).
#include <algorithm>
#include <map>

#include "autograd/grad_mode.h"
#include "distributed/collective_staging.h"
#include "distributed/fsdp.h"
#include "distributed/fsdp_detail.h"
#include "nn/parameter_names.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::distributed {

namespace {

// The overlap of [lo, hi) with [s, e), or an empty range.
std::pair<int64_t, int64_t> overlap(int64_t lo, int64_t hi, int64_t s, int64_t e) {
  return {std::max(lo, s), std::min(hi, e)};
}

bool is_element_state(const std::string& key, const Tensor& t, int64_t shard_numel) {
  return key != "step" && t.defined() && t.dim() == 1 && t.numel() == shard_numel;
}

}  // namespace

// ---- module state ---------------------------------------------------------------------------------

Tensor FullyShardedModule::buffer_to_save(const std::string& name, const Tensor& buffer) const {
  const auto it = buffer_dtypes_.find(name);
  const Tensor b = buffer.detach();
  return it == buffer_dtypes_.end() ? b.clone() : b.to(it->second).clone();
}

void FullyShardedModule::load_buffer(const std::string& name, Tensor& buffer, const Tensor& src) {
  const Tensor value = src.detach().reshape(buffer.sizes());
  const auto it = buffer_dtypes_.find(name);
  if (it == buffer_dtypes_.end() || buffer.dtype() == it->second) {
    buffer.copy_(value);
    return;
  }
  // A compute copy: the checkpoint's full-precision value goes back in the original dtype (a copy
  // into the cast buffer would round it), and the next forward casts it again.
  buffer.set_data(value.to(buffer.device()).to(it->second).contiguous().clone());
  buffers_cast_ = false;
}

nn::StateDict FullyShardedModule::full_state_dict() {
  NoGradGuard no_grad;
  std::map<const TensorImpl*, Tensor> values;
  for (auto& u : units_) {
    for (auto& f : u->flats) {
      Tensor whole = f->shard.detach();
      if (shard_size_ > 1) {
        // On the host under cpu_offload: staged through the group's device.
        whole = empty({f->padded}, {.dtype = f->dtype, .device = f->shard.device()});
        staged_all_gather(*shard_pg_, whole, f->shard.detach());
      }
      for (size_t i = 0; i < f->params.size(); ++i)
        values[f->params[i].impl()] =
            whole.narrow(0, f->offsets[i], f->params[i].numel()).view(f->params[i].sizes()).clone();
    }
  }
  std::map<std::string, Tensor> by_name;
  for (auto& [impl, names] : nn::parameter_names_by_tensor(root_))
    if (auto it = values.find(impl); it != values.end())
      for (const auto& n : names) by_name[n] = it->second;
  // Buffers by storage: a state_dict entry is a detached handle of it, under its state key.
  std::map<const void*, std::string> buffer_names;
  for (auto& [name, b] : root_.named_buffers())
    if (b.defined()) buffer_names.emplace(b.storage().get(), name);
  nn::StateDict out;
  for (const auto& [key, t] : root_.state_dict()) {
    if (auto it = by_name.find(key); it != by_name.end()) {
      out.insert(key, it->second);
    } else if (auto b = buffer_names.find(t.storage().get()); b != buffer_names.end()) {
      out.insert(key, buffer_to_save(b->second, t));
    } else {
      out.insert(key, t.clone());
    }
  }
  return out;
}

nn::LoadResult FullyShardedModule::load_full_state_dict(const nn::StateDict& state, bool strict) {
  NoGradGuard no_grad;
  nn::LoadResult result;
  const nn::StateDict mine = root_.state_dict();  // handles only: no parameter data is read
  for (const auto& [key, t] : mine)
    if (!state.contains(key)) result.missing_keys.push_back(key);
  for (const auto& [key, t] : state)
    if (!mine.contains(key)) result.unexpected_keys.push_back(key);
  std::vector<std::string> mis_shaped;
  for (const auto& [key, t] : state)
    if (const Tensor* m = mine.find(key); m && m->sizes() != t.sizes())
      mis_shaped.push_back(key + ": checkpoint " + shape_str(t.sizes()) + ", model " + shape_str(m->sizes()));
  const bool fail = !mis_shaped.empty() || (strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty()));
  if (fail) {
    std::string msg = options_.label + " load_state_dict: ";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg += std::string(what) + ": ";
      for (size_t i = 0; i < keys.size(); ++i) msg += (i ? ", " : "") + keys[i];
      msg += ". ";
    };
    list("missing keys", strict ? result.missing_keys : std::vector<std::string>{});
    list("unexpected keys", strict ? result.unexpected_keys : std::vector<std::string>{});
    list("size mismatch", mis_shaped);
    throw ValueError(msg);
  }
  for (auto& u : units_) {
    for (auto& f : u->flats) {
      Tensor piece = f->shard.detach();
      for (size_t i = 0; i < f->params.size(); ++i) {
        const Tensor* src = state.find(f->names[i]);
        if (!src) continue;
        const int64_t lo = f->offsets[i], hi = lo + f->params[i].numel();
        const auto [a, e] = overlap(lo, hi, shard_rank_ * f->shard_numel, (shard_rank_ + 1) * f->shard_numel);
        if (a >= e) continue;
        piece.narrow(0, a - shard_rank_ * f->shard_numel, e - a)
            .copy_(src->detach().reshape({-1}).narrow(0, a - lo, e - a).to(piece.device()));
      }
    }
    reshard(*u);  // the next forward gathers the new values
  }
  for (auto& [key, b] : root_.named_buffers())
    if (const Tensor* src = state.find(key)) load_buffer(key, b, *src);
  return result;
}

std::vector<ShardPiece> FullyShardedModule::local_state_pieces() const {
  std::vector<ShardPiece> out;
  // Replicas (HYBRID_SHARD's other nodes, NO_SHARD's other ranks) hold the same shards.
  if (replicate_pg_ && replicate_pg_->rank() != 0) return out;
  for (const auto& u : units_) {
    for (const auto& f : u->flats) {
      const int64_t s = shard_rank_ * f->shard_numel;
      for (size_t i = 0; i < f->params.size(); ++i) {
        const int64_t lo = f->offsets[i], hi = lo + f->params[i].numel();
        const auto [a, e] = overlap(lo, hi, s, s + f->shard_numel);
        if (a >= e) continue;
        out.push_back({f->names[i], f->params[i].sizes(), a - lo, f->shard.detach().narrow(0, a - s, e - a).clone()});
      }
    }
  }
  if (shard_rank_ == 0) {
    const nn::StateDict sd = root_.state_dict();
    for (auto& [name, b] : root_.named_buffers())
      if (sd.contains(name)) out.push_back({name, b.sizes(), 0, buffer_to_save(name, b).reshape({-1})});
  }
  return out;
}

nn::LoadResult FullyShardedModule::load_state_pieces(
    const std::function<Tensor(const std::string&, int64_t, int64_t)>& read, bool strict) {
  NoGradGuard no_grad;
  nn::LoadResult result;
  auto missing = [&](const std::string& name) {
    if (std::find(result.missing_keys.begin(), result.missing_keys.end(), name) == result.missing_keys.end())
      result.missing_keys.push_back(name);
  };
  for (auto& u : units_) {
    for (auto& f : u->flats) {
      const int64_t s = shard_rank_ * f->shard_numel;
      Tensor shard = f->shard.detach();
      for (size_t i = 0; i < f->params.size(); ++i) {
        const int64_t lo = f->offsets[i], hi = lo + f->params[i].numel();
        const auto [a, e] = overlap(lo, hi, s, s + f->shard_numel);
        if (a >= e) continue;
        const Tensor src = read(f->names[i], a - lo, e - a);
        if (!src.defined()) {
          missing(f->names[i]);
          continue;
        }
        shard.narrow(0, a - s, e - a).copy_(src.reshape({-1}).to(shard.device()));
      }
    }
    reshard(*u);
  }
  const nn::StateDict sd = root_.state_dict();
  for (auto& [name, b] : root_.named_buffers()) {
    if (!sd.contains(name)) continue;
    const Tensor src = read(name, 0, b.numel());
    if (!src.defined()) {
      missing(name);
      continue;
    }
    load_buffer(name, b, src);
  }
  if (strict && !result.missing_keys.empty()) {
    std::string msg = options_.label + " load: the checkpoint lacks ";
    for (size_t i = 0; i < result.missing_keys.size(); ++i) msg += (i ? ", " : "") + result.missing_keys[i];
    throw ValueError(msg);
  }
  return result;
}

// ---- optimizer state ------------------------------------------------------------------------------
//
// The single-process layout numbers the optimizer's parameters as they were before sharding:
// group by group, each group's original parameters in order. `original_slots` rebuilds that order
// from the parameters shard_optimizer recorded, mapping those FSDP owns to their flat parameters.

namespace {

struct Slot {
  FullyShardedModule::Flat* flat = nullptr;  // null: a parameter FSDP does not own
  size_t param = 0;                           // index in flat->params
  Tensor tensor;                              // not ours: the parameter itself
};

}  // namespace

// Per group, the parameters in the order the optimizer held them before sharding: each one FSDP
// owns as its slot in a flat parameter, the others as themselves. Parameters of a frozen flat
// (not in the optimizer since sharding) are left out; groups added after setup count as they are.
static std::vector<std::vector<Slot>> original_slots(
    const optim::Optimizer& optimizer, const std::vector<std::vector<Tensor>>& original,
    const std::vector<std::unique_ptr<FullyShardedModule::Unit>>& units) {
  std::vector<std::vector<Slot>> out(optimizer.num_param_groups());
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    if (gi >= original.size()) {
      for (const Tensor& p : optimizer.group_params(gi)) out[gi].push_back({nullptr, 0, p});
      continue;
    }
    for (const Tensor& p : original[gi]) {
      Slot slot{nullptr, 0, p};
      bool frozen = false;
      for (const auto& u : units)
        for (const auto& f : u->flats)
          for (size_t i = 0; i < f->params.size(); ++i)
            if (f->params[i].is_same(p)) {
              slot = {f.get(), i, Tensor()};
              frozen = !f->trainable;
            }
      if (!frozen) out[gi].push_back(slot);
    }
  }
  return out;
}

// The live state index of tensor `t` in `optimizer` (state_dict numbering), or -1.
static int64_t live_index(const optim::Optimizer& optimizer, const Tensor& t) {
  int64_t index = 0;
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi)
    for (const Tensor& p : optimizer.group_params(gi)) {
      if (p.is_same(t)) return index;
      ++index;
    }
  return -1;
}

optim::OptimizerState FullyShardedModule::full_optimizer_state(const optim::Optimizer& optimizer) {
  NoGradGuard no_grad;
  const optim::OptimizerState live = optimizer.state_dict();
  const auto slots = original_slots(optimizer, original_params(optimizer), units_);
  // Gathered per-element state of each flat parameter, in one fixed order on every rank.
  std::map<const Flat*, std::map<std::string, std::pair<Tensor, bool>>> whole;
  for (const auto& u : units_) {
    for (const auto& f : u->flats) {
      const auto it = live.state.find(live_index(optimizer, f->shard));
      if (it == live.state.end()) continue;
      auto& w = whole[f.get()];
      for (const auto& [key, t] : it->second) {
        if (shard_size_ > 1 && is_element_state(key, t, f->shard_numel)) {
          // The state lives beside its shard: on the host under cpu_offload (staged).
          Tensor g = empty({f->padded}, {.dtype = t.dtype(), .device = t.device()});
          staged_all_gather(*shard_pg_, g, t);
          w[key] = {g, true};
        } else {
          w[key] = {t, is_element_state(key, t, f->shard_numel)};
        }
      }
    }
  }
  optim::OptimizerState out;
  int64_t index = 0;
  for (size_t gi = 0; gi < slots.size(); ++gi) {
    optim::GroupState gs{live.param_groups.at(gi).options, {}};
    for (const Slot& s : slots[gi]) {
      gs.params.push_back(index);
      if (!s.flat) {
        if (auto it = live.state.find(live_index(optimizer, s.tensor)); it != live.state.end()) out.state[index] = it->second;
      } else if (auto it = whole.find(s.flat); it != whole.end()) {
        const Tensor& p = s.flat->params[s.param];
        optim::ParamState st;
        for (const auto& [key, w] : it->second)
          st[key] = w.second ? w.first.narrow(0, s.flat->offsets[s.param], p.numel()).view(p.sizes()).clone()
                             : w.first.clone();
        out.state[index] = std::move(st);
      }
      ++index;
    }
    out.param_groups.push_back(std::move(gs));
  }
  return out;
}

void FullyShardedModule::load_full_optimizer_state(optim::Optimizer& optimizer, const optim::OptimizerState& sd) {
  NoGradGuard no_grad;
  const char* who = optimizer.name();
  const auto slots = original_slots(optimizer, original_params(optimizer), units_);
  FABRIC_CHECK(sd.param_groups.size() == slots.size(), ValueError, options_.label, ": ", who, ".load_state_dict: the state dict has ",
               sd.param_groups.size(), " parameter groups but the optimizer has ", slots.size());
  optim::OptimizerState mine;
  for (size_t gi = 0; gi < slots.size(); ++gi) {
    const auto& ids = sd.param_groups[gi].params;
    FABRIC_CHECK(ids.size() == slots[gi].size(), ValueError, options_.label, ": ", who, ".load_state_dict: parameter group ", gi,
                 " holds ", ids.size(), " parameters in the state dict but ", slots[gi].size(),
                 " in the optimizer (before sharding)");
    optim::GroupState gs{sd.param_groups[gi].options, {}};
    // Per flat parameter of this group: per key a padded buffer laid out like it, or a scalar.
    std::map<const Flat*, std::pair<std::map<std::string, Tensor>, std::map<std::string, Tensor>>> flats;
    for (size_t j = 0; j < ids.size(); ++j) {
      const Slot& s = slots[gi][j];
      const auto it = sd.state.find(ids[j]);
      if (!s.flat) {
        const int64_t li = live_index(optimizer, s.tensor);
        if (it != sd.state.end()) mine.state[li] = it->second;
        continue;
      }
      auto& [elems, scalars] = flats[s.flat];
      if (it == sd.state.end()) continue;
      const Tensor& p = s.flat->params[s.param];
      for (const auto& [key, t] : it->second) {
        FABRIC_CHECK(t.defined(), ValueError, options_.label, ": ", who, ".load_state_dict: state.", ids[j], ".", key, " is undefined");
        if (key == "step" || !is_floating(t.dtype()) || t.sizes() != p.sizes()) {
          FABRIC_CHECK(key == "step" || t.dim() == 0, ValueError, options_.label, ": ", who, ".load_state_dict: state.", ids[j], ".",
                       key, " has shape ", shape_str(t.sizes()), " but the parameter has shape ", shape_str(p.sizes()));
          if (!scalars.count(key)) scalars[key] = t;
          continue;
        }
        Tensor& f = elems[key];
        if (!f.defined()) f = zeros({s.flat->padded}, {.dtype = s.flat->dtype, .device = s.flat->shard.device()});
        f.narrow(0, s.flat->offsets[s.param], p.numel()).copy_(t.detach().reshape({-1}));
      }
    }
    for (const auto& [flat, parts] : flats) {
      if (parts.first.empty() && parts.second.empty()) continue;
      optim::ParamState st = parts.second;
      for (const auto& [key, f] : parts.first)
        st[key] = f.narrow(0, shard_rank_ * flat->shard_numel, flat->shard_numel).clone();
      mine.state[live_index(optimizer, flat->shard)] = std::move(st);
    }
    const auto& params = optimizer.group_params(gi);
    for (const Tensor& p : params) gs.params.push_back(live_index(optimizer, p));
    mine.param_groups.push_back(std::move(gs));
  }
  optimizer.load_state_dict(mine);
}

FullyShardedModule::OptimizerPieces FullyShardedModule::local_optimizer_pieces(const optim::Optimizer& optimizer) const {
  NoGradGuard no_grad;
  const optim::OptimizerState live = optimizer.state_dict();
  const auto slots = original_slots(optimizer, original_params(optimizer), units_);
  const bool writer = !replicate_pg_ || replicate_pg_->rank() == 0;
  OptimizerPieces out;
  int64_t index = 0;
  for (size_t gi = 0; gi < slots.size(); ++gi) {
    optim::GroupState gs{live.param_groups.at(gi).options, {}};
    for (const Slot& s : slots[gi]) {
      gs.params.push_back(index);
      const Tensor& owner = s.flat ? s.flat->shard : s.tensor;
      const auto it = live.state.find(live_index(optimizer, owner));
      if (it != live.state.end()) {
        optim::ParamState scalars;
        for (const auto& [key, t] : it->second) {
          if (!s.flat || !is_element_state(key, t, s.flat->shard_numel)) {
            scalars[key] = t;
            continue;
          }
          out.element_keys[index].push_back(key);
          const int64_t lo = s.flat->offsets[s.param], hi = lo + s.flat->params[s.param].numel();
          const int64_t base = shard_rank_ * s.flat->shard_numel;
          const auto [a, e] = overlap(lo, hi, base, base + s.flat->shard_numel);
          if (writer && a < e)
            out.pieces.push_back({std::to_string(index) + "." + key, s.flat->params[s.param].sizes(), a - lo,
                                  t.detach().narrow(0, a - base, e - a).clone()});
        }
        out.scalars.state[index] = std::move(scalars);
      }
      ++index;
    }
    out.scalars.param_groups.push_back(std::move(gs));
  }
  return out;
}

void FullyShardedModule::load_optimizer_pieces(
    optim::Optimizer& optimizer, const OptimizerPieces& saved,
    const std::function<Tensor(const std::string&, int64_t, int64_t)>& read) {
  NoGradGuard no_grad;
  const char* who = optimizer.name();
  const auto slots = original_slots(optimizer, original_params(optimizer), units_);
  const auto& sd = saved.scalars;
  FABRIC_CHECK(sd.param_groups.size() == slots.size(), ValueError, options_.label, ": ", who, " load: the checkpoint has ",
               sd.param_groups.size(), " parameter groups but the optimizer has ", slots.size());
  optim::OptimizerState mine;
  for (size_t gi = 0; gi < slots.size(); ++gi) {
    const auto& ids = sd.param_groups[gi].params;
    FABRIC_CHECK(ids.size() == slots[gi].size(), ValueError, options_.label, ": ", who, " load: parameter group ", gi, " holds ",
                 ids.size(), " parameters in the checkpoint but ", slots[gi].size(), " in the optimizer (before sharding)");
    std::map<const Flat*, optim::ParamState> flats;
    for (size_t j = 0; j < ids.size(); ++j) {
      const Slot& s = slots[gi][j];
      const auto it = sd.state.find(ids[j]);
      if (!s.flat) {
        if (it != sd.state.end()) mine.state[live_index(optimizer, s.tensor)] = it->second;
        continue;
      }
      auto& st = flats[s.flat];
      if (it != sd.state.end())
        for (const auto& [key, t] : it->second)
          if (!st.count(key)) st[key] = t;
      const auto keys = saved.element_keys.find(ids[j]);
      if (keys == saved.element_keys.end()) continue;
      const int64_t lo = s.flat->offsets[s.param], hi = lo + s.flat->params[s.param].numel();
      const int64_t base = shard_rank_ * s.flat->shard_numel;
      const auto [a, e] = overlap(lo, hi, base, base + s.flat->shard_numel);
      for (const auto& key : keys->second) {
        Tensor& dst = st[key];
        if (!dst.defined() || dst.numel() != s.flat->shard_numel)
          dst = zeros({s.flat->shard_numel}, {.dtype = s.flat->dtype, .device = s.flat->shard.device()});
        if (a >= e) continue;
        const Tensor src = read(std::to_string(ids[j]) + "." + key, a - lo, e - a);
        FABRIC_CHECK(src.defined(), ValueError, options_.label, ": ", who, " load: the checkpoint lacks state.", ids[j], ".", key);
        dst.narrow(0, a - base, e - a).copy_(src.reshape({-1}));
      }
    }
    for (auto& [flat, st] : flats)
      if (!st.empty()) mine.state[live_index(optimizer, flat->shard)] = std::move(st);
    optim::GroupState gs{sd.param_groups[gi].options, {}};
    for (const Tensor& p : optimizer.group_params(gi)) gs.params.push_back(live_index(optimizer, p));
    mine.param_groups.push_back(std::move(gs));
  }
  optimizer.load_state_dict(mine);
}

}  // namespace fabric::distributed
