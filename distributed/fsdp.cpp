// FullyShardedModule: units, flat parameters, and the all-gathers and reduce-scatters around each
// unit's forward and backward.
//
// Collective order: every rank runs the same forward and backward, so the hooks below issue the
// same collectives in the same order everywhere; prefetches follow the forward order recorded in
// the first forward, the same on every rank. Reductions that backward did not launch (parameters
// without a gradient) are launched by finish_backward in unit order. Ranks whose forward or
// backward differ (data-dependent control flow) are told so at the end of backward, where the
// ranks compare the collectives they issued (fsdp_call_order.h), or by the collectives themselves.
#include "distributed/fsdp.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <set>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "distributed/collective_staging.h"
#include "distributed/fsdp_detail.h"
#include "nn/normalization.h"
#include "tensor/copy_kernels.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::distributed {

using fsdp_detail::Call;

ShardingStrategy parse_sharding_strategy(const std::string& name) {
  std::string s;
  for (char c : name) s += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (s == "FULL_SHARD") return ShardingStrategy::full_shard;
  if (s == "SHARD_GRAD_OP") return ShardingStrategy::shard_grad_op;
  if (s == "NO_SHARD") return ShardingStrategy::no_shard;
  if (s == "HYBRID_SHARD") return ShardingStrategy::hybrid_shard;
  throw ValueError(detail::cat("FSDP: unknown sharding_strategy '", name,
                               "'; expected FULL_SHARD, SHARD_GRAD_OP, NO_SHARD or HYBRID_SHARD"));
}

const char* to_string(ShardingStrategy s) {
  switch (s) {
    case ShardingStrategy::full_shard: return "FULL_SHARD";
    case ShardingStrategy::shard_grad_op: return "SHARD_GRAD_OP";
    case ShardingStrategy::no_shard: return "NO_SHARD";
    case ShardingStrategy::hybrid_shard: return "HYBRID_SHARD";
  }
  return "?";
}

double gradient_predivide_factor(int world_size) {
  int f = 1;
  while (world_size % f == 0 && world_size / f > f) f *= 2;
  return f;
}

namespace {

// Writes src's bytes into dst without an in-place op: tensors autograd saved from dst's storage
// (the unsharded parameters) must keep their version, or the backward after a re-gather would
// report them as modified.
void write_raw(const Tensor& dst, const Tensor& src) {
  const size_t n = static_cast<size_t>(src.nbytes());
  if (dst.device().is_cpu() && src.device().is_cpu()) {
    std::memcpy(dst.data_ptr(), src.data_ptr(), n);
  } else {
    cross_device_copy_stub(dst.device().is_cpu() ? src.device() : dst.device())(dst.data_ptr(), dst.device(),
                                                                                  src.data_ptr(), src.device(), n);
  }
}

bool in_list(const std::vector<std::string>& names, const std::string& type) {
  return std::find(names.begin(), names.end(), type) != names.end();
}

}  // namespace

