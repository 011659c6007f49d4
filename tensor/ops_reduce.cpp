// The reduction and scan ops: sum, mean, max/min (with indices or over all), amax/amin,
// argmax/argmin, var/std, norm, logsumexp, cumsum. PyTorch's dtype rules and edge cases (empty
// dims, NaN propagation, first index on ties, Bessel correction) are decided here; the kernels
// behind reduce_stub/arg_reduce_stub/cumsum_stub only fold.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string_view>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/reduce_kernels.h"
#include "tensor/torch_names.h"

namespace fabric {
namespace {

// Which dims are reduced (empty list = all), wrapped; a repeated dim is an error as in PyTorch.
std::vector<bool> reduce_mask(const char* op, const Tensor& a, const std::vector<int64_t>& dims) {
  const int64_t nd = a.dim();
  std::vector<bool> mask(static_cast<size_t>(nd), dims.empty());
  bool scalar_seen = false;  // a 0-dim tensor takes dim 0 (or -1) once, as torch
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, nd, op);
    const bool repeated = nd == 0 ? scalar_seen : static_cast<bool>(mask[w]);
    FABRIC_CHECK(!repeated, ValueError, op, ": dim ", w,
                 " appears multiple times in the list of dims ", torch_int_list(dims),
                 " (input shape ", shape_str(a.sizes()), ")");
    if (nd == 0)
      scalar_seen = true;
    else
      mask[w] = true;
  }
  return mask;
}

std::vector<int64_t> mask_dims(const std::vector<bool>& mask) {
  std::vector<int64_t> d;
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) d.push_back(static_cast<int64_t>(i));
  return d;
}

Shape reduced_shape(const Shape& in, const std::vector<bool>& mask, bool keepdim) {
  Shape s;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!mask[i])
      s.push_back(in[i]);
    else if (keepdim)
      s.push_back(1);
  }
  return s;
}

int64_t reduced_numel(const Tensor& a, const std::vector<bool>& mask) {
  int64_t n = 1;
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) n *= a.sizes()[i];
  return n;
}

// Geometry of reducing `a` over `mask` into a fresh contiguous `out` (any keepdim form). Dims
// of each group are ordered by decreasing input stride and merged where memory allows, so a
// contiguous last-dim reduction is one row per output and a dim-0 reduction is a column sweep.
ReduceGeometry make_geometry(const char* op, const Tensor& a, const std::vector<bool>& mask,
                             const Tensor& out) {
  ReduceGeometry g;
  g.in = static_cast<const char*>(a.data_ptr());
  g.in_dtype = a.dtype();
  g.out = static_cast<char*>(out.data_ptr());
  g.out_dtype = out.dtype();
  const Shape& s = a.sizes();
  const Strides& st = a.strides();
  // Output strides of the kept dims: contiguous over the kept shape.
  Shape kept_shape;
  for (size_t i = 0; i < s.size(); ++i)
    if (!mask[i]) kept_shape.push_back(s[i]);
  const Strides kept_strides = contiguous_strides(kept_shape);
  struct D {
    int64_t size, in, out;
  };
  std::vector<D> keep, red;
  bool empty_red = false;
  for (size_t i = 0, k = 0; i < s.size(); ++i) {
    if (!mask[i]) {
      if (s[i] != 1) keep.push_back({s[i], st[i], kept_strides[k]});
      ++k;
    } else if (s[i] == 0) {
      empty_red = true;
    } else if (s[i] != 1) {
      red.push_back({s[i], st[i], 0});
    }
  }
  auto order = [](std::vector<D>& v, bool with_out) {
    std::stable_sort(v.begin(), v.end(), [](const D& x, const D& y) { return x.in > y.in; });
    std::vector<D> merged;
    for (const D& d : v) {
      if (!merged.empty() && merged.back().in == d.in * d.size &&
          (!with_out || merged.back().out == d.out * d.size)) {
        merged.back().size *= d.size;
        merged.back().in = d.in;
        merged.back().out = d.out;
      } else {
        merged.push_back(d);
      }
    }
    v = merged;
  };
  order(keep, true);
  order(red, false);
  if (empty_red) red = {{0, 1, 0}};
  FABRIC_CHECK(keep.size() <= kMaxReduceDims && red.size() <= kMaxReduceDims, ShapeError, op,
               ": too many non-mergeable dims in input of shape ", shape_str(s));
  g.nkeep = static_cast<int>(keep.size());
  for (size_t i = 0; i < keep.size(); ++i) {
    g.keep_sizes[i] = keep[i].size;
    g.keep_in[i] = keep[i].in;
    g.keep_out[i] = keep[i].out;
  }
  g.nred = static_cast<int>(red.size());
  for (size_t i = 0; i < red.size(); ++i) {
    g.red_sizes[i] = red[i].size;
    g.red_in[i] = red[i].in;
  }
  return g;
}

