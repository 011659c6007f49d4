// Indexing, joining and mask ops (embedding, index_select, gather, scatter_add, cat, stack,
// split, chunk, tril, triu, one_hot) and the gradient helpers of the indexing ones. Index
// ranges are checked here, once, before a kernel reads through the indices, or by the kernels of
// a device that checks as it runs (CUDA: tensor/deferred_check.h).
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/autocast_promote.h"
#include "tensor/cat_kernels.h"
#include "tensor/deferred_check.h"
#include "tensor/factory.h"
#include "tensor/index_kernels.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

using detail::cat;

// record_op for ops with a variable number of inputs (cat, stack).
void record_many(OpId op, const std::vector<Tensor>& inputs, Tensor* out, const void* attrs) {
  AutogradRecorder rec = autograd_recorder();
  if (!rec) return;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return;
  rec(OpRecord{op, inputs.data(), inputs.size(), out, 1, attrs});
}

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

void check_index_dtype(const char* op, const Tensor& index, bool allow_int32) {
  FABRIC_CHECK(index.defined(), ValueError, op, ": undefined index tensor");
  const DType t = index.dtype();
  FABRIC_CHECK(t == DType::int64 || (allow_int32 && t == DType::int32), DTypeError, op,
               ": expected an ", allow_int32 ? "int64 or int32" : "int64", " index tensor, got ",
               describe(index));
}

// The op's IndexError for an index out of [0, size) of `what`, around the offending value.
RangeErrorText index_error_text(const char* op, const std::string& what, int64_t size) {
  return {cat(op, ": index "), cat(" is out of range for ", what, " (valid: 0 to ", size - 1, ")")};
}

// The contiguous index with its range [0, size) checked, and the kernel descs' `check`. Where
// the device's kernels check as they run (CUDA), they do (`check` is the armed id; a bad index
// surfaces at the device's next synchronisation), so the op never waits for the device; elsewhere
// (the CPU, `check` 0) every entry is checked here, before any kernel reads through it.
struct CheckedIndex {
  Tensor index;
  uint64_t check = 0;
};
// `what()` describes the indexed extent for the message; it runs only when a message is made
// (an armed check, or a bad index here): building it (describe() of the tensors) cost more than a
// small index_select itself.
template <typename What>
CheckedIndex checked_index(const char* op, const Tensor& index, int64_t size, const What& what) {
  Tensor idx = index.contiguous();
  if (idx.numel() == 0) return {idx, 0};
  if (ArmRangeCheckFn arm = arm_range_check_stub.find(idx.device()))
    return {idx, arm(idx.device().index, index_error_text(op, what(), size))};
  auto [lo, hi] = index_minmax_stub(idx.device())(idx.data_ptr(), idx.dtype(), idx.numel());
  if (lo < 0 || hi >= size) {
    const RangeErrorText text = index_error_text(op, what(), size);
    throw IndexError(cat(text.head, lo < 0 ? lo : hi, text.tail));
  }
  return {idx, 0};
}

// A contiguous copy in `dtype` made without recording (the scratch of an op or gradient helper).
Tensor scratch_copy(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype && t.is_contiguous()) return t;
  Tensor out = empty(t.sizes(), {.dtype = dtype, .device = t.device()});
  out.copy_(t.detach());
  return out;
}

int64_t dim_or_one(const Tensor& t, int64_t d) { return t.dim() == 0 ? 1 : t.size(d); }

// Fills a ScatterGatherDesc over the index's shape (0-dim tensors count as 1-D of size 1).
ScatterGatherDesc sg_desc(const char* op, const Tensor& data, const Tensor& other,
                          const Tensor& index, int64_t dim) {
  ScatterGatherDesc d;
  const int64_t nd = std::max<int64_t>(index.dim(), 1);
  FABRIC_CHECK(nd <= kMaxIndexDims, ShapeError, op, ": at most ", kMaxIndexDims,
               " dims are supported, got ", shape_str(index.sizes()));
  d.ndim = static_cast<int>(nd);
  d.dim = static_cast<int>(dim);
  for (int64_t k = 0; k < nd; ++k) {
    d.sizes[k] = index.dim() == 0 ? 1 : index.size(k);
    d.index_strides[k] = index.dim() == 0 ? 1 : index.stride(k);
    d.data_strides[k] = data.dim() == 0 ? 1 : data.stride(k);
    d.other_strides[k] = other.dim() == 0 ? 1 : other.stride(k);
  }
  d.dim_size = dim_or_one(data, dim);
  d.data = static_cast<char*>(data.data_ptr());
  d.other = static_cast<char*>(other.data_ptr());
  d.index = static_cast<const int64_t*>(index.data_ptr());
  d.dtype = data.dtype();
  return d;
}

