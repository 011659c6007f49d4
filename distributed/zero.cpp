// ZeroStrategy: optimizer-state (stage 1) and gradient (stage 2) sharding over a process group.
//
// Buckets: partition r of a group is flat[r*P, (r+1)*P). Bucket k covers the same slice
// [k*B, k*B + len) of every partition, so one reduce-scatter of N chunks of len elements lands
// exactly in this rank's partition gradient at [k*B, k*B + len): no reduce-to-owner and no
// uneven chunks. A bucket is ready when every parameter overlapping one of its N slices has its
// gradient; buckets are launched in one fixed order (groups last to first, k descending: the order
// backward produces gradients in), so every rank issues the same sequence of collectives.
//
// Half dtypes (DeepSpeed's layout): the flat buffer, the module's parameters, their gradients and
// both collectives are half; only the optimizer's side (master partition, its state, and its
// gradient from prepare_optimizer_gradients to the step) is float32. Bytes on the wire are half
// those of float32. The reduced partition gradient stays half until the step, where DeepSpeed
// creates the fp32 one: stage 2 in its own (P,) buffer, stage 1 in this rank's slice of the flat
// gradient buffer that holds the module's gradients anyway, so it costs nothing there.
#include "distributed/zero.h"

#include "distributed/self_process_group.h"
#include "distributed/sharded_clip.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "distributed/sharded_optimizer_check.h"
#include "distributed/zero_detail.h"
#include "optim/clip_grad.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric::distributed {

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

void ZeroStrategy::set_half_dtype(DType dtype) {
  FABRIC_CHECK(dtype == DType::float32 || dtype == DType::float16 || dtype == DType::bfloat16, ValueError,
               "ZeRO: set_half_dtype takes float16, bfloat16 or float32 (no half dtype), got ", dtype_name(dtype));
  half_dtype_ = dtype;
}

void ZeroStrategy::setup_module(nn::Module& module) {
  forget_destroyed_optimizers();
  if (pg_) broadcast_module_states(module, *pg_, 0);
}

void ZeroStrategy::forget_destroyed_optimizers() {
  if (any_ready_ || next_ != 0) return;  // inside a backward: its collectives are under way
  const size_t before = sharded_.size();
  std::erase_if(sharded_, [](const auto& s) { return s->lifetime.expired(); });
  if (sharded_.size() == before) return;
  rebuild_order();
  reset_backward();
}

void ZeroStrategy::rebuild_order() {
  order_.clear();
  for (auto s = sharded_.rbegin(); s != sharded_.rend(); ++s)
    for (auto g = (*s)->groups.rbegin(); g != (*s)->groups.rend(); ++g)
      for (size_t k = (*g)->buckets.size(); k-- > 0;) order_.emplace_back(g->get(), k);
}

// Moves a Group's parameters into its flat buffer (they become views of it), makes this rank's
// master partition and cuts the partitions into buckets.
void ZeroStrategy::build_flat(Group& g) {
  const int64_t n = world_size(), rank = global_rank();
  // DeepSpeed pads to a multiple of 2N so that partitions are equal (spec §10).
  g.padded = (g.numel + 2 * n - 1) / (2 * n) * (2 * n);
  g.partition = g.padded / n;
  const Device dev = g.params.front().device();
  g.flat = zeros({g.padded}, {.dtype = g.dtype, .device = dev});
  // Half: the master partition takes the parameters' values before they are cast (the float32
  // initialisation of a mixed mode keeps its precision).
  if (g.half()) g.shard = zeros({g.partition}, {.dtype = DType::float32, .device = dev});
  const int64_t mine = rank * g.partition;
  for (size_t i = 0; i < g.params.size(); ++i) {
    Tensor& p = g.params[i];
    Tensor slot = g.flat.narrow(0, g.offsets[i], p.numel()).view(p.sizes());
    slot.copy_(p);
    if (g.half()) {
      const int64_t lo = g.offsets[i], a = std::max(lo, mine),
                    e = std::min(lo + p.numel(), mine + g.partition);
      if (a < e)
        g.shard.narrow(0, a - mine, e - a).copy_(p.detach().reshape({-1}).narrow(0, a - lo, e - a));
    }
    p.set_data(slot);
    // A gradient of the old storage's layout may linger from before setup: drop it.
    zero_grad(p, /*set_to_none=*/true);
  }
  if (!g.half())
    g.shard = Tensor::from_storage(g.flat.storage(), DType::float32, {g.partition}, {1},
                                   g.flat.storage_offset() + mine);
  g.shard.set_requires_grad(true);

  // Buckets: slices of B elements of every partition.
  const int64_t b = std::min(bucket_elements_, g.partition);
  for (int64_t start = 0; start < g.partition; start += b)
    g.buckets.push_back({.start = start, .len = std::min(b, g.partition - start)});
  g.buckets_of.resize(g.params.size());
  for (size_t i = 0; i < g.params.size(); ++i) {
    const int64_t lo = g.offsets[i], hi = lo + g.params[i].numel();
    for (size_t k = 0; k < g.buckets.size(); ++k) {
      bool hit = false;
      for (int64_t r = 0; r < n && !hit; ++r) {
        const int64_t s = r * g.partition + g.buckets[k].start;
        hit = lo < s + g.buckets[k].len && s < hi;
      }
      if (hit) {
        g.buckets_of[i].push_back(k);
        g.buckets[k].params.push_back(i);
      }
    }
  }
}

