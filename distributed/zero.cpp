// ZeroStrategy: optimizer-state (stage 1) and gradient (stage 2) sharding over a process group.
//
// Buckets: partition r of a group is flat[r*P, (r+1)*P). Bucket k covers the same slice
// [k*B, k*B + len) of every partition, so one reduce-scatter of N chunks of len elements lands
// exactly in this rank's partition gradient at [k*B, k*B + len): no reduce-to-owner and no
// uneven chunks. A bucket is ready when every parameter overlapping one of its N slices has its
// gradient; buckets are launched in one fixed order (groups last to first, k descending: the order
// backward produces gradients in), so every rank issues the same sequence of collectives.
#include "distributed/zero.h"

#include "optim/clip_grad.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric::distributed {

struct ZeroStrategy::Group {
  struct Bucket {
    int64_t start = 0, len = 0;   // slice of every partition
    std::vector<size_t> params;   // indices into params
    int64_t pending = 0;          // parameters whose gradient is not ready yet in this backward
    WorkPtr work;
  };
  std::vector<Tensor> params;     // the group's trainable parameters, in group order
  std::vector<int64_t> offsets;   // element offset of each in flat
  std::vector<std::vector<size_t>> buckets_of;  // per parameter
  std::vector<int64_t> remaining; // per parameter: buckets not yet launched in this backward
  std::vector<uint8_t> ready;
  Tensor flat;                    // (padded,) float32: the module's parameters are views of it
  Tensor shard;                   // (P,) leaf on flat's storage at rank*P: what the optimizer steps
  Tensor pending_grad;            // (P,) this backward's reduced partition gradient
  std::vector<Bucket> buckets;
  int64_t numel = 0, padded = 0, partition = 0;
};

struct ZeroStrategy::Sharded {
  const optim::Optimizer* optimizer = nullptr;
  std::vector<std::unique_ptr<Group>> groups;
  // Per optimizer group: the Group sharding it (null when it had nothing trainable and was left
  // as it was), and per original parameter its index in Group::params (-1: not trainable). The
  // single-process state_dict layout is rebuilt from these.
  std::vector<Group*> by_group;
  std::vector<std::vector<int64_t>> slots;
};

ZeroStrategy::ZeroStrategy(StrategyOptions options)
    : Strategy(std::move(options)), alive_(std::make_shared<bool>(true)) {
  FABRIC_CHECK(options_.zero_stage == 1 || options_.zero_stage == 2, ValueError, "strategy '", options_.name,
               "': ZeroStrategy runs ZeRO stages 1 and 2, not ", options_.zero_stage,
               " (make_strategy gives stage 3 to FSDPStrategy)");
}

ZeroStrategy::~ZeroStrategy() {
  *alive_ = false;
  for (auto& [g, k] : order_) {
    auto& b = g->buckets[k];
    if (!b.work) continue;
    try {
      b.work->wait();
    } catch (...) {  // reported by post_backward, or the run is already failing
    }
  }
}

void ZeroStrategy::set_reduce_bucket_elements(int64_t n) {
  FABRIC_CHECK(n > 0, ValueError, "ZeRO: reduce_bucket_elements must be positive, got ", n);
  bucket_elements_ = n;
}

void ZeroStrategy::setup_module(nn::Module& module) {
  if (pg_) broadcast_module_states(module, *pg_, 0);
}

