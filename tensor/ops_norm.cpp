// softmax, log_softmax, layer_norm and rms_norm, and their backward functions (ops_backward.h).
// The ops decide dtypes (softmax's dtype=, autocast's fp32 output), check shapes and hand
// contiguous buffers to the row kernels behind softmax_stub/norm_stub.
#include <cmath>
#include <limits>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/promotion.h"
#include "tensor/reduce_kernels.h"

namespace fabric {
namespace {

RowGeometry row_geometry(const Shape& s, int64_t dim) {
  RowGeometry g;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
    if (d < dim)
      g.outer *= s[d];
    else if (d == dim)
      g.n = s[d];
    else
      g.inner *= s[d];
  }
  return g;
}

// A view of t's data without autograd history, made contiguous (kernels read raw buffers; the
// op records its own inputs).
Tensor raw(const Tensor& t) { return t.detach().contiguous(); }

Tensor softmax_impl(bool log, const Tensor& a_in, int64_t dim, std::optional<DType> dtype) {
  const char* op = log ? "log_softmax" : "softmax";
  Tensor a = a_in;
  FABRIC_CHECK(a.defined(), ValueError, op, ": got an undefined tensor");
  const bool fp32_out = apply_autocast(log ? OpId::log_softmax : OpId::softmax, {&a});
  FABRIC_CHECK(!is_fp8(a.dtype()), DTypeError, op, ": ", dtype_name(a.dtype()), " input of shape ",
               shape_str(a.sizes()), " is not supported");
  DType out_dt;
  if (dtype) {
    FABRIC_CHECK(is_floating(*dtype) && !is_fp8(*dtype), DTypeError, op,
                 ": dtype must be float64, float32, ", "float16 or bfloat16, got ",
                 dtype_name(*dtype));
    out_dt = *dtype;
    // PyTorch casts to dtype first; reading a narrower float and widening in the kernel is the
    // same.
    if (!(is_floating(a.dtype()) &&
          (a.dtype() == out_dt || itemsize(out_dt) > itemsize(a.dtype()))))
      a = a.to(out_dt);
  } else {
    FABRIC_CHECK(is_floating(a.dtype()), DTypeError, op,
                 ": expected a floating-point input (or pass dtype=), got ", dtype_name(a.dtype()),
                 " of shape ", shape_str(a.sizes()));
    out_dt = fp32_out ? DType::float32 : a.dtype();
  }
  dim = wrap_dim(dim, a.dim(), op);
  Tensor out = empty(a.sizes(), {.dtype = out_dt, .device = a.device()});
  if (out.numel() > 0) {
    Tensor c = raw(a);
    softmax_stub(a.device())(row_geometry(a.sizes(), dim), c.data_ptr(), c.dtype(), out.data_ptr(),
                             out_dt, log);
  }
  DimAttrs attrs{dim, false};
  record_op(log ? OpId::log_softmax : OpId::softmax, {a}, {&out}, &attrs);
  return out;
}

Tensor softmax_backward_impl(bool log, const Tensor& grad_out, const Tensor& out, int64_t dim,
                             std::optional<DType> dx_dtype) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  FABRIC_CHECK(grad_out.sizes() == out.sizes(), ShapeError, op, ": grad_out shape ",
               shape_str(grad_out.sizes()), " does not match the output shape ",
               shape_str(out.sizes()));
  FABRIC_CHECK(is_floating(out.dtype()) && !is_fp8(out.dtype()) && is_floating(grad_out.dtype()),
               DTypeError, op, ": expected floating-point tensors, got grad_out ",
               dtype_name(grad_out.dtype()), " and output ", dtype_name(out.dtype()));
  dim = wrap_dim(dim, out.dim(), op);
  const DType dt = dx_dtype.value_or(out.dtype());
  Tensor dx = empty(out.sizes(), {.dtype = dt, .device = out.device()});
  if (dx.numel() > 0) {
    Tensor g = raw(grad_out.detach().to(out.dtype()));
    Tensor y = raw(out);
    softmax_backward_stub(out.device())(row_geometry(out.sizes(), dim), g.data_ptr(), y.data_ptr(),
                                        y.dtype(), dx.data_ptr(), dt, log);
  }
  return dx;
}