void ZeroStrategy::setup_optimizer(optim::Optimizer& optimizer, nn::Module* module) {
  (void)module;  // the optimizer's parameters are the module's: set_data reaches both
  // Also where nothing is sharded (one process, float32): DeepSpeedPrecision steps without the
  // closure, as DeepSpeed's engine does.
  check_shardable(optimizer, "ZeRO (strategy '" + options_.name + "')");
  // One process shards too when parameters become half: its one partition is the fp32 master of
  // the whole model, as DeepSpeed keeps on one GPU (else updates below a half step would be lost).
  // Float32 on one process has nothing to gain from a flat copy of itself.
  if (!pg_ && !has_half_parameters(optimizer)) return;
  NoGradGuard no_grad;
  // A destroyed optimizer's entry goes first: its parameters may be sharded again by a new one,
  // which may also have its address.
  forget_destroyed_optimizers();
  for (auto& s : sharded_) {
    // The same optimizer whose groups were replaced since (not by us) is not sharded any more.
    if (s->optimizer == &optimizer && !owns(*s, optimizer)) s->optimizer = nullptr;
    FABRIC_CHECK(s->optimizer != &optimizer, ValueError, "ZeRO: this ", optimizer.name(),
                 " optimizer is already sharded");
  }
  auto sharded = std::make_unique<Sharded>();
  sharded->optimizer = &optimizer;
  sharded->lifetime = optimizer.lifetime();
  std::vector<std::vector<Tensor>> replacement(optimizer.num_param_groups());
  sharded->by_group.resize(optimizer.num_param_groups());
  sharded->slots.resize(optimizer.num_param_groups());
  // The flat buffer's dtype: the half dtype of the precision (float32 parameters are cast), or
  // else the parameters' own. An optimizer group whose trainable parameters differ in dtype (a
  // QLoRA model: bfloat16 norms and embeddings, float32 biases of the quantized layers) gets one
  // flat buffer per dtype, in order of first appearance, each its own master partition.
  const bool cast = half_dtype_ != DType::float32;
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi) {
    std::vector<std::unique_ptr<Group>> subs;
    for (const Tensor& p : optimizer.group_params(gi)) {
      if (!p.requires_grad()) {
        sharded->slots[gi].push_back({});
        continue;
      }
      const DType dt = p.dtype();
      FABRIC_CHECK(dt == DType::float32 || dt == DType::float16 || dt == DType::bfloat16,
                   NotImplementedError, "ZeRO (strategy '", options_.name, "'): a parameter of ",
                   optimizer.name(), " group ", gi, " is ", dtype_name(dt),
                   "; ZeRO-1/2 shard float32, float16 and bfloat16 parameters");
      FABRIC_CHECK(!cast || dt == half_dtype_ || dt == DType::float32, DTypeError,
                   "ZeRO (strategy '", options_.name, "'): a parameter of ", optimizer.name(),
                   " group ", gi, " is ", dtype_name(dt), " but the precision's half dtype is ",
                   dtype_name(half_dtype_), " (float32 parameters are cast to it)");
      for (const auto& s : sharded_)
        for (const auto& og : s->groups)
          for (const Tensor& q : og->params)
            FABRIC_CHECK(!q.is_same(p), ValueError, "ZeRO: a parameter of ", optimizer.name(), " group ", gi,
                         " is already sharded by another optimizer");
      const DType want = cast ? half_dtype_ : dt;
      auto it =
          std::find_if(subs.begin(), subs.end(), [&](const auto& g) { return g->dtype == want; });
      if (it == subs.end()) {
        subs.push_back(std::make_unique<Group>());
        subs.back()->dtype = want;
        it = subs.end() - 1;
      }
      Group& g = **it;
      FABRIC_CHECK(g.params.empty() || p.device() == g.params.front().device(), DeviceError,
                   "ZeRO: ", optimizer.name(), " group ", gi, " mixes devices ",
                   g.params.front().device().str(), " and ", p.device().str());
      sharded->slots[gi].push_back({it - subs.begin(), static_cast<int64_t>(g.params.size())});
      g.offsets.push_back(g.numel);
      g.numel += p.numel();
      g.params.push_back(p);
    }
    if (subs.empty()) {
      replacement[gi] = optimizer.group_params(gi);
      continue;
    }
    for (auto& g : subs) {
      build_flat(*g);
      replacement[gi].push_back(g->shard);
      sharded->by_group[gi].push_back(g.get());
      sharded->groups.push_back(std::move(g));
    }
  }
  // Nothing changed in the optimizer until here: a check above leaves it as it was.
  for (size_t gi = 0; gi < replacement.size(); ++gi) optimizer.replace_group_params(gi, std::move(replacement[gi]));

  if (options_.zero_stage == 2) {
    std::weak_ptr<bool> alive = alive_;
    for (auto& g : sharded->groups) {
      Group* gp = g.get();
      const std::weak_ptr<const bool> group = g->token;
      for (size_t i = 0; i < gp->params.size(); ++i) {
        register_post_accumulate_grad_hook(gp->params[i], [this, alive, group, gp, i](Tensor&) {
          const auto a = alive.lock();
          if (a && *a) on_grad_ready(group, gp, i);
        });
      }
    }
  }
  sharded_.push_back(std::move(sharded));
  rebuild_order();
  reset_backward();
}

