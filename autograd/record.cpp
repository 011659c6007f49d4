// The recorder autograd installs into the op layer: builds a FunctionNode from the op's
// derivative rule, wires edges to the inputs' producers and marks the outputs.
#include <array>

#include "autograd/accumulate_grad.h"
#include "autograd/autograd.h"
#include "autograd/autograd_meta.h"
#include "autograd/closure_reads.h"
#include "autograd/connect_node.h"
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "autograd/view_history.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

// The op whose rule is building its closure on this thread, and whether the closure, run with
// create_graph, records a correct graph (false once it saved a tensor that is none of the op's
// inputs and outputs: that tensor's history would be unknown).
struct RuleContext {
  const OpRecord* rec = nullptr;
  bool double_backward = true;
  bool saved_scalar = false;  // saves_a_scalar()
};
thread_local RuleContext t_rule;

std::array<DerivativeRule, static_cast<size_t>(OpId::num_ops)>& rules() {
  static std::array<DerivativeRule, static_cast<size_t>(OpId::num_ops)> table{};
  return table;
}

void record(const OpRecord& rec) {
  note_view_outputs(rec);
  note_closure_reads(rec);
  if (!grad_enabled()) return;
  // Ops with only integer/bool outputs (comparisons, argmax) start no graph.
  bool any_float = false;
  for (size_t o = 0; o < rec.num_outputs; ++o)
    any_float = any_float || (rec.outputs[o].defined() && is_floating(rec.outputs[o].dtype()));
  if (!any_float) return;
  DerivativeRule rule = derivative_rule(rec.op);
  FABRIC_CHECK(rule != nullptr, NotImplementedError, "autograd: the op '", op_name(rec.op),
               "' has no derivative rule; call it under NoGradGuard or on tensors that don't require grad");
  std::vector<SavedVersion> saved_versions;
  std::vector<SavedVersion>*& collector = saved_versions_collector();
  std::vector<SavedVersion>* outer = collector;  // a rule may run ops that record (nested)
  const RuleContext outer_ctx = t_rule;
  collector = &saved_versions;
  t_rule = {&rec, true};
  FunctionNode::Backward backward;
  try {
    backward = rule(rec);
  } catch (...) {
    collector = outer;
    t_rule = outer_ctx;
    throw;
  }
  collector = outer;
  const bool double_backward = t_rule.double_backward && double_backward_supported(rec.op);
  const bool saved_scalar = t_rule.saved_scalar;
  t_rule = outer_ctx;
  auto node = std::make_shared<FunctionNode>(op_name(rec.op), std::move(backward), rec.node_name);
  node->set_supports_double_backward(double_backward);
  node->set_saved_versions(std::move(saved_versions));
  if (saved_scalar) node->mark_holds_saved();
  node->num_outputs = static_cast<int>(rec.num_outputs);
  add_input_edges(*node, std::span<const Tensor>(rec.inputs, rec.num_inputs));
  for (size_t o = 0; o < rec.num_outputs; ++o) {
    Tensor& out = rec.outputs[o];
    if (out.defined() && is_floating(out.dtype())) set_grad_fn(out, node, static_cast<int>(o));
  }
}

void tensor_backward(const Tensor& root, const Tensor& gradient, std::optional<bool> retain_graph,
                     bool create_graph) {
  backward(root, gradient, retain_graph, create_graph);
}

// PyTorch's rules for an in-place write that autograd must see (op_record.h); a write into a
// view goes through its base's history (view_history.h).
bool inplace_joins_graph(const char* op, const Tensor& self) {
  if (!grad_enabled()) return false;
  if (differentiable_base(self).defined()) {
    check_inplace_view(op, self);
    return true;
  }
  FABRIC_CHECK(
      !(self.requires_grad() && is_leaf(self)), Error, op,
      ": a leaf Variable that requires grad is being used in an in-place operation (write it under "
      "NoGradGuard, or use the out-of-place op)");
  return true;
}

void rebase(const Tensor& self, const Tensor& result) {
  const AutogradMeta* r = autograd_meta_if(result);
  if (r == nullptr || r->grad_fn == nullptr) return;
  if (differentiable_base(self).defined()) {
    rebase_view(self, result);
    return;
  }
  AutogradMeta& m = autograd_meta(self);
  m.grad_fn = r->grad_fn;
  m.output_nr = r->output_nr;
  self.impl()->requires_grad = true;
  move_retained_grad(self);
}

[[maybe_unused]] const bool g_installed = [] {
  set_autograd_recorder(&record);
  set_backward_entry(&tensor_backward);
  set_inplace_hooks({.joins_graph = &inplace_joins_graph, .rebase = &rebase});
  return true;
}();

}  // namespace

std::vector<SavedVersion>*& saved_versions_collector() {
  thread_local std::vector<SavedVersion>* collector = nullptr;
  return collector;
}

SavedVersion saved_entry(const Tensor& t, const Tensor& alias) {
  SavedVersion s{t.storage(), t.storage()->version(), t.sizes(), t.dtype(), alias};
  if (const OpRecord* rec = t_rule.rec) {
    const TensorImpl* impl = t.impl();
    for (size_t i = 0; i < rec->num_inputs && s.input_nr < 0; ++i)
      if (rec->inputs[i].impl() == impl) s.input_nr = static_cast<int>(i);
    for (size_t o = 0; o < rec->num_outputs && s.input_nr < 0 && s.output_nr < 0; ++o)
      if (rec->outputs[o].impl() == impl) s.output_nr = static_cast<int>(o);
    if (s.input_nr < 0 && s.output_nr < 0 && t.requires_grad()) t_rule.double_backward = false;
  }
  return s;
}

void refuse_double_backward() { t_rule.double_backward = false; }
void saves_a_scalar() { t_rule.saved_scalar = true; }

void register_derivative(OpId op, DerivativeRule rule) { rules()[static_cast<size_t>(op)] = rule; }
DerivativeRule derivative_rule(OpId op) { return rules()[static_cast<size_t>(op)]; }

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.sizes() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  FABRIC_CHECK(lead >= 0, ShapeError, "sum_to: cannot reduce ", shape_str(grad.sizes()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < lead; ++d) dims.push_back(d);
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] == 1 && grad.sizes()[lead + d] != 1) dims.push_back(lead + static_cast<int64_t>(d));
  Tensor r = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return lead > 0 || r.sizes() != shape ? r.reshape(shape) : r;
}

}  // namespace fabric