void check_not_fp8(const char* op, const Tensor& a) {
  FABRIC_CHECK(a.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(!is_fp8(a.dtype()), DTypeError, op, ": ", dtype_name(a.dtype()), " input of shape ",
               shape_str(a.sizes()), " is not supported (cast fp8 tensors to a wider dtype first)");
}

void check_floating(const char* op, const Tensor& a) {
  check_not_fp8(op, a);
  FABRIC_CHECK(is_floating(a.dtype()), DTypeError, op, ": expected a floating-point input, got ",
               dtype_name(a.dtype()), " of shape ", shape_str(a.sizes()));
}

// Max/min-type reductions have no identity: every reduced dim must be non-empty.
void check_nonempty_reduction(const char* op, const Tensor& a, const std::vector<bool>& mask) {
  for (size_t i = 0; i < mask.size(); ++i)
    FABRIC_CHECK(!mask[i] || a.sizes()[i] != 0, IndexError, op, ": expected reduction dim ", i,
                 " to have non-zero size (input shape ", shape_str(a.sizes()), ")");
}

// Whether sum/cumsum may read `from` and accumulate straight into `to` with the same result as
// casting first (PyTorch casts the input to `dtype` before reducing).
bool cast_is_implicit(DType from, DType to) {
  if (from == to) return true;
  if (is_floating(from) && is_floating(to))
    return reduce_acc_dtype(from) == reduce_acc_dtype(to) && itemsize(to) >= itemsize(from) &&
           !is_fp8(to);
  return !is_floating(from) && to == DType::int64;
}

// One reduce_stub call producing a fresh tensor of reduced shape.
Tensor run_reduce(const char* op, ReduceOp rop, const Tensor& in, const std::vector<bool>& mask,
                  bool keepdim, DType out_dt, const ReduceParams& params = {}) {
  Tensor out =
      empty(reduced_shape(in.sizes(), mask, keepdim), {.dtype = out_dt, .device = in.device()});
  if (out.numel() == 0) return out;
  ReduceGeometry g = make_geometry(op, in, mask, out);
  reduce_stub(in.device())(rop, g, params);
  return out;
}

ReduceAttrs reduce_attrs(const Tensor& a, const std::vector<bool>& mask, bool keepdim) {
  return ReduceAttrs{mask_dims(mask), keepdim, a.sizes()};
}

std::tuple<Tensor, Tensor> max_min_dim(bool is_max, const Tensor& a, int64_t dim, bool keepdim) {
  const char* op = is_max ? "max" : "min";
  check_not_fp8(op, a);
  dim = wrap_dim(dim, a.dim(), op);
  std::vector<bool> mask(static_cast<size_t>(a.dim()), false);
  if (a.dim() > 0) mask[dim] = true;
  check_nonempty_reduction(op, a, mask);
  const Shape shape = reduced_shape(a.sizes(), mask, keepdim);
  Tensor values = empty(shape, {.dtype = a.dtype(), .device = a.device()});
  Tensor indices = empty(shape, {.dtype = DType::int64, .device = a.device()});
  if (values.numel() > 0) {
    ReduceGeometry g = make_geometry(op, a, mask, values);
    arg_reduce_stub(a.device())(is_max, g, indices.data<int64_t>());
  }
  DimAttrs attrs{dim, keepdim};
  record_op(is_max ? OpId::max : OpId::min, {a}, {&values, &indices}, &attrs);
  return {values, indices};
}

Tensor amax_amin(bool is_max, const char* op, const Tensor& a, const std::vector<int64_t>& dims,
                 bool keepdim) {
  check_not_fp8(op, a);
  const std::vector<bool> mask = reduce_mask(op, a, dims);
  check_nonempty_reduction(op, a, mask);
  Tensor out = run_reduce(op, is_max ? ReduceOp::max : ReduceOp::min, a, mask, keepdim, a.dtype());
  ReduceAttrs attrs = reduce_attrs(a, mask, keepdim);
  // max()/min() over everything record as amax/amin, under torch's name for their node.
  const std::string_view name = op;
  const char* node_name = name == "max" ? "MaxBackward1" : name == "min" ? "MinBackward1" : nullptr;
  record_op(is_max ? OpId::amax : OpId::amin, {a}, {&out}, &attrs, node_name);
  return out;
}

Tensor arg_max_min(bool is_max, const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  const char* op = is_max ? "argmax" : "argmin";
  check_not_fp8(op, a);
  Tensor in = a;
  std::vector<bool> mask;
  Shape out_shape;
  if (dim) {
    const int64_t d = wrap_dim(*dim, a.dim(), op);
    mask.assign(static_cast<size_t>(a.dim()), false);
    if (a.dim() > 0) mask[d] = true;
    check_nonempty_reduction(op, a, mask);
    out_shape = reduced_shape(a.sizes(), mask, keepdim);
  } else {
    FABRIC_CHECK(a.numel() != 0, IndexError, op,
                 ": expected a dim to be given for an empty input of shape ", shape_str(a.sizes()));
    in = a.detach().reshape({-1});
    mask = {true};
    out_shape = keepdim ? Shape(static_cast<size_t>(a.dim()), 1) : Shape{};
  }
  Tensor idx = empty(out_shape, {.dtype = DType::int64, .device = a.device()});
  if (idx.numel() > 0) {
    ReduceGeometry g = make_geometry(op, in, mask, idx);
    g.out = nullptr;  // indices only
    arg_reduce_stub(a.device())(is_max, g, idx.data<int64_t>());
  }
  return idx;
}

// Floating-point var/std: the mean in the accumulator dtype, then the centered sum of squares.
// On the CPU, PyTorch accumulates float32, float16 and bfloat16 var in double (Welford per
// output), except that a float32 reduction to a single value centres on the float32 mean
// (std_var_all_cpu); the double two-pass over a float64 copy gives the same rounded values, and
// an exactly constant row a variance of exactly 0.
Tensor var_impl(const char* op, const Tensor& a, const std::vector<int64_t>& dims,
                double correction, bool keepdim, bool take_sqrt) {
  check_floating(op, a);
  const std::vector<bool> mask = reduce_mask(op, a, dims);
  const int64_t n = reduced_numel(a, mask);
  const bool in_double =
      a.device().is_cpu() &&
      (a.dtype() == DType::float32 || a.dtype() == DType::float16 || a.dtype() == DType::bfloat16);
  const bool float_mean = in_double && a.dtype() == DType::float32 && n == a.numel();
  if (in_double && !float_mean)
    return var_impl(op, a.detach().to(DType::float64), dims, correction, keepdim, take_sqrt)
        .to(a.dtype());
  ReduceParams mp;
  mp.divisor = static_cast<double>(n);
  Tensor center = run_reduce(op, ReduceOp::sum, a, mask, true, reduce_acc_dtype(a.dtype()), mp);
  Tensor x = a;
  if (float_mean) {  // the float32 mean, deviations in double
    center = center.to(DType::float64);
    x = a.detach().to(DType::float64);
  }
  ReduceParams vp;
  vp.center = center.numel() ? center.data_ptr() : nullptr;
  vp.divisor = std::max(0.0, static_cast<double>(n) - correction);
  vp.finish = take_sqrt ? ReduceFinish::sqrt : ReduceFinish::none;
  Tensor out = run_reduce(op, ReduceOp::sum_sq_dev, x, mask, keepdim, x.dtype(), vp);
  return float_mean ? out.to(a.dtype()) : out;
}

}  // namespace

