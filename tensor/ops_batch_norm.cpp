// batch_norm and group_norm, and their backward functions (ops_backward_norm.h). Both work on an
// (N, C, L) view of the input (L = the product of the dims after C): the kernels give per-plane
// sums (a plane is one (n, c) slice, or one (n, group) slice for group_norm's statistics) and apply
// a per-plane affine map; the statistics and coefficients between them are small tensor ops in the
// accumulation dtype (float32, float64 for float64), on the input's device.
#include "tensor/autocast.h"
#include "tensor/channel_norm_kernels.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_norm.h"
#include "tensor/reduce_kernels.h"

namespace fabric {

FABRIC_DEFINE_STUB(plane_sums_stub, PlaneSumsFn);
FABRIC_DEFINE_STUB(plane_affine_stub, PlaneAffineFn);
FABRIC_DEFINE_STUB(channel_moments_stub, ChannelMomentsFn);

namespace {

// A view of t's data without autograd history, made contiguous (kernels read raw buffers; the
// op records its own inputs).
Tensor raw(const Tensor& t) { return t.detach().contiguous(); }

struct ChannelShape {
  int64_t N = 1, C = 1, L = 1;
};

ChannelShape check_channel_input(const char* op, const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(is_floating(x.dtype()) && !is_fp8(x.dtype()), DTypeError, op,
               ": expected a float64/float32/float16/bfloat16 input, got ", dtype_name(x.dtype()),
               " of shape ", shape_str(x.sizes()));
  FABRIC_CHECK(x.dim() >= 2, ShapeError, op,
               ": expected an input of shape (N, C, ...) with at least 2 dims, got shape ",
               shape_str(x.sizes()));
  ChannelShape s{x.size(0), x.size(1), 1};
  for (int64_t d = 2; d < x.dim(); ++d) s.L *= x.size(d);
  return s;
}

void check_per_channel(const char* op, const char* what, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  const int64_t C = x.size(1);
  FABRIC_CHECK(t.dim() == 1 && t.size(0) == C, ShapeError, op, ": expected ", what, " of shape (",
               C, ") for an input with ", C, " channels (shape ", shape_str(x.sizes()), "), got ",
               shape_str(t.sizes()));
  FABRIC_CHECK(is_floating(t.dtype()) && !is_fp8(t.dtype()), DTypeError, op, ": ", what,
               " must be float64/float32/float16/bfloat16, got ", dtype_name(t.dtype()));
  FABRIC_CHECK(t.device() == x.device(), DeviceError, op, ": ", what, " on ", t.device(),
               ", input on ", x.device());
}

// group_norm's per-plane values: a (C) or (N, G) vector repeated per plane, (N * C) contiguous,
// the value of plane (n, c) being v[c] (per_channel) or v[n, c / (C / G)] (per_group).
Tensor per_channel(const Tensor& v, int64_t N) {
  const int64_t C = v.numel();
  return v.reshape({1, C}).expand({N, C}).contiguous().reshape({N * C});
}
Tensor per_group(const Tensor& v, int64_t N, int64_t G, int64_t C) {
  return v.reshape({N, G, 1}).expand({N, G, C / G}).contiguous().reshape({N * C});
}

// t in the accumulation dtype, contiguous (the kernels index it), without history.
Tensor acc_of(const Tensor& t, DType acc) {
  return t.defined() ? t.detach().to(acc).contiguous() : Tensor();
}

// plane_sums_stub over (planes, len) buffers: {sum of w, sum of w * d} (see the stub), one per
// plane, or with fold_period one per channel k: summed over the planes p with p % period == k.
std::pair<Tensor, Tensor> plane_sums(const Tensor& u, const Tensor& v, const Tensor& center,
                                     int64_t planes, int64_t len, int64_t fold_period = 0) {
  const TensorOptions o{.dtype = reduce_acc_dtype(v.dtype()), .device = v.device()};
  const int64_t outputs = fold_period > 0 ? fold_period : planes;
  Tensor sw = empty({outputs}, o), swd = empty({outputs}, o);
  if (outputs > 0) {
    PlaneSumsArgs a;
    a.planes = planes;
    a.len = len;
    a.period = fold_period;
    a.fold = fold_period > 0;
    a.u = u.defined() ? u.data_ptr() : nullptr;
    a.v = v.data_ptr();
    a.dtype = v.dtype();
    a.center = center.defined() ? center.data_ptr() : nullptr;
    a.sum_w = sw.data_ptr();
    a.sum_wd = swd.data_ptr();
    plane_sums_stub(v.device())(a);
  }
  return {sw, swd};
}

// a * (u - center) + b * v + c per plane, into a tensor shaped and typed as `like`.
struct AffineTerms {
  Tensor u, a, center, v, b, c;
};
Tensor plane_affine(const AffineTerms& t, const Tensor& like, int64_t planes, int64_t len,
                    int64_t period = 0) {
  Tensor out = empty(like.sizes(), {.dtype = like.dtype(), .device = like.device()});
  if (out.numel() == 0) return out;
  auto ptr = [](const Tensor& x) -> const void* { return x.defined() ? x.data_ptr() : nullptr; };
  PlaneAffineArgs a;
  a.planes = planes;
  a.len = len;
  a.period = period;
  a.u = ptr(t.u);
  a.v = ptr(t.v);
  a.dtype = like.dtype();
  a.a = ptr(t.a);
  a.center = ptr(t.center);
  a.b = ptr(t.b);
  a.c = ptr(t.c);
  a.out = out.data_ptr();
  plane_affine_stub(like.device())(a);
  return out;
}

// Mean and sum of squared deviations of each of `groups` statistics over fold_n * groups planes
// of len values (batch_norm: fold_n = N, groups = C, the planes of a channel folded over n;
// group_norm: fold_n = 1, groups = N * G), two-pass: the second pass's sum of deviations
// corrects the rounding of the mean.
std::pair<Tensor, Tensor> mean_and_sq_dev(const Tensor& xc, int64_t fold_n, int64_t groups,
                                          int64_t len, int64_t count) {
  const int64_t planes = fold_n * groups, fold_period = fold_n == 1 ? 0 : groups;
  const Tensor mean = div(plane_sums(Tensor(), xc, Tensor(), planes, len, fold_period).first,
                          static_cast<double>(count));
  auto [dev, sq] = plane_sums(Tensor(), xc, mean, planes, len, fold_period);
  return {mean, sub(sq, div(mul(dev, dev), static_cast<double>(count)))};
}

// batch_norm's {mean, sum of squared deviations} per channel. An (N, C) input with a
// channel_moments kernel is read once (the two plane_sums passes would read it twice).
std::pair<Tensor, Tensor> channel_stats(const Tensor& xc, const ChannelShape& s) {
  const ChannelMomentsFn moments = channel_moments_stub.find(xc.device());
  if (!moments || s.L != 1 || s.N == 0 || s.C == 0)
    return mean_and_sq_dev(xc, s.N, s.C, s.L, s.N * s.L);
  const TensorOptions o{.dtype = reduce_acc_dtype(xc.dtype()), .device = xc.device()};
  Tensor mean = empty({s.C}, o), sq_dev = empty({s.C}, o);
  ChannelMomentsArgs a;
  a.rows = s.N;
  a.channels = s.C;
  a.x = xc.data_ptr();
  a.dtype = xc.dtype();
  a.mean = mean.data_ptr();
  a.sq_dev = sq_dev.data_ptr();
  moments(a);
  return {mean, sq_dev};
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> batch_norm_with_stats(
    const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
    const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  const ChannelShape s = check_channel_input(op, x);
  check_per_channel(op, "weight", weight, x);
  check_per_channel(op, "bias", bias, x);
  check_per_channel(op, "running_mean", running_mean, x);
  check_per_channel(op, "running_var", running_var, x);
  const int64_t count = s.N * s.L;  // values per channel
  if (training) {
    FABRIC_CHECK(count != 1, ValueError, op,
                 ": Expected more than 1 value per channel when training, got input size ",
                 shape_str(x.sizes()));
  } else {
    FABRIC_CHECK(running_mean.defined() && running_var.defined(), ValueError, op,
                 ": running_mean and running_var are required when not training (eval mode "
                 "normalises with them); got ",
                 running_mean.defined() ? "no running_var" : "no running_mean");
  }
  const DType acc = reduce_acc_dtype(x.dtype());
  const Tensor xc = raw(x);
  Tensor mean, invstd;
  if (training) {
    auto [m, sq_dev] = channel_stats(xc, s);
    mean = m;
    // torch 1.13 keeps the batch statistics it normalises with (and saves for backward) in the
    // parameters' dtype: a bfloat16/float16 input whose weight, bias and running statistics are of
    // its own dtype (or absent) takes the variance as half(half(sum) / half(count)) and mean and
    // invstd rounded to that dtype; any float32 one keeps them float32.
    const auto own_dtype = [&](const Tensor& t) { return !t.defined() || t.dtype() == x.dtype(); };
    const bool half_stats = (x.dtype() == DType::bfloat16 || x.dtype() == DType::float16) &&
                            own_dtype(weight) && own_dtype(bias) && own_dtype(running_mean) &&
                            own_dtype(running_var);
    // torch 1.13's CPU kernel (its InvStd in double): 1 / sqrt(var + eps) rounded once from
    // double, and 0 for a zero variance with eps 0, so that a constant channel normalises to its
    // bias with a zero gradient instead of NaN.
    const Tensor var = (half_stats ? div(sq_dev.to(x.dtype()), static_cast<double>(count))
                                   : div(sq_dev, static_cast<double>(count)))
                           .to(DType::float64);
    Tensor inv = reciprocal(sqrt(add(var, eps)));
    if (eps == 0) inv = where(eq(var, 0.0), zeros_like(inv), inv);
    invstd = inv.to(acc);
    // torch updates the running statistics outside autograd, with the unbiased variance; an
    // empty batch leaves them alone.
    if (count > 0 && running_mean.defined()) {
      Tensor rm = running_mean.detach();
      rm.copy_(add(mul(rm.to(acc), 1.0 - momentum), mul(mean, momentum)));
    }
    if (count > 0 && running_var.defined()) {
      Tensor rv = running_var.detach();
      const Tensor kept = mul(rv.to(acc), 1.0 - momentum);
      const Tensor unbiased = div(sq_dev, static_cast<double>(count - 1));
      // torch 1.13's float32 running variance adds momentum * unbiased (momentum rounded to
      // float) to the rounded (1 - momentum) * running_var with one rounding, as an fma (its
      // running mean and every float64 update round each product): the float32 product is
      // exact in float64, so the sum rounds once there and then to float32.
      if (acc == DType::float32 && rv.dtype() == DType::float32) {
        const double m32 = static_cast<float>(momentum);
        rv.copy_(add(mul(unbiased.to(DType::float64), m32), kept.to(DType::float64)));
      } else {
        rv.copy_(add(kept, mul(unbiased, momentum)));
      }
    }
    if (half_stats) {
      mean = mean.to(x.dtype()).to(acc);
      invstd = invstd.to(x.dtype()).to(acc);
    }
  } else {
    mean = acc_of(running_mean, acc).clone();  // saved for backward: not the buffer itself
    invstd = rsqrt(add(acc_of(running_var, acc), eps));
  }
  // torch 1.13's order with or without weight and bias: x * alpha + beta, alpha = invstd (*
  // weight), beta = bias - mean * alpha, both fused (the kernel's a, center, c form); a missing
  // bias is 0, not a missing term, which would give (x - mean) * alpha instead.
  const Tensor scale = weight.defined() ? mul(invstd, acc_of(weight, acc)) : invstd;
  const Tensor shift =
      bias.defined() ? acc_of(bias, acc) : zeros({s.C}, {.dtype = acc, .device = x.device()});
  const AffineTerms t{.u = xc, .a = scale, .center = mean, .c = shift};
  Tensor out = plane_affine(t, xc, s.N * s.C, s.L, /*period=*/s.C);
  return {out, mean, invstd};
}

// Records {out, save_mean, save_invstd} as outputs so the derivative rule can reuse the
// statistics; the running statistics are not inputs (no gradient flows to them).
Tensor batch_norm(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight_in, const Tensor& bias_in, bool training, double momentum,
                  double eps) {
  Tensor x = x_in, weight = weight_in, bias = bias_in;
  apply_autocast(OpId::batch_norm, {&x, &weight, &bias});
  auto [out, save_mean, save_invstd] =
      batch_norm_with_stats(x, running_mean, running_var, weight, bias, training, momentum, eps);
  BatchNormAttrs attrs{training, momentum, eps};
  record_op(OpId::batch_norm, {x, weight, bias}, {&out, &save_mean, &save_invstd}, &attrs,
            "NativeBatchNormBackward0");
  return out;
}

std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& grad_out, const Tensor& x,
                                                       const Tensor& weight,
                                                       const Tensor& save_mean,
                                                       const Tensor& save_invstd, bool training) {
  const char* op = "batch_norm_backward";
  const ChannelShape s = check_channel_input(op, x);
  check_per_channel(op, "weight", weight, x);
  check_per_channel(op, "save_mean", save_mean, x);
  check_per_channel(op, "save_invstd", save_invstd, x);
  FABRIC_CHECK(save_mean.defined() && save_invstd.defined(), ValueError, op,
               ": save_mean and save_invstd are required");
  FABRIC_CHECK(grad_out.sizes() == x.sizes(), ShapeError, op, ": grad_out shape ",
               shape_str(grad_out.sizes()), " does not match the input shape ",
               shape_str(x.sizes()));
  const DType acc = reduce_acc_dtype(x.dtype());
  const DType db_dt = weight.defined() ? weight.dtype() : x.dtype();
  const int64_t count = s.N * s.L;
  if (x.numel() == 0) {
    const TensorOptions o{.dtype = db_dt, .device = x.device()};
    return {empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()}),
            weight.defined() ? zeros({s.C}, o) : Tensor(), zeros({s.C}, o)};
  }
  const Tensor xc = raw(x), gc = raw(grad_out.detach().to(x.dtype()));
  const Tensor center = acc_of(save_mean, acc);
  // Per channel: sum dy, and dot = sum dy * (x - mean).
  auto [sum_dy, dot] = plane_sums(gc, xc, center, s.N * s.C, s.L, /*fold_period=*/s.C);
  const Tensor invstd = acc_of(save_invstd, acc);
  const Tensor w_invstd = weight.defined() ? mul(invstd, acc_of(weight, acc)) : invstd;
  AffineTerms t{.v = gc, .b = w_invstd};
  if (training) {
    // dx = w invstd (dy - mean(dy) - (x - mean) invstd^2 mean(dy (x - mean)))
    const double n = static_cast<double>(count);
    const Tensor k = div(mul(mul(dot, invstd), invstd), n);
    t.u = xc;
    t.center = center;
    t.a = neg(mul(w_invstd, k));
    t.c = neg(div(mul(w_invstd, sum_dy), n));
  }
  Tensor dx = plane_affine(t, xc, s.N * s.C, s.L, /*period=*/s.C);
  Tensor dw = weight.defined() ? mul(dot, invstd).to(weight.dtype()) : Tensor();
  return {dx, dw, sum_dy.to(db_dt)};
}

