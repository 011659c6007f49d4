// The argument checks and scatter launch shared by the index-write ops (index_write_checks.h).
#include "tensor/index_write_checks.h"

#include <algorithm>

#include "tensor/deferred_check.h"
#include "tensor/error.h"

namespace fabric::index_write {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

int64_t dim_or_one(const Tensor& t, int64_t d) { return t.dim() == 0 ? 1 : t.size(d); }

void check_index_dtype(const char* op, const Tensor& index, bool allow_int32) {
  FABRIC_CHECK(index.defined(), ValueError, op, ": undefined index tensor");
  const DType t = index.dtype();
  FABRIC_CHECK(t == DType::int64 || (allow_int32 && t == DType::int32), DTypeError, op,
               ": expected an ", allow_int32 ? "int64 or int32" : "int64", " index tensor, got ",
               describe(index));
}

namespace {
RangeErrorText range_text(const char* op, const std::string& what, int64_t size) {
  return {cat(op, ": index "), cat(" is out of range for ", what, " (valid: 0 to ", size - 1, ")")};
}
}  // namespace

void check_index_range_now(const char* op, const Tensor& index, int64_t size,
                           const std::string& what) {
  if (index.numel() == 0) return;
  Tensor idx = index.contiguous();
  auto [lo, hi] = index_minmax_stub(idx.device())(idx.data_ptr(), idx.dtype(), idx.numel());
  if (lo < 0 || hi >= size) {
    const RangeErrorText text = range_text(op, what, size);
    throw IndexError(cat(text.head, lo < 0 ? lo : hi, text.tail));
  }
}

CheckedIndex checked_index(const char* op, const Tensor& index, int64_t size,
                           const std::string& what) {
  Tensor idx = index.contiguous();
  if (idx.numel() == 0) return {idx, 0};
  if (ArmRangeCheckFn arm = arm_range_check_stub.find(idx.device()))
    return {idx, arm(idx.device().index, range_text(op, what, size))};
  check_index_range_now(op, idx, size, what);
  return {idx, 0};
}

int64_t check_scatter_shapes(const char* op, const Tensor& a, int64_t dim, const Tensor& index,
                             const Tensor* src) {
  const int64_t nd = std::max<int64_t>(a.dim(), 1);
  dim = wrap_dim(dim, nd, op);
  const bool dims_match =
      std::max<int64_t>(index.dim(), 1) == nd && (!src || std::max<int64_t>(src->dim(), 1) == nd);
  FABRIC_CHECK(dims_match, ShapeError, op, ": index ", shape_str(index.sizes()), ", self ",
               shape_str(a.sizes()), src ? cat(" and src ", shape_str(src->sizes())) : "",
               " must have the same number of dims");
  FABRIC_CHECK(nd <= kMaxIndexDims, ShapeError, op, ": at most ", kMaxIndexDims,
               " dims are supported, got ", shape_str(index.sizes()));
  for (int64_t k = 0; k < nd; ++k) {
    const int64_t n = dim_or_one(index, k);
    const bool fits = (k == dim || n <= dim_or_one(a, k)) && (!src || n <= dim_or_one(*src, k));
    FABRIC_CHECK(fits, ShapeError, op, ": expected index ", shape_str(index.sizes()),
                 " to be no larger than self ", shape_str(a.sizes()), " apart from dim ", dim,
                 src ? cat(" and no larger than src ", shape_str(src->sizes())) : "", "; dim ", k,
                 " is larger");
  }
  return dim;
}

void run_scatter(const Tensor& data, int64_t dim, const CheckedIndex& ci, const Tensor& other,
                 ScatterReduceOp op) {
  const Tensor& index = ci.index;
  if (index.numel() == 0) return;
  ScatterReduceDesc r;
  r.op = op;
  ScatterGatherDesc& d = r.sg;
  const int64_t nd = std::max<int64_t>(index.dim(), 1);
  d.ndim = static_cast<int>(nd);
  d.dim = static_cast<int>(dim);
  for (int64_t k = 0; k < nd; ++k) {
    d.sizes[k] = dim_or_one(index, k);
    d.index_strides[k] = index.dim() == 0 ? 1 : index.stride(k);
    d.data_strides[k] = data.dim() == 0 ? 1 : data.stride(k);
    d.other_strides[k] = other.dim() == 0 ? 1 : other.stride(k);
  }
  d.dim_size = dim_or_one(data, dim);
  d.check = ci.check;
  d.data = static_cast<char*>(data.data_ptr());
  d.other = static_cast<char*>(other.data_ptr());
  d.index = static_cast<const int64_t*>(index.data_ptr());
  d.dtype = data.dtype();
  scatter_reduce_stub(data.device())(r);
}

}  // namespace fabric::index_write
