// ZeroStrategy: optimizer-state (stage 1) and gradient (stage 2) sharding over a process group.
//
// Buckets: partition r of a group is flat[r*P, (r+1)*P). Bucket k covers the same slice
// [k*B, k*B + len) of every partition, so one reduce-scatter of N chunks of len elements lands
// exactly in this rank's partition gradient at [k*B, k*B + len): no reduce-to-owner and no
// uneven chunks. A bucket is ready when every parameter overlapping one of its N slices has its
// gradient; buckets are launched in one fixed order (groups last to first, k descending: the order
// backward produces gradients in), so every rank issues the same sequence of collectives.
#include "distributed/zero.h"

#include <algorithm>
#include <string>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

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
};

ZeroStrategy::ZeroStrategy(StrategyOptions options)
    : Strategy(std::move(options)), alive_(std::make_shared<bool>(true)) {
  FABRIC_CHECK(options_.zero_stage == 1 || options_.zero_stage == 2, ValueError, "strategy '", options_.name,
               "': ZeRO stage ", options_.zero_stage, " is not available (stages 1 and 2 are; stage 3 is not yet)");
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
  for (const auto& s : sharded_)
    FABRIC_CHECK(s->optimizer != &optimizer, ValueError, "ZeRO: this ", optimizer.name(),
                 " optimizer is already sharded");
  auto sharded = std::make_unique<Sharded>();
  sharded->optimizer = &optimizer;
  std::vector<std::vector<Tensor>> replacement(optimizer.num_param_groups());
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    auto g = std::make_unique<Group>();
    for (const Tensor& p : optimizer.group_params(gi)) {
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
  for (const auto& s : sharded_) {
    if (s->optimizer != &optimizer) continue;
    for (const auto& g : s->groups)
      out.push_back({g->numel, g->padded, g->partition, static_cast<int64_t>(g->buckets.size())});
  }
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
  auto it = std::find_if(sharded_.begin(), sharded_.end(), [&](const auto& s) { return s->optimizer == &optimizer; });
  if (it == sharded_.end()) return;
  NoGradGuard no_grad;
  if (stepped) {
    // In place: this rank's partition already sits at its slot of the flat buffer.
    std::vector<WorkPtr> works;
    for (auto& g : (*it)->groups) works.push_back(pg_->all_gather(g->flat, g->shard));
    for (auto& w : works) w->wait();
    for (auto& g : (*it)->groups) g->flat.storage()->bump_version();
  }
  if (options_.zero_stage == 1) {
    for (auto& g : (*it)->groups)
      for (const Tensor& p : g->params) zero_grad(p, /*set_to_none=*/true);
  }
}

}  // namespace fabric::distributed