std::tuple<Tensor, Tensor, Tensor> group_norm_with_stats(const Tensor& x, int64_t num_groups,
                                                         const Tensor& weight, const Tensor& bias,
                                                         double eps) {
  const char* op = "group_norm";
  const ChannelShape s = check_channel_input(op, x);
  const int64_t G = num_groups;
  FABRIC_CHECK(G > 0 && s.C % G == 0, ValueError, op, ": num_groups must divide the ",
               "number of channels: got num_groups ", G, " for ", s.C, " channels (input shape ",
               shape_str(x.sizes()), ")");
  check_per_channel(op, "weight", weight, x);
  check_per_channel(op, "bias", bias, x);
  const DType acc = reduce_acc_dtype(x.dtype());
  const int64_t group_len = s.C / G * s.L;
  const Tensor xc = raw(x);
  auto [mean, sq_dev] = mean_and_sq_dev(xc, 1, s.N * G, group_len, group_len);
  const Tensor rstd = rsqrt(add(div(sq_dev, static_cast<double>(group_len)), eps));
  // torch 1.13's orders: with neither weight nor bias (x - mean) * rstd; with either,
  // x * scale + shift fused, scale = rstd * weight, shift = -scale * mean + bias rounded after
  // each step (a missing weight is 1, a missing bias 0). As torch's, that shift's rounding shows
  // where |scale * mean| >> |y| (a group of one value: rstd = eps^-1/2, y = bias + ~1e-7 scale
  // mean).
  Tensor scale = per_group(rstd, s.N, G, s.C);
  if (weight.defined())
    scale = mul(scale.view({s.N, s.C}), acc_of(weight, acc).view({1, s.C})).reshape({s.N * s.C});
  const Tensor center = per_group(mean, s.N, G, s.C);
  AffineTerms t{.u = xc, .a = scale};
  if (!weight.defined() && !bias.defined()) {
    t.center = center;
  } else {
    t.c = neg(mul(scale, center));
    if (bias.defined()) t.c = add(t.c, per_channel(acc_of(bias, acc), s.N));
  }
  Tensor out = plane_affine(t, xc, s.N * s.C, s.L);
  return {out, mean.view({s.N, G}), rstd.view({s.N, G})};
}