Tensor sum(const Tensor& a_in, const std::vector<int64_t>& dims, bool keepdim,
           std::optional<DType> dtype) {
  Tensor a = a_in;
  const bool fp32_out = apply_autocast(OpId::sum, {&a});
  check_not_fp8("sum", a);
  if (dtype)
    FABRIC_CHECK(!is_fp8(*dtype), DTypeError, "sum: dtype ", dtype_name(*dtype),
                 " is not supported");
  DType out_dt = dtype ? *dtype
                       : (fp32_out                 ? DType::float32
                          : is_floating(a.dtype()) ? a.dtype()
                                                   : DType::int64);
  if (dtype && !cast_is_implicit(a.dtype(), *dtype)) a = a.to(*dtype);
  const std::vector<bool> mask = reduce_mask("sum", a, dims);
  Tensor out = run_reduce("sum", ReduceOp::sum, a, mask, keepdim, out_dt);
  ReduceAttrs attrs = reduce_attrs(a, mask, keepdim);
  // torch's overloads: sum() is SumBackward0, sum over given dims SumBackward1.
  record_op(OpId::sum, {a}, {&out}, &attrs, dims.empty() && !keepdim ? nullptr : "SumBackward1");
  return out;
}

Tensor mean(const Tensor& a_in, const std::vector<int64_t>& dims, bool keepdim,
            std::optional<DType> dtype) {
  Tensor a = a_in;
  apply_autocast(OpId::mean, {&a});
  check_not_fp8("mean", a);
  if (dtype) {
    FABRIC_CHECK(
        is_floating(*dtype) && !is_fp8(*dtype), DTypeError,
        "mean: could not infer output dtype; the dtype argument must be floating-point, got ",
        dtype_name(*dtype));
  } else {
    FABRIC_CHECK(is_floating(a.dtype()), DTypeError,
                 "mean: could not infer output dtype; the input must be floating-point (or pass "
                 "dtype=), got ",
                 dtype_name(a.dtype()), " of shape ", shape_str(a.sizes()));
  }
  const DType out_dt = dtype.value_or(a.dtype());
  if (!cast_is_implicit(a.dtype(), out_dt)) a = a.to(out_dt);
  const std::vector<bool> mask = reduce_mask("mean", a, dims);
  ReduceParams p;
  p.divisor = static_cast<double>(reduced_numel(a, mask));
  Tensor out = run_reduce("mean", ReduceOp::sum, a, mask, keepdim, out_dt, p);
  ReduceAttrs attrs = reduce_attrs(a, mask, keepdim);
  record_op(OpId::mean, {a}, {&out}, &attrs, dims.empty() && !keepdim ? nullptr : "MeanBackward1");
  return out;
}

