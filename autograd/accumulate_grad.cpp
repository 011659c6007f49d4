// Leaf gradient accumulation and the public .grad/hook API.
#include "autograd/accumulate_grad.h"

#include "autograd/autograd.h"
#include "autograd/autograd_meta.h"
#include "autograd/grad_mode.h"
#include "autograd/view_history.h"
#include "tensor/ops.h"

namespace fabric {

AutogradMeta& autograd_meta(const Tensor& t) {
  TensorImpl* impl = t.impl();
  FABRIC_CHECK(impl != nullptr, ValueError, "autograd: undefined tensor");
  if (!impl->autograd) impl->autograd = std::make_shared<AutogradMeta>();
  return static_cast<AutogradMeta&>(*impl->autograd);
}

AutogradMeta* autograd_meta_if(const Tensor& t) {
  TensorImpl* impl = t.impl();
  return impl && impl->autograd ? static_cast<AutogradMeta*>(impl->autograd.get()) : nullptr;
}

namespace {
// A .grad of its own in row-major order: contiguous gradients are what the optimizers' fused
// loops and the gradient buckets take (torch's layout contract gives a contiguous parameter's
// gradient its strides; clone() alone would keep a transposed gradient transposed).
Tensor row_major_copy(const Tensor& g) { return g.is_contiguous() ? g.clone() : g.contiguous(); }
}  // namespace

AccumulateGrad::AccumulateGrad(Tensor variable) : variable_(std::move(variable)) {
  next_edges.clear();
  num_outputs = 1;
}

std::shared_ptr<AccumulateGrad> grad_accumulator(const Tensor& leaf) {
  AutogradMeta& m = autograd_meta(leaf);
  auto acc = m.accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(leaf);
    m.accumulator = acc;
  }
  return acc;
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grads) {
  Tensor g = std::move(grads[0]);
  // A leaf frozen (requires_grad false) between forward and backward gets no gradient, as torch.
  if (!g.defined() || !variable_.requires_grad()) return {};
  AutogradMeta& m = autograd_meta(variable_);
  for (auto& hook : m.grad_hooks) {
    Tensor r = hook(g);
    if (r.defined()) g = r;
  }
  if (!m.grad_.defined()) {
    // Keep the incoming tensor only when nothing else can see its memory; otherwise an in-place
    // update of one .grad would leak into another.
    const bool shared = g.storage().use_count() > 1 || g.impl_ptr().use_count() > 1;
    m.grad_ = shared || !g.is_contiguous() ? row_major_copy(g) : g;
  } else if (!grad_enabled() && m.grad_.dtype() == g.dtype() && m.grad_.device() == g.device() &&
             m.grad_.sizes() == g.sizes()) {
    // In place, as torch's `variable.grad += new_grad`: whatever aliases .grad (a flat buffer it
    // is a view of, a tensor a caller kept) sees the sum, and a .grad with the history of an
    // earlier create_graph backward keeps it.
    m.grad_.add_(g);
  } else {
    m.grad_ = add(m.grad_, g);  // create_graph: the sum is part of the gradient's graph
  }
  for (auto& hook : m.post_accumulate_hooks) hook(variable_);
  return {};
}

void set_grad(const Tensor& t, const Tensor& grad) {
  // torch's `.grad =` checks, in its order: an optimizer or a later accumulation would otherwise
  // mix dtypes or devices, or broadcast, without a word.
  if (grad.defined()) {
    FABRIC_CHECK(t.defined(), ValueError, "set_grad: undefined tensor");
    FABRIC_CHECK(grad.dtype() == t.dtype(), DTypeError,
                 "set_grad: assigned grad has data of a different type: a ",
                 dtype_name(grad.dtype()), " gradient for a ", dtype_name(t.dtype()),
                 " tensor (expected ", dtype_name(t.dtype()), ")");
    FABRIC_CHECK(grad.device() == t.device(), DeviceError,
                 "set_grad: assigned grad has data located on a different device: a gradient on ",
                 grad.device(), " for a tensor on ", t.device());
    FABRIC_CHECK(grad.sizes() == t.sizes(), ShapeError,
                 "set_grad: assigned grad has data of a different size: a gradient of shape ",
                 shape_str(grad.sizes()), " for a tensor of shape ", shape_str(t.sizes()));
  }
  set_grad_unchecked(t, grad);
}

void set_grad_unchecked(const Tensor& t, const Tensor& grad) { autograd_meta(t).grad_ = grad; }

void zero_grad(const Tensor& t, bool set_to_none) {
  AutogradMeta* m = autograd_meta_if(t);
  if (!m || !m->grad_.defined()) return;
  if (set_to_none) {
    m->grad_ = Tensor();
  } else {
    // As torch's zero_grad: the gradient leaves any graph a create_graph backward gave it (which
    // would keep that graph, and the parameter, alive) and stops requiring grad, then is zeroed
    // (a set_grad gradient that is a leaf requiring grad would otherwise refuse the in-place fill).
    const AutogradMeta* gm = autograd_meta_if(m->grad_);
    if (gm && gm->grad_fn) {
      m->grad_ = m->grad_.detach();  // not detach_(): a gradient may be a view (a bucket's)
    } else if (m->grad_.requires_grad()) {
      m->grad_.set_requires_grad(false);
    }
    NoGradGuard no_grad;
    m->grad_.zero_();
  }
}

