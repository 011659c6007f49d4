// The reductions of nn/reduce_extra.h. Most are torch's own compositions of recorded ops;
// logcumsumexp's fold and cummax/cummin's indices run on the host over a contiguous copy with the
// scanned dim last (torch's CPU loops, in their order), CUDA tensors going there and back.
#include "nn/reduce_extra.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(dtype_name(t.dtype()), " of shape ", shape_str(t.sizes()));
}

void check_defined(const char* op, const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(!is_fp8(x.dtype()), DTypeError, op, ": ", describe(x),
               " is not supported (cast fp8 tensors to a wider dtype first)");
}

void check_floating(const char* op, const Tensor& x, const char* what) {
  check_defined(op, x);
  FABRIC_CHECK(is_floating(x.dtype()), DTypeError, op, ": ", what, ", got ", describe(x));
}

// The wrapped dims (empty = every dim), torch's errors for a dim out of range or repeated.
std::vector<int64_t> wrapped_dims(const char* op, const Tensor& x,
                                  const std::vector<int64_t>& dims) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), op);
    if (x.dim() == 0) continue;
    FABRIC_CHECK(std::find(out.begin(), out.end(), w) == out.end(), ValueError, op, ": dim ", w,
                 " appears multiple times in the list of dims ", shape_str(Shape(dims)));
    out.push_back(w);
  }
  return out;
}

// ---- host scans: rows of a contiguous copy whose last dim is the scanned one
// ---------------------

// x on the host with `dim` moved last, contiguous (a 0-dim x as one element).
Tensor rows_last(const Tensor& x, int64_t dim) {
  Tensor h = x.detach().to(Device::cpu());
  if (h.dim() == 0) return h.reshape({1});
  return h.transpose(dim, h.dim() - 1).contiguous();
}

// A host tensor shaped as rows_last's back to x's layout on x's device.
Tensor rows_back(const Tensor& r, const Tensor& x, int64_t dim) {
  if (x.dim() == 0) return r.reshape({}).to(x.device());
  return r.transpose(dim, x.dim() - 1).contiguous().to(x.device());
}

// torch's cummax_cummin_helper: x replaces the running value when it is NaN or, the running
// value not being NaN, when cmp(x, running) (>= for max, <= for min: the last of ties wins).
template <typename T>
std::vector<int64_t> scan_indices(const std::vector<T>& v, int64_t len, bool is_max) {
  std::vector<int64_t> idx(v.size());
  const auto isnan = [](T a) {
    if constexpr (std::is_floating_point_v<T>) return std::isnan(a);
    return false;
  };
  for (size_t base = 0; base < v.size(); base += static_cast<size_t>(len)) {
    T out = v[base];
    int64_t at = 0;
    for (int64_t i = 0; i < len; ++i) {
      const T a = v[base + static_cast<size_t>(i)];
      if (isnan(a) || (!isnan(out) && (is_max ? a >= out : a <= out))) {
        out = a;
        at = i;
      }
      idx[base + static_cast<size_t>(i)] = at;
    }
  }
  return idx;
}

std::tuple<Tensor, Tensor> cum_extreme(const char* op, const Tensor& x, int64_t dim, bool is_max) {
  check_defined(op, x);
  dim = wrap_dim(dim, x.dim(), op);
  // Comparisons in double (floating dtypes: every value exact) or int64 (integers and bool).
  Tensor idx;
  if (x.numel() == 0) {
    idx = empty(x.sizes(), {.dtype = DType::int64, .device = x.device()});
  } else {
    const Tensor r = rows_last(x, dim);
    const int64_t len = r.size(r.dim() - 1);
    const std::vector<int64_t> host = is_floating(x.dtype())
                                          ? scan_indices(r.to_vector<double>(), len, is_max)
                                          : scan_indices(r.to_vector<int64_t>(), len, is_max);
    idx = rows_back(from_vector(host, r.sizes()), x, dim);
  }
  // A recorded gather: the gradient is torch's scatter-add of grad at the indices.
  Tensor values =
      x.dim() == 0 ? gather(x.reshape({1}), 0, idx.reshape({1})).reshape({}) : gather(x, dim, idx);
  return {values, idx};
}