std::tuple<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim) {
  return max_min_dim(true, a, dim, keepdim);
}
std::tuple<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim) {
  return max_min_dim(false, a, dim, keepdim);
}

// max()/min() over all elements have amax/amin's gradient (shared evenly among ties), so they
// record as those ops.
Tensor max(const Tensor& a) {
  FABRIC_CHECK(a.defined(), ValueError, "max: got an undefined tensor");
  FABRIC_CHECK(a.numel() != 0, IndexError, "max: expected a non-empty input, got shape ",
               shape_str(a.sizes()),
               " (max over all elements of an empty tensor has no identity; use max(a, dim))");
  return amax_amin(true, "max", a, {}, false);
}
Tensor min(const Tensor& a) {
  FABRIC_CHECK(a.defined(), ValueError, "min: got an undefined tensor");
  FABRIC_CHECK(a.numel() != 0, IndexError, "min: expected a non-empty input, got shape ",
               shape_str(a.sizes()),
               " (min over all elements of an empty tensor has no identity; use min(a, dim))");
  return amax_amin(false, "min", a, {}, false);
}
Tensor amax(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return amax_amin(true, "amax", a, dims, keepdim);
}
Tensor amin(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return amax_amin(false, "amin", a, dims, keepdim);
}
Tensor argmax(const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  return arg_max_min(true, a, dim, keepdim);
}
Tensor argmin(const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  return arg_max_min(false, a, dim, keepdim);
}