std::vector<ZeroStrategy::GroupLayout> ZeroStrategy::layout(const optim::Optimizer& optimizer) const {
  std::vector<GroupLayout> out;
  if (const Sharded* s = find(optimizer))
    for (const auto& g : s->groups)
      out.push_back({g->numel, g->padded, g->partition, static_cast<int64_t>(g->buckets.size()), g->dtype});
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

void ZeroStrategy::on_grad_ready(const std::weak_ptr<const bool>& group, Group* gp, size_t i) {
  if (!sync_) return;
  // The first gradient of a backward: the point between backwards where dead entries can go, and
  // this parameter's group may be one of them.
  forget_destroyed_optimizers();
  if (group.expired()) return;
  Group& g = *gp;
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
  if (!g.pending_grad.defined()) g.pending_grad = empty({g.partition}, {.dtype = g.dtype, .device = g.flat.device()});
  // (N, len): slice [start, start+len) of every partition; padding and missing gradients are zeros.
  Tensor input;
  if (g.flat_grad.defined()) {
    if (g.buckets.size() == 1) {
      // Stage 1 (half), one bucket: the flat gradient buffer is laid out as the input already. It is
      // divided in place: after the reduction only this rank's slice is read, and it gets the result.
      input = g.flat_grad;
    } else {
      input = empty({n * b.len}, {.dtype = g.dtype, .device = g.flat.device()});
      for (int64_t r = 0; r < n; ++r)
        input.narrow(0, r * b.len, b.len).copy_(g.flat_grad.narrow(0, r * g.partition + b.start, b.len));
    }
  } else {
    input = zeros({n * b.len}, {.dtype = g.dtype, .device = g.flat.device()});
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
  }
  // DeepSpeed pre-divides by the data-parallel size and sums (spec §10), in the gradients' dtype.
  if (n > 1) div_(input, static_cast<double>(n));
  Tensor out = g.pending_grad.narrow(0, b.start, b.len);
  b.work = group().reduce_scatter(out, input, ReduceOp::sum);
}

void ZeroStrategy::abandon_backward() {
  for (auto& [g, k] : order_) {
    auto& b = g->buckets[k];
    if (!b.work) continue;
    try {
      b.work->wait();
    } catch (...) {  // the backward's own error is the one reported
    }
  }
  reset_backward();
}

void ZeroStrategy::post_backward() {
  forget_destroyed_optimizers();  // stage 1 (or a stage-2 backward that reached no hook)
  if (sharded_.empty()) return;
  if (!sync_ || (options_.zero_stage == 2 && !any_ready_)) {
    reset_backward();
    return;
  }
  NoGradGuard no_grad;
  if (options_.zero_stage == 1)
    for (auto& s : sharded_)
      for (auto& g : s->groups)
        if (g->half()) gather_module_grads(*g);
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
  for (auto& s : sharded_)
    for (auto& g : s->groups) finish_reduction(*g);
  reset_backward();
}

void ZeroStrategy::gather_module_grads(Group& g) {
  // A half partition gradient of an earlier synchronised backward since the step still lies in the
  // buffer, which this reduction overwrites: it moves out first (only then does it cost 2Ψ/N).
  const Tensor current = g.shard.grad();
  if (current.defined() && g.flat_grad.defined() && current.storage().get() == g.flat_grad.storage().get())
    set_grad_unchecked(g.shard, current.clone());  // may be the half gradient of a float32 shard
  // Zeros: the padding must reduce to zeros; every parameter's slot is written below.
  if (!g.flat_grad.defined()) g.flat_grad = zeros({g.padded}, {.dtype = g.dtype, .device = g.flat.device()});
  for (size_t i = 0; i < g.params.size(); ++i) {
    const Tensor& p = g.params[i];
    Tensor slot = g.flat_grad.narrow(0, g.offsets[i], p.numel());
    const Tensor grad = p.grad();
    if (grad.defined()) {
      slot.copy_(grad.reshape({-1}));
    } else {
      slot.zero_();
    }
    // Freed one by one, so that the gradients exist about once while they move.
    zero_grad(p, /*set_to_none=*/true);
  }
}

void ZeroStrategy::finish_reduction(Group& g) {
  const Tensor current = g.shard.grad();
  if (!g.half()) {
    // Stage 1 reduced the module gradients, which hold everything accumulated since the last
    // step: the result replaces the partition gradient. Stage 2 freed them: it adds.
    if (current.defined() && options_.zero_stage == 2) {
      Tensor acc = current;
      add_(acc, g.pending_grad);
    } else {
      set_grad(g.shard, g.pending_grad);
    }
    g.pending_grad = Tensor();
    return;
  }
  // Half: the result stays in the half dtype until prepare_optimizer_gradients (spec §10 counts
  // no fp32 gradient; DeepSpeed creates it inside its step). Stage 1 keeps it in this rank's slice
  // of the flat gradient buffer, which exists until the step anyway; stage 2 in the (P,) output.
  Tensor reduced = g.pending_grad;
  if (g.flat_grad.defined()) {
    Tensor mine = g.flat_grad.narrow(0, global_rank() * g.partition, g.partition);
    mine.copy_(reduced);
    reduced = mine;
  }
  g.pending_grad = Tensor();
  if (!current.defined()) {
    set_grad_unchecked(g.shard, reduced);  // half, on the float32 shard, as DeepSpeed keeps it
  } else if (current.dtype() == DType::float32) {
    // Prepared already (clip_gradients ran before this backward): added to it, as PyTorch's
    // accumulation adds to whatever .grad holds.
    Tensor acc = current;
    add_(acc, reduced.to(DType::float32));
  } else {
    // Several synchronised backwards before a step: DeepSpeed too accumulates the reduced partition
    // gradients in the half dtype (its averaged_gradients / grads_in_partition).
    Tensor acc = current;
    add_(acc, reduced);
  }
}

void ZeroStrategy::prepare_optimizer_gradients(optim::Optimizer& optimizer) {
  const Sharded* sharded = find(optimizer);
  if (!sharded) return;
  NoGradGuard no_grad;
  for (auto& g : sharded->groups) {
    if (!g->half()) continue;
    const Tensor grad = g->shard.grad();
    if (grad.defined() && grad.dtype() != DType::float32) set_grad(g->shard, grad.to(DType::float32));
    // Stage 1: the rest of the flat gradient buffer went out with the reduction (DeepSpeed frees
    // the half gradients in its step too); a later backward allocates it again.
    g->flat_grad = Tensor();
  }
}

void ZeroStrategy::set_backward_sync(nn::Module& module, bool enabled) {
  (void)module;
  // Stage 2 keeps only its partition of the gradients: its reduce-scatter runs at every micro-step
  // (spec §10), so a no_backward_sync scope reduces as usual and the reduced partitions add up, as
  // DeepSpeed's stage 2 (which refuses no_sync) and our FSDP do; skipping it would hold every
  // module gradient until the next synchronised backward (stage 1's memory).
  sync_ = enabled || options_.zero_stage == 2;
}

void ZeroStrategy::post_optimizer_step(optim::Optimizer& optimizer, bool stepped) {
  const Sharded* sharded = find(optimizer);
  if (!sharded) return;
  NoGradGuard no_grad;
  if (stepped) {
    // In place: this rank's partition already sits at its slot of the flat buffer (float32), or is
    // cast into it from the master (half).
    std::vector<WorkPtr> works;
    const int64_t rank = global_rank();
    for (auto& g : sharded->groups) {
      if (g->half()) {
        Tensor mine = g->flat.narrow(0, rank * g->partition, g->partition);
        mine.copy_(g->shard);
        works.push_back(group().all_gather(g->flat, mine));
      } else {
        works.push_back(group().all_gather(g->flat, g->shard));
      }
    }
    for (auto& w : works) w->wait();
    for (auto& g : sharded->groups) g->flat.storage()->bump_version();
  }
  if (options_.zero_stage == 1) {
    for (auto& g : sharded->groups) {
      for (const Tensor& p : g->params) zero_grad(p, /*set_to_none=*/true);
      g->flat_grad = Tensor();
    }
  }
}

void ZeroStrategy::discard_gradients(optim::Optimizer& optimizer) {
  const Sharded* sharded = find(optimizer);
  if (!sharded) return;
  for (auto& g : sharded->groups) {
    for (const Tensor& p : g->params) zero_grad(p, /*set_to_none=*/true);
    g->flat_grad = Tensor();
  }
}

ProcessGroup& ZeroStrategy::group() {
  if (pg_) return *pg_;
  if (!self_group_) self_group_ = std::make_shared<SelfProcessGroup>();
  return *self_group_;
}

bool ZeroStrategy::has_half_parameters(const optim::Optimizer& optimizer) const {
  for (size_t gi = 0; gi < optimizer.num_param_groups(); ++gi)
    for (const Tensor& p : optimizer.group_params(gi))
      if (p.requires_grad() && (half_dtype_ != DType::float32 || p.dtype() != DType::float32)) return true;
  return false;
}

bool ZeroStrategy::owns(const Sharded& s, const optim::Optimizer& optimizer) {
  if (s.optimizer != &optimizer || s.lifetime.expired() || s.by_group.size() != optimizer.num_param_groups())
    return false;
  for (size_t gi = 0; gi < s.by_group.size(); ++gi) {
    const auto& subs = s.by_group[gi];
    if (subs.empty()) continue;
    const auto& params = optimizer.group_params(gi);
    if (params.size() != subs.size()) return false;
    for (size_t k = 0; k < subs.size(); ++k)
      if (!params[k].is_same(subs[k]->shard)) return false;
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
  if (!sharded) return Strategy::clip_grad_norm(optimizer, max_norm, norm_type, error_if_nonfinite);
  prepare_optimizer_gradients(optimizer);
  // The partitions are disjoint; anything else the optimizer holds (groups without trainable
  // parameters) is replicated.
  return clip_sharded_grad_norm(
      optimizer,
      [&](const Tensor& p) {
        return std::any_of(sharded->groups.begin(), sharded->groups.end(),
                           [&](const auto& g) { return g->shard.is_same(p); });
      },
      &group(), max_norm, norm_type, error_if_nonfinite, "ZeRO (strategy '" + options_.name + "')");
}

}  // namespace fabric::distributed
