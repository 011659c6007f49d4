// unbind: the slices along a dim as separate tensors, recorded as one autograd node with one
// output per slice (autograd/derivatives_views.cpp stacks their gradients back).
#include <vector>

#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric {

std::vector<Tensor> unbind(const Tensor& a, int64_t dim) {
  FABRIC_CHECK(a.defined(), ValueError, "unbind: undefined input");
  FABRIC_CHECK(a.dim() > 0, ShapeError, "unbind: a 0-dim tensor has no dim to unbind");
  dim = wrap_dim(dim, a.dim(), "unbind");
  const Tensor source = a.detach();
  std::vector<Tensor> slices;
  slices.reserve(static_cast<size_t>(a.size(dim)));
  // Copies rather than views: each is a separate autograd output of the one node, and a copy of
  // the detached source records nothing of its own.
  for (int64_t i = 0; i < a.size(dim); ++i) slices.push_back(source.select(dim, i).clone());
  if (!slices.empty() && needs_record({&a})) {
    if (AutogradRecorder recorder = autograd_recorder()) {
      const UnbindAttrs attrs{a.sizes(), dim};
      const Tensor inputs[] = {a};
      recorder(OpRecord{OpId::unbind, inputs, 1, slices.data(), slices.size(), &attrs,
                        "UnbindBackward0"});
    }
  }
  return slices;
}

}  // namespace fabric