FullyShardedModule::FullyShardedModule(nn::Module& root, std::shared_ptr<ProcessGroup> shard_pg,
                                       std::shared_ptr<ProcessGroup> replicate_pg, int world_size,
                                       FSDPOptions options, std::function<bool(const nn::Module&)> unit_filter)
    : root_(root),
      shard_pg_(std::move(shard_pg)),
      replicate_pg_(std::move(replicate_pg)),
      world_size_(world_size),
      options_(std::move(options)),
      alive_(std::make_shared<bool>(true)),
      root_lifetime_(root.lifetime()) {
  FABRIC_CHECK(options_.state_dict_type == "sharded" || options_.state_dict_type == "full", ValueError,
               options_.label, ": state_dict_type must be 'sharded' or 'full', got '", options_.state_dict_type, "'");
  FABRIC_CHECK(world_size_ >= 1, ValueError, options_.label, ": world_size must be positive, got ", world_size_);
  shard_rank_ = shard_pg_ ? shard_pg_->rank() : 0;
  shard_size_ = shard_pg_ ? shard_pg_->size() : 1;
  NoGradGuard no_grad;
  // Buffers keep their dtype until the first forward (cast_buffers_for_compute).
  if (!options_.activation_checkpointing_policy.empty()) {
    root_.apply([&](nn::Module& m) {
      if (in_list(options_.activation_checkpointing_policy, m.type_name())) m.set_activation_checkpointing(true);
    });
  }
  // PyTorch's MixedPrecision(_module_classes_to_ignore=(_BatchNorm,)): under an auto-wrap policy
  // every BatchNorm is a unit of its own with mixed precision off, so its running statistics move
  // in float32 (in bfloat16 a moving average stalls a step's rounding away from the mean).
  const bool mixed = options_.param_dtype || options_.reduce_dtype || options_.buffer_dtype;
  const bool batch_norm_units = !unit_filter && !options_.auto_wrap_policy.empty() && mixed;
  auto is_unit = unit_filter ? unit_filter : [this, batch_norm_units](const nn::Module& m) {
    return in_list(options_.auto_wrap_policy, m.type_name()) ||
           (batch_norm_units && dynamic_cast<const nn::BatchNorm*>(&m) != nullptr);
  };
  build_units(is_unit);
  for (auto& u : units_)
    if (batch_norm_units && !u->is_root && dynamic_cast<const nn::BatchNorm*>(u->module) != nullptr)
      u->mixed_precision = false;
  for (auto& u : units_) {
    build_flats(*u, [](const Tensor&) { return int64_t{-1}; });
    install_hooks(*u);
  }
  reset_backward();
}

FullyShardedModule::~FullyShardedModule() {
  *alive_ = false;
  for (auto& u : units_) {
    for (auto& f : u->flats) {
      for (WorkPtr* w : {&f->gather_work, &f->reduce_work}) {
        if (!*w) continue;
        try {
          (*w)->wait();
        } catch (...) {  // the run is failing already; the error was (or will be) reported elsewhere
        }
      }
    }
  }
}

void FullyShardedModule::build_units(const std::function<bool(const nn::Module&)>& is_unit) {
  // A parameter registered in two units (tied weights: GPT's wte and lm_head under ZeRO-3) would
  // be released by one while the other computes with it: it goes to the root, which stays
  // gathered through forward and backward.
  std::map<const TensorImpl*, std::set<const nn::Module*>> owners;
  std::function<void(const nn::Module&, const nn::Module*)> find_owners = [&](const nn::Module& m,
                                                                             const nn::Module* unit) {
    for (auto& [name, p] : m.named_parameters(/*recurse=*/false))
      if (p.defined()) owners[p.impl()].insert(unit);
    for (auto& [name, child] : m.named_children()) find_owners(*child, is_unit(*child) ? child.get() : unit);
  };
  find_owners(root_, &root_);
  auto root = std::make_unique<Unit>();
  root->module = &root_;
  root->is_root = true;
  std::vector<const TensorImpl*> seen;  // tied parameters are owned once
  // Depth first; a unit's own subtree is finished (and pushed) before its parent's.
  std::function<void(nn::Module&, const std::string&, Unit&)> walk = [&](nn::Module& m, const std::string& path,
                                                                         Unit& owner) {
    for (auto& [name, p] : m.named_parameters(/*recurse=*/false)) {
      if (!p.defined()) continue;
      if (std::find(seen.begin(), seen.end(), p.impl()) != seen.end()) continue;
      seen.push_back(p.impl());
      Unit& to = owners[p.impl()].size() > 1 ? *root : owner;
      to.params.push_back(p);
      to.names.push_back(path.empty() ? name : path + "." + name);
    }
    for (auto& [name, child] : m.named_children()) {
      const std::string child_path = path.empty() ? name : path + "." + name;
      if (is_unit(*child)) {
        auto u = std::make_unique<Unit>();
        u->module = child.get();
        u->name = child_path;
        walk(*child, child_path, *u);
        units_.push_back(std::move(u));
      } else {
        walk(*child, child_path, owner);
      }
    }
  };
  walk(root_, "", *root);
  units_.push_back(std::move(root));
  for (size_t i = 0; i < units_.size(); ++i) units_[i]->index = static_cast<int64_t>(i);
}

bool FullyShardedModule::wraps(const nn::Module& module) const {
  if (!root_alive() || &module != &root_) return false;
  const std::vector<Tensor> params = module.parameters();  // `module` is alive: the caller holds it
  if (!params.empty()) return holds(params.front());
  for (const auto& u : units_)
    if (!u->params.empty()) return false;
  return true;
}

