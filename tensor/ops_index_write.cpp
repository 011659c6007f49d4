// torch's index-based writes along one dim, out of place: scatter (src or a scalar) and
// scatter_reduce with their own kernel (index_write_kernels.h); index_add row by row with the
// index_add kernel of the embedding gradient (index_kernels.h), one autograd node; index_copy and
// index_fill as scatter with the 1-D index broadcast along dim; take_along_dim as a broadcast
// gather. The compositions record their parts, whose rules give torch's gradients.
#include <limits>
#include <string>

#include "tensor/autocast.h"
#include "tensor/delegated_op_errors.h"
#include "tensor/factory.h"
#include "tensor/index_kernels.h"
#include "tensor/index_write_attrs.h"
#include "tensor/index_write_checks.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

using detail::cat;
using namespace index_write;

// The dtypes index_add_stub adds in (the CPU and CUDA kernels alike).
bool row_add_dtype(DType t) {
  return t == DType::float64 || t == DType::float32 || t == DType::int64 || t == DType::int32 ||
         t == DType::int8 || t == DType::uint8;
}

// A contiguous copy in `dtype`, made without recording.
Tensor copy_as(const Tensor& t, DType dtype) {
  Tensor out = empty(t.sizes(), {.dtype = dtype, .device = t.device()});
  out.copy_(t.detach());
  return out;
}

void check_scatter_common(const char* op, const Tensor& a, const Tensor& index) {
  FABRIC_CHECK(a.defined(), ValueError, op, ": undefined input");
  check_index_dtype(op, index, false);
  FABRIC_CHECK(a.device() == index.device(), DeviceError, op, ": self on ", a.device(),
               ", index on ", index.device());
  FABRIC_CHECK(!is_fp8(a.dtype()), DTypeError, op, ": not implemented for ", describe(a));
}

void check_src(const char* op, const Tensor& a, const Tensor& src) {
  FABRIC_CHECK(src.defined(), ValueError, op, ": undefined src");
  FABRIC_CHECK(src.dtype() == a.dtype(), DTypeError, op,
               ": expected self and src to have the same dtype, got ", describe(a), " and ",
               describe(src));
  FABRIC_CHECK(src.device() == a.device(), DeviceError, op, ": self on ", a.device(), ", src on ",
               src.device());
}

std::string along(int64_t dim, const Tensor& a) {
  return cat("dim ", dim, " of size ", dim_or_one(a, dim), " (self ", describe(a), ")");
}

ScatterReduction parse_reduce(std::string_view reduce) {
  if (reduce == "sum") return ScatterReduction::sum;
  if (reduce == "prod") return ScatterReduction::prod;
  if (reduce == "mean") return ScatterReduction::mean;
  if (reduce == "amax") return ScatterReduction::amax;
  if (reduce == "amin") return ScatterReduction::amin;
  throw ValueError(cat(
      "scatter_reduce: reduce must be one of sum, prod, mean, amax or amin, got \"", reduce, "\""));
}

// What a position starts from when include_self = false: the reduction's identity (torch's).
Scalar identity_of(ScatterReduction r, DType t) {
  const bool flt = is_floating(t);
  auto int_limit = [t](bool lowest) -> int64_t {
    switch (t) {
      case DType::int32:
        return lowest ? std::numeric_limits<int32_t>::lowest()
                      : std::numeric_limits<int32_t>::max();
      case DType::int8:
        return lowest ? std::numeric_limits<int8_t>::lowest() : std::numeric_limits<int8_t>::max();
      case DType::uint8:
        return lowest ? 0 : std::numeric_limits<uint8_t>::max();
      default:
        return lowest ? std::numeric_limits<int64_t>::lowest()
                      : std::numeric_limits<int64_t>::max();
    }
  };
  constexpr double inf = std::numeric_limits<double>::infinity();
  switch (r) {
    case ScatterReduction::prod:
      return 1;
    case ScatterReduction::amax:
      return flt ? Scalar(-inf) : Scalar(int_limit(true));
    case ScatterReduction::amin:
      return flt ? Scalar(inf) : Scalar(int_limit(false));
    default:
      return 0;
  }
}

// sum // count for integer tensors of one dtype and shape (count >= 1), floor-rounded in int64 as
// torch's integer mean: exact past 2^53, where a division through float64 is not. On the host (a
// CUDA pair makes the round trip): the integer mean is rare and the division a single pass.
Tensor floor_divide_exact(const Tensor& sum, const Tensor& count) {
  const Tensor s = copy_as(sum.to(Device::cpu()), DType::int64);
  const Tensor c = copy_as(count.to(Device::cpu()), DType::int64);
  int64_t* sp = s.data<int64_t>();  // a private copy: divided in place
  const int64_t* cp = c.data<int64_t>();
  for (int64_t i = 0; i < s.numel(); ++i) {
    const int64_t q = sp[i] / cp[i];  // toward 0: one more than the floor if inexact below 0
    sp[i] = q - (sp[i] % cp[i] != 0 && (sp[i] < 0) != (cp[i] < 0));
  }
  return copy_as(s.to(sum.device()), sum.dtype());
}