// scatter_add of `other` into the contiguous `acc` along dim (shapes checked; ranges checked, or
// by the kernel when `check` is set).
void scatter_add_into(const Tensor& acc, int64_t dim, const Tensor& index, const Tensor& other,
                      uint64_t check) {
  if (index.numel() == 0) return;
  ScatterGatherDesc d = sg_desc("scatter_add", acc, other, index, dim);
  d.check = check;
  scatter_add_stub(acc.device())(d);
}

// zeros(shape) with src (outer, n, inner) added into the rows `index` names along dim.
Tensor index_add_zeros(const char* op, const Tensor& src, const Shape& shape, int64_t dim,
                       const Tensor& index) {
  const DType acc = index_sum_dtype(src.dtype());
  Tensor out = zeros(shape, {.dtype = acc, .device = src.device()});
  const int64_t size = shape.empty() ? 1 : shape[dim];
  const CheckedIndex ci =
      checked_index(op, index, size, [&] { return cat("dim ", dim, " of size ", size); });
  const Tensor& idx = ci.index;
  Tensor s = scratch_copy(src, acc);
  IndexAddDesc d;
  d.check = ci.check;
  d.out = out.data_ptr();
  d.src = s.data_ptr();
  d.index = idx.data_ptr();
  d.index_dtype = idx.dtype();
  d.dtype = acc;
  d.outer = 1;
  for (int64_t k = 0; k < dim; ++k) d.outer *= shape[k];
  d.out_size = size;
  d.num_index = idx.numel();
  d.inner = 1;
  for (size_t k = static_cast<size_t>(dim) + 1; k < shape.size(); ++k) d.inner *= shape[k];
  index_add_stub(out.device())(d);
  return acc == src.dtype() ? out : scratch_copy(out, src.dtype());
}

void check_gather_shapes(const char* op, const Tensor& a, const Tensor& index, int64_t dim) {
  const int64_t nd = std::max<int64_t>(a.dim(), 1);
  FABRIC_CHECK(std::max<int64_t>(index.dim(), 1) == nd, ShapeError, op, ": index ",
               shape_str(index.sizes()), " must have the same number of dims as the input ",
               shape_str(a.sizes()));
  for (int64_t k = 0; k < nd; ++k) {
    FABRIC_CHECK(k == dim || dim_or_one(index, k) <= dim_or_one(a, k), ShapeError, op, ": index ",
                 shape_str(index.sizes()), " is larger than the input ", shape_str(a.sizes()),
                 " in dim ", k, " (only dim ", dim, " may be)");
  }
}