struct NormShape {
  int64_t rows = 1, cols = 1;
  Shape stat_shape;  // x.shape[:-k] + (1,)*k
};

NormShape check_norm_args(const char* op, const Tensor& x, const Shape& normalized_shape,
                          const Tensor& weight, const Tensor& bias) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(is_floating(x.dtype()) && !is_fp8(x.dtype()), DTypeError, op,
               ": expected a float64/float32/float16/bfloat16 input, got ", dtype_name(x.dtype()),
               " of shape ", shape_str(x.sizes()));
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  FABRIC_CHECK(k >= 1, ShapeError, op, ": normalized_shape must have at least one dim, got ()");
  bool ok = x.dim() >= k;
  for (int64_t i = 0; ok && i < k; ++i) ok = x.sizes()[x.dim() - k + i] == normalized_shape[i];
  FABRIC_CHECK(ok, ShapeError, op, ": expected an input whose trailing dims are normalized_shape ",
               shape_str(normalized_shape), ", got input of shape ", shape_str(x.sizes()));
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    const char* what = p == &weight ? "weight" : "bias";
    FABRIC_CHECK(p->sizes() == normalized_shape, ShapeError, op, ": expected ", what, " of shape ",
                 shape_str(normalized_shape), ", got ", shape_str(p->sizes()));
    FABRIC_CHECK(is_floating(p->dtype()) && !is_fp8(p->dtype()), DTypeError, op, ": ", what,
                 " must be floating-point, got ", dtype_name(p->dtype()));
  }
  NormShape s;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < x.dim() - k) {
      s.rows *= x.sizes()[i];
      s.stat_shape.push_back(x.sizes()[i]);
    } else {
      s.cols *= x.sizes()[i];
      s.stat_shape.push_back(1);
    }
  }
  return s;
}

// Runs the forward kernel; mean is left undefined for rms.
std::tuple<Tensor, Tensor, Tensor> norm_forward(bool rms, const Tensor& x,
                                                const Shape& normalized_shape, const Tensor& weight,
                                                const Tensor& bias, double eps,
                                                std::optional<DType> out_dtype = std::nullopt) {
  const char* op = rms ? "rms_norm" : "layer_norm";
  const NormShape s = check_norm_args(op, x, normalized_shape, weight, bias);
  FABRIC_CHECK(!rms || !bias.defined(), ValueError, "rms_norm: has no bias");
  const DType y_dtype = out_dtype.value_or(x.dtype());
  FABRIC_CHECK(norm_takes_dtype(x.dtype(), y_dtype), DTypeError, op, ": out_dtype ",
               dtype_name(y_dtype), " is neither the input's dtype (", dtype_name(x.dtype()),
               ") nor float16/bfloat16 for a float32 input");
  const DType acc = reduce_acc_dtype(x.dtype());
  Tensor out = empty(x.sizes(), {.dtype = y_dtype, .device = x.device()});
  Tensor mean = rms ? Tensor() : empty(s.stat_shape, {.dtype = acc, .device = x.device()});
  Tensor rstd = empty(s.stat_shape, {.dtype = acc, .device = x.device()});
  if (s.rows > 0 && s.cols > 0) {
    Tensor xc = raw(x), wc = weight.defined() ? raw(weight) : Tensor(),
           bc = bias.defined() ? raw(bias) : Tensor();
    NormArgs a;
    a.rows = s.rows;
    a.cols = s.cols;
    a.x = xc.data_ptr();
    a.x_dtype = xc.dtype();
    a.y_dtype = y_dtype;
    if (wc.defined()) a.weight = wc.data_ptr(), a.weight_dtype = wc.dtype();
    if (bc.defined()) a.bias = bc.data_ptr(), a.bias_dtype = bc.dtype();
    a.y = out.data_ptr();
    a.mean = rms ? nullptr : mean.data_ptr();
    a.rstd = rstd.data_ptr();
    a.eps = eps;
    a.rms = rms;
    norm_stub(x.device())(a);
  } else if (s.rows > 0) {
    // No elements to normalise: statistics of an empty row (nan), as torch.
    if (mean.defined()) mean.fill_(std::numeric_limits<double>::quiet_NaN());
    rstd.fill_(std::numeric_limits<double>::quiet_NaN());
  }
  return {out, mean, rstd};
}