// One value of `dtype` as a stride-0 view of `shape` (the scalar source of a scatter).
Tensor broadcast_scalar(const Scalar& value, DType dtype, Device device, const Shape& shape) {
  return full(Shape{}, value, {.dtype = dtype, .device = device}).expand(shape);
}

// The 1-D index of index_add/copy/fill as a scatter index: along `dim`, broadcast to `shape`.
Tensor index_along(const Tensor& index, int64_t dim, const Shape& shape) {
  Tensor idx = index.detach().to(DType::int64);
  if (shape.empty()) return idx.reshape({});
  Shape view(shape.size(), 1);
  view[dim] = idx.numel();
  return idx.reshape(view).expand(shape);
}

// index_add/index_copy's checks: a 0-/1-D index, source shaped as self with the index's length
// along dim. Returns the wrapped dim.
int64_t check_index_source(const char* op, const Tensor& a, int64_t dim, const Tensor& index,
                           const Tensor& source, bool allow_int32) {
  FABRIC_CHECK(a.defined() && source.defined(), ValueError, op, ": undefined self or source");
  check_index_dtype(op, index, allow_int32);
  FABRIC_CHECK(index.dim() <= 1, ShapeError, op, ": index must be 0-D or 1-D, got ",
               describe(index));
  FABRIC_CHECK(a.device() == index.device() && a.device() == source.device(), DeviceError, op,
               ": self, index and source must be on one device, got ", a.device(), ", ",
               index.device(), ", ", source.device());
  FABRIC_CHECK(a.dtype() == source.dtype(), DTypeError, op,
               ": self and source must have the same dtype, got ", describe(a), " and ",
               describe(source));
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), op);
  // A 0-D self takes a 0-D source for a one-element index, or torch's 1-D one of the index's
  // length (each element writes the one value, in index order).
  Shape expect = a.sizes();
  if (!expect.empty()) expect[dim] = index.numel();
  const bool ok = a.dim() == 0 ? source.dim() <= 1 && source.numel() == index.numel()
                               : source.sizes() == expect;
  if (a.dim() == 0 && index.numel() != 1) expect = {index.numel()};
  FABRIC_CHECK(ok, ShapeError, op, ": source ", shape_str(source.sizes()),
               " must have self's shape with the index's length along dim ", dim, ", i.e. ",
               shape_str(expect), " (self ", shape_str(a.sizes()), ", index ",
               shape_str(index.sizes()), ")");
  const int64_t size = dim_or_one(a, dim);
  check_index_range_now(op, index, size, along(dim, a));
  return dim;
}

}  // namespace

Tensor scatter(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src) {
  check_scatter_common("scatter", a, index);
  check_src("scatter", a, src);
  dim = check_scatter_shapes("scatter", a, dim, index, &src);
  Tensor out = copy_as(a, a.dtype());
  const CheckedIndex ci = checked_index("scatter", index, dim_or_one(a, dim), along(dim, a));
  run_scatter(out, dim, ci, src.detach(), ScatterReduceOp::assign);
  IndexAttrs attrs{dim};
  record_op(OpId::scatter, {a, index, src}, {&out}, &attrs);
  return out;
}

Tensor scatter(const Tensor& a, int64_t dim, const Tensor& index, const Scalar& value) {
  check_scatter_common("scatter", a, index);
  check_scalar_fits("scatter", value, a.dtype());  // before fill_ would, naming this op
  dim = check_scatter_shapes("scatter", a, dim, index, nullptr);
  Tensor out = copy_as(a, a.dtype());
  const CheckedIndex ci = checked_index("scatter", index, dim_or_one(a, dim), along(dim, a));
  run_scatter(out, dim, ci, broadcast_scalar(value, a.dtype(), a.device(), index.sizes()),
              ScatterReduceOp::assign);
  IndexAttrs attrs{dim};
  record_op(OpId::scatter, {a, index}, {&out}, &attrs);
  return out;
}