// torch's _log_add_exp_helper(x, y), y the running value: std::min/std::max pick x when it is
// NaN; equal infinities keep x.
template <typename A>
A log_add_exp(A x, A y) {
  const A lo = std::isnan(y) ? y : std::min(x, y);
  const A hi = std::isnan(y) ? y : std::max(x, y);
  if (lo != hi || std::isfinite(lo)) return std::log1p(std::exp(lo - hi)) + hi;
  return x;
}

// torch's logcumsumexp_cpu_kernel over rows of length len: the fold in A from -inf, each
// output rounded to S (float or double; bfloat16 is rounded from float by the caller).
template <typename S, typename A>
std::vector<S> lcse_rows(const std::vector<A>& v, int64_t len) {
  std::vector<S> out(v.size());
  for (size_t base = 0; base < v.size(); base += static_cast<size_t>(len)) {
    A acc = -std::numeric_limits<A>::infinity();
    for (int64_t i = 0; i < len; ++i) {
      acc = log_add_exp<A>(v[base + static_cast<size_t>(i)], acc);
      out[base + static_cast<size_t>(i)] = static_cast<S>(acc);
    }
  }
  return out;
}

// The forward values, without history.
Tensor lcse_values(const Tensor& x, int64_t dim) {
  if (x.numel() == 0) return empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()});
  // torch's cpu_cum_base_kernel copies a 0-dim input (no fold: -0.0 stays -0.0).
  if (x.dim() == 0) return x.detach().clone();
  const Tensor r = rows_last(x, dim);
  const int64_t len = r.size(r.dim() - 1);
  Tensor host;
  if (x.dtype() == DType::float64 || x.dtype() == DType::float32) {
    // at::acc_type<float, /*is_cuda=*/false> is double.
    const std::vector<double> v = r.to_vector<double>();
    host = x.dtype() == DType::float64 ? from_vector(lcse_rows<double, double>(v, len), r.sizes())
                                       : from_vector(lcse_rows<float, double>(v, len), r.sizes());
  } else {  // bfloat16 (and float16 on CUDA): the fold in float, rounded to the dtype
    host = from_vector(lcse_rows<float, float>(r.to_vector<float>(), len), r.sizes()).to(x.dtype());
  }
  return rows_back(host, x, dim);
}

// The most negative finite value of a floating dtype (torch's grad_min in the backward).
double lowest_of(DType t) {
  switch (t) {
    case DType::float64:
      return std::numeric_limits<double>::lowest();
    case DType::float16:
      return -65504.0;
    case DType::bfloat16:
      return -3.3895313892515355e38;
    default:
      return std::numeric_limits<float>::lowest();
  }
}

// torch's logcumsumexp_backward: with r(t) = flip(logcumsumexp(flip(t))),
// exp(r(log g+ - result) + x) - exp(r(log g- - result) + x), g+ / g- the positive / negative
// parts of grad (others at the dtype's lowest).
Tensor lcse_backward(const Tensor& grad, const Tensor& x, const Tensor& result, int64_t dim) {
  if (grad.dim() == 0 || grad.numel() == 0) return grad;
  const auto reverse = [dim](const Tensor& t) {
    return flip(logcumsumexp(flip(t, {dim}), dim), {dim});
  };
  const double lowest = lowest_of(grad.dtype());
  const Tensor log_abs = log(abs(grad));
  const Tensor pos = where(gt(grad, 0.0), log_abs, lowest);
  const Tensor neg = where(lt(grad, 0.0), log_abs, lowest);
  const Tensor out_pos = exp(add(reverse(sub(pos, result)), x));
  const Tensor out_neg = exp(add(reverse(sub(neg, result)), x));
  return sub(out_pos, out_neg);
}