void ZeroStrategy::setup_optimizer(optim::Optimizer& optimizer, nn::Module* module) {
  (void)module;  // the optimizer's parameters are the module's: set_data reaches both
  if (!pg_) return;  // one process: nothing to shard
  NoGradGuard no_grad;
  const int64_t n = world_size(), rank = global_rank();
  for (auto& s : sharded_) {
    // An optimizer that died leaves its entry (its groups still take part in every backward's
    // collectives, as zeros); a new one may reuse its address.
    if (s->optimizer == &optimizer && !owns(*s, optimizer)) s->optimizer = nullptr;
    FABRIC_CHECK(s->optimizer != &optimizer, ValueError, "ZeRO: this ", optimizer.name(),
                 " optimizer is already sharded");
  }
  auto sharded = std::make_unique<Sharded>();
  sharded->optimizer = &optimizer;
  std::vector<std::vector<Tensor>> replacement(optimizer.num_param_groups());
  sharded->by_group.assign(optimizer.num_param_groups(), nullptr);
  sharded->slots.resize(optimizer.num_param_groups());
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    auto g = std::make_unique<Group>();
    for (const Tensor& p : optimizer.group_params(gi)) {
      sharded->slots[gi].push_back(p.requires_grad() ? static_cast<int64_t>(g->params.size()) : -1);
      if (!p.requires_grad()) continue;
      FABRIC_CHECK(p.dtype() == DType::float32, NotImplementedError, "ZeRO (strategy '", options_.name,
                   "'): parameter ", g->params.size(), " of ", optimizer.name(), " group ", gi, " is ",
                   dtype_name(p.dtype()), "; only float32 parameters (precision 32-true, 16-mixed, bf16-mixed) are "
                   "sharded so far: 16-true/bf16-true need float32 master shards, not implemented yet");
      for (const auto& s : sharded_)
        for (const auto& og : s->groups)
          for (const Tensor& q : og->params)
            FABRIC_CHECK(!q.is_same(p), ValueError, "ZeRO: a parameter of ", optimizer.name(), " group ", gi,
                         " is already sharded by another optimizer");
      g->offsets.push_back(g->numel);
      g->numel += p.numel();
      g->params.push_back(p);
    }
    if (g->params.empty()) {
      replacement[gi] = optimizer.group_params(gi);
      continue;
    }
    // DeepSpeed pads to a multiple of 2N so that partitions are equal (spec §10).
    g->padded = (g->numel + 2 * n - 1) / (2 * n) * (2 * n);
    g->partition = g->padded / n;
    const Device dev = g->params.front().device();
    g->flat = zeros({g->padded}, {.dtype = DType::float32, .device = dev});
    for (size_t i = 0; i < g->params.size(); ++i) {
      Tensor& p = g->params[i];
      FABRIC_CHECK(p.device() == dev, DeviceError, "ZeRO: ", optimizer.name(), " group ", gi, " mixes devices ",
                   dev.str(), " and ", p.device().str());
      Tensor slot = g->flat.narrow(0, g->offsets[i], p.numel()).view(p.sizes());
      slot.copy_(p);
      p.set_data(slot);
      // A gradient of the old storage's layout may linger from before setup: drop it.
      zero_grad(p, /*set_to_none=*/true);
    }
    g->shard = Tensor::from_storage(g->flat.storage(), DType::float32, {g->partition}, {1},
                                    g->flat.storage_offset() + rank * g->partition);
    g->shard.set_requires_grad(true);
    replacement[gi] = {g->shard};

    // Buckets: slices of B elements of every partition.
    const int64_t b = std::min(bucket_elements_, g->partition);
    for (int64_t start = 0; start < g->partition; start += b)
      g->buckets.push_back({.start = start, .len = std::min(b, g->partition - start)});
    g->buckets_of.resize(g->params.size());
    for (size_t i = 0; i < g->params.size(); ++i) {
      const int64_t lo = g->offsets[i], hi = lo + g->params[i].numel();
      for (size_t k = 0; k < g->buckets.size(); ++k) {
        bool hit = false;
        for (int64_t r = 0; r < n && !hit; ++r) {
          const int64_t s = r * g->partition + g->buckets[k].start;
          hit = lo < s + g->buckets[k].len && s < hi;
        }
        if (hit) {
          g->buckets_of[i].push_back(k);
          g->buckets[k].params.push_back(i);
        }
      }
    }
    sharded->by_group[gi] = g.get();
    sharded->groups.push_back(std::move(g));
  }
  // Nothing changed in the optimizer until here: a check above leaves it as it was.
  for (size_t gi = 0; gi < replacement.size(); ++gi) optimizer.replace_group_params(gi, std::move(replacement[gi]));

  if (options_.zero_stage == 2) {
    std::weak_ptr<bool> alive = alive_;
    for (auto& g : sharded->groups) {
      Group* gp = g.get();
      for (size_t i = 0; i < gp->params.size(); ++i) {
        register_post_accumulate_grad_hook(gp->params[i], [this, alive, gp, i](Tensor&) {
          const auto a = alive.lock();
          if (a && *a) on_grad_ready(*gp, i);
        });
      }
    }
  }
  sharded_.push_back(std::move(sharded));
  order_.clear();
  for (auto s = sharded_.rbegin(); s != sharded_.rend(); ++s)
    for (auto g = (*s)->groups.rbegin(); g != (*s)->groups.rend(); ++g)
      for (size_t k = (*g)->buckets.size(); k-- > 0;) order_.emplace_back(g->get(), k);
  reset_backward();
}