// Records {out, mean, rstd} as outputs so the derivative rule can reuse the statistics.
Tensor group_norm(const Tensor& x_in, int64_t num_groups, const Tensor& weight_in,
                  const Tensor& bias_in, double eps) {
  Tensor x = x_in, weight = weight_in, bias = bias_in;
  apply_autocast(OpId::group_norm, {&x, &weight, &bias});
  auto [out, mean, rstd] = group_norm_with_stats(x, num_groups, weight, bias, eps);
  GroupNormAttrs attrs{num_groups, eps};
  record_op(OpId::group_norm, {x, weight, bias}, {&out, &mean, &rstd}, &attrs,
            "NativeGroupNormBackward0");
  return out;
}

std::tuple<Tensor, Tensor, Tensor> group_norm_backward(const Tensor& grad_out, const Tensor& x,
                                                       int64_t num_groups, const Tensor& weight,
                                                       const Tensor& mean, const Tensor& rstd) {
  const char* op = "group_norm_backward";
  const ChannelShape s = check_channel_input(op, x);
  const int64_t G = num_groups;
  FABRIC_CHECK(G > 0 && s.C % G == 0, ValueError, op, ": num_groups ", G, " does not divide the ",
               s.C, " channels of the input (shape ", shape_str(x.sizes()), ")");
  check_per_channel(op, "weight", weight, x);
  for (const Tensor* t : {&mean, &rstd})
    FABRIC_CHECK(t->defined() && t->numel() == s.N * G, ShapeError, op, ": expected ",
                 t == &mean ? "mean" : "rstd", " of shape (", s.N, ", ", G, "), got ",
                 t->defined() ? shape_str(t->sizes()) : std::string("an undefined tensor"));
  FABRIC_CHECK(grad_out.sizes() == x.sizes(), ShapeError, op, ": grad_out shape ",
               shape_str(grad_out.sizes()), " does not match the input shape ",
               shape_str(x.sizes()));
  const DType acc = reduce_acc_dtype(x.dtype());
  const DType db_dt = weight.defined() ? weight.dtype() : x.dtype();
  if (x.numel() == 0) {
    const TensorOptions o{.dtype = db_dt, .device = x.device()};
    return {empty(x.sizes(), {.dtype = x.dtype(), .device = x.device()}),
            weight.defined() ? zeros({s.C}, o) : Tensor(), zeros({s.C}, o)};
  }
  const int64_t N = s.N, C = s.C, planes = N * C;
  const double group_len = static_cast<double>(C / G * s.L);
  const Tensor xc = raw(x), gc = raw(grad_out.detach().to(x.dtype()));
  const Tensor rstd_g = acc_of(rstd, acc).reshape({N, G});
  const Tensor rstd_c = per_group(rstd_g, N, G, C).view({N, C});
  const Tensor center = per_group(acc_of(mean, acc), N, G, C);
  auto [sdy_p, sdyx_p] = plane_sums(gc, xc, center, planes, s.L);
  const Tensor sdy = sdy_p.view({N, C}), sdyx = sdyx_p.view({N, C});  // sum dy, dy * (x - mean)
  const Tensor w = weight.defined() ? acc_of(weight, acc).view({1, C}) : Tensor();
  auto group_sum = [&](const Tensor& v) {  // (N, C) -> (N, G)
    return sum((w.defined() ? mul(v, w) : v).view({N, G, C / G}), {2});
  };
  // g = dy w, xhat = (x - mean) rstd per group:
  // dx = rstd (g - mean(g) - xhat mean(g xhat)) = w rstd dy - rstd^2 mgx (x - mean) - rstd mg
  const Tensor mg = div(group_sum(sdy), group_len);
  const Tensor mgx = div(mul(group_sum(sdyx), rstd_g), group_len);
  AffineTerms t;
  t.v = gc;
  t.b = (w.defined() ? mul(rstd_c, w) : rstd_c).reshape({planes});
  t.u = xc;
  t.center = center;
  t.a = per_group(neg(mul(mul(rstd_g, rstd_g), mgx)), N, G, C);
  t.c = per_group(neg(mul(rstd_g, mg)), N, G, C);
  Tensor dx = plane_affine(t, xc, planes, s.L);
  Tensor dw = weight.defined() ? sum(mul(sdyx, rstd_c), {0}).to(weight.dtype()) : Tensor();
  return {dx, dw, sum(sdy, {0}).to(db_dt)};
}

}  // namespace fabric