SavedVersion saved_alias(const Tensor& t, int input_nr, int output_nr) {
  SavedVersion s{t.storage(), t.storage()->version(), t.sizes(), t.dtype(), t.detach()};
  s.input_nr = input_nr;
  s.output_nr = output_nr;
  return s;
}

// out gets one node over x whose closure is lcse_backward (recorded ops: it differentiates again).
void record_lcse(Tensor& out, const Tensor& x, int64_t dim) {
  if (!grad_enabled() || !x.requires_grad()) return;
  std::vector<SavedVersion> saved{saved_alias(x, 0, -1), saved_alias(out, -1, 0)};
  const Tensor xs = saved[0].alias, rs = saved[1].alias;
  auto backward = [xs, rs, dim](const std::vector<Tensor>& g) -> std::vector<Tensor> {
    if (g.empty() || !g[0].defined()) return {Tensor()};
    return {lcse_backward(g[0], xs, rs, dim)};
  };
  auto node = std::make_shared<FunctionNode>("logcumsumexp", std::move(backward));
  node->set_saved_versions(std::move(saved));
  node->set_supports_double_backward(true);
  add_input_edges(*node, {x});
  set_grad_fn(out, node, 0);
}

// x's sizes with the reduced dims (wrapped; all when empty) kept as 1.
Shape kept_shape(const Tensor& x, const std::vector<int64_t>& wrapped) {
  Shape s = x.sizes();
  for (int64_t d : wrapped) s[d] = 1;
  return s;
}

// Makes `outs` the outputs of one node over x (torch's node name from `op`) whose closure is made
// of recorded ops (so it differentiates again); `saved` are the tensors the closure reads.
void attach_node(const char* op, const std::vector<Tensor*>& outs, const Tensor& x,
                 FunctionNode::Backward backward, std::vector<SavedVersion> saved) {
  auto node = std::make_shared<FunctionNode>(op, std::move(backward));
  node->set_saved_versions(std::move(saved));
  node->set_supports_double_backward(true);
  node->num_outputs = static_cast<int>(outs.size());
  add_input_edges(*node, {x});
  for (size_t o = 0; o < outs.size(); ++o) set_grad_fn(*outs[o], node, static_cast<int>(o));
}

// torch's var_backward: (2 / (n - correction)) * grad * (x - mean(x)), n the reduced count; with
// no dims (all) and n <= correction, grad * (x == mean ? NaN : inf).
Tensor var_grad(Tensor g, const Tensor& x, const std::vector<int64_t>& dims,
                const std::vector<int64_t>& wrapped, double correction) {
  const int64_t n = x.dim() == 0 ? 1 : numel_of(x.sizes()) / numel_of(kept_shape(x, wrapped));
  g = g.reshape(kept_shape(x, wrapped));
  const Tensor center = sub(x, mean(x, wrapped, true));
  if ((dims.empty() || x.dim() == 0) && static_cast<double>(n) - correction <= 0) {
    const Tensor at_mean = eq(x, mean(x, wrapped, true));
    return mul(g, where(at_mean, full_like(x, std::numeric_limits<double>::quiet_NaN()),
                        std::numeric_limits<double>::infinity()));
  }
  return mul(mul(g, 2.0 / (static_cast<double>(n) - correction)), center);
}