std::vector<ZeroStrategy::GroupLayout> ZeroStrategy::layout(const optim::Optimizer& optimizer) const {
  std::vector<GroupLayout> out;
  if (const Sharded* s = find(optimizer))
    for (const auto& g : s->groups)
      out.push_back({g->numel, g->padded, g->partition, static_cast<int64_t>(g->buckets.size())});
  return out;
}

void ZeroStrategy::reset_backward() {
  for (auto& s : sharded_) {
    for (auto& g : s->groups) {
      g->ready.assign(g->params.size(), 0);
      g->remaining.resize(g->params.size());
      for (size_t i = 0; i < g->params.size(); ++i) g->remaining[i] = static_cast<int64_t>(g->buckets_of[i].size());
      for (auto& b : g->buckets) {
        b.pending = static_cast<int64_t>(b.params.size());
        b.work.reset();
      }
    }
  }
  next_ = 0;
  any_ready_ = false;
}

void ZeroStrategy::on_grad_ready(Group& g, size_t i) {
  if (!sync_) return;
  any_ready_ = true;
  if (g.ready[i]) return;
  g.ready[i] = 1;
  for (size_t k : g.buckets_of[i]) --g.buckets[k].pending;
  launch_ready();
}

void ZeroStrategy::launch_ready() {
  while (next_ < order_.size() && order_[next_].first->buckets[order_[next_].second].pending == 0) launch(next_++);
}

void ZeroStrategy::launch(size_t index) {
  NoGradGuard no_grad;
  Group& g = *order_[index].first;
  auto& b = g.buckets[order_[index].second];
  const int64_t n = world_size();
  if (!g.pending_grad.defined()) g.pending_grad = empty({g.partition}, {.dtype = DType::float32, .device = g.flat.device()});
  // (N, len): slice [start, start+len) of every partition; padding and missing gradients are zeros.
  Tensor input = zeros({n * b.len}, {.dtype = DType::float32, .device = g.flat.device()});
  for (size_t i : b.params) {
    const Tensor& p = g.params[i];
    const Tensor grad = p.grad();
    if (grad.defined()) {
      const Tensor src = grad.reshape({-1});
      const int64_t lo = g.offsets[i], hi = lo + p.numel();
      for (int64_t r = 0; r < n; ++r) {
        const int64_t s = r * g.partition + b.start;
        const int64_t a = std::max(lo, s), e = std::min(hi, s + b.len);
        if (a >= e) continue;
        input.narrow(0, r * b.len + (a - s), e - a).copy_(src.narrow(0, a - lo, e - a));
      }
    }
    // Stage 2 keeps only the partition: a gradient goes as soon as its last bucket has it.
    if (options_.zero_stage == 2 && --g.remaining[i] == 0) zero_grad(p, /*set_to_none=*/true);
  }
  // DeepSpeed pre-divides by the data-parallel size and sums (spec §10).
  div_(input, static_cast<double>(n));
  Tensor out = g.pending_grad.narrow(0, b.start, b.len);
  b.work = pg_->reduce_scatter(out, input, ReduceOp::sum);
}