namespace {

// `fn` as a hook that its handle can remove, also while it runs: the handle marks it removed and
// releases the callable (with what it captured) at once, or when the running call returns. The
// hook's place in its list then holds a wrapper that does nothing.
template <typename R, typename... A>
std::pair<std::function<R(A...)>, RemovableHandle> removable(std::function<R(A...)> fn) {
  struct Slot {
    std::function<R(A...)> fn;
    bool removed = false;
    int running = 0;
  };
  auto slot = std::make_shared<Slot>(Slot{std::move(fn)});
  std::function<R(A...)> call = [slot](A... args) -> R {
    if (slot->removed) return R();
    struct Running {
      Slot& s;
      explicit Running(Slot& slot_) : s(slot_) { ++s.running; }
      ~Running() {
        if (--s.running == 0 && s.removed) s.fn = nullptr;
      }
    } running(*slot);
    return slot->fn(std::forward<A>(args)...);
  };
  RemovableHandle handle([weak = std::weak_ptr<Slot>(slot)] {
    if (auto s = weak.lock()) {
      s->removed = true;
      if (s->running == 0) s->fn = nullptr;
    }
  });
  return {std::move(call), std::move(handle)};
}

}  // namespace

RemovableHandle register_hook(const Tensor& t, std::function<Tensor(const Tensor&)> fn) {
  FABRIC_CHECK(t.requires_grad(), ValueError, "register_hook: cannot register a hook on a tensor that doesn't require grad");
  sync_view_history(t);
  AutogradMeta& m = autograd_meta(t);
  // What the hook returns replaces the gradient: as torch's, it must be one the tensor could have
  // (else a leaf's .grad took any shape or dtype, and a node's other inputs failed far away).
  auto checked = [fn = std::move(fn)](const Tensor& g) -> Tensor {
    Tensor r = fn(g);
    if (!r.defined()) return r;
    FABRIC_CHECK(r.sizes() == g.sizes(), ShapeError,
                 "a tensor hook has changed the size of the gradient (was ", shape_str(g.sizes()),
                 ", got ", shape_str(r.sizes()),
                 "); a hook returns a gradient of the same shape, dtype and device, or nothing");
    FABRIC_CHECK(r.dtype() == g.dtype(), DTypeError,
                 "a tensor hook has changed the type of the gradient (was ", dtype_name(g.dtype()),
                 ", got ", dtype_name(r.dtype()),
                 "); a hook returns a gradient of the same shape, dtype and device, or nothing");
    FABRIC_CHECK(r.device() == g.device(), DeviceError,
                 "a tensor hook has changed the device of the gradient (was ", g.device(), ", got ",
                 r.device(),
                 "); a hook returns a gradient of the same shape, dtype and device, or nothing");
    return r;
  };
  auto [hook, handle] = removable(std::function<Tensor(const Tensor&)>(std::move(checked)));
  if (m.grad_fn) {
    m.grad_fn->pre_hooks.emplace_back(m.output_nr, std::move(hook));
  } else {
    m.grad_hooks.push_back(std::move(hook));
  }
  return std::move(handle);
}

RemovableHandle register_post_accumulate_grad_hook(const Tensor& t,
                                                   std::function<void(Tensor&)> fn) {
  FABRIC_CHECK(t.requires_grad() && is_leaf(t), ValueError,
               "register_post_accumulate_grad_hook: only leaf tensors that require grad accumulate gradients");
  auto [hook, handle] = removable(std::move(fn));
  autograd_meta(t).post_accumulate_hooks.push_back(std::move(hook));
  return std::move(handle);
}

namespace {

// Hooks the gradient of t's value at its grad_fn into t's .grad, while that node still produces
// t's value (an in-place write since moves the retention to its own node).
void attach_retain_hook(const Tensor& t, AutogradMeta& m) {
  if (!m.grad_fn || m.retained_at == m.grad_fn.get()) return;
  const Node* node = m.grad_fn.get();
  m.retained_at = node;
  std::weak_ptr<TensorImpl> weak = t.impl_ptr();
  m.grad_fn->pre_hooks.emplace_back(m.output_nr, [weak, node](const Tensor& g) {
    if (auto impl = weak.lock()) {
      auto& meta = static_cast<AutogradMeta&>(*impl->autograd);
      if (meta.retained_at == node)
        meta.grad_ = meta.grad_.defined() ? add(meta.grad_, g) : row_major_copy(g);
    }
    return Tensor();
  });
}

}  // namespace

void retain_grad(const Tensor& t) {
  FABRIC_CHECK(t.requires_grad(), ValueError, "retain_grad: the tensor doesn't require grad");
  sync_view_history(t);
  AutogradMeta& m = autograd_meta(t);
  if (!m.grad_fn) return;
  m.retains_grad = true;
  attach_retain_hook(t, m);
}

void move_retained_grad(const Tensor& t) {
  AutogradMeta* m = autograd_meta_if(t);
  if (m && m->retains_grad) attach_retain_hook(t, *m);
}

bool is_leaf(const Tensor& t) {
  sync_view_history(t);
  AutogradMeta* m = autograd_meta_if(t);
  return !m || !m->grad_fn;
}

std::string grad_fn_name(const Tensor& t) {
  sync_view_history(t);
  AutogradMeta* m = autograd_meta_if(t);
  return m && m->grad_fn ? m->grad_fn->name() : "";
}

}  // namespace fabric
