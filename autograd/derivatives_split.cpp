// torch's SplitBackward0 / SplitWithSizesBackward0: the one node behind all pieces of a split or
// chunk. Its backward concatenates the pieces' gradients along the dim, zeros for a piece that got
// none (nothing when none did): O(input) however many pieces there are.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/split_attrs.h"

namespace fabric {
namespace {

FABRIC_DERIVATIVE(split) {
  auto a = attrs_of<SplitAttrs>(rec);
  return [a](const std::vector<Tensor>& g) {
    const Tensor* any = nullptr;
    for (const Tensor& t : g)
      if (t.defined()) any = &t;
    if (!any) return std::vector<Tensor>{Tensor()};
    std::vector<Tensor> parts;
    parts.reserve(g.size());
    for (size_t i = 0; i < g.size(); ++i) {
      if (g[i].defined()) {
        parts.push_back(g[i]);
        continue;
      }
      Shape piece = a.input_shape;
      piece[a.dim] = a.sizes[i];
      parts.push_back(zeros(piece, {.dtype = any->dtype(), .device = any->device()}));
    }
    return std::vector<Tensor>{parts.size() == 1 ? parts[0] : cat(parts, a.dim)};
  };
}

}  // namespace
}  // namespace fabric