Tensor tri_impl(OpId op, const char* name, const Tensor& a, int64_t diagonal, bool lower) {
  FABRIC_CHECK(a.defined() && a.dim() >= 2, ShapeError, name,
               ": expected a tensor of at least 2 dims, got ",
               a.defined() ? shape_str(a.sizes()) : "undefined");
  Tensor src = a.detach().contiguous();
  Tensor out = empty(a.sizes(), {.dtype = a.dtype(), .device = a.device()});
  if (out.numel() > 0) {
    TriDesc d;
    d.src = src.data_ptr();
    d.dst = out.data_ptr();
    d.rows = a.size(-2);
    d.cols = a.size(-1);
    d.batch = a.numel() / (d.rows * d.cols);
    d.itemsize = a.element_size();
    d.diagonal = diagonal;
    d.lower = lower;
    tri_stub(a.device())(d);
  }
  TriAttrs attrs{diagonal};
  record_op(op, {a}, {&out}, &attrs);
  return out;
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  FABRIC_CHECK(weight.defined() && weight.dim() == 2, ShapeError,
               "embedding: weight must be a 2-D table (num_embeddings, embedding_dim), got ",
               weight.defined() ? shape_str(weight.sizes()) : "undefined");
  check_index_dtype("embedding", indices, true);
  FABRIC_CHECK(weight.device() == indices.device(), DeviceError, "embedding: weight on ",
               weight.device(), ", indices on ", indices.device());
  const int64_t V = weight.size(0), C = weight.size(1);
  const CheckedIndex ci =
      checked_index("embedding", indices, V, [&] {
        return cat("an embedding table of ", V, " rows (weight ", describe(weight), ", indices ",
                   describe(indices), ")");
      });
  const Tensor& idx = ci.index;
  Shape out_shape = indices.sizes();
  out_shape.push_back(C);
  Tensor out = empty(out_shape, {.dtype = weight.dtype(), .device = weight.device()});
  if (out.numel() > 0) {
    // Rows with unit column stride are read in place (a table slice needs no copy).
    Tensor w = (weight.stride(1) == 1 || C == 1) ? weight : weight.detach().contiguous();
    IndexSelectDesc d;
    d.src = w.data_ptr();
    d.src_stride_dim = w.stride(0);
    d.src_size = V;
    d.check = ci.check;
    d.out = out.data_ptr();
    d.index = idx.data_ptr();
    d.index_dtype = idx.dtype();
    d.outer = 1;
    d.num_index = idx.numel();
    d.inner = C;
    d.itemsize = weight.element_size();
    index_select_stub(weight.device())(d);
  }
  record_op(OpId::embedding, {weight, indices}, {&out});
  return out;
}

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index) {
  FABRIC_CHECK(a.defined(), ValueError, "index_select: undefined input");
  check_index_dtype("index_select", index, true);
  FABRIC_CHECK(index.dim() <= 1, ShapeError, "index_select: index must be 0-D or 1-D, got ",
               describe(index));
  FABRIC_CHECK(a.device() == index.device(), DeviceError, "index_select: input on ", a.device(),
               ", index on ", index.device());
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), "index_select");
  const int64_t size = dim_or_one(a, dim);
  const CheckedIndex ci =
      checked_index("index_select", index, size, [&] {
        return cat("dim ", dim, " of size ", size, " (input ", describe(a), ")");
      });
  const Tensor& idx = ci.index;
  Shape out_shape = a.sizes();
  if (a.dim() == 0) {
    // As torch: a 0-dim input gives a 0-dim result, so the index names its one element once.
    FABRIC_CHECK(index.numel() == 1, IndexError,
                 "index_select: a 0-dim input takes an index of exactly one value, got ",
                 describe(index));
  } else {
    out_shape[dim] = index.numel();
  }
  Tensor out = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
  if (out.numel() > 0) {
    const bool rows_in_place = a.dim() == 2 && dim == 0 && (a.stride(1) == 1 || a.size(1) == 1);
    Tensor src = rows_in_place ? a : a.detach().contiguous();
    IndexSelectDesc d;
    d.inner = 1;
    for (int64_t k = dim + 1; k < a.dim(); ++k) d.inner *= a.size(k);
    d.outer = a.numel() / (size * d.inner);
    d.src = src.data_ptr();
    d.src_stride_dim = rows_in_place ? src.stride(0) : d.inner;
    d.src_stride_outer = size * d.inner;
    d.src_size = size;
    d.check = ci.check;
    d.out = out.data_ptr();
    d.index = idx.data_ptr();
    d.index_dtype = idx.dtype();
    d.num_index = idx.numel();
    d.itemsize = a.element_size();
    index_select_stub(a.device())(d);
  }
  IndexAttrs attrs{dim};
  record_op(OpId::index_select, {a, index}, {&out}, &attrs);
  return out;
}

