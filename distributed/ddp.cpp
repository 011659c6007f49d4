// GradientReducer: bucketed, overlapped gradient averaging for data-parallel training.
#include "distributed/ddp.h"

#include <algorithm>
#include <map>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "distributed/collective_staging.h"
#include "tensor/error.h"
#include "tensor/factory.h"

namespace fabric::distributed {
namespace {

void broadcast_tensors(const std::vector<Tensor>& tensors, ProcessGroup& pg, int root);

// The buffers broadcast_buffers covers: those of every module that lets DDP broadcast them.
std::vector<Tensor> broadcast_buffers_of(const nn::Module& module) {
  std::vector<Tensor> out;
  auto add_own = [&](const nn::Module& m) {
    if (!m.ddp_broadcasts_buffers()) return;
    for (const Tensor& b : m.buffers(/*recurse=*/false)) out.push_back(b);
  };
  add_own(module);
  for (const auto& [name, m] : module.named_modules()) add_own(*m);
  return out;
}

}  // namespace

GradientReducer::GradientReducer(nn::Module& module, std::shared_ptr<ProcessGroup> pg, const DDPOptions& options)
    : pg_(std::move(pg)), options_(options), alive_(std::make_shared<bool>(true)) {
  FABRIC_CHECK(pg_ != nullptr, ValueError, "DDP: the process group is null");
  FABRIC_CHECK(options_.bucket_cap_mb > 0 && options_.first_bucket_mb > 0, ValueError,
               "DDP: bucket_cap_mb and first_bucket_mb must be positive, got ", options_.bucket_cap_mb, " and ",
               options_.first_bucket_mb);
  if (options_.broadcast_at_init) broadcast_module_states(module, *pg_, 0);
  // torch DDP's broadcast_buffers (its default): rank 0's buffers (BatchNorm's running statistics
  // and batch count) are broadcast before a forward, so all ranks compute with, and save, the
  // same ones — before the first forward and after one that ran with grad mode on and gradient
  // sync enabled (torch's require_forward_param_sync: not after a no_backward_sync or no-grad
  // forward, where ranks 1.. kept their own statistics). The buffers are looked up at each forward
  // (a load or a layer swap may replace them). The hooks outlive the reducer; they do nothing once
  // the reducer or group is gone.
  if (options_.broadcast_buffers && !broadcast_buffers_of(module).empty()) {
    auto sync_next = std::make_shared<bool>(true);
    module.register_forward_pre_hook([alive = std::weak_ptr<bool>(alive_),
                                      group = std::weak_ptr<ProcessGroup>(pg_),
                                      sync_next](nn::Module& m, const Tensor& input) {
      const std::shared_ptr<ProcessGroup> pg = group.lock();
      if (*sync_next && !alive.expired() && pg) broadcast_tensors(broadcast_buffers_of(m), *pg, 0);
      return input;
    });
    module.register_forward_hook([alive = std::weak_ptr<bool>(alive_), sync_next, this](
                                     nn::Module&, const Tensor&, const Tensor&) {
      if (!alive.expired()) *sync_next = grad_enabled() && sync_;
      return Tensor();
    });
  }

  for (auto& [name, p] : module.named_parameters()) {
    if (!p.requires_grad()) continue;
    names_.push_back(name);
    params_.push_back(p);
  }
  // Reverse order: the last layers' gradients are ready first.
  const auto cap_bytes = static_cast<int64_t>(options_.bucket_cap_mb * 1024 * 1024);
  const auto first_cap_bytes = static_cast<int64_t>(options_.first_bucket_mb * 1024 * 1024);
  bucket_of_.assign(params_.size(), -1);
  int64_t bytes = 0;
  for (int64_t i = static_cast<int64_t>(params_.size()) - 1; i >= 0; --i) {
    const Tensor& p = params_[i];
    const bool new_bucket = buckets_.empty() || bytes >= (buckets_.size() == 1 ? first_cap_bytes : cap_bytes) ||
                            params_[buckets_.back().params.front()].dtype() != p.dtype() ||
                            params_[buckets_.back().params.front()].device() != p.device();
    if (new_bucket) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel());
    b.params.push_back(i);
    bucket_of_[i] = static_cast<int64_t>(buckets_.size()) - 1;
    bytes += p.nbytes();
  }
  for (Bucket& b : buckets_) {
    const Tensor& last = params_[b.params.back()];
    b.flat = empty({b.offsets.back() + last.numel()}, {.dtype = last.dtype(), .device = last.device()});
  }
  reset_for_next_backward();

  std::weak_ptr<bool> alive = alive_;
  for (size_t i = 0; i < params_.size(); ++i) {
    register_post_accumulate_grad_hook(params_[i], [this, alive, i](Tensor&) {
      const auto a = alive.lock();
      if (a && *a) on_grad_ready(static_cast<int64_t>(i));
    });
  }
}