// var_mean/std_mean: torch's CPU Welford runs in double for every floating dtype, so the values
// come from a float64 copy; the gradient is torch's var_mean_backward / std_mean_backward, in x's
// dtype as torch forms it.
std::tuple<Tensor, Tensor> stat_mean(const char* op, const Tensor& x,
                                     const std::vector<int64_t>& dims, double correction,
                                     bool keepdim, bool take_sqrt) {
  check_floating(op, x, cat(op, " only supports floating-point dtypes").c_str());
  const std::vector<int64_t> wrapped = wrapped_dims(op, x, dims);
  Tensor v, m;
  {
    NoGradGuard no_grad;
    const bool in_double = x.device().is_cpu() && x.dtype() != DType::float64;
    const Tensor xc = in_double ? x.detach().to(DType::float64) : x.detach();
    v = take_sqrt ? std(xc, dims, correction, keepdim) : var(xc, dims, correction, keepdim);
    m = mean(xc, dims, keepdim);
    v = v.to(x.dtype()).detach();
    m = m.to(x.dtype()).detach();
  }
  if (!grad_enabled() || !x.requires_grad()) return {v, m};
  std::vector<SavedVersion> saved{saved_alias(x, 0, -1), saved_alias(v, -1, 0)};
  const Tensor xs = saved[0].alias, vs = saved[1].alias;
  const int64_t n = x.dim() == 0 ? 1 : numel_of(x.sizes()) / numel_of(kept_shape(x, wrapped));
  auto backward = [xs, vs, dims, wrapped, correction, take_sqrt,
                   n](const std::vector<Tensor>& g) -> std::vector<Tensor> {
    Tensor gx;
    if (g[0].defined()) {
      Tensor gv = g[0];
      // torch's std_backward: grad / (2 std), 0 where std is 0.
      if (take_sqrt) gv = masked_fill(div(gv, mul(vs, 2.0)), eq(vs, 0.0), 0.0);
      gx = var_grad(gv, xs, dims, wrapped, correction);
    }
    if (g.size() > 1 && g[1].defined()) {
      const Tensor gm =
          div(g[1].reshape(kept_shape(xs, wrapped)).expand(xs.sizes()), static_cast<double>(n));
      gx = gx.defined() ? add(gx, gm) : gm;
    }
    return {gx};
  };
  attach_node(take_sqrt ? "std_mean" : "var_mean", {&v, &m}, x, std::move(backward),
              std::move(saved));
  return {v, m};
}

}  // namespace

Tensor nansum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
              std::optional<DType> dtype) {
  check_defined("nansum", x);
  const std::vector<int64_t> wrapped = wrapped_dims("nansum", x, dims);
  // Integers hold no NaN: torch sums them (dtype included).
  if (!is_floating(x.dtype())) return sum(x, dims, keepdim, dtype);
  if (dtype)
    FABRIC_CHECK(is_floating(*dtype) && !is_fp8(*dtype), DTypeError, "nansum: dtype ",
                 dtype_name(*dtype), " is not supported for a floating input (", describe(x),
                 "); torch's nansum kernel takes floating dtypes only");
  const Tensor keep = logical_not(isnan(x.detach()));
  Tensor out;
  {
    NoGradGuard no_grad;
    out = sum(where(keep, x.detach(), 0.0), dims, keepdim, dtype).detach();
  }
  if (!grad_enabled() || !x.requires_grad()) return out;
  // torch's nansum_backward: grad (in x's dtype) expanded times the not-NaN mask, so a NaN
  // position gets grad * 0 (-0.0 for a negative grad, NaN for an infinite one).
  const Shape kept = kept_shape(x, wrapped);
  const DType xdt = x.dtype();
  auto backward = [keep, kept, xdt](const std::vector<Tensor>& g) -> std::vector<Tensor> {
    if (!g[0].defined()) return {Tensor()};
    return {mul(g[0].to(xdt).reshape(kept), keep)};
  };
  attach_node("nansum", {&out}, x, std::move(backward), {});
  return out;
}

Tensor nanmean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
               std::optional<DType> dtype) {
  check_floating("nanmean", x, "expected input to have floating point dtype");
  wrapped_dims("nanmean", x, dims);
  const Tensor count = sum(logical_not(isnan(x)), dims, keepdim);
  return div(nansum(x, dims, keepdim, dtype), count);
}

std::tuple<Tensor, Tensor> var_mean(const Tensor& x, const std::vector<int64_t>& dims,
                                    double correction, bool keepdim) {
  return stat_mean("var_mean", x, dims, correction, keepdim, false);
}

