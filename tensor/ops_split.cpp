// split / chunk: views of the input along a dim, recorded as ONE autograd node with one output
// per piece (torch's SplitBackward0 / SplitWithSizesBackward0), whose backward concatenates the
// pieces' gradients (autograd/derivatives_split.cpp). A node per piece, each scattering into a
// zero gradient of the whole input, costs O(pieces * input) in backward.
#include <vector>

#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/shape.h"
#include "tensor/split_attrs.h"

namespace fabric {
namespace {

// The pieces are narrowed from a detached alias, so that no per-piece node is recorded, and then
// made views of `a`'s own base again: in-place writes into a piece and a piece read after a write
// through another alias go through view_history like any view's.
std::vector<Tensor> split_views(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim,
                                const char* node_name) {
  const Tensor source = a.detach();
  const std::shared_ptr<TensorImpl> base = a.impl()->view_base ? a.impl()->view_base : a.impl_ptr();
  std::vector<Tensor> pieces;
  pieces.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t s : sizes) {
    Tensor piece = source.narrow(dim, start, s);
    piece.impl()->view_base = base;
    pieces.push_back(std::move(piece));
    start += s;
  }
  if (needs_record({&a})) {
    if (AutogradRecorder recorder = autograd_recorder()) {
      const SplitAttrs attrs{a.sizes(), dim, sizes};
      const Tensor inputs[] = {a};
      recorder(OpRecord{OpId::split, inputs, 1, pieces.data(), pieces.size(), &attrs, node_name});
    }
  }
  return pieces;
}

void check_splittable(const char* op, const Tensor& a) {
  FABRIC_CHECK(a.defined() && a.dim() > 0, ShapeError, op, ": expects at least a 1-D tensor, got ",
               a.defined() ? shape_str(a.sizes()) : "undefined");
}

}  // namespace

std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim) {
  check_splittable("split", a);
  dim = wrap_dim(dim, a.dim(), "split");
  const int64_t n = a.size(dim);
  FABRIC_CHECK(split_size >= 0, ValueError, "split: split_size must be non-negative, got ",
               split_size);
  FABRIC_CHECK(split_size > 0 || n == 0, ValueError, "split: split_size can only be 0 if dim ", dim,
               " has size 0, but got size ", n, " (shape ", shape_str(a.sizes()), ")");
  // (n - 1) / size + 1, not (n + size - 1) / size: that wraps for a split_size near INT64_MAX.
  const int64_t num = split_size == 0 || n == 0 ? 1 : (n - 1) / split_size + 1;
  std::vector<int64_t> sizes(num, split_size);
  sizes.back() = n - split_size * (num - 1);  // the last chunk is the smaller one
  return split_views(a, sizes, dim, "SplitBackward0");
}

std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim) {
  check_splittable("split", a);
  dim = wrap_dim(dim, a.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    FABRIC_CHECK(s >= 0, ValueError, "split: split sizes must be non-negative, got ",
                 shape_str(sizes));
    total = checked_size_add(total, s, "split");
  }
  FABRIC_CHECK(total == a.size(dim), ShapeError, "split: split sizes ", shape_str(sizes),
               " sum to ", total, " but dim ", dim, " of ", shape_str(a.sizes()), " has size ",
               a.size(dim));
  return split_views(a, sizes, dim, "SplitWithSizesBackward0");
}

std::vector<Tensor> chunk(const Tensor& a, int64_t chunks, int64_t dim) {
  FABRIC_CHECK(chunks > 0, ValueError, "chunk: number of chunks must be positive, got ", chunks);
  check_splittable("chunk", a);
  dim = wrap_dim(dim, a.dim(), "chunk");
  const int64_t n = a.size(dim);
  if (n == 0)
    return split(a, std::vector<int64_t>(chunks, 0), dim);  // torch: `chunks` empty pieces
  return split(a, (n - 1) / chunks + 1, dim);  // ceil(n / chunks) without wrapping for huge chunks
}

}  // namespace fabric