std::tuple<Tensor, Tensor, Tensor> norm_backward(bool rms, const Tensor& grad_out, const Tensor& x,
                                                 const Shape& normalized_shape,
                                                 const Tensor& weight, const Tensor& mean,
                                                 const Tensor& rstd) {
  const char* op = rms ? "rms_norm_backward" : "layer_norm_backward";
  const NormShape s = check_norm_args(op, x, normalized_shape, weight, Tensor());
  FABRIC_CHECK(grad_out.sizes() == x.sizes(), ShapeError, op, ": grad_out shape ",
               shape_str(grad_out.sizes()), " does not match the input shape ",
               shape_str(x.sizes()));
  const DType acc = reduce_acc_dtype(x.dtype());
  for (const Tensor* t : {&mean, &rstd}) {
    if (rms && t == &mean) continue;
    FABRIC_CHECK(t->defined() && t->numel() == s.rows, ShapeError, op, ": expected ",
                 t == &mean ? "mean" : "rstd", " with ", s.rows, " elements (shape ",
                 shape_str(s.stat_shape), "), got ",
                 t->defined() ? shape_str(t->sizes()) : std::string("an undefined tensor"));
  }
  Tensor dx = empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()});
  Tensor dw = weight.defined()
                  ? empty(normalized_shape, {.dtype = weight.dtype(), .device = x.device()})
                  : Tensor();
  const DType db_dt = weight.defined() ? weight.dtype() : x.dtype();
  Tensor db = rms ? Tensor() : empty(normalized_shape, {.dtype = db_dt, .device = x.device()});
  if (s.rows == 0 || s.cols == 0) {
    if (dw.defined()) dw.zero_();
    if (db.defined()) db.zero_();
    return {dx, dw, db};
  }
  // A float16/bfloat16 gradient of a float32 norm (its output was cast, or the cast fused in) is
  // read as it is, widened exactly by the kernel, instead of through a float32 copy.
  const DType g_dtype =
      norm_takes_dtype(x.dtype(), grad_out.dtype()) ? grad_out.dtype() : x.dtype();
  Tensor xc = raw(x), gc = raw(grad_out.detach().to(g_dtype));
  Tensor wc = weight.defined() ? raw(weight) : Tensor();
  Tensor mc = rms ? Tensor() : raw(mean.detach().to(acc));
  Tensor rc = raw(rstd.detach().to(acc));
  NormBackwardArgs a;
  a.rows = s.rows;
  a.cols = s.cols;
  a.dy = gc.data_ptr();
  a.dy_dtype = g_dtype;
  a.x = xc.data_ptr();
  a.x_dtype = x.dtype();
  if (wc.defined()) a.weight = wc.data_ptr(), a.weight_dtype = wc.dtype();
  a.mean = rms ? nullptr : mc.data_ptr();
  a.rstd = rc.data_ptr();
  a.dx = dx.data_ptr();
  a.dweight = dw.defined() ? dw.data_ptr() : nullptr;
  a.dbias = db.defined() ? db.data_ptr() : nullptr;
  a.dbias_dtype = db_dt;
  a.rms = rms;
  norm_backward_stub(x.device())(a);
  return {dx, dw, db};
}