void ZeroStrategy::post_backward() {
  if (!pg_ || sharded_.empty()) return;
  if (!sync_ || (options_.zero_stage == 2 && !any_ready_)) {
    reset_backward();
    return;
  }
  NoGradGuard no_grad;
  // Stage 1 launches everything now; stage 2 what backward left (parameters without a gradient
  // count as zeros, so that every rank issues the same collectives).
  for (auto& s : sharded_) {
    for (auto& g : s->groups) {
      for (size_t i = 0; i < g->params.size(); ++i) {
        if (g->ready[i]) continue;
        g->ready[i] = 1;
        for (size_t k : g->buckets_of[i]) --g->buckets[k].pending;
      }
    }
  }
  launch_ready();
  std::exception_ptr error;
  for (auto& [g, k] : order_) {
    try {
      if (g->buckets[k].work) g->buckets[k].work->wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) {
    reset_backward();
    std::rethrow_exception(error);
  }
  for (auto& s : sharded_) {
    for (auto& g : s->groups) {
      const Tensor current = g->shard.grad();
      // Stage 1 reduced the module gradients, which hold everything accumulated since the last
      // step: the result replaces the partition gradient. Stage 2 freed them: it adds.
      if (current.defined() && options_.zero_stage == 2) {
        Tensor acc = current;
        add_(acc, g->pending_grad);
      } else {
        set_grad(g->shard, g->pending_grad);
      }
      g->pending_grad = Tensor();
    }
  }
  reset_backward();
}

void ZeroStrategy::set_backward_sync(nn::Module& module, bool enabled) {
  (void)module;
  sync_ = enabled;
}

void ZeroStrategy::post_optimizer_step(optim::Optimizer& optimizer, bool stepped) {
  if (!pg_) return;
  const Sharded* sharded = find(optimizer);
  if (!sharded) return;
  NoGradGuard no_grad;
  if (stepped) {
    // In place: this rank's partition already sits at its slot of the flat buffer.
    std::vector<WorkPtr> works;
    for (auto& g : sharded->groups) works.push_back(pg_->all_gather(g->flat, g->shard));
    for (auto& w : works) w->wait();
    for (auto& g : sharded->groups) g->flat.storage()->bump_version();
  }
  if (options_.zero_stage == 1) {
    for (auto& g : sharded->groups)
      for (const Tensor& p : g->params) zero_grad(p, /*set_to_none=*/true);
  }
}

bool ZeroStrategy::owns(const Sharded& s, const optim::Optimizer& optimizer) {
  if (s.optimizer != &optimizer || s.by_group.size() != optimizer.num_param_groups()) return false;
  for (size_t gi = 0; gi < s.by_group.size(); ++gi) {
    if (!s.by_group[gi]) continue;
    const auto& params = optimizer.group_params(gi);
    if (params.size() != 1 || !params.front().is_same(s.by_group[gi]->shard)) return false;
  }
  return true;
}

const ZeroStrategy::Sharded* ZeroStrategy::find(const optim::Optimizer& optimizer) const {
  for (const auto& s : sharded_)
    if (owns(*s, optimizer)) return s.get();
  return nullptr;
}

Tensor ZeroStrategy::clip_grad_norm(optim::Optimizer& optimizer, double max_norm, double norm_type,
                                    bool error_if_nonfinite) {
  const Sharded* sharded = find(optimizer);
  if (!pg_ || !sharded) return Strategy::clip_grad_norm(optimizer, max_norm, norm_type, error_if_nonfinite);
  NoGradGuard no_grad;
  const bool inf = std::isinf(norm_type) && norm_type > 0;
  FABRIC_CHECK(inf || (std::isfinite(norm_type) && norm_type > 0), NotImplementedError, "ZeRO (strategy '",
               options_.name, "') clip_gradients: norm_type ", norm_type,
               " is not supported over sharded gradients (a positive p-norm or inf is)");
  // The partitions are disjoint; anything else the optimizer holds (groups without trainable
  // parameters) is replicated, so only rank 0 counts it.
  std::vector<Tensor> shards;
  for (const auto& g : sharded->groups) shards.push_back(g->shard);
  std::vector<Tensor> grads;
  double local = 0;
  DType dt = DType::float32;
  bool first = true;
  for (const Tensor& p : optimizer.parameters()) {
    const Tensor grad = p.grad();
    if (!grad.defined()) continue;
    FABRIC_CHECK(is_floating(grad.dtype()), DTypeError, "clip_grad_norm_: a gradient has dtype ",
                 dtype_name(grad.dtype()), " (expected a floating dtype)");
    dt = first ? grad.dtype() : promote_types(dt, grad.dtype());
    first = false;
    grads.push_back(grad);
    const bool is_shard = std::any_of(shards.begin(), shards.end(), [&](const Tensor& s) { return s.is_same(p); });
    if ((!is_shard && global_rank() != 0) || grad.numel() == 0) continue;
    const double n = norm(grad.detach().to(DType::float64), norm_type).item<double>();
    local = inf ? std::max(local, n) : local + std::pow(n, norm_type);
  }
  Tensor reduced = scalar_tensor(local, {.dtype = DType::float64});
  pg_->all_reduce(reduced, inf ? ReduceOp::max : ReduceOp::sum)->wait();
  const double r = reduced.item<double>();
  const Tensor total = scalar_tensor(inf ? r : std::pow(r, 1.0 / norm_type), {.dtype = dt});
  return optim::scale_by_clip_coefficient(grads, total, max_norm, norm_type, error_if_nonfinite);
}

optim::OptimizerState ZeroStrategy::optimizer_state_to_save(const optim::Optimizer& optimizer) {
  const Sharded* sharded = find(optimizer);
  if (!pg_ || !sharded) return optimizer.state_dict();
  NoGradGuard no_grad;
  const optim::OptimizerState live = optimizer.state_dict();  // indices of the shards
  optim::OptimizerState out;
  int64_t index = 0, live_index = 0;
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    const Group* g = sharded->by_group[gi];
    const auto& slots = sharded->slots[gi];
    optim::GroupState gs{live.param_groups.at(gi).options, {}};
    if (!g) {
      for (size_t j = 0; j < slots.size(); ++j, ++index, ++live_index) {
        gs.params.push_back(index);
        if (auto it = live.state.find(live_index); it != live.state.end()) out.state[index] = it->second;
      }
    } else {
      // Every rank holds the same keys (same optimizer, same steps): the gathers line up.
      std::map<std::string, std::pair<Tensor, bool>> whole;  // key -> (tensor, gathered)
      if (auto it = live.state.find(live_index); it != live.state.end()) {
        for (const auto& [key, t] : it->second) {
          if (key != "step" && t.dim() == 1 && t.numel() == g->partition) {
            Tensor flat = empty({g->padded}, {.dtype = t.dtype(), .device = t.device()});
            pg_->all_gather(flat, t.contiguous())->wait();
            whole[key] = {flat, true};
          } else {
            whole[key] = {t, false};
          }
        }
      }
      ++live_index;
      for (int64_t slot : slots) {
        gs.params.push_back(index);
        if (slot >= 0 && !whole.empty()) {
          const Tensor& p = g->params[slot];
          optim::ParamState st;
          for (const auto& [key, w] : whole)
            st[key] = w.second ? w.first.narrow(0, g->offsets[slot], p.numel()).view(p.sizes()).clone()
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
  if (!pg_ || !sharded) return optimizer.load_state_dict(sd);
  NoGradGuard no_grad;
  const char* who = optimizer.name();
  FABRIC_CHECK(sd.param_groups.size() == optimizer.num_param_groups(), ValueError, "ZeRO: ", who,
               ".load_state_dict: the state dict has ", sd.param_groups.size(),
               " parameter groups but the optimizer has ", optimizer.num_param_groups());
  const int64_t rank = global_rank();
  optim::OptimizerState mine;
  int64_t live_index = 0;
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    const Group* g = sharded->by_group[gi];
    const auto& slots = sharded->slots[gi];
    const auto& ids = sd.param_groups[gi].params;
    FABRIC_CHECK(ids.size() == slots.size(), ValueError, "ZeRO: ", who, ".load_state_dict: parameter group ", gi,
                 " holds ", ids.size(), " parameters in the state dict but ", slots.size(),
                 " in the optimizer (before sharding)");
    optim::GroupState gs{sd.param_groups[gi].options, {}};
    if (!g) {
      for (size_t j = 0; j < ids.size(); ++j, ++live_index) {
        gs.params.push_back(live_index);
        if (auto it = sd.state.find(ids[j]); it != sd.state.end()) mine.state[live_index] = it->second;
      }
    } else {
      // Per key: a flat buffer laid out like the parameters, or the scalar (step) of the first.
      std::map<std::string, Tensor> flat, scalar;
      for (size_t j = 0; j < ids.size(); ++j) {
        auto it = sd.state.find(ids[j]);
        if (slots[j] < 0 || it == sd.state.end()) continue;
        const Tensor& p = g->params[slots[j]];
        for (const auto& [key, t] : it->second) {
          FABRIC_CHECK(t.defined(), ValueError, "ZeRO: ", who, ".load_state_dict: state.", ids[j], ".", key,
                       " is undefined");
          if (key == "step" || !is_floating(t.dtype())) {
            if (!scalar.count(key)) scalar[key] = t;
            continue;
          }
          FABRIC_CHECK(t.sizes() == p.sizes(), ValueError, "ZeRO: ", who, ".load_state_dict: state.", ids[j], ".",
                       key, " has shape ", shape_str(t.sizes()), " but parameter ", ids[j], " has shape ",
                       shape_str(p.sizes()));
          Tensor& f = flat[key];
          if (!f.defined()) f = zeros({g->padded}, {.dtype = DType::float32, .device = g->flat.device()});
          const Tensor src = t.detach().reshape({-1}).to(f.device()).to(DType::float32);
          f.narrow(0, g->offsets[slots[j]], p.numel()).copy_(src);
        }
      }
      if (!flat.empty() || !scalar.empty()) {
        optim::ParamState st = scalar;
        for (const auto& [key, f] : flat) st[key] = f.narrow(0, rank * g->partition, g->partition).clone();
        mine.state[live_index] = std::move(st);
      }
      gs.params.push_back(live_index++);
    }
    mine.param_groups.push_back(std::move(gs));
  }
  optimizer.load_state_dict(mine);
}

}  // namespace fabric::distributed
