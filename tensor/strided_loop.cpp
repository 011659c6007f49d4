// Building a StridedLoop: broadcast each input to the output's shape (stride 0 where it has
// size 1), drop size-1 dims, and merge adjacent dims that are contiguous for every operand.
#include "tensor/strided_loop.h"

#include <algorithm>
#include <vector>

#include "tensor/error.h"

namespace fabric {

bool StridedLoop::is_flat() const {
  if (ndim > 1) return false;
  for (int k = 0; k < num_operands; ++k) {
    int64_t s = ndim == 0 ? 0 : ops[k].strides[0];
    if (s != 0 && s != itemsize(ops[k].dtype)) return false;
  }
  return true;
}

bool StridedLoop::operand_is_scalar(int i) const {
  for (int d = 0; d < ndim; ++d)
    if (ops[i].strides[d] != 0) return false;
  return true;
}

StridedLoop make_strided_loop(const char* op, const Tensor& out, std::initializer_list<const Tensor*> inputs) {
  StridedLoop loop;
  FABRIC_CHECK(static_cast<int>(inputs.size()) + 1 <= kMaxLoopOperands, ValueError, op, ": too many operands");
  const Shape& shape = out.sizes();
  const int64_t nd = out.dim();
  // Collect the dims that are not 1 (they contribute nothing to addressing).
  std::vector<int64_t> keep;
  for (int64_t d = 0; d < nd; ++d)
    if (shape[d] != 1) keep.push_back(d);
  FABRIC_CHECK(static_cast<int>(keep.size()) <= kMaxLoopDims, ShapeError, op, ": tensors with more than ",
               kMaxLoopDims, " non-unit dims are not supported (shape ", shape_str(shape), ")");

  loop.num_operands = 1 + static_cast<int>(inputs.size());
  auto fill_operand = [&](int k, const Tensor& t, bool is_out) {
    LoopOperand& o = loop.ops[k];
    o.data = static_cast<char*>(t.data_ptr());
    o.dtype = t.dtype();
    const int64_t lead = nd - t.dim();
    FABRIC_CHECK(lead >= 0, ShapeError, op, ": input of shape ", shape_str(t.sizes()),
                 " has more dims than the result ", shape_str(shape));
    const int64_t item = itemsize(t.dtype());
    for (size_t j = 0; j < keep.size(); ++j) {
      const int64_t d = keep[j];
      const int64_t src = d - lead;
      int64_t size = src >= 0 ? t.sizes()[src] : 1;
      if (size == shape[d]) {
        o.strides[j] = t.strides()[src] * item;
      } else {
        FABRIC_CHECK(size == 1 && !is_out, ShapeError, op, ": input of shape ", shape_str(t.sizes()),
                     " does not broadcast to ", shape_str(shape));
        o.strides[j] = 0;
      }
    }
    // Size-1 dims of the output may be non-1 in no input; check the dropped dims still agree.
    for (int64_t d = 0; d < nd; ++d) {
      if (shape[d] != 1) continue;
      const int64_t src = d - lead;
      FABRIC_CHECK(src < 0 || t.sizes()[src] == 1, ShapeError, op, ": input of shape ", shape_str(t.sizes()),
                   " does not broadcast to ", shape_str(shape));
    }
  };
  fill_operand(0, out, true);
  int k = 1;
  for (const Tensor* t : inputs) fill_operand(k++, *t, false);

  // Walk the output's memory order, outermost dim first: a result laid out as its transposed or
  // permuted operands (empty_like_operands), or an in-place write into such a view, then runs
  // over contiguous memory instead of one element per cache line. Each element's value does not
  // depend on the order; a row-major output keeps the order it has.
  const int n_keep = static_cast<int>(keep.size());
  bool descending = true;
  for (int j = 1; j < n_keep && descending; ++j)
    descending = loop.ops[0].strides[j - 1] >= loop.ops[0].strides[j];
  if (!descending) {
    std::array<int, kMaxLoopDims> perm{};
    for (int j = 0; j < n_keep; ++j) perm[j] = j;
    std::stable_sort(perm.begin(), perm.begin() + n_keep,
                     [&](int x, int y) { return loop.ops[0].strides[x] > loop.ops[0].strides[y]; });
    std::vector<int64_t> kept(keep.size());
    for (int j = 0; j < n_keep; ++j) kept[j] = keep[perm[j]];
    for (int q = 0; q < loop.num_operands; ++q) {
      const std::array<int64_t, kMaxLoopDims> old = loop.ops[q].strides;
      for (int j = 0; j < n_keep; ++j) loop.ops[q].strides[j] = old[perm[j]];
    }
    keep = std::move(kept);
  }

  // Coalesce: dim j-1 merges into dim j when every operand's stride[j-1] == stride[j] * size[j].
  int n = static_cast<int>(keep.size());
  std::array<int64_t, kMaxLoopDims> sizes{};
  for (int j = 0; j < n; ++j) sizes[j] = shape[keep[j]];
  int w = 0;  // write index of the coalesced dims
  for (int j = 0; j < n; ++j) {
    if (w > 0) {
      bool can = true;
      for (int q = 0; q < loop.num_operands && can; ++q)
        can = loop.ops[q].strides[w - 1] == loop.ops[q].strides[j] * sizes[j];
      if (can) {
        sizes[w - 1] *= sizes[j];
        for (int q = 0; q < loop.num_operands; ++q) loop.ops[q].strides[w - 1] = loop.ops[q].strides[j];
        continue;
      }
    }
    sizes[w] = sizes[j];
    for (int q = 0; q < loop.num_operands; ++q) loop.ops[q].strides[w] = loop.ops[q].strides[j];
    ++w;
  }
  loop.ndim = w;
  loop.sizes = sizes;
  return loop;
}

}  // namespace fabric
