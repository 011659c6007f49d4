// prod and cumprod (torch's dtype rules: bool and integers give int64, `dtype` casts first) and
// all/any (bool results from any dtype). The gradients (autograd/derivatives_prod.cpp) never
// divide by the input, so zeros in it are handled as torch handles them.
#include "tensor/autocast.h"
#include "tensor/delegated_op_errors.h"
#include "tensor/factory.h"
#include "tensor/math_kernels.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

void check_input(const char* op, const Tensor& a, std::optional<DType> dtype) {
  FABRIC_CHECK(a.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(!is_fp8(a.dtype()), DTypeError, op, ": ", dtype_name(a.dtype()),
               " tensors are not supported (cast to a wider dtype first)");
  if (dtype)
    FABRIC_CHECK(!is_fp8(*dtype) && *dtype != DType::bool_, DTypeError, op, ": dtype ",
                 dtype_name(*dtype), " is not supported (a numeric dtype to accumulate in)");
}

// The result dtype: `dtype`, else float32 under CUDA autocast's fp32_out, else the input's for
// floats and int64 for bool/integers.
DType product_dtype(const Tensor& a, std::optional<DType> dtype, bool fp32_out) {
  if (dtype) return *dtype;
  if (fp32_out) return DType::float32;
  return is_floating(a.dtype()) ? a.dtype() : DType::int64;
}

// (outer, len, inner) of a contiguous tensor around `dim`.
ScanGeometry geometry_around(const Tensor& c, int64_t dim, void* out, DType dt) {
  ScanGeometry g;
  g.in = c.data_ptr();
  g.in_dtype = dt;
  g.out = out;
  g.out_dtype = dt;
  for (int64_t d = 0; d < c.dim(); ++d) {
    if (d < dim)
      g.outer *= c.sizes()[d];
    else if (d == dim)
      g.len = c.sizes()[d];
    else
      g.inner *= c.sizes()[d];
  }
  return g;
}

}  // namespace

Tensor prod(const Tensor& a_in, std::optional<int64_t> dim, bool keepdim,
            std::optional<DType> dtype) {
  Tensor a = a_in;
  const bool fp32_out = apply_autocast(OpId::prod, {&a});
  check_input("prod", a, dtype);
  const DType out_dt = product_dtype(a, dtype, fp32_out);
  a = a.to(out_dt);  // torch casts before multiplying (a recorded cast for floats)
  Shape out_shape;
  std::vector<int64_t> dims;
  ScanGeometry g;
  const Tensor c = a.detach().contiguous();
  if (dim) {
    const int64_t d = wrap_dim(*dim, a.dim(), "prod");
    dims = {d};
    for (int64_t i = 0; i < a.dim(); ++i)
      if (i != d || keepdim) out_shape.push_back(i == d ? 1 : a.sizes()[i]);
    g = geometry_around(c, a.dim() == 0 ? 0 : d, nullptr, out_dt);
    if (a.dim() == 0) g.len = 1;
  } else {
    for (int64_t i = 0; i < a.dim(); ++i) {
      dims.push_back(i);
      if (keepdim) out_shape.push_back(1);
    }
    g.in = c.data_ptr();
    g.in_dtype = g.out_dtype = out_dt;
    g.len = a.numel();
  }
  Tensor out = empty(out_shape, {.dtype = out_dt, .device = a.device()});
  if (out.numel() > 0) {
    g.in = c.data_ptr();
    g.out = out.data_ptr();
    prod_stub(a.device())(g);
  }
  ReduceAttrs attrs{dims, keepdim, a.sizes()};
  record_op(OpId::prod, {a}, {&out}, &attrs, dim ? "ProdBackward1" : "ProdBackward0");
  return out;
}

Tensor cumprod(const Tensor& a_in, int64_t dim, std::optional<DType> dtype) {
  Tensor a = a_in;
  const bool fp32_out = apply_autocast(OpId::cumprod, {&a});
  check_input("cumprod", a, dtype);
  dim = wrap_dim(dim, a.dim(), "cumprod");
  const DType out_dt = product_dtype(a, dtype, fp32_out);
  a = a.to(out_dt);
  Tensor out = empty(a.sizes(), {.dtype = out_dt, .device = a.device()});
  if (out.numel() > 0) {
    const Tensor c = a.detach().contiguous();
    cumprod_stub(a.device())(geometry_around(c, a.dim() == 0 ? 0 : dim, out.data_ptr(), out_dt));
  }
  DimAttrs attrs{dim, false};
  record_op(OpId::cumprod, {a}, {&out}, &attrs);
  return out;
}

namespace {

// The count behind any/all, its dim errors (out of range, repeated) said in the caller's name.
Tensor count_over(const char* op, const Tensor& flags, const std::vector<int64_t>& dims,
                  bool keepdim) {
  return in_op_name(op, "sum", [&] { return sum(flags, dims, keepdim); });
}

}  // namespace

// Counting the truthy (nonzero; NaN counts) elements: any is "some", all is "no falsy one". An
// empty reduction gives any = false, all = true, as torch.
Tensor any(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_input("any", a, std::nullopt);
  const Tensor truthy = a.detach().to(DType::bool_);
  return gt(count_over("any", truthy, dims, keepdim), 0);
}
Tensor all(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_input("all", a, std::nullopt);
  return eq(count_over("all", logical_not(a.detach()), dims, keepdim), 0);
}

}  // namespace fabric