Tensor scatter_reduce(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src,
                      std::string_view reduce, bool include_self) {
  const ScatterReduction r = parse_reduce(reduce);
  check_scatter_common("scatter_reduce", a, index);
  check_src("scatter_reduce", a, src);
  // torch 1.13 reduces bools as it adds them (true + true is true): sum is a logical or and prod
  // a logical and, as amax and amin are; over 0/1 bytes, all four are amax or amin. It has no
  // mean of bools.
  const bool is_bool = a.dtype() == DType::bool_;
  FABRIC_CHECK(!is_bool || r != ScatterReduction::mean, DTypeError,
               "scatter_reduce: reduce \"mean\" is not implemented for bool (self ", describe(a),
               ", as in torch); sum, prod, amax and amin are");
  dim = check_scatter_shapes("scatter_reduce", a, dim, index, &src);
  const DType acc = is_bool ? DType::uint8 : index_sum_dtype(a.dtype());
  Tensor out = copy_as(a, acc);
  const CheckedIndex ci = checked_index("scatter_reduce", index, dim_or_one(a, dim), along(dim, a));
  if (index.numel() > 0) {
    const Tensor s = acc == src.dtype() ? src.detach() : copy_as(src, acc);
    if (!include_self)
      run_scatter(out, dim, ci,
                  broadcast_scalar(identity_of(r, acc), acc, a.device(), index.sizes()),
                  ScatterReduceOp::assign);
    ScatterReduceOp op = r == ScatterReduction::prod   ? ScatterReduceOp::prod
                         : r == ScatterReduction::amax ? ScatterReduceOp::amax
                         : r == ScatterReduction::amin ? ScatterReduceOp::amin
                                                       : ScatterReduceOp::sum;
    if (is_bool)  // the identities (sum's 0, prod's 1) stay those of the bool reduction
      op = op == ScatterReduceOp::sum || op == ScatterReduceOp::amax ? ScatterReduceOp::amax
                                                                     : ScatterReduceOp::amin;
    run_scatter(out, dim, ci, s, op);
    if (r == ScatterReduction::mean) {
      // torch: divide by the number of values each position reduced (self counting once when
      // included), untouched positions by 1; integers divide with floor rounding.
      Tensor count = include_self ? ones(a.sizes(), {.dtype = acc, .device = a.device()})
                                  : zeros(a.sizes(), {.dtype = acc, .device = a.device()});
      run_scatter(count, dim, ci, broadcast_scalar(1, acc, a.device(), index.sizes()),
                  ScatterReduceOp::sum);
      count = clamp(count, Scalar(1), std::nullopt);
      out = is_floating(acc) ? div(out, count) : floor_divide_exact(out, count);
    }
  }
  if (out.dtype() != a.dtype()) out = copy_as(out, a.dtype());
  ScatterReduceAttrs attrs{dim, r, include_self};
  record_op(OpId::scatter_reduce, {a, index, src}, {&out}, &attrs);
  return out;
}

Tensor index_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& source,
                 const Scalar& alpha) {
  dim = check_index_source("index_add", a, dim, index, source, true);
  // torch adds a float source into a self of 2+ dims slice by slice with add_(src, alpha): one
  // rounding of self + alpha * src, which the row kernel does when given alpha. A 0-/1-D self
  // it adds element by element, self += src * alpha: two roundings, as scaling first gives.
  const bool fused_alpha = a.dim() > 1 &&
                           (a.dtype() == DType::float32 || a.dtype() == DType::float64) &&
                           !alpha.is_bool() && alpha.to_double() != 1.0;
  Tensor scaled = source;
  if (a.dtype() == DType::bool_) {
    // torch takes alpha as a bool: a nonzero alpha adds source (a logical or), a zero one nothing.
    if (alpha.to_double() == 0) scaled = zeros_like(source);
  } else if (fused_alpha) {
    // The kernel scales; the recorded source carries alpha for the gradient (alpha * grad, as
    // torch's), so it is made only when a graph is recorded.
    if (needs_record({&source})) scaled = mul(source, alpha);
  } else if (alpha.to_double() != 1.0 || alpha.is_bool()) {
    // An integer tensor takes alpha as an integer, truncated as torch converts it (2.0 adds twice
    // the source, 0.5 nothing): multiplying by the float would turn the source into float32. An
    // alpha the dtype cannot hold (NaN, 1e20, 300 for int8) is refused, as torch's conversion does.
    const bool integer_self = is_integral(a.dtype(), /*include_bool=*/false);
    if (integer_self) check_scalar_fits("index_add", alpha, a.dtype());
    scaled = integer_self && alpha.is_floating()
                 ? mul(source, Scalar(static_cast<int64_t>(alpha.to_double())))
                 : mul(source, alpha);
  }
  // 0-D self, and the dtypes the row kernel does not add in (16-bit floats, bool): scatter_add
  // over the index broadcast to source's shape (element by element, O(source) index memory).
  if (a.dim() == 0 || scaled.dtype() != a.dtype() || !row_add_dtype(a.dtype()))
    return scatter_add(a, dim, index_along(index, dim, source.sizes()), scaled);
  // Whole rows along dim at once; check_index_source has range-checked the index.
  Tensor out = copy_as(a, a.dtype());
  if (index.numel() > 0 && out.numel() > 0) {
    const Tensor idx = index.detach().contiguous();
    const Tensor src = (fused_alpha ? source : scaled).detach().contiguous();
    IndexAddDesc d;
    if (fused_alpha) d.alpha = alpha.to_double();
    d.out = out.data_ptr();
    d.src = src.data_ptr();
    d.index = idx.data_ptr();
    d.index_dtype = idx.dtype();
    d.dtype = out.dtype();
    for (int64_t k = 0; k < dim; ++k) d.outer *= a.size(k);
    d.out_size = a.size(dim);
    d.num_index = idx.numel();
    for (int64_t k = dim + 1; k < a.dim(); ++k) d.inner *= a.size(k);
    index_add_stub(out.device())(d);
  }
  IndexAttrs attrs{dim};
  record_op(OpId::index_add, {a, index, scaled}, {&out}, &attrs);
  return out;
}