bool FullyShardedModule::holds(const Tensor& param) const {
  for (const auto& u : units_)
    for (const Tensor& p : u->params)
      if (p.is_same(param)) return true;
  return false;
}

bool FullyShardedModule::reshard_after_forward(const Unit& u) const {
  if (!grad_enabled()) return true;  // no backward follows (evaluation)
  const auto s = options_.sharding_strategy;
  // The root's backward starts right after its forward: PyTorch keeps it gathered too.
  return (s == ShardingStrategy::full_shard || s == ShardingStrategy::hybrid_shard) && !u.is_root;
}

void FullyShardedModule::install_hooks(Unit& u) {
  std::weak_ptr<bool> alive = alive_;
  Unit* up = &u;
  u.hook_handles.push_back(u.module->register_forward_pre_hook([this, alive, up](nn::Module&, const Tensor& x) {
    const auto a = alive.lock();
    return a && *a ? pre_forward(*up, x) : x;
  }));
  u.hook_handles.push_back(u.module->register_forward_hook([this, alive, up](nn::Module&, const Tensor&, const Tensor& y) {
    const auto a = alive.lock();
    return a && *a ? post_forward(*up, y) : y;
  }));
  for (const Tensor& p : u.params) {
    if (!p.requires_grad()) continue;
    const TensorImpl* id = p.impl();
    register_post_accumulate_grad_hook(p, [this, alive, up, id](Tensor&) {
      const auto a = alive.lock();
      if (!a || !*a) return;
      for (size_t fi = 0; fi < up->flats.size(); ++fi)
        for (size_t i = 0; i < up->flats[fi]->params.size(); ++i)
          if (up->flats[fi]->params[i].impl() == id) return on_grad_ready(*up, fi, i);
    });
  }
}