Tensor gather(const Tensor& a, int64_t dim, const Tensor& index) {
  FABRIC_CHECK(a.defined(), ValueError, "gather: undefined input");
  check_index_dtype("gather", index, false);
  FABRIC_CHECK(a.device() == index.device(), DeviceError, "gather: input on ", a.device(),
               ", index on ", index.device());
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), "gather");
  check_gather_shapes("gather", a, index, dim);
  const int64_t size = dim_or_one(a, dim);
  Tensor out = empty(index.sizes(), {.dtype = a.dtype(), .device = a.device()});
  if (out.numel() > 0) {
    const CheckedIndex ci = checked_index("gather", index, size, [&] {
      return cat("dim ", dim, " of size ", size, " (input ", describe(a), ")");
    });
    ScatterGatherDesc d = sg_desc("gather", a, out, index, dim);
    d.check = ci.check;
    gather_stub(a.device())(d);
  }
  IndexAttrs attrs{dim};
  record_op(OpId::gather, {a, index}, {&out}, &attrs);
  return out;
}

Tensor scatter_add(const Tensor& a_in, int64_t dim, const Tensor& index, const Tensor& src_in) {
  FABRIC_CHECK(a_in.defined() && src_in.defined(), ValueError, "scatter_add: undefined input or src");
  // Spec §3: PROMOTE on CUDA (self and src to the widest float type); no policy on the CPU.
  Tensor a = a_in, src = src_in;
  apply_autocast(OpId::scatter_add, {&a, &src});
  check_index_dtype("scatter_add", index, false);
  FABRIC_CHECK(a.dtype() == src.dtype(), DTypeError,
               "scatter_add: expected self and src to have the same dtype, got ", describe(a),
               " and ", describe(src));
  FABRIC_CHECK(!is_fp8(a.dtype()), DTypeError, "scatter_add: not implemented for ", describe(a));
  FABRIC_CHECK(a.device() == index.device() && a.device() == src.device(), DeviceError,
               "scatter_add: self, index and src must be on one device");
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), "scatter_add");
  check_gather_shapes("scatter_add", a, index, dim);
  FABRIC_CHECK(std::max<int64_t>(src.dim(), 1) == std::max<int64_t>(index.dim(), 1), ShapeError,
               "scatter_add: src ", shape_str(src.sizes()), " and index ", shape_str(index.sizes()),
               " must have the same number of dims");
  for (int64_t k = 0; k < std::max<int64_t>(index.dim(), 1); ++k) {
    FABRIC_CHECK(dim_or_one(index, k) <= dim_or_one(src, k), ShapeError, "scatter_add: index ",
                 shape_str(index.sizes()), " is larger than src ", shape_str(src.sizes()),
                 " in dim ", k);
  }
  const int64_t size = dim_or_one(a, dim);
  const DType acc = index_sum_dtype(a.dtype());
  Tensor out = empty(a.sizes(), {.dtype = acc, .device = a.device()});
  out.copy_(a.detach());
  if (index.numel() > 0) {
    const CheckedIndex ci =
        checked_index("scatter_add", index, size, [&] {
          return cat("dim ", dim, " of size ", size, " (self ", describe(a), ")");
        });
    scatter_add_into(out, dim, index, acc == src.dtype() ? src : scratch_copy(src, acc), ci.check);
  }
  if (acc != a.dtype()) out = scratch_copy(out, a.dtype());
  IndexAttrs attrs{dim};
  record_op(OpId::scatter_add, {a, index, src}, {&out}, &attrs);
  return out;
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  FABRIC_CHECK(!tensors.empty(), ValueError, "cat: expected a non-empty list of tensors");
  // PyTorch skips legacy empty 1-D tensors of shape (0,) when the others have another shape.
  const Tensor* ref = nullptr;
  DType out_dt = tensors[0].defined() ? tensors[0].dtype() : DType::float32;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    FABRIC_CHECK(t.defined(), ValueError, "cat: tensor number ", i, " is undefined");
    FABRIC_CHECK(t.dim() > 0, ShapeError, "cat: zero-dimensional tensor (at position ", i,
                 ") cannot be concatenated");
    FABRIC_CHECK(t.device() == tensors[0].device(), DeviceError, "cat: tensor number ", i,
                 " is on ", t.device(), ", tensor number 0 on ", tensors[0].device());
    out_dt = promote_types(out_dt, t.dtype());
    const bool legacy_empty = t.dim() == 1 && t.size(0) == 0;
    if (!ref && !legacy_empty) ref = &t;
  }
  if (!ref) ref = &tensors[0];
  check_autocast_promote(OpId::cat, tensors);
  dim = wrap_dim(dim, ref->dim(), "cat");
  Shape out_shape = ref->sizes();
  out_shape[dim] = 0;
  std::vector<int64_t> sizes(tensors.size(), 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.dim() == 1 && t.size(0) == 0 && ref->sizes() != t.sizes()) continue;
    FABRIC_CHECK(t.dim() == ref->dim(), ShapeError,
                 "cat: tensors must have the same number of dims; got ", shape_str(ref->sizes()),
                 " and ", shape_str(t.sizes()), " (tensor number ", i, ")");
    for (int64_t k = 0; k < t.dim(); ++k) {
      FABRIC_CHECK(k == dim || t.size(k) == ref->size(k), ShapeError,
                   "cat: sizes of tensors must match except in dimension ", dim, "; expected size ",
                   ref->size(k), " but got size ", t.size(k), " in dim ", k, " for tensor number ",
                   i, " ", shape_str(t.sizes()));
    }
    sizes[i] = t.size(dim);
    // Inputs can be huge stride-0 views (expand) whose sizes sum past int64.
    out_shape[dim] = checked_size_add(out_shape[dim], sizes[i], "cat");
  }
  Tensor out = empty(out_shape, {.dtype = out_dt, .device = ref->device()});
  if (!cat_rows_direct(tensors, sizes, dim, out)) {
    int64_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (sizes[i] == 0) continue;
      Tensor dst = out.narrow(dim, offset, sizes[i]);
      dst.copy_(tensors[i].detach());
      offset += sizes[i];
    }
  }
  CatAttrs attrs{dim, sizes};  // 0 for skipped legacy-empty inputs
  record_many(OpId::cat, tensors, &out, &attrs);
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  FABRIC_CHECK(!tensors.empty(), ValueError, "stack: expected a non-empty list of tensors");
  const Tensor& first = tensors[0];
  FABRIC_CHECK(first.defined(), ValueError, "stack: tensor number 0 is undefined");
  DType out_dt = first.dtype();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    FABRIC_CHECK(t.defined(), ValueError, "stack: tensor number ", i, " is undefined");
    FABRIC_CHECK(t.sizes() == first.sizes(), ShapeError,
                 "stack: expects each tensor to be equal size, but got ", shape_str(first.sizes()),
                 " at entry 0 and ", shape_str(t.sizes()), " at entry ", i);
    FABRIC_CHECK(t.device() == first.device(), DeviceError, "stack: tensor number ", i, " is on ",
                 t.device(), ", tensor number 0 on ", first.device());
    out_dt = promote_types(out_dt, t.dtype());
  }
  check_autocast_promote(OpId::stack, tensors);
  dim = wrap_dim(dim, first.dim() + 1, "stack");
  Shape out_shape = first.sizes();
  out_shape.insert(out_shape.begin() + dim, static_cast<int64_t>(tensors.size()));
  Tensor out = empty(out_shape, {.dtype = out_dt, .device = first.device()});
  const std::vector<int64_t> ones(tensors.size(), 1);
  if (out.numel() > 0 && !cat_rows_direct(tensors, ones, dim, out)) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      Tensor dst = out.select(dim, static_cast<int64_t>(i));
      dst.copy_(tensors[i].detach());
    }
  }
  CatAttrs attrs{dim, ones};
  record_many(OpId::stack, tensors, &out, &attrs);
  return out;
}