GradientReducer::~GradientReducer() {
  *alive_ = false;
  // Collectives in flight still reference our buffers through their Work: let them finish.
  for (Bucket& b : buckets_) {
    if (!b.work) continue;
    try {
      b.work->wait();
    } catch (...) {  // the error was (or will be) reported by finalize()
    }
  }
}

std::vector<std::vector<int64_t>> GradientReducer::bucket_assignment() const {
  std::vector<std::vector<int64_t>> out;
  for (const Bucket& b : buckets_) out.push_back(b.params);
  return out;
}

void GradientReducer::reset_for_next_backward() {
  ready_.assign(params_.size(), 0);
  for (Bucket& b : buckets_) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.work.reset();
  }
  next_bucket_ = 0;
  any_ready_ = false;
}

void GradientReducer::abandon() {
  for (Bucket& b : buckets_) {
    if (!b.work) continue;
    try {
      b.work->wait();
    } catch (...) {  // the backward's own error is the one reported
    }
  }
  reset_for_next_backward();
}

void GradientReducer::on_grad_ready(int64_t i) {
  if (!sync_) return;
  any_ready_ = true;
  if (ready_[i]) return;  // the same parameter used twice in one graph accumulates twice
  ready_[i] = 1;
  --buckets_[bucket_of_[i]].pending;
  launch_ready_buckets();
}

void GradientReducer::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) launch(buckets_[next_bucket_++]);
}

void GradientReducer::launch(Bucket& b) {
  NoGradGuard no_grad;
  for (size_t k = 0; k < b.params.size(); ++k) {
    const Tensor& p = params_[b.params[k]];
    Tensor slot = b.flat.narrow(0, b.offsets[k], p.numel());
    const Tensor g = p.grad();
    if (g.defined()) {
      slot.copy_(g.reshape({-1}));
    } else {
      slot.zero_();
    }
  }
  b.work = pg_->all_reduce(b.flat, ReduceOp::avg);
}

void GradientReducer::finalize() {
  if (!sync_) {
    reset_for_next_backward();
    return;
  }
  if (!any_ready_) return;  // no backward reached these parameters since the last finalize
  NoGradGuard no_grad;
  // Parameters that got no gradient: reduce zeros for them so every rank issues the same
  // collectives, then decide below whether that is allowed.
  std::vector<int64_t> unused;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (ready_[i]) continue;
    unused.push_back(static_cast<int64_t>(i));
    ready_[i] = 1;
    --buckets_[bucket_of_[i]].pending;
  }
  launch_ready_buckets();

  Tensor used;
  if (options_.find_unused_parameters) {
    // Whether any rank used each parameter (a parameter no rank used keeps an undefined .grad):
    // host flags, staged through the group's device under NCCL.
    used = zeros({static_cast<int64_t>(params_.size())}, {.dtype = DType::int32});
    auto* u = used.data<int32_t>();
    for (size_t i = 0; i < params_.size(); ++i) u[i] = 1;
    for (int64_t i : unused) u[i] = 0;
    staged_all_reduce(*pg_, used, ReduceOp::max);
  }
  std::exception_ptr error;
  for (Bucket& b : buckets_) {
    try {
      if (b.work) b.work->wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) {
    reset_for_next_backward();
    std::rethrow_exception(error);
  }

  for (Bucket& b : buckets_) {
    for (size_t k = 0; k < b.params.size(); ++k) {
      const int64_t i = b.params[k];
      const Tensor& p = params_[i];
      const Tensor slot = b.flat.narrow(0, b.offsets[k], p.numel()).view(p.sizes());
      Tensor g = p.grad();
      if (g.defined()) {
        g.copy_(slot);
      } else if (used.defined() && used.data<int32_t>()[i] != 0) {
        set_grad(p, slot.clone());
      }
    }
  }
  reset_for_next_backward();
  if (!unused.empty() && !options_.find_unused_parameters) {
    std::string names;
    for (size_t k = 0; k < unused.size() && k < 8; ++k) names += (k ? ", " : "") + names_[unused[k]];
    if (unused.size() > 8) names += ", ...";
    throw ValueError("DDP: " + std::to_string(unused.size()) +
                     " parameter(s) received no gradient in this backward on rank " + std::to_string(pg_->rank()) +
                     ": " + names +
                     ". Make every parameter take part in the loss, or use strategy "
                     "'ddp_find_unused_parameters_true' (DDPOptions.find_unused_parameters = true).");
  }
}