Tensor var(const Tensor& a_in, const std::vector<int64_t>& dims, double correction, bool keepdim) {
  Tensor a = a_in;
  apply_autocast(OpId::var, {&a});
  Tensor out = var_impl("var", a, dims, correction, keepdim, false);
  VarAttrs attrs{mask_dims(reduce_mask("var", a, dims)), keepdim, correction};
  record_op(OpId::var, {a}, {&out}, &attrs);
  return out;
}

Tensor std(const Tensor& a_in, const std::vector<int64_t>& dims, double correction, bool keepdim) {
  Tensor a = a_in;
  apply_autocast(OpId::var, {&a});
  Tensor out = var_impl("std", a, dims, correction, keepdim, true);
  // The op list has no std entry: it records as var taking the square root, whose rule chains
  // d std / d var = 1 / (2 std) into var's, with PyTorch's name for the node.
  VarAttrs attrs{mask_dims(reduce_mask("std", a, dims)), keepdim, correction, /*take_sqrt=*/true};
  record_op(OpId::var, {a}, {&out}, &attrs, "StdBackward0");
  return out;
}

Tensor norm(const Tensor& a_in, double p, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor a = a_in;
  const bool fp32_out = apply_autocast(OpId::norm, {&a});
  check_floating("norm", a);
  FABRIC_CHECK(!std::isnan(p), ValueError, "norm: the order p must not be NaN");
  const std::vector<bool> mask = reduce_mask("norm", a, dims);
  const DType out_dt = fp32_out ? DType::float32 : a.dtype();
  // torch 1.13's CPU kernel takes p as a float (p = 2 + 1e-12 is the 2-norm); the fold order is
  // its too (kernels/cpu/reduce_norm_torch.h).
  const double pk = a.device().is_cpu() ? static_cast<double>(static_cast<float>(p)) : p;
  ReduceParams prm;
  prm.p = pk;
  ReduceOp rop;
  if (reduced_numel(a, mask) == 0) {
    // torch.norm gives 0 for an empty reduction, whatever p (linalg.vector_norm refuses an infinite
    // one: max has no identity; a negative p's root of the empty sum would be inf): the sum of
    // nothing is that 0.
    rop = ReduceOp::sum_abs;
  } else if (std::isinf(pk)) {
    rop = pk > 0 ? ReduceOp::max_abs : ReduceOp::min_abs;
  } else if (pk == 2) {
    rop = ReduceOp::sum_sq;
    prm.finish = ReduceFinish::sqrt;
  } else if (pk == 1) {
    rop = ReduceOp::sum_abs;
  } else if (pk == 0) {
    rop = ReduceOp::count_nonzero;
  } else {
    rop = ReduceOp::sum_pow;
    prm.finish = ReduceFinish::root;
  }
  Tensor out = run_reduce("norm", rop, a, mask, keepdim, out_dt, prm);
  NormAttrs attrs{mask_dims(mask), keepdim, p};
  // torch.norm, which this mirrors, gives NormBackward1 for every p and dims in torch 1.13.
  record_op(OpId::norm, {a}, {&out}, &attrs, "NormBackward1");
  return out;
}