// split / chunk: tensor/ops_split.cpp

Tensor tril(const Tensor& a, int64_t diagonal) {
  return tri_impl(OpId::tril, "tril", a, diagonal, true);
}
Tensor triu(const Tensor& a, int64_t diagonal) {
  return tri_impl(OpId::triu, "triu", a, diagonal, false);
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  check_index_dtype("one_hot", indices, false);
  FABRIC_CHECK(num_classes >= -1, ValueError,
               "one_hot: num_classes must be -1 (infer) or non-negative, got ", num_classes);
  Tensor idx = indices.contiguous();
  const int64_t n = idx.numel();
  if (n > 0) {
    auto [lo, hi] = index_minmax_stub(idx.device())(idx.data_ptr(), idx.dtype(), n);
    FABRIC_CHECK(lo >= 0, IndexError, "one_hot: class values must be non-negative, got ", lo,
                 " in indices ", describe(indices));
    if (num_classes == -1) num_classes = checked_size_add(hi, 1, "one_hot");
    FABRIC_CHECK(hi < num_classes, IndexError, "one_hot: class value ", hi,
                 " is out of range for num_classes=", num_classes, " (indices ", describe(indices),
                 ")");
  } else {
    // As torch: an empty tensor needs a positive num_classes (0 is refused as -1 is).
    FABRIC_CHECK(num_classes > 0, ValueError,
                 "one_hot: cannot infer the number of classes from an empty tensor ",
                 shape_str(indices.sizes()), "; pass num_classes > 0");
  }
  Shape out_shape = indices.sizes();
  out_shape.push_back(num_classes);
  Tensor out = empty(out_shape, {.dtype = DType::int64, .device = indices.device()});
  if (out.numel() > 0) {
    one_hot_stub(out.device())(static_cast<const int64_t*>(idx.data_ptr()), n, num_classes,
                               static_cast<int64_t*>(out.data_ptr()));
  }
  return out;
}

