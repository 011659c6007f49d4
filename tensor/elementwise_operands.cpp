// The shared elementwise operand checks and cast of tensor/elementwise_operands.h.
#include "tensor/elementwise_operands.h"

#include <algorithm>
#include <vector>

#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/memory_overlap.h"

namespace fabric {

void check_elementwise_operand(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(
      !is_fp8(t.dtype()), DTypeError, op, ": ", dtype_name(t.dtype()),
      " tensors are not supported (fp8 is a storage format here; cast to a wider dtype first)");
}

void check_floating_operand(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": got an undefined tensor");
  const DType dt = t.dtype();
  FABRIC_CHECK(is_floating(dt) && !is_fp8(dt), DTypeError, op,
               ": expects a float64, float32, float16 or bfloat16 tensor, got ", dtype_name(dt),
               is_fp8(dt) ? " (fp8 is a storage format here; cast to a wider dtype first)"
                          : " (cast with .to(float32) first)");
}

Tensor cast_for_kernel(const Tensor& t, DType dt) {
  return t.dtype() == dt ? t : t.detach().to(dt);
}

namespace {

// A result of shape `out` with these element strides, in fresh memory.
Tensor empty_with_strides(const Shape& out, const Strides& strides, const TensorOptions& options) {
  int64_t numel = 1;
  for (int64_t s : out) numel *= s;
  const Tensor flat = empty({numel}, options);
  return Tensor::from_storage(flat.storage(), options.dtype, out, strides, 0);
}

// `t`'s strides against the result's shape, as torch's TensorIterator::compute_strides sees them:
// 0 along dims `t` broadcasts over (missing leading dims, or size 1 where the result is wider).
std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& out) {
  const size_t nd = out.size(), lead = nd - static_cast<size_t>(t.dim());
  std::vector<int64_t> strides(nd, 0);
  for (size_t d = lead; d < nd; ++d) {
    const int64_t src = static_cast<int64_t>(d - lead);
    strides[d] = t.size(src) == 1 && out[d] != 1 ? 0 : t.stride(src);
  }
  return strides;
}

}  // namespace

Tensor empty_like_operands(const Shape& out, const TensorOptions& options,
                           std::initializer_list<const Tensor*> operands) {
  const size_t nd = out.size();
  if (nd < 2) return empty(out, options);
  // torch's fast setup: row-major operands give a row-major result (broadcast ones too: the
  // reorder below would keep that order, so it is skipped in this, the common case); operands of
  // the result's shape, all dense with one and the same strides, give those strides.
  bool contiguous = true, same_shape = true;
  for (const Tensor* t : operands) {
    contiguous = contiguous && t->is_contiguous();
    same_shape = same_shape && t->sizes() == out;
  }
  if (contiguous) return empty(out, options);
  bool same_dense = same_shape;
  for (const Tensor* t : operands)
    same_dense = same_dense && is_non_overlapping_and_dense(*t) &&
                 t->strides() == (*operands.begin())->strides();
  if (same_dense) return empty_with_strides(out, (*operands.begin())->strides(), options);

  // Otherwise torch's reorder_dimensions: an insertion sort of the dims, innermost first, where
  // the first operand whose strides along two dims are both non-zero and differ decides their
  // order (equal strides: the smaller dim goes inside, unless a later operand decides).
  std::vector<std::vector<int64_t>> strides;
  for (const Tensor* t : operands) strides.push_back(broadcast_strides(*t, out));
  auto should_swap = [&](int64_t dim0, int64_t dim1) {
    for (const std::vector<int64_t>& st : strides) {
      const int64_t s0 = st[static_cast<size_t>(dim0)], s1 = st[static_cast<size_t>(dim1)];
      if (s0 == 0 || s1 == 0) continue;
      if (s0 < s1) return -1;
      if (s0 > s1) return 1;
      if (out[static_cast<size_t>(dim0)] > out[static_cast<size_t>(dim1)]) return 1;
    }
    return 0;
  };
  std::vector<int64_t> perm(nd);  // perm[0] is the innermost dim
  for (size_t i = 0; i < nd; ++i) perm[i] = static_cast<int64_t>(nd - 1 - i);
  for (size_t i = 1; i < nd; ++i) {
    size_t dim1 = i;
    for (size_t dim0 = i; dim0-- > 0;) {
      const int comparison = should_swap(perm[dim0], perm[dim1]);
      if (comparison > 0) {
        std::swap(perm[dim0], perm[dim1]);
        dim1 = dim0;
      } else if (comparison < 0) {
        break;
      }
    }
  }
  bool row_major = true;
  for (size_t i = 0; i < nd; ++i)
    row_major = row_major && perm[i] == static_cast<int64_t>(nd - 1 - i);
  if (row_major) return empty(out, options);
  Strides result(nd);
  int64_t stride = 1;
  for (int64_t d : perm) {
    result[static_cast<size_t>(d)] = stride;
    stride *= out[static_cast<size_t>(d)];
  }
  return empty_with_strides(out, result, options);
}

Tensor empty_preserving_layout(const Tensor& t, const TensorOptions& options) {
  // Unlike the elementwise results, row-major operands get no shortcut: a dense t keeps even the
  // strides of its size-1 dims, as torch's empty_strided(t.sizes(), t.strides()).
  if (is_non_overlapping_and_dense(t)) return empty_with_strides(t.sizes(), t.strides(), options);
  return empty_like_operands(t.sizes(), options, {&t});
}

}  // namespace fabric
