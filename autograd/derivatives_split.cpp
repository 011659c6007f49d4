// torch's SplitBackward0 / SplitWithSizesBackward0: the one node behind all pieces of a split or
// chunk. Its backward concatenates the pieces' gradients along the dim, zeros for a piece that got
// none (nothing when none did): O(input) however many pieces there are, and no copy at all when
// the gradients already lie side by side in one buffer.
#include <algorithm>
#include <utility>
#include <vector>

#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/split_attrs.h"

namespace fabric {
namespace {

// Whether nothing but `parts` can reach their storage: each part is held by the caller alone, and
// every other holder of the storage is a base a part is a view of, held by those parts alone.
// Another tensor on that storage then aliases nothing anyone else can read or write.
bool only_parts_hold_storage(const std::vector<Tensor>& parts) {
  const Storage& storage = parts[0].storage();
  std::vector<std::pair<const TensorImpl*, long>> bases;  // a base and how many parts view it
  long holders = 0;
  for (const Tensor& t : parts) {
    if (t.impl_ptr().use_count() != 1) return false;  // another handle on this part (a hook's)
    ++holders;
    const std::shared_ptr<TensorImpl>& base = t.impl()->view_base;
    if (!base || base->storage != storage) continue;
    auto it = std::find_if(bases.begin(), bases.end(),
                           [&](const auto& b) { return b.first == base.get(); });
    if (it != bases.end()) {
      ++it->second;
    } else {
      bases.emplace_back(base.get(), 1);
      ++holders;
    }
  }
  if (storage.use_count() != holders) return false;
  for (const auto& [base, views] : bases)
    for (const Tensor& t : parts)
      if (t.impl()->view_base.get() == base && t.impl()->view_base.use_count() != views)
        return false;  // someone else holds the base
  return true;
}

// The pieces' gradients as the one input-shaped tensor they already form, when they are adjacent
// pieces, in order, of one contiguous block of memory nothing else can reach (the attention
// backward writes dq, dk, dv into one buffer laid out like the split qkv:
// tensor/ops_attention.cpp): their cat, without the copy. Undefined otherwise, and when recording a
// graph (create_graph: the cat must be recorded).
Tensor whole_of_adjacent_pieces(const std::vector<Tensor>& g, const SplitAttrs& a) {
  if (g.size() < 2 || grad_enabled()) return Tensor();
  for (const Tensor& t : g)
    if (!t.defined()) return Tensor();
  const Tensor& first = g[0];
  const int64_t step = first.stride(a.dim);  // elements between neighbours along the dim
  int64_t at = first.storage_offset();
  for (size_t i = 0; i < g.size(); ++i) {
    const Tensor& t = g[i];
    Shape piece = a.input_shape;
    piece[a.dim] = a.sizes[i];
    if (t.storage() != first.storage() || t.dtype() != first.dtype() || t.sizes() != piece ||
        t.strides() != first.strides() || t.storage_offset() != at)
      return Tensor();
    at += a.sizes[i] * step;
  }
  // The pieces side by side, with their strides, must be the contiguous input-shaped block: the
  // union of their elements (so it lies in their storage), which their cat would have copied.
  const Strides contiguous = contiguous_strides(a.input_shape);
  for (size_t d = 0; d < contiguous.size(); ++d)
    if (a.input_shape[d] > 1 && first.strides()[d] != contiguous[d]) return Tensor();
  if (!only_parts_hold_storage(g)) return Tensor();
  return Tensor::from_storage(first.storage(), first.dtype(), a.input_shape, contiguous,
                              first.storage_offset());
}

FABRIC_DERIVATIVE(split) {
  auto a = attrs_of<SplitAttrs>(rec);
  return [a](const std::vector<Tensor>& g) {
    const Tensor* any = nullptr;
    for (const Tensor& t : g)
      if (t.defined()) any = &t;
    if (!any) return std::vector<Tensor>{Tensor()};
    if (Tensor whole = whole_of_adjacent_pieces(g, a); whole.defined())
      return std::vector<Tensor>{whole};
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