void FullyShardedModule::build_flats(Unit& u, const std::function<int64_t(const Tensor&)>& group_of) {
  NoGradGuard no_grad;
  // The parameters' current values in the master dtype (gathered when they are sharded already).
  std::vector<Tensor> values(u.params.size());
  if (u.flats.empty()) {
    for (size_t i = 0; i < u.params.size(); ++i) values[i] = u.params[i].detach();
  } else {
    // A prefetch still in flight writes into the full buffers released below: let it land first.
    if (u.gathering) wait_gather(u);
    for (auto& f : u.flats) {
      Tensor whole = f->shard;
      if (shard_size_ > 1) {
        // The shard is on the host under cpu_offload: staged through the group's device.
        whole = empty({f->padded}, {.dtype = f->dtype, .device = f->shard.device()});
        staged_all_gather(*shard_pg_, whole, f->shard);
      }
      for (size_t i = 0; i < f->params.size(); ++i) {
        const auto it = std::find_if(u.params.begin(), u.params.end(),
                                     [&](const Tensor& p) { return p.is_same(f->params[i]); });
        values[it - u.params.begin()] =
            whole.narrow(0, f->offsets[i], f->params[i].numel()).view(f->params[i].sizes()).clone();
      }
    }
    for (auto& f : u.flats) {
      if (!f->aliased) f->full.storage()->release();
    }
    u.flats.clear();
    u.gathered = false;
  }
  if (options_.master_dtype)
    for (Tensor& v : values)
      if (is_floating(v.dtype()) && v.dtype() != *options_.master_dtype) v = v.to(*options_.master_dtype);
  // One flat parameter per (optimizer group, trainability), in first-appearance order.
  std::vector<std::pair<int64_t, bool>> keys;
  for (const Tensor& p : u.params) {
    const std::pair<int64_t, bool> key{group_of(p), p.requires_grad()};
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  for (const auto& key : keys) {
    auto f = std::make_unique<Flat>();
    f->group = key.first;
    f->trainable = key.second;
    // Compared value to value: on a rebuild under cpu_offload the values come from host shards
    // while the parameters already live on the compute device.
    Device value_device = Device::cpu();
    for (size_t i = 0; i < u.params.size(); ++i) {
      const Tensor& p = u.params[i];
      if (group_of(p) != key.first || p.requires_grad() != key.second) continue;
      FABRIC_CHECK(is_floating(values[i].dtype()), DTypeError, options_.label, ": parameter '", u.names[i], "' has dtype ",
                   dtype_name(values[i].dtype()), "; only floating-point parameters are sharded");
      if (f->params.empty()) {
        value_device = values[i].device();
      } else {
        FABRIC_CHECK(values[i].dtype() == f->dtype && values[i].device() == value_device,
                     DTypeError, options_.label, ": parameter '", u.names[i], "' is ",
                     dtype_name(values[i].dtype()), " on ", values[i].device().str(), " but '",
                     f->names.front(), "' of the same unit is ", dtype_name(f->dtype), " on ",
                     value_device.str(), "; a flat parameter needs one dtype and device");
      }
      f->dtype = values[i].dtype();
      f->offsets.push_back(f->numel);
      f->numel += p.numel();
      f->params.push_back(p);
      f->names.push_back(u.names[i]);
    }
    f->compute = u.mixed_precision && options_.param_dtype && is_floating(f->dtype)
                     ? *options_.param_dtype
                     : f->dtype;
    const int64_t s = shard_size_;
    f->padded = std::max<int64_t>(s, (f->numel + s - 1) / s * s);
    f->shard_numel = f->padded / s;
    const Device dev = f->params.front().device();
    const Device shard_dev = options_.cpu_offload ? Device::cpu() : dev;
    Tensor whole = zeros({f->padded}, {.dtype = f->dtype, .device = dev});
    for (size_t i = 0; i < f->params.size(); ++i) {
      const auto it = std::find_if(u.params.begin(), u.params.end(), [&](const Tensor& p) { return p.is_same(f->params[i]); });
      whole.narrow(0, f->offsets[i], f->params[i].numel()).copy_(values[it - u.params.begin()].reshape({-1}));
    }
    f->shard = whole.narrow(0, shard_rank_ * f->shard_numel, f->shard_numel).to(shard_dev).clone();
    f->shard.set_requires_grad(f->trainable);
    f->aliased = s == 1 && f->compute == f->dtype && shard_dev == dev;
    f->full = f->aliased ? f->shard : empty({f->padded}, {.dtype = f->compute, .device = dev});
    for (size_t i = 0; i < f->params.size(); ++i) {
      Tensor& p = f->params[i];
      p.set_data(f->full.narrow(0, f->offsets[i], p.numel()).view(p.sizes()));
      zero_grad(p, /*set_to_none=*/true);
    }
    if (!f->aliased) f->full.storage()->release();
    f->ready.assign(f->params.size(), 0);
    f->pending = f->trainable ? static_cast<int64_t>(f->params.size()) : 0;
    f->index = static_cast<int64_t>(u.flats.size());
    u.flats.push_back(std::move(f));
  }
}

// ---- gather / reshard ---------------------------------------------------------------------------

void FullyShardedModule::gather(Unit& u, bool wait, int64_t why) {
  if (!u.gathered && !u.gathering) {
    NoGradGuard no_grad;
    bool logged = false;
    for (auto& f : u.flats) {
      if (f->aliased) continue;
      f->full.storage()->reallocate();
      Tensor send = f->shard.detach().to(f->full.device()).to(f->compute).contiguous();
      if (shard_size_ > 1) {
        if (!logged) calls_.record(u.gather_call = {Call::all_gather, u.index, -1, why});
        logged = true;
        f->send = send;
        f->gather_work = shard_pg_->all_gather(f->full, f->send);
      } else {
        write_raw(f->full, send);
      }
    }
    u.gathering = true;
  }
  if (wait) wait_gather(u);
}

void FullyShardedModule::wait_gather(Unit& u) {
  if (!u.gathering) return;
  for (auto& f : u.flats) {
    try {
      if (f->gather_work) f->gather_work->wait();
    } catch (const Error&) {
      f->gather_work.reset();
      rethrow_with_context("which " +
                           fsdp_detail::describe(u.gather_call, unit_namer(), reduction_name()));
    }
    f->gather_work.reset();
    f->send = Tensor();
  }
  u.gathering = false;
  u.gathered = true;
}

void FullyShardedModule::reshard(Unit& u) {
  if (u.gathering) wait_gather(u);
  if (!u.gathered) return;
  for (auto& f : u.flats)
    if (!f->aliased) f->full.storage()->release();
  u.gathered = false;
}

void FullyShardedModule::prefetch_after(const Unit& u, bool backward) {
  if (!order_recorded_ || !(backward ? options_.backward_prefetch : options_.forward_prefetch)) return;
  const auto it = std::find(forward_order_.begin(), forward_order_.end(), &u);
  if (it == forward_order_.end()) return;
  if (backward) {
    // Not a unit whose backward already began: it may be done and resharded (the root, first in
    // forward order, finishes when the embedding's gradient arrives).
    if (it != forward_order_.begin() && !(*(it - 1))->backward_started)
      gather(**(it - 1), /*wait=*/false, Call::backward_prefetch);
  } else if (it + 1 != forward_order_.end()) {
    gather(**(it + 1), /*wait=*/false, Call::forward_prefetch);
  }
}

int64_t FullyShardedModule::gathered_bytes() const {
  int64_t n = 0;
  for (const auto& u : units_)
    for (const auto& f : u->flats)
      if (!f->aliased && !f->full.storage()->is_released()) n += f->full.nbytes();
  return n;
}

// ---- forward and backward hooks -------------------------------------------------------------

void FullyShardedModule::cast_buffers_for_compute() {
  if (!options_.buffer_dtype || buffers_cast_) return;
  NoGradGuard no_grad;
  // As PyTorch's FSDP at its lazy init: the module then holds only the cast copy; a buffer the
  // forward updates (running statistics) is updated in buffer_dtype, and checkpoints hold it cast
  // back. Buffers already in buffer_dtype (or restored to it by a load) keep their first dtype.
  // A unit with mixed precision off keeps its buffers (spec §9's _module_classes_to_ignore).
  std::vector<std::string> kept;
  for (const auto& u : units_)
    if (!u->mixed_precision) kept.push_back(u->name + ".");
  for (auto& [name, b] : root_.named_buffers()) {
    if (!b.defined() || !is_floating(b.dtype()) || b.dtype() == *options_.buffer_dtype) continue;
    if (std::any_of(kept.begin(), kept.end(),
                    [&](const std::string& prefix) { return name.rfind(prefix, 0) == 0; }))
      continue;
    buffer_dtypes_.emplace(name, b.dtype());
    b.set_data(b.to(*options_.buffer_dtype));
  }
  buffers_cast_ = true;
}

Tensor FullyShardedModule::pre_forward(Unit& u, const Tensor& input) {
  throw_if_broken();
  cast_buffers_for_compute();
  if (!order_recorded_ && !in_backward_ &&
      std::find(forward_order_.begin(), forward_order_.end(), &u) == forward_order_.end())
    forward_order_.push_back(&u);
  gather(u, /*wait=*/true, Call::forward);
  prefetch_after(u, /*backward=*/false);
  // cast_root_forward_inputs: the root casts floating inputs to param_dtype.
  if (u.is_root && options_.param_dtype && input.defined() && is_floating(input.dtype()))
    return input.to(*options_.param_dtype);
  return input;
}

Tensor FullyShardedModule::post_forward(Unit& u, const Tensor& output) {
  if (u.is_root) order_recorded_ = true;
  if (grad_enabled() && output.defined() && output.requires_grad()) {
    std::weak_ptr<bool> alive = alive_;
    Unit* up = &u;
    register_hook(output, [this, alive, up](const Tensor&) {
      const auto a = alive.lock();
      if (a && *a) pre_backward(*up);
      return Tensor();
    });
  }
  if (reshard_after_forward(u)) reshard(u);
  // No backward follows (evaluation): the ranks compare this forward's collectives here, before
  // the output leaves, as the end of backward does after training.
  if (u.is_root && !grad_enabled()) compare_calls({}, call_device(), "the end of the forward");
  return output;
}

void FullyShardedModule::pre_backward(Unit& u) {
  throw_if_broken();
  in_backward_ = true;
  u.backward_started = true;
  gather(u, /*wait=*/true, Call::backward);
  prefetch_after(u, /*backward=*/true);
}

void FullyShardedModule::on_grad_ready(Unit& u, size_t fi, size_t i) {
  Flat& f = *u.flats[fi];
  if (f.ready[i]) return;
  f.ready[i] = 1;
  if (--f.pending > 0) return;
  reduce(u, f, Call::backward);
  // The unit's backward is over once every trainable flat parameter has its gradients; frozen
  // ones may still be read by the backward of the unit's first layer, so those wait for
  // finish_backward.
  if (options_.sharding_strategy == ShardingStrategy::no_shard) return;
  for (const auto& g : u.flats)
    if (!g->trainable || !g->reduced) return;
  reshard(u);
}

void FullyShardedModule::reduce(Unit& u, Flat& f, int64_t why) {
  if (f.reduced || !f.trainable) return;
  // NO_SHARD without sync: as DDP's no_sync, gradients stay (and accumulate) on the parameters.
  if (!sync_ && shard_size_ == 1) return;
  throw_if_broken();
  f.reduced = true;
  NoGradGuard no_grad;
  const DType rdt = u.mixed_precision && options_.reduce_dtype ? *options_.reduce_dtype : f.compute;
  const Device dev = f.full.device();
  Tensor in = zeros({f.padded}, {.dtype = rdt, .device = dev});
  for (size_t i = 0; i < f.params.size(); ++i) {
    const Tensor& p = f.params[i];
    const Tensor g = p.grad();
    f.local_grad = f.local_grad || g.defined();
    if (g.defined()) in.narrow(0, f.offsets[i], p.numel()).copy_(g.reshape({-1}));
    zero_grad(p, /*set_to_none=*/true);  // the unsharded gradient goes as soon as it is packed
  }
  div_(in, options_.divide_before_reduce ? world_size_ : gradient_predivide_factor(world_size_));
  if (call_group()) calls_.record(f.reduce_call = {Call::reduce, u.index, f.index, why});
  if (shard_size_ > 1) {
    // The group keeps `in` alive until its reduce-scatter is done, and nothing else holds it: each
    // unit's packed unsharded gradient goes as soon as its reduction does (held to the end of
    // backward, every unit's added up to the whole model's gradient at the backward's peak).
    f.reduce_out = empty({f.shard_numel}, {.dtype = rdt, .device = dev});
    f.reduce_work = shard_pg_->reduce_scatter(f.reduce_out, in, ReduceOp::sum);
  } else {
    f.reduce_out = in;
    if (replicate_pg_) f.reduce_work = replicate_pg_->all_reduce(f.reduce_out, ReduceOp::sum);
  }
}

std::vector<int64_t> FullyShardedModule::local_gradient_flags() const {
  std::vector<int64_t> flags;
  if (!options_.skip_flats_without_gradient) return flags;
  for (const auto& u : units_)
    for (const auto& f : u->flats) {
      // The flats reduce() reduces by the end of backward (reduced already, or about to be).
      if (!f->reduced && (!f->trainable || (!sync_ && shard_size_ == 1))) continue;
      bool local = f->local_grad;
      if (!f->reduced)
        for (const Tensor& p : f->params) local = local || p.grad().defined();
      flags.push_back(local ? 1 : 0);
    }
  return flags;
}

Device FullyShardedModule::call_device() const {
  for (const auto& u : units_)
    if (!u->flats.empty()) return u->flats.front()->full.device();
  return Device::cpu();
}

void FullyShardedModule::finish_backward() {
  throw_if_broken();
  NoGradGuard no_grad;
  // Which flat parameters got a gradient on any rank (the MAX of every rank's flags, across the
  // replicas below too), reduced with the comparison of the ranks' collectives: before the
  // reductions backward left, which follow one fixed order and would only deepen a disagreement.
  std::vector<int64_t> anywhere;
  try {
    anywhere = compare_calls(local_gradient_flags(), call_device(), "the end of backward");
  } catch (const Error&) {
    if (!broken_.empty()) throw;
    // The group failed under a collective of this backward: that one says more.
    for (auto& u : units_)
      for (auto& f : u->flats) {
        try {
          if (f->reduce_work) f->reduce_work->wait();
        } catch (const Error&) {
          f->reduce_work.reset();
          rethrow_with_context(
              "which " + fsdp_detail::describe(f->reduce_call, unit_namer(), reduction_name()));
        }
      }
    rethrow_with_context("comparing the ranks' FSDP collectives at the end of backward");
  }
  for (auto& u : units_)
    for (auto& f : u->flats) reduce(*u, *f, Call::end_of_backward);
  const bool use_flags = !anywhere.empty();
  std::exception_ptr error;
  auto wait = [&](WorkPtr& w) {
    try {
      if (w) w->wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
    w.reset();
  };
  for (auto& u : units_)
    for (auto& f : u->flats) wait(f->reduce_work);
  // HYBRID_SHARD: the shard gradients are then averaged across the replicas (same shard rank).
  if (!error && replicate_pg_ && shard_size_ > 1) {
    for (auto& u : units_)
      for (auto& f : u->flats)
        if (f->reduce_out.defined()) f->reduce_work = replicate_pg_->all_reduce(f->reduce_out, ReduceOp::sum);
    for (auto& u : units_)
      for (auto& f : u->flats) wait(f->reduce_work);
  }
  if (!error && use_flags && replicate_pg_ && call_group() != replicate_pg_.get()) {
    Tensor got = from_vector<int64_t>(anywhere).to(call_device());
    WorkPtr got_work = replicate_pg_->all_reduce(got, ReduceOp::max);
    wait(got_work);
    if (!error) anywhere = got.to(Device::cpu()).to_vector<int64_t>();
  }
  if (!error) {
    const double post = options_.divide_before_reduce ? 1.0 : world_size_ / gradient_predivide_factor(world_size_);
    size_t next_flag = 0;
    for (auto& u : units_) {
      for (auto& f : u->flats) {
        if (!f->reduce_out.defined()) continue;
        // No rank had a gradient for any of its parameters: the shard keeps what it had (none
        // since zero_grad), so the optimizer skips it.
        if (use_flags && !anywhere[next_flag++]) continue;
        Tensor g = f->reduce_out;
        if (post != 1.0) div_(g, post);
        g = g.to(f->shard.device()).to(f->dtype);
        // Unsharded (one shard rank), reduce_out is the packed buffer the parameters' gradients
        // were copied into: the shard's gradient gets its own. A reduce-scatter's output is
        // already the shard's alone.
        if (g.is_same(f->reduce_out) && shard_size_ == 1) g = g.clone();
        const Tensor current = f->shard.grad();
        if (current.defined()) {
          Tensor acc = current;
          add_(acc, g);
        } else {
          set_grad(f->shard, g);
        }
      }
    }
  }
  // Aliased flat parameters (NO_SHARD without a param_dtype) are never released.
  for (auto& u : units_) reshard(*u);
  reset_backward();
  if (error) std::rethrow_exception(error);
}

void FullyShardedModule::abandon_backward() {
  for (auto& u : units_) {
    for (auto& f : u->flats) {
      try {
        if (f->reduce_work) f->reduce_work->wait();
      } catch (...) {  // the backward's own error is the one reported
      }
    }
    try {
      reshard(*u);  // waits for a gather in flight first
    } catch (...) {
    }
  }
  reset_backward();
  calls_.clear();
}

void FullyShardedModule::reset_backward() {
  for (auto& u : units_) {
    u->backward_started = false;
    for (auto& f : u->flats) {
      f->ready.assign(f->params.size(), 0);
      f->pending = f->trainable ? static_cast<int64_t>(f->params.size()) : 0;
      f->reduced = false;
      f->local_grad = false;
      f->reduce_out = Tensor();
      f->reduce_work.reset();
    }
  }
  in_backward_ = false;
}

bool FullyShardedModule::is_shard(const Tensor& t) const {
  for (const auto& u : units_)
    for (const auto& f : u->flats)
      if (f->shard.is_same(t)) return true;
  return false;
}

bool FullyShardedModule::counts_shard_norm() const { return !replicate_pg_ || replicate_pg_->rank() == 0; }

std::vector<FullyShardedModule::UnitInfo> FullyShardedModule::units() const {
  std::vector<UnitInfo> out;
  for (const auto& u : units_) {
    UnitInfo info{.name = u->name};
    for (const auto& f : u->flats) {
      info.numel += f->numel;
      info.padded += f->padded;
      info.shard_numel += f->shard_numel;
      ++info.flat_params;
    }
    out.push_back(info);
  }
  return out;
}

}  // namespace fabric::distributed