// ---- gradient helpers ---------------------------------------------------------------------

Tensor embedding_backward(const Tensor& grad_out, const Tensor& indices, int64_t num_weights) {
  check_index_dtype("embedding_backward", indices, true);
  FABRIC_CHECK(grad_out.dim() == indices.dim() + 1 &&
                   Shape(grad_out.sizes().begin(), grad_out.sizes().end() - 1) == indices.sizes(),
               ShapeError, "embedding_backward: grad_out ", shape_str(grad_out.sizes()),
               " must be the indices' shape ", shape_str(indices.sizes()),
               " plus the embedding dim");
  FABRIC_CHECK(num_weights >= 0, ValueError, "embedding_backward: negative num_weights ",
               num_weights);
  const int64_t C = grad_out.size(-1);
  Tensor g = grad_out.detach().reshape({indices.numel(), C});
  return index_add_zeros("embedding_backward", g, {num_weights, C}, 0,
                         indices.detach().reshape({-1}));
}

Tensor index_select_backward(const Tensor& grad, const Shape& input_shape, int64_t dim,
                             const Tensor& index) {
  check_index_dtype("index_select_backward", index, true);
  const int64_t nd = static_cast<int64_t>(input_shape.size());
  dim = wrap_dim(dim, std::max<int64_t>(nd, 1), "index_select_backward");
  if (nd == 0) {
    Tensor r =
        index_add_zeros("index_select_backward", grad.detach().reshape({1, index.numel(), 1}), {1},
                        0, index.detach().reshape({-1}));
    return r.reshape({});
  }
  Shape expect = input_shape;
  expect[dim] = index.numel();
  FABRIC_CHECK(grad.sizes() == expect, ShapeError, "index_select_backward: grad ",
               shape_str(grad.sizes()), " does not match the forward's output shape ",
               shape_str(expect));
  return index_add_zeros("index_select_backward", grad.detach(), input_shape, dim,
                         index.detach().reshape({-1}));
}

Tensor gather_backward(const Tensor& grad, const Shape& input_shape, int64_t dim,
                       const Tensor& index) {
  check_index_dtype("gather_backward", index, false);
  FABRIC_CHECK(grad.sizes() == index.sizes(), ShapeError, "gather_backward: grad ",
               shape_str(grad.sizes()), " must have the index's shape ", shape_str(index.sizes()));
  const DType acc = index_sum_dtype(grad.dtype());
  Tensor out = zeros(input_shape, {.dtype = acc, .device = grad.device()});
  dim = wrap_dim(dim, std::max<int64_t>(out.dim(), 1), "gather_backward");
  check_gather_shapes("gather_backward", out, index, dim);
  const int64_t size = dim_or_one(out, dim);
  if (index.numel() > 0) {
    const CheckedIndex ci =
        checked_index("gather_backward", index, size,
                      [&] { return cat("dim ", dim, " of size ", size); });
    scatter_add_into(out, dim, index, acc == grad.dtype() ? grad.detach() : scratch_copy(grad, acc),
                     ci.check);
  }
  return acc == grad.dtype() ? out : scratch_copy(out, grad.dtype());
}

}  // namespace fabric
