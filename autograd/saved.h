// Helpers derivative rules share: saving tensors without their autograd history (a saved output
// holding its own grad_fn would be a reference cycle), and reading an op's attribute struct.
#pragma once
#include "tensor/op_record.h"
#include "tensor/tensor.h"

namespace fabric {

inline Tensor saved(const Tensor& t) { return t.defined() ? t.detach() : t; }

template <typename A>
const A& attrs_of(const OpRecord& rec) {
  return *static_cast<const A*>(rec.attrs);
}

using Grads = std::vector<Tensor>;

}  // namespace fabric
