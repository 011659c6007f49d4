// sort, argsort and topk as torch: the kernel orders each slice along the dim (stable, NaN as the
// largest value; topk by torch's own selection, for its order among equal values); the values'
// gradient comes from re-reading them with a recorded gather at the sorted indices, whose backward
// (a scatter_add into zeros) scatters it back and differentiates again. The indices carry no
// gradient.
#include <tuple>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/shape.h"
#include "tensor/sort_kernels.h"

namespace fabric {
namespace {

using detail::cat;

void check_sortable(const char* op, const Tensor& a) {
  FABRIC_CHECK(a.defined(), ValueError, op, ": undefined input");
  FABRIC_CHECK(!is_fp8(a.dtype()), DTypeError, op, ": not implemented for dtype ",
               dtype_name(a.dtype()), " (convert the input to a wider float first)");
}

// How a slice's first k are chosen: a stable sort (sort, argsort) or torch's top-k selection,
// sorted or not (topk).
struct Selection {
  bool topk = false;
  bool sorted = true;
};

// (values, indices) of the first k elements of each slice along `dim` (wrapped, a.dim() >= 1) in
// sorted order; `record` makes the values differentiable.
std::tuple<Tensor, Tensor> sorted_prefix(const Tensor& a, int64_t dim, int64_t k, bool descending,
                                         bool record, Selection how) {
  const int64_t last = a.dim() - 1;
  // (slices, n) rows: the sorted dim moved last, contiguous.
  const Tensor src = a.detach().transpose(dim, last).contiguous();
  Shape out_shape = src.sizes();
  out_shape[last] = k;
  Tensor values = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
  Tensor indices = empty(out_shape, {.dtype = DType::int64, .device = a.device()});
  if (values.numel() > 0) {
    SortDesc d;
    d.src = src.data_ptr();
    d.values = values.data_ptr();
    d.indices = static_cast<int64_t*>(indices.data_ptr());
    d.dtype = a.dtype();
    d.n = a.size(dim);
    d.slices = src.numel() / d.n;
    d.k = k;
    d.descending = descending;
    d.topk_selection = how.topk;
    d.sorted = how.sorted;
    sort_stub(a.device())(d);
  }
  values = values.transpose(dim, last).contiguous();
  indices = indices.transpose(dim, last).contiguous();
  if (record && needs_record({&a})) values = gather(a, dim, indices);
  return {values, indices};
}

// A 0-dim input sorts as one element and keeps its 0-dim shape (torch).
std::tuple<Tensor, Tensor> sort_any_rank(const Tensor& a, int64_t dim, int64_t k, bool descending,
                                         bool record, Selection how = {}) {
  if (a.dim() > 0) return sorted_prefix(a, dim, k, descending, record, how);
  auto [values, indices] = sorted_prefix(a.reshape({1}), 0, 1, descending, record, how);
  return {values.reshape(Shape{}), indices.reshape(Shape{})};
}

}  // namespace

std::tuple<Tensor, Tensor> sort(const Tensor& a_in, int64_t dim, bool descending,
                                bool /*stable: always*/) {
  Tensor a = a_in;
  apply_autocast(OpId::sort, {&a});
  check_sortable("sort", a);
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), "sort");
  return sort_any_rank(a, dim, a.dim() == 0 ? 1 : a.size(dim), descending, true);
}

Tensor argsort(const Tensor& a_in, int64_t dim, bool descending) {
  Tensor a = a_in;
  apply_autocast(OpId::sort, {&a});
  check_sortable("argsort", a);
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), "argsort");
  return std::get<1>(sort_any_rank(a, dim, a.dim() == 0 ? 1 : a.size(dim), descending, false));
}

std::tuple<Tensor, Tensor> topk(const Tensor& a_in, int64_t k, int64_t dim, bool largest,
                                bool sorted) {
  Tensor a = a_in;
  apply_autocast(OpId::topk, {&a});
  check_sortable("topk", a);
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), "topk");
  const int64_t size = a.dim() == 0 ? 1 : a.size(dim);
  FABRIC_CHECK(k >= 0 && k <= size, IndexError, "topk: k = ", k, " is out of range for dim ", dim,
               " of size ", size, " (input ", shape_str(a.sizes()), "; expected 0 <= k <= ", size,
               ")");
  // torch gives a 0-dim input back whole for k = 0 as for k = 1.
  return sort_any_rank(a, dim, a.dim() == 0 ? 1 : k, largest, true,
                       Selection{.topk = true, .sorted = sorted});
}

}  // namespace fabric