Tensor index_copy(const Tensor& a_in, int64_t dim, const Tensor& index, const Tensor& source_in) {
  // Spec §3: PROMOTE on the CPU (self and source to the widest float type).
  Tensor a = a_in, source = source_in;
  apply_autocast(OpId::index_copy, {&a, &source});
  dim = check_index_source("index_copy", a, dim, index, source, false);
  return scatter(a, dim, index_along(index, dim, source.sizes()), source);
}

Tensor index_fill(const Tensor& a, int64_t dim, const Tensor& index, const Scalar& value) {
  FABRIC_CHECK(a.defined(), ValueError, "index_fill: undefined input");
  check_index_dtype("index_fill", index, false);
  FABRIC_CHECK(index.dim() <= 1, ShapeError, "index_fill: index must be 0-D or 1-D, got ",
               describe(index));
  FABRIC_CHECK(a.device() == index.device(), DeviceError, "index_fill: self on ", a.device(),
               ", index on ", index.device());
  dim = wrap_dim(dim, std::max<int64_t>(a.dim(), 1), "index_fill");
  check_scalar_fits("index_fill", value, a.dtype());  // before scatter would, naming this op
  // Unlike torch's other index writes, its index_fill takes negative indices (counted from the
  // end): the range is [-size, size), and negatives wrap before the scatter.
  const int64_t size = dim_or_one(a, dim);
  Tensor idx = index;
  if (idx.numel() > 0) {
    const Tensor c = idx.contiguous();
    const auto [lo, hi] = index_minmax_stub(c.device())(c.data_ptr(), c.dtype(), c.numel());
    FABRIC_CHECK(lo >= -size && hi < size, IndexError, "index_fill: index ", lo < -size ? lo : hi,
                 " is out of range for ", along(dim, a), " (valid: ", -size, " to ", size - 1, ")");
    if (lo < 0) idx = remainder(c, size);
  }
  // A 0-D self: the index (any length) as a 1-D scatter index into its one element.
  Shape shape = a.dim() == 0 ? Shape{1} : a.sizes();
  shape[dim] = idx.numel();
  return scatter(a, dim, index_along(idx, dim, shape), value);
}

Tensor take_along_dim(const Tensor& a, const Tensor& indices, std::optional<int64_t> dim) {
  FABRIC_CHECK(a.defined(), ValueError, "take_along_dim: undefined input");
  FABRIC_CHECK(indices.defined() && indices.dtype() == DType::int64, DTypeError,
               "take_along_dim: expected int64 indices, got ",
               indices.defined() ? describe(indices) : "undefined");
  const auto gather_as_take = [](const Tensor& src, int64_t along, const Tensor& idx) {
    return in_op_name("take_along_dim", "gather", [&] { return gather(src, along, idx); });
  };
  if (!dim) return gather_as_take(a.reshape({-1}), 0, indices.reshape({-1}));
  FABRIC_CHECK(a.dim() == indices.dim(), ShapeError,
               "take_along_dim: input and indices must have the same number of dims, got ",
               shape_str(a.sizes()), " and ", shape_str(indices.sizes()));
  // torch: a 0-dim input takes no dim (only the flattened form).
  FABRIC_CHECK(a.dim() > 0, IndexError, "take_along_dim: Dimension specified as ", *dim,
               " but tensor has no dimensions (a 0-dim input takes no dim: leave dim unset)");
  const int64_t d = wrap_dim(*dim, a.dim(), "take_along_dim");
  // torch: every dim but `d` broadcasts; along d, a keeps its size and indices theirs.
  Shape a_sizes = a.sizes();
  a_sizes[d] = indices.size(d);
  Shape shape = broadcast_shapes(a_sizes, indices.sizes(), "take_along_dim");
  Tensor idx = indices.expand(shape);
  shape[d] = a.size(d);
  return gather_as_take(a.expand(shape), d, idx);
}

}  // namespace fabric
