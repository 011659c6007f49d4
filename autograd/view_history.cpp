// See view_history.h. A view's history is checked against its storage's version: every in-place
// write bumps it, so a view whose recorded version differs may have been written through another
// alias and gets its history rebuilt from its base's (PyTorch's attr_version).
#include "autograd/view_history.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "autograd/accumulate_grad.h"
#include "autograd/autograd.h"
#include "autograd/autograd_meta.h"
#include "autograd/grad_mode.h"
#include "autograd/view_nodes.h"

namespace fabric {
namespace {

constexpr uint64_t kNoWrite = std::numeric_limits<uint64_t>::max();
// The first node number of the in-place write into a view being computed on this thread: the
// nodes its out-of-place op records from here on are the op's, which CopySlices runs itself.
thread_local uint64_t t_write_start = kNoWrite;

void set_history(const Tensor& t, std::shared_ptr<Node> fn) {
  AutogradMeta& m = autograd_meta(t);
  m.grad_fn = std::move(fn);
  m.output_nr = 0;
  t.impl()->requires_grad = true;
  move_retained_grad(t);
}

// The op's nodes: those reachable from its result that were recorded since the write started. A
// node recorded before (an operand's producer, the view's own history), a leaf's accumulator or a
// view history rebuilt meanwhile is an input of the op, whose gradient CopySlices hands on to the
// engine. (Backward being linear, the gradients would be the same wherever the cut fell; this one
// keeps the op's own nodes, which nothing else reaches, private to CopySlices.)
std::vector<std::shared_ptr<Node>> op_nodes_of(const std::shared_ptr<Node>& result_fn,
                                               uint64_t start) {
  auto is_op_node = [start](const std::shared_ptr<Node>& n) {
    return n->sequence_nr() >= start && dynamic_cast<FunctionNode*>(n.get()) != nullptr;
  };
  std::vector<std::shared_ptr<Node>> found;
  if (!is_op_node(result_fn)) return found;
  std::vector<std::shared_ptr<Node>> stack{result_fn};
  found.push_back(result_fn);
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid() || !is_op_node(e.fn)) continue;
      if (std::find(found.begin(), found.end(), e.fn) != found.end()) continue;
      found.push_back(e.fn);
      stack.push_back(e.fn);
    }
  }
  return found;
}

}  // namespace

Tensor differentiable_base(const Tensor& t) {
  const TensorImpl* impl = t.impl();
  if (impl == nullptr || impl->view_base == nullptr || impl->view_base->storage != impl->storage)
    return {};
  return Tensor(impl->view_base);
}

void sync_view_history(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (impl == nullptr || impl->view_base == nullptr) return;
  const uint64_t version = impl->storage->version();
  if (impl->view_version == version) return;
  const Tensor base = differentiable_base(t);
  if (!base.defined()) return;
  AutogradMeta* m = autograd_meta_if(t);
  // A view with no history of a base that needs none has nothing to follow (yet).
  if ((m == nullptr || m->grad_fn == nullptr) && !base.requires_grad()) return;
  FABRIC_CHECK(
      m == nullptr || !m->view_made_without_grad, Error, "a view of shape ", shape_str(t.sizes()),
      " was created in no_grad mode and its base (shape ", shape_str(base.sizes()),
      ") or another view of its base has been modified inplace since. Given that this use case is "
      "ambiguous and error-prone, it is forbidden: make the view again after the write, or keep "
      "both "
      "under NoGradGuard");
  set_history(t, std::make_shared<AsStridedBackward>(base, t, gradient_edge(base)));
  impl->view_version = version;
}

void note_view_outputs(const OpRecord& rec) {
  bool without_grad = !grad_enabled();
  for (size_t i = 0; i < rec.num_inputs && !without_grad; ++i) {
    const AutogradMeta* m = rec.inputs[i].defined() ? autograd_meta_if(rec.inputs[i]) : nullptr;
    without_grad = m != nullptr && m->view_made_without_grad;
  }
  if (!without_grad) return;
  for (size_t o = 0; o < rec.num_outputs; ++o) {
    const Tensor& out = rec.outputs[o];
    if (out.defined() && out.impl()->view_base != nullptr)
      autograd_meta(out).view_made_without_grad = true;
  }
}

void check_inplace_view(const char* op, const Tensor& view) {
  const Tensor base = differentiable_base(view);
  const AutogradMeta* m = autograd_meta_if(view);
  FABRIC_CHECK(m == nullptr || !m->view_made_without_grad, Error, op,
               ": a view was created in no_grad mode and is being modified inplace with grad mode "
               "enabled (a "
               "view of shape ",
               shape_str(view.sizes()), " of a base of shape ", shape_str(base.sizes()),
               "). Given that this use case is ambiguous and error-prone, it is forbidden: make "
               "the view and "
               "write it both under NoGradGuard (not tracked) or both outside it (tracked)");
  FABRIC_CHECK(!(view.requires_grad() && is_leaf(base)), Error, op,
               ": a view of a leaf Variable that requires grad is being used in an in-place "
               "operation (a view "
               "of shape ",
               shape_str(view.sizes()), " of a leaf of shape ", shape_str(base.sizes()),
               "; write it under NoGradGuard, or use the out-of-place op)");
  for (int64_t d = 0; d < base.dim(); ++d) {
    FABRIC_CHECK(base.sizes()[d] <= 1 || base.strides()[d] != 0, NotImplementedError, op,
                 ": an in-place write into a view of a base whose elements share memory (shape ",
                 shape_str(base.sizes()), ", strides ", shape_str(base.strides()),
                 ") is not supported while autograd records; clone() the base first");
  }
  sync_view_history(view);
  t_write_start = Node::next_sequence_nr();
}

void rebase_view(const Tensor& view, const Tensor& result) {
  const uint64_t start = t_write_start;
  t_write_start = kNoWrite;
  const AutogradMeta* r = autograd_meta_if(result);
  if (r == nullptr || r->grad_fn == nullptr) return;
  const Tensor base = differentiable_base(view);
  // The view's history before the write, read as it is: its storage's version moved with the
  // write, and the op's nodes point at this history, not at a rebuilt one.
  const AutogradMeta* vm = autograd_meta_if(view);
  const Edge view_edge =
      vm != nullptr && vm->grad_fn != nullptr ? Edge{vm->grad_fn, vm->output_nr} : Edge{};
  auto copy_slices =
      std::make_shared<CopySlices>(base, view, gradient_edge(base), Edge{r->grad_fn, r->output_nr},
                                   op_nodes_of(r->grad_fn, start), view_edge);
  set_history(base, copy_slices);
  set_history(view, std::make_shared<AsStridedBackward>(base, view, Edge{copy_slices, 0}));
  view.impl()->view_version = view.storage()->version();
}

}  // namespace fabric
