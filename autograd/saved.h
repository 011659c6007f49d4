// Helpers derivative rules share: saving tensors without their autograd history (a saved output
// holding its own grad_fn would be a reference cycle) and with their version (an in-place write
// before backward is refused), and reading an op's attribute struct.
#pragma once
#include <vector>

#include "autograd/node.h"
#include "tensor/op_record.h"
#include "tensor/tensor.h"

namespace fabric {

// While a derivative rule builds its node, the tensors it saves are noted here (null otherwise).
std::vector<SavedVersion>*& saved_versions_collector();
// The entry for `t`, saved as `alias` by the rule now running: its version, and which forward
// input or output of the op it is (the history create_graph gives the alias back).
SavedVersion saved_entry(const Tensor& t, const Tensor& alias);

// Marks the node the rule now running builds as not supporting double backward, for a case its
// grad-mode composition does not cover (the gradient then gets a history that raises).
void refuse_double_backward();
// Marks the node the rule now running builds as holding what torch saves as a tensor though the
// rule keeps a number (x * 3.0: torch's wrapped scalar): after a backward without retain_graph a
// second one through it raises, as torch's does.
void saves_a_scalar();

inline Tensor saved(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor alias = t.detach();
  if (auto* c = saved_versions_collector()) c->push_back(saved_entry(t, alias));
  return alias;
}

template <typename A>
const A& attrs_of(const OpRecord& rec) {
  return *static_cast<const A*>(rec.attrs);
}

using Grads = std::vector<Tensor>;

}  // namespace fabric