Tensor logsumexp(const Tensor& a_in, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor a = a_in;
  apply_autocast(OpId::logsumexp, {&a});
  check_not_fp8("logsumexp", a);
  if (!is_floating(a.dtype())) a = a.to(default_float_dtype());
  const std::vector<bool> mask = reduce_mask("logsumexp", a, dims);
  Tensor out;
  if (a.device().is_cpu() && (a.dtype() == DType::bfloat16 || a.dtype() == DType::float16) &&
      a.numel() > 0) {
    // torch 1.13's CPU logsumexp of a 16-bit dtype is a composition, each step rounded to it:
    // the max (an infinite one taken as 0), exp(x - max), their sum, its log, + the max.
    const Tensor x = a.detach();
    Tensor m = amax(x, dims, true);
    m = where(eq(abs(m), std::numeric_limits<double>::infinity()), zeros_like(m), m);
    const Tensor s = sum(exp(sub(x, m)), dims, keepdim);
    out = add(log(s), m.reshape(s.sizes()));
  } else {
    const DType acc = reduce_acc_dtype(a.dtype());
    // The max is the shift (an empty reduction folds to -inf, giving log(0) = -inf).
    Tensor center = run_reduce("logsumexp", ReduceOp::max, a, mask, true, acc);
    ReduceParams p;
    p.center = center.numel() ? center.data_ptr() : nullptr;
    p.finish = ReduceFinish::log_add_center;
    out = run_reduce("logsumexp", ReduceOp::sum_exp_dev, a, mask, keepdim, a.dtype(), p);
  }
  ReduceAttrs attrs = reduce_attrs(a, mask, keepdim);
  record_op(OpId::logsumexp, {a}, {&out}, &attrs);
  return out;
}

Tensor cumsum(const Tensor& a_in, int64_t dim, std::optional<DType> dtype) {
  Tensor a = a_in;
  const bool fp32_out = apply_autocast(OpId::cumsum, {&a});
  check_not_fp8("cumsum", a);
  if (dtype)
    FABRIC_CHECK(!is_fp8(*dtype), DTypeError, "cumsum: dtype ", dtype_name(*dtype),
                 " is not supported");
  dim = wrap_dim(dim, a.dim(), "cumsum");
  const DType out_dt = dtype ? *dtype
                             : (fp32_out                 ? DType::float32
                                : is_floating(a.dtype()) ? a.dtype()
                                                         : DType::int64);
  // The recorded input is x before the dtype argument's cast, as torch's cumsum: its backward
  // rounds the gradient to x's dtype first, then sums it (autograd/derivatives_reduce.cpp).
  const Tensor recorded = a;
  if (dtype && !cast_is_implicit(a.dtype(), *dtype)) a = a.detach().to(*dtype);
  Tensor out = empty(a.sizes(), {.dtype = out_dt, .device = a.device()});
  if (out.numel() > 0) {
    Tensor c = a.detach().contiguous();
    ScanGeometry g;
    g.in = c.data_ptr();
    g.in_dtype = c.dtype();
    g.out = out.data_ptr();
    g.out_dtype = out_dt;
    for (int64_t d = 0; d < a.dim(); ++d) {
      if (d < dim)
        g.outer *= a.sizes()[d];
      else if (d == dim)
        g.len = a.sizes()[d];
      else
        g.inner *= a.sizes()[d];
    }
    cumsum_stub(a.device())(g);
  }
  DimAttrs attrs{dim, false};
  record_op(OpId::cumsum, {recorded}, {&out}, &attrs);
  return out;
}

}  // namespace fabric
