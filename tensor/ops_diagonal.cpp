// torch.diagonal (a strided view: one stride steps along both dims at once), diag (a vector
// placed on a diagonal of a square matrix, or a matrix's diagonal copied out) and trace (the sum
// of that view).
#include <algorithm>
#include <limits>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/products_internal.h"
#include "tensor/shape.h"
#include "tensor/storage_view.h"

namespace fabric {

Tensor diagonal(const Tensor& a_in, int64_t offset, int64_t dim1, int64_t dim2) {
  Tensor a = a_in;
  apply_autocast(OpId::diagonal, {&a});
  FABRIC_CHECK(a.defined(), ValueError, "diagonal: undefined input");
  FABRIC_CHECK(a.dim() >= 2, ShapeError, "diagonal: expected a tensor of at least 2 dims, got ",
               shape_str(a.sizes()));
  const int64_t d1 = wrap_dim(dim1, a.dim(), "diagonal"), d2 = wrap_dim(dim2, a.dim(), "diagonal");
  FABRIC_CHECK(d1 != d2, ValueError, "diagonal: dim1 and dim2 must differ, got both ", d1,
               " for shape ", shape_str(a.sizes()));
  // The diagonal `offset` starts at row -offset (offset < 0) or column offset (offset > 0).
  const int64_t rows = a.size(d1), cols = a.size(d2);
  const int64_t len = std::max<int64_t>(
      0, offset >= 0 ? std::min(rows, cols - offset) : std::min(rows + offset, cols));
  int64_t start = a.storage_offset();
  if (len > 0) start += offset >= 0 ? offset * a.stride(d2) : -offset * a.stride(d1);
  Shape sizes;
  Strides strides;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (d == d1 || d == d2) continue;
    sizes.push_back(a.size(d));
    strides.push_back(a.stride(d));
  }
  sizes.push_back(len);
  strides.push_back(a.stride(d1) + a.stride(d2));
  Tensor out = make_view(a, std::move(sizes), std::move(strides), start);
  const DiagonalAttrs attrs{a.sizes(), offset, d1, d2};
  record_op(OpId::diagonal, {a}, {&out}, &attrs);
  return out;
}

Tensor diag(const Tensor& a_in, int64_t offset) {
  Tensor a = a_in;
  apply_autocast(OpId::diag, {&a});
  FABRIC_CHECK(a.defined(), ValueError, "diag: undefined input");
  FABRIC_CHECK(a.dim() == 1 || a.dim() == 2, ShapeError, "diag: expected a 1-D or 2-D tensor, got ",
               shape_str(a.sizes()));
  if (a.dim() == 2) return diagonal(a, offset).clone();
  // The vector written into the diagonal of zeros: the copy_ into that view records the
  // gradient's way back (the diagonal of the output's gradient).
  int64_t n = 0;
  FABRIC_CHECK(offset != std::numeric_limits<int64_t>::min() &&
                   !__builtin_add_overflow(a.size(0), offset >= 0 ? offset : -offset, &n),
               ShapeError, "diag: a vector of ", a.size(0), " elements at offset ", offset,
               " needs a matrix whose side does not fit int64");
  const int64_t m = a.size(0), k = offset >= 0 ? offset : -offset;
  if (a.requires_grad()) {
    // Recorded from ops that differentiate again (a Hessian through diag(v)): the vector selected
    // onto an m x m diagonal, padded out to the offset's place. (A copy_ into the diagonal view
    // records CopySlices, whose gradient cannot be differentiated again.)
    const Tensor i = arange(m, DType::int64, a.device());
    const Tensor square = where(eq(i.unsqueeze(1), i.unsqueeze(0)), a.unsqueeze(0), Scalar(0.0));
    if (k == 0) return square;
    // pad lists (left, right, top, bottom): above the diagonal the columns start at k, below it the
    // rows do.
    return offset > 0 ? pad(square, {k, 0, 0, k}) : pad(square, {0, k, k, 0});
  }
  Tensor out = zeros({n, n}, {.dtype = a.dtype(), .device = a.device()});
  diagonal(out, offset).copy_(a);
  return out;
}

Tensor trace(const Tensor& a_in) {
  Tensor a = a_in;
  apply_autocast(OpId::trace, {&a});
  FABRIC_CHECK(a.defined(), ValueError, "trace: undefined input");
  FABRIC_CHECK(a.dim() == 2, ShapeError, "trace: expected a matrix (2-D), got ",
               shape_str(a.sizes()));
  detail::AutocastOff off(a.device());
  return sum(diagonal(a));
}

}  // namespace fabric