namespace {

// Overwrites `tensors` with root's.
void broadcast_tensors(const std::vector<Tensor>& tensors_in, ProcessGroup& pg, int root) {
  NoGradGuard no_grad;
  // One flat buffer per (dtype, device): a few large messages instead of one per tensor.
  std::map<std::pair<int, std::string>, std::vector<Tensor>> groups;
  for (const Tensor& t : tensors_in) {
    if (t.defined() && t.numel() > 0) groups[{static_cast<int>(t.dtype()), t.device().str()}].push_back(t);
  }
  for (auto& [key, tensors] : groups) {
    int64_t total = 0;
    for (const Tensor& t : tensors) total += t.numel();
    Tensor flat = empty({total}, {.dtype = tensors.front().dtype(), .device = tensors.front().device()});
    int64_t off = 0;
    for (const Tensor& t : tensors) {
      flat.narrow(0, off, t.numel()).copy_(t.reshape({-1}));
      off += t.numel();
    }
    // A module may hold tensors off the group's device (a buffer left on the host): staged.
    staged_broadcast(pg, flat, root);
    off = 0;
    for (const Tensor& t : tensors) {
      Tensor dst = t;
      dst.copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

}  // namespace

namespace {

// Each tensor's dtype, rank and sizes, one after another.
std::vector<int64_t> layout_of(const std::vector<Tensor>& tensors) {
  std::vector<int64_t> out;
  for (const Tensor& t : tensors) {
    out.push_back(t.defined() ? static_cast<int64_t>(t.dtype()) : -1);
    out.push_back(t.defined() ? t.dim() : -1);
    if (t.defined()) out.insert(out.end(), t.sizes().begin(), t.sizes().end());
  }
  return out;
}

// torch's _verify_param_shape_across_processes: every rank's parameters and buffers must have
// root's dtypes and shapes. Models of one element count but other shapes took root's values
// scrambled (the flat broadcast only checks the count). Raises on every rank.
void verify_same_layout(const std::vector<std::string>& names, const std::vector<Tensor>& tensors,
                        ProcessGroup& pg, int root) {
  NoGradGuard no_grad;
  const std::vector<int64_t> mine = layout_of(tensors);
  Tensor count = from_vector<int64_t>({static_cast<int64_t>(mine.size())}, {1});
  staged_broadcast(pg, count, root);
  const int64_t root_count = count.item<int64_t>();
  Tensor theirs = root_count > 0
                      ? from_vector(mine.size() == static_cast<size_t>(root_count)
                                        ? mine
                                        : std::vector<int64_t>(static_cast<size_t>(root_count), 0),
                                    {root_count})
                      : Tensor();
  if (theirs.defined()) staged_broadcast(pg, theirs, root);
  std::string mismatch;
  if (root_count != static_cast<int64_t>(mine.size())) {
    mismatch = "its parameters and buffers differ in number or rank from rank " +
               std::to_string(root) + "'s";
  } else if (root_count > 0) {
    const std::vector<int64_t> r = theirs.to_vector<int64_t>();
    size_t at = 0;
    for (size_t i = 0; i < tensors.size() && mismatch.empty(); ++i) {
      const int64_t nd = mine[at + 1];
      const bool same =
          r[at] == mine[at] && r[at + 1] == nd &&
          std::equal(mine.begin() + static_cast<std::ptrdiff_t>(at + 2),
                     mine.begin() + static_cast<std::ptrdiff_t>(at + 2 + std::max<int64_t>(nd, 0)),
                     r.begin() + static_cast<std::ptrdiff_t>(at + 2));
      if (!same) {
        const Shape root_shape(
            r.begin() + static_cast<std::ptrdiff_t>(at + 2),
            r.begin() + static_cast<std::ptrdiff_t>(at + 2 + std::max<int64_t>(r[at + 1], 0)));
        mismatch = "'" + names[i] + "' is " + std::string(dtype_name(tensors[i].dtype())) + " " +
                   shape_str(tensors[i].sizes()) + " where rank " + std::to_string(root) +
                   "'s is " + std::string(dtype_name(static_cast<DType>(r[at]))) + " " +
                   shape_str(root_shape);
      }
      at += 2 + static_cast<size_t>(std::max<int64_t>(nd, 0));
    }
  }
  Tensor any = from_vector<int64_t>({mismatch.empty() ? 0 : 1}, {1});
  staged_all_reduce(pg, any, ReduceOp::max);
  if (any.item<int64_t>() == 0) return;
  throw ValueError(
      "setup: the model differs across processes: on rank " + std::to_string(pg.rank()) +
      (mismatch.empty()
           ? " it matches rank " + std::to_string(root) + "'s, but another rank's does not"
           : ", " + mismatch) +
      " (torch's DDP refuses this too); build the same model on every rank");
}

}  // namespace

void broadcast_module_states(nn::Module& module, ProcessGroup& pg, int root) {
  std::vector<std::string> names;
  std::vector<Tensor> states;
  for (const auto& [n, p] : module.named_parameters()) names.push_back(n), states.push_back(p);
  for (const auto& [n, b] : module.named_buffers()) names.push_back(n), states.push_back(b);
  verify_same_layout(names, states, pg, root);
  broadcast_tensors(states, pg, root);
}

}  // namespace fabric::distributed