// torch.finfo(dtype).eps, rms_norm's default.
double finfo_eps(DType t) {
  switch (t) {
    case DType::float64:
      return std::numeric_limits<double>::epsilon();
    case DType::float16:
      return 0.0009765625;
    case DType::bfloat16:
      return 0.0078125;
    default:
      return static_cast<double>(std::numeric_limits<float>::epsilon());
  }
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t dim, std::optional<DType> dtype) {
  return softmax_impl(false, a, dim, dtype);
}
Tensor log_softmax(const Tensor& a, int64_t dim, std::optional<DType> dtype) {
  return softmax_impl(true, a, dim, dtype);
}

Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim,
                        std::optional<DType> dx_dtype) {
  return softmax_backward_impl(false, grad_out, out, dim, dx_dtype);
}
Tensor log_softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim,
                            std::optional<DType> dx_dtype) {
  return softmax_backward_impl(true, grad_out, out, dim, dx_dtype);
}

std::tuple<Tensor, Tensor, Tensor> layer_norm_with_stats(const Tensor& x,
                                                         const Shape& normalized_shape,
                                                         const Tensor& weight, const Tensor& bias,
                                                         double eps) {
  return norm_forward(false, x, normalized_shape, weight, bias, eps);
}

// Records {out, mean, rstd} as outputs so the derivative rule can reuse the statistics.
Tensor layer_norm(const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight_in,
                  const Tensor& bias_in, double eps, std::optional<DType> out_dtype) {
  Tensor x = x_in, weight = weight_in, bias = bias_in;
  apply_autocast(OpId::layer_norm, {&x, &weight, &bias});
  auto [out, mean, rstd] = norm_forward(false, x, normalized_shape, weight, bias, eps, out_dtype);
  NormalizeAttrs attrs{normalized_shape, eps};
  record_op(OpId::layer_norm, {x, weight, bias}, {&out, &mean, &rstd}, &attrs,
            "NativeLayerNormBackward0");
  return out;
}

std::tuple<Tensor, Tensor, Tensor> layer_norm_backward(const Tensor& grad_out, const Tensor& x,
                                                       const Shape& normalized_shape,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& rstd) {
  return norm_backward(false, grad_out, x, normalized_shape, weight, mean, rstd);
}

std::tuple<Tensor, Tensor> rms_norm_with_stats(const Tensor& x, const Shape& normalized_shape,
                                               const Tensor& weight, std::optional<double> eps) {
  FABRIC_CHECK(x.defined(), ValueError, "rms_norm: got an undefined tensor");
  auto [out, mean, rstd] =
      norm_forward(true, x, normalized_shape, weight, Tensor(), eps.value_or(finfo_eps(x.dtype())));
  return {out, rstd};
}

// Records {out, rstd} as outputs so the derivative rule can reuse the statistic.
Tensor rms_norm(const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight_in,
                std::optional<double> eps, std::optional<DType> out_dtype) {
  Tensor x = x_in, weight = weight_in;
  apply_autocast(OpId::rms_norm, {&x, &weight});
  FABRIC_CHECK(x.defined(), ValueError, "rms_norm: got an undefined tensor");
  const double e = eps.value_or(finfo_eps(x.dtype()));
  auto [out, mean, rstd] = norm_forward(true, x, normalized_shape, weight, Tensor(), e, out_dtype);
  NormalizeAttrs attrs{normalized_shape, e};
  record_op(OpId::rms_norm, {x, weight}, {&out, &rstd}, &attrs);
  return out;
}

std::tuple<Tensor, Tensor> rms_norm_backward(const Tensor& grad_out, const Tensor& x,
                                             const Shape& normalized_shape, const Tensor& weight,
                                             const Tensor& rstd) {
  auto [dx, dw, db] = norm_backward(true, grad_out, x, normalized_shape, weight, Tensor(), rstd);
  return {dx, dw};
}

}  // namespace fabric
