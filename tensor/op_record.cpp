// The hand-off from ops to autograd (see op_record.h).
#include "tensor/op_record.h"

#include <array>
#include <vector>

namespace fabric {
namespace {
AutogradRecorder g_recorder = nullptr;
BackwardEntry g_backward = nullptr;
InplaceHooks g_inplace;
GradModeQuery g_grad_mode = nullptr;

constexpr std::array<std::string_view, static_cast<size_t>(OpId::num_ops)> kOpNames = {
#define FABRIC_OP_NAME(name, cpu, cuda) #name,
    FABRIC_OP_LIST(FABRIC_OP_NAME)
#undef FABRIC_OP_NAME
};
}  // namespace

std::string_view op_name(OpId id) { return kOpNames[static_cast<size_t>(id)]; }

void set_autograd_recorder(AutogradRecorder recorder) { g_recorder = recorder; }
AutogradRecorder autograd_recorder() { return g_recorder; }
void set_backward_entry(BackwardEntry entry) { g_backward = entry; }
BackwardEntry backward_entry() { return g_backward; }
void set_inplace_hooks(const InplaceHooks& hooks) { g_inplace = hooks; }
void set_grad_mode_query(GradModeQuery query) { g_grad_mode = query; }
bool grad_mode_enabled() { return g_grad_mode != nullptr && g_grad_mode(); }

bool inplace_joins_graph(const char* op, const Tensor& self, std::initializer_list<const Tensor*> operands) {
  if (!g_inplace.joins_graph) return false;
  bool any = self.requires_grad();
  for (const Tensor* t : operands) any = any || (t && t->defined() && t->requires_grad());
  return any && g_inplace.joins_graph(op, self);
}

void rebase_history(const Tensor& self, const Tensor& result) {
  if (g_inplace.rebase) g_inplace.rebase(self, result);
}

bool needs_record(std::initializer_list<const Tensor*> inputs) {
  if (!g_recorder) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record_op(OpId op, std::initializer_list<Tensor> inputs,
               std::initializer_list<Tensor*> outputs, const void* attrs, const char* node_name) {
  if (!g_recorder) return;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return;
  std::vector<Tensor> outs;
  outs.reserve(outputs.size());
  for (Tensor* t : outputs) outs.push_back(*t);
  OpRecord rec{op, inputs.begin(), inputs.size(), outs.data(), outs.size(), attrs, node_name};
  g_recorder(rec);
}

}  // namespace fabric