std::tuple<Tensor, Tensor> std_mean(const Tensor& x, const std::vector<int64_t>& dims,
                                    double correction, bool keepdim) {
  return stat_mean("std_mean", x, dims, correction, keepdim, true);
}

std::tuple<Tensor, Tensor> aminmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  check_defined("aminmax", x);
  if (dim) {
    const int64_t d = wrap_dim(*dim, x.dim(), "aminmax");
    FABRIC_CHECK(x.dim() == 0 || x.size(d) != 0, IndexError, "aminmax: Expected reduction dim ", d,
                 " to have non-zero size (input ", describe(x), ")");
    return {amin(x, {d}, keepdim), amax(x, {d}, keepdim)};
  }
  FABRIC_CHECK(x.numel() != 0, IndexError,
               "aminmax(): cannot compute aminmax over an empty dimension as the operation has no "
               "identity (input ",
               describe(x), ")");
  return {amin(x, {}, keepdim), amax(x, {}, keepdim)};
}

Tensor count_nonzero(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined("count_nonzero", x);
  wrapped_dims("count_nonzero", x, dims);
  return sum(ne(x.detach(), 0), dims, false, DType::int64);
}

Tensor vector_norm(const Tensor& x, double ord, const std::vector<int64_t>& dims, bool keepdim,
                   std::optional<DType> dtype) {
  check_floating("linalg.vector_norm", x, "expected a floating point tensor as input");
  FABRIC_CHECK(!std::isnan(ord), ValueError, "linalg.vector_norm: ord must not be NaN");
  const std::vector<int64_t> wrapped = wrapped_dims("linalg.vector_norm", x, dims);
  if (x.numel() == 0 && (ord < 0 || ord == std::numeric_limits<double>::infinity())) {
    FABRIC_CHECK(!dims.empty(), ValueError, "linalg.vector_norm cannot compute the ", ord,
                 " norm on an empty tensor because the operation does not have an identity (input ",
                 describe(x), ")");
    for (size_t i = 0; i < dims.size(); ++i)
      FABRIC_CHECK(x.dim() == 0 || x.size(wrapped[i]) != 0, IndexError,
                   "linalg.vector_norm cannot compute the ", ord, " norm on the dimension ",
                   dims[i],
                   " because this dimension is empty and the operation does not have an "
                   "identity (input ",
                   describe(x), ")");
  }
  Tensor in = x;
  if (dtype) {
    FABRIC_CHECK(is_floating(*dtype) && !is_fp8(*dtype), DTypeError,
                 "linalg.vector_norm: dtype should be floating point, but got ",
                 dtype_name(*dtype));
    FABRIC_CHECK(promote_types(x.dtype(), *dtype) == *dtype, ValueError,
                 "linalg.vector_norm: the dtype of the input (", dtype_name(x.dtype()),
                 ") should be convertible without narrowing to the specified dtype (",
                 dtype_name(*dtype), ")");
    in = x.to(*dtype);
  }
  return norm(in, ord, dims, keepdim);
}

Tensor logcumsumexp(const Tensor& x, int64_t dim) {
  check_defined("logcumsumexp", x);
  FABRIC_CHECK(is_floating(x.dtype()) && (x.dtype() != DType::float16 || !x.device().is_cpu()),
               DTypeError, "logcumsumexp: not implemented for ", describe(x),
               " (torch's CPU kernel takes float64, float32 and bfloat16; float16 on CUDA)");
  dim = wrap_dim(dim, x.dim(), "logcumsumexp");
  Tensor out = lcse_values(x, dim);
  record_lcse(out, x, dim);
  return out;
}

std::tuple<Tensor, Tensor> cummax(const Tensor& x, int64_t dim) {
  return cum_extreme("cummax", x, dim, true);
}

std::tuple<Tensor, Tensor> cummin(const Tensor& x, int64_t dim) {
  return cum_extreme("cummin", x, dim, false);
}

}  // namespace fabric
