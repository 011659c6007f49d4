// Derivatives of reductions, softmax, the normalisations and the losses. Reduced gradients are
// re-expanded over the reduced dims; the fused ones call the op layer's backward helpers.
#include <algorithm>
#include <cmath>
#include <string_view>

#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/ops_backward_loss.h"
#include "tensor/ops_backward_norm.h"

namespace fabric {
namespace {

// Gives a reduced gradient back its reduced dims (size 1), ready to broadcast to the input.
Tensor unreduce(const Tensor& g, std::vector<int64_t> dims, bool keepdim) {
  if (keepdim) return g;
  std::sort(dims.begin(), dims.end());
  Tensor r = g;
  for (int64_t d : dims) r = r.unsqueeze(d);
  return r;
}

int64_t reduced_count(const Shape& in, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= in[d];
  return n;
}

FABRIC_DERIVATIVE(sum) {
  ReduceAttrs a = attrs_of<ReduceAttrs>(rec);
  return [a](const Grads& g) { return Grads{unreduce(g[0], a.dims, a.keepdim).expand(a.input_shape)}; };
}

FABRIC_DERIVATIVE(mean) {
  ReduceAttrs a = attrs_of<ReduceAttrs>(rec);
  const double n = static_cast<double>(reduced_count(a.input_shape, a.dims));
  return [a, n](const Grads& g) { return Grads{div(unreduce(g[0], a.dims, a.keepdim), n).expand(a.input_shape)}; };
}

// amax/amin: the gradient is shared evenly among the elements equal to the extreme. max()/min()
// over everything record as amax/amin under torch's MaxBackward1/MinBackward1, whose rule
// (evenly_distribute_backward) also counts NaN as equal to a NaN result: the NaNs share the
// gradient. amax/amin keep torch's plain equality there, which makes every gradient NaN.
FunctionNode::Backward extreme_rule(const OpRecord& rec) {
  ReduceAttrs a = attrs_of<ReduceAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), out = saved(rec.outputs[0]);
  const std::string_view node = rec.node_name ? rec.node_name : "";
  const bool nan_is_a_tie = node == "MaxBackward1" || node == "MinBackward1";
  return [a, x, out, nan_is_a_tie](const Grads& g) {
    Tensor extreme = unreduce(out, a.dims, a.keepdim);
    Tensor hit = eq(x, extreme);
    if (nan_is_a_tie) hit = logical_or(hit, logical_and(ne(x, x), ne(extreme, extreme)));
    hit = hit.to(g[0].dtype());
    Tensor count = sum(hit, a.dims, true);
    return Grads{div(mul(hit, unreduce(g[0], a.dims, a.keepdim)), count)};
  };
}
FABRIC_DERIVATIVE(amax) { return extreme_rule(rec); }
FABRIC_DERIVATIVE(amin) { return extreme_rule(rec); }

// max/min along a dim: the gradient goes to the recorded index.
FunctionNode::Backward indexed_extreme_rule(const OpRecord& rec) {
  DimAttrs a = attrs_of<DimAttrs>(rec);
  Tensor idx = saved(rec.outputs[1]);
  Shape shape = rec.inputs[0].sizes();
  return [a, idx, shape](const Grads& g) {
    if (shape.empty()) return Grads{g[0].reshape({})};
    Tensor gk = unreduce(g[0], {a.dim}, a.keepdim);
    Tensor ik = unreduce(idx, {a.dim}, a.keepdim);
    if (grad_enabled()) return Grads{scatter_add_into_zeros(shape, a.dim, ik, gk)};  // create_graph
    return Grads{gather_backward(gk, shape, a.dim, ik)};
  };
}
FABRIC_DERIVATIVE(max) { return indexed_extreme_rule(rec); }
FABRIC_DERIVATIVE(min) { return indexed_extreme_rule(rec); }

// var, and std recorded as var with take_sqrt (tensor/op_attrs.h).
FABRIC_DERIVATIVE(var) {
  VarAttrs a = attrs_of<VarAttrs>(rec);
  Tensor x = saved(rec.inputs[0]);
  Tensor std_out = a.take_sqrt ? saved(rec.outputs[0]) : Tensor();
  const double n = static_cast<double>(reduced_count(x.sizes(), a.dims));
  return [a, x, std_out, n](const Grads& g) {
    Tensor gv = g[0];
    // std: d std / d var = 1 / (2 std), taken as 0 where std is 0 (PyTorch's std_backward): a
    // constant input gets a zero gradient, not 0 * inf = NaN.
    if (std_out.defined())
      gv = where(eq(std_out, 0.0), zeros_like(gv), div(gv, mul(std_out, 2.0)));
    Tensor centered = sub(x, mean(x, a.dims, true));
    return Grads{mul(centered, div(unreduce(gv, a.dims, a.keepdim), (n - a.correction) / 2.0))};
  };
}

FABRIC_DERIVATIVE(norm) {
  NormAttrs a = attrs_of<NormAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), out = saved(rec.outputs[0]);
  return [a, x, out](const Grads& g) {
    Tensor gk = unreduce(g[0], a.dims, a.keepdim), nk = unreduce(out, a.dims, a.keepdim);
    if (a.p == 0.0) return Grads{zeros_like(x)};  // counts non-zeros: piecewise constant
    if (a.p == 2.0) {
      // torch 1.13's grad * (x / ||x||).masked_fill_(||x|| == 0, 0): the quotient first (its
      // rounding), and a NaN or inf gradient on a zero-norm row stays NaN.
      const Tensor unit = div(x, nk);
      return Grads{mul(gk, where(eq(nk, 0.0), zeros_like(unit), unit))};
    }
    // sign() is recorded (its own gradient is zero), as torch's self.sgn(): the p = 1 and inf
    // gradients keep a graph under create_graph, so differentiating them again gives zeros.
    Tensor sign = fabric::sign(x);
    if (a.p == 1.0) return Grads{mul(gk, sign)};
    if (std::isinf(a.p)) {  // the extreme |x| takes it, shared among ties
      // A NaN norm matches no |x|: no element takes the gradient (0, as torch), not 0 / 0.
      Tensor hit = eq(abs(x), nk).to(x.dtype());
      const Tensor ties = clamp(sum(hit, a.dims, true), 1.0, std::nullopt);
      return Grads{div(mul(mul(hit, sign), gk), ties)};
    }
    Tensor safe = where(eq(nk, 0.0), ones_like(nk), nk);
    // x |x|^(p-2) / ||x||^(p-1); for p < 1, |x|^(p-1) is infinite at x = 0, where torch's
    // norm_backward takes the gradient as 0 (not sign(0) * inf = NaN).
    Tensor num = mul(sign, pow(abs(x), a.p - 1.0));
    if (a.p < 1.0) num = where(eq(x, 0.0), zeros_like(num), num);
    return Grads{where(eq(nk, 0.0), zeros_like(x), mul(num, div(gk, pow(safe, a.p - 1.0))))};
  };
}

FABRIC_DERIVATIVE(logsumexp) {
  ReduceAttrs a = attrs_of<ReduceAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), out = saved(rec.outputs[0]);
  return [a, x, out](const Grads& g) {
    return Grads{mul(unreduce(g[0], a.dims, a.keepdim), exp(sub(x, unreduce(out, a.dims, a.keepdim))))};
  };
}

FABRIC_DERIVATIVE(cumsum) {
  int64_t dim = attrs_of<DimAttrs>(rec).dim;
  const DType in_dt = rec.inputs[0].dtype();
  return [dim, in_dt](const Grads& g) {
    // torch's cumsum_backward(grad.to(x's dtype), dim): with a dtype argument the gradient is
    // rounded to x's dtype before it is summed.
    const Tensor gi = g[0].to(in_dt);
    if (gi.dim() == 0) return Grads{gi};
    // The reversed cumulative sum, summed from the far end as torch's cumsum_backward: "total -
    // prefix + g" cancels, losing the small entries beside a large one (1e8 and ones: -7).
    return Grads{flip(cumsum(flip(gi, {dim}), dim), {dim})};
  };
}

FABRIC_DERIVATIVE(softmax) {
  int64_t dim = attrs_of<DimAttrs>(rec).dim;
  Tensor out = saved(rec.outputs[0]);
  DType in_dt = rec.inputs[0].dtype();
  return [dim, out, in_dt](const Grads& g) {
    // The fused kernel records nothing: with create_graph, y (g - sum(g y)) of recorded ops.
    if (grad_enabled())
      return Grads{mul(out, sub(g[0], sum(mul(g[0], out), {dim}, true))).to(in_dt)};
    return Grads{softmax_backward(g[0], out, dim, in_dt)};
  };
}

FABRIC_DERIVATIVE(log_softmax) {
  int64_t dim = attrs_of<DimAttrs>(rec).dim;
  Tensor out = saved(rec.outputs[0]);
  DType in_dt = rec.inputs[0].dtype();
  return [dim, out, in_dt](const Grads& g) {
    // With create_graph: g - exp(y) sum(g), of recorded ops.
    if (grad_enabled()) return Grads{sub(g[0], mul(exp(out), sum(g[0], {dim}, true))).to(in_dt)};
    return Grads{log_softmax_backward(g[0], out, dim, in_dt)};
  };
}

// The normalisations' and cross_entropy's gradients are fused kernels, which record nothing; in
// grad mode (create_graph) they are compositions of recorded ops, computed in the forward's
// accumulation dtype (float32 for half inputs). The statistics are recomputed from x there: the
// saved mean/rstd are outputs of the node itself, whose gradient the rule would drop.
DType accumulation_dtype(const Tensor& x) {
  return x.dtype() == DType::float64 ? DType::float64 : DType::float32;
}

std::vector<int64_t> trailing_dims(const Tensor& x, const Shape& normalized_shape) {
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - static_cast<int64_t>(normalized_shape.size()); d < x.dim(); ++d)
    dims.push_back(d);
  return dims;
}

// x_hat = (x - mean) rstd (layer_norm) or x rstd (rms_norm), gradient g: with gw = g w,
// dx = rstd (gw - mean(gw) - x_hat mean(gw x_hat)) (no mean(gw) term for rms_norm),
// dw = sum over the leading dims of g x_hat, db = the same of g.
Grads normalization_derivative(bool rms, const Tensor& g_in, const Tensor& x_in, const Tensor& w_in,
                               const NormalizeAttrs& a) {
  const DType acc = accumulation_dtype(x_in);
  const std::vector<int64_t> dims = trailing_dims(x_in, a.normalized_shape);
  const Tensor x = x_in.to(acc), g = g_in.to(acc);
  const Tensor centered = rms ? x : sub(x, mean(x, dims, true));
  const Tensor rstd = rsqrt(add(mean(mul(centered, centered), dims, true), a.eps));
  const Tensor x_hat = mul(centered, rstd);
  const Tensor gw = w_in.defined() ? mul(g, w_in.to(acc)) : g;
  Tensor inner = sub(gw, mul(x_hat, mean(mul(gw, x_hat), dims, true)));
  if (!rms) inner = sub(inner, mean(gw, dims, true));
  Grads out{mul(inner, rstd).to(x_in.dtype()), Tensor(), Tensor()};
  if (w_in.defined()) out[1] = sum_to(mul(g, x_hat), a.normalized_shape).to(w_in.dtype());
  if (!rms) out[2] = sum_to(g, a.normalized_shape).to(w_in.defined() ? w_in.dtype() : x_in.dtype());
  return out;
}

FABRIC_DERIVATIVE(layer_norm) {
  NormalizeAttrs a = attrs_of<NormalizeAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  Tensor mean = saved(rec.outputs[1]), rstd = saved(rec.outputs[2]);
  const bool has_bias = rec.num_inputs > 2 && rec.inputs[2].defined();
  return [a, x, w, mean, rstd, has_bias](const Grads& g) {
    if (!g[0].defined()) return Grads{Tensor(), Tensor(), Tensor()};
    if (grad_enabled()) {
      Grads d = normalization_derivative(false, g[0], x, w, a);
      if (!has_bias) d[2] = Tensor();
      return d;
    }
    auto [dx, dw, db] = layer_norm_backward(g[0], x, a.normalized_shape, w, mean, rstd);
    return Grads{dx, dw, has_bias ? db : Tensor()};
  };
}

FABRIC_DERIVATIVE(rms_norm) {
  NormalizeAttrs a = attrs_of<NormalizeAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  Tensor rstd = saved(rec.outputs[1]);
  return [a, x, w, rstd](const Grads& g) {
    if (!g[0].defined()) return Grads{Tensor(), Tensor()};
    if (grad_enabled()) {
      Grads d = normalization_derivative(true, g[0], x, w, a);
      return Grads{d[0], d[1]};
    }
    auto [dx, dw] = rms_norm_backward(g[0], x, a.normalized_shape, w, rstd);
    return Grads{dx, dw};
  };
}

// Every dim of an (N, C, ...) input but the channel dim, and the shape (1, C, 1, ...) that
// broadcasts a per-channel vector against it.
std::vector<int64_t> non_channel_dims(const Tensor& x) {
  std::vector<int64_t> dims = {0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}
Shape channel_shape(const Tensor& x) {
  Shape s(static_cast<size_t>(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

// batch_norm's gradient of recorded ops (create_graph). Training: layer_norm's formula over every
// dim but the channel dim (the batch statistics depend on x); eval: the saved running statistics
// are constants, dx = g w invstd.
Grads batch_norm_derivative(const Tensor& g_in, const Tensor& x_in, const Tensor& w_in,
                            const Tensor& save_mean, const Tensor& save_invstd,
                            const BatchNormAttrs& a) {
  const DType acc = accumulation_dtype(x_in);
  const std::vector<int64_t> dims = non_channel_dims(x_in);
  const Shape cs = channel_shape(x_in);
  const Tensor x = x_in.to(acc), g = g_in.to(acc);
  Tensor centered, rstd;
  if (a.training) {
    centered = sub(x, mean(x, dims, true));
    rstd = rsqrt(add(mean(mul(centered, centered), dims, true), a.eps));
  } else {
    centered = sub(x, save_mean.to(acc).reshape(cs));
    rstd = save_invstd.to(acc).reshape(cs);
  }
  const Tensor x_hat = mul(centered, rstd);
  const Tensor gw = w_in.defined() ? mul(g, w_in.to(acc).reshape(cs)) : g;
  Tensor inner = gw;
  if (a.training)
    inner = sub(sub(gw, mean(gw, dims, true)), mul(x_hat, mean(mul(gw, x_hat), dims, true)));
  const DType p_dt = w_in.defined() ? w_in.dtype() : x_in.dtype();
  return {mul(inner, rstd).to(x_in.dtype()),
          w_in.defined() ? sum(mul(g, x_hat), dims).to(p_dt) : Tensor(), sum(g, dims).to(p_dt)};
}

FABRIC_DERIVATIVE(batch_norm) {
  BatchNormAttrs a = attrs_of<BatchNormAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  Tensor save_mean = saved(rec.outputs[1]), save_invstd = saved(rec.outputs[2]);
  const bool has_bias = rec.num_inputs > 2 && rec.inputs[2].defined();
  return [a, x, w, save_mean, save_invstd, has_bias](const Grads& g) {
    if (!g[0].defined()) return Grads{Tensor(), Tensor(), Tensor()};
    Grads d;
    if (grad_enabled()) {
      d = batch_norm_derivative(g[0], x, w, save_mean, save_invstd, a);
    } else {
      auto [dx, dw, db] = batch_norm_backward(g[0], x, w, save_mean, save_invstd, a.training);
      d = {dx, dw, db};
    }
    if (!has_bias) d[2] = Tensor();
    return d;
  };
}

// group_norm's gradient of recorded ops (create_graph): layer_norm's formula per (n, group).
Grads group_norm_derivative(const Tensor& g_in, const Tensor& x_in, const Tensor& w_in,
                            const GroupNormAttrs& a) {
  const DType acc = accumulation_dtype(x_in);
  const int64_t N = x_in.size(0), G = a.num_groups;
  const Shape grouped = {N, G, N * G == 0 ? 0 : x_in.numel() / (N * G)};
  const Shape cs = channel_shape(x_in);
  const std::vector<int64_t> dims = non_channel_dims(x_in);
  const Tensor x = x_in.to(acc).reshape(grouped), g = g_in.to(acc);
  const Tensor centered = sub(x, mean(x, {2}, true));
  const Tensor rstd = rsqrt(add(mean(mul(centered, centered), {2}, true), a.eps));
  const Tensor x_hat = mul(centered, rstd);
  const Tensor gw = (w_in.defined() ? mul(g, w_in.to(acc).reshape(cs)) : g).reshape(grouped);
  const Tensor inner =
      sub(sub(gw, mean(gw, {2}, true)), mul(x_hat, mean(mul(gw, x_hat), {2}, true)));
  const DType p_dt = w_in.defined() ? w_in.dtype() : x_in.dtype();
  const Tensor x_hat_full = x_hat.reshape(x_in.sizes());
  return {mul(inner, rstd).reshape(x_in.sizes()).to(x_in.dtype()),
          w_in.defined() ? sum(mul(g, x_hat_full), dims).to(p_dt) : Tensor(),
          sum(g, dims).to(p_dt)};
}

FABRIC_DERIVATIVE(group_norm) {
  GroupNormAttrs a = attrs_of<GroupNormAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), w = saved(rec.inputs[1]);
  Tensor mean = saved(rec.outputs[1]), rstd = saved(rec.outputs[2]);
  const bool has_bias = rec.num_inputs > 2 && rec.inputs[2].defined();
  return [a, x, w, mean, rstd, has_bias](const Grads& g) {
    if (!g[0].defined()) return Grads{Tensor(), Tensor(), Tensor()};
    Grads d;
    if (grad_enabled()) {
      d = group_norm_derivative(g[0], x, w, a);
    } else {
      auto [dx, dw, db] = group_norm_backward(g[0], x, a.num_groups, w, mean, rstd);
      d = {dx, dw, db};
    }
    if (!has_bias) d[2] = Tensor();
    return d;
  };
}

// Class-index cross_entropy's gradient of recorded ops: (softmax(z) - q) per non-ignored
// position, q = (1 - label_smoothing) one_hot(t) + label_smoothing / C, times the incoming
// gradient (divided by the number of non-ignored positions for "mean").
Tensor cross_entropy_derivative(const Tensor& g, const Tensor& logits, const Tensor& target,
                                const LossAttrs& a) {
  const int64_t class_dim = logits.dim() == 1 ? 0 : 1;
  const int64_t classes = logits.size(class_dim);
  const DType acc = accumulation_dtype(logits);
  const Tensor valid = ne(target, a.ignore_index);
  // one_hot takes int64 indices; int32 targets are widened.
  const Tensor safe_target = where(valid, target.to(DType::int64), Scalar(int64_t{0}));
  Tensor picked = one_hot(safe_target, classes).to(acc);  // (..., C): the class dim last
  if (class_dim == 1 && logits.dim() > 2) picked = picked.unsqueeze(1).transpose(1, -1).squeeze(-1);
  const Tensor q = add(mul(picked, 1.0 - a.label_smoothing), a.label_smoothing / classes);
  const Tensor valid_f = valid.to(acc);
  Tensor scale = g.to(acc);
  if (a.reduction == "none") {
    scale = mul(scale, valid_f);
  } else {
    scale = mul(valid_f, scale);
    // Every target ignored: torch's mean is NaN, its gradient 0 (as nll_loss's rule).
    if (a.reduction == "mean") scale = div(scale, clamp(sum(valid_f), 1.0, std::nullopt));
  }
  const Tensor d = mul(sub(softmax(logits.to(acc), class_dim), q), scale.unsqueeze(class_dim));
  return d.to(logits.dtype());
}

FABRIC_DERIVATIVE(cross_entropy) {
  LossAttrs a = attrs_of<LossAttrs>(rec);
  Tensor logits = saved(rec.inputs[0]), target = saved(rec.inputs[1]);
  return [a, logits, target](const Grads& g) {
    if (grad_enabled()) return Grads{cross_entropy_derivative(g[0], logits, target, a), Tensor()};
    return Grads{cross_entropy_backward(g[0], logits, target, a.ignore_index, a.reduction, a.label_smoothing),
                 Tensor()};
  };
}

FABRIC_DERIVATIVE(nll_loss) {
  LossAttrs a = attrs_of<LossAttrs>(rec);
  Tensor lp = saved(rec.inputs[0]), target = saved(rec.inputs[1]);
  return [a, lp, target](const Grads& g) {
    // One fused kernel; with create_graph the same of recorded ops, below.
    if (!grad_enabled())
      return Grads{nll_loss_backward(g[0], lp, target, a.ignore_index, a.reduction), Tensor()};
    // d/d logp[n, t_n] = -g (÷ number of non-ignored targets for "mean"); zero elsewhere.
    const bool unbatched = lp.dim() == 1;
    // scatter_add takes int64 indices; int32 targets are widened.
    Tensor t = (unbatched ? target.reshape({1}) : target).to(DType::int64);
    Tensor valid = ne(t, a.ignore_index);
    Tensor safe_t = where(valid, t, Scalar(int64_t{0}));
    Tensor w = valid.to(lp.dtype());
    if (a.reduction == "none") {
      w = mul(w, unbatched ? g[0].reshape({1}) : g[0]);
    } else {
      w = mul(w, g[0]);
      // Every target ignored: the mean is 0/0 = NaN, but torch writes no gradient (0), not NaN.
      if (a.reduction == "mean") w = div(w, clamp(sum(valid.to(lp.dtype())), 1.0, std::nullopt));
    }
    Shape full = unbatched ? Shape{1, lp.size(0)} : lp.sizes();
    Tensor grad = scatter_add(zeros(full, {.dtype = lp.dtype(), .device = lp.device()}), 1, safe_t.unsqueeze(1),
                              neg(w).unsqueeze(1));
    // torch's gradient has the log-probabilities as an input whose derivative is zero, so a
    // second grad through it gives zeros instead of refusing a gradient without history. A where
    // that never picks them connects them the same way (and reads no -inf of them).
    if (lp.requires_grad())
      grad = where(zeros(full, {.dtype = DType::bool_, .device = lp.device()}),
                   unbatched ? lp.reshape(full) : lp, grad);
    return Grads{unbatched ? grad.reshape(lp.sizes()) : grad, Tensor()};
  };
}

FABRIC_DERIVATIVE(mse_loss) {
  LossAttrs a = attrs_of<LossAttrs>(rec);
  Tensor x = saved(rec.inputs[0]), y = saved(rec.inputs[1]);
  const bool need_y = rec.inputs[1].requires_grad();
  return [a, x, y, need_y](const Grads& g) {
    Tensor d = mul(sub(x, y), 2.0);
    Tensor gx = mul(d, g[0]);
    if (a.reduction == "mean") gx = div(gx, static_cast<double>(std::max<int64_t>(1, numel_of(broadcast_shapes(x.sizes(), y.sizes(), "mse_loss")))));
    return Grads{gx, need_y ? neg(gx) : Tensor()};
  };
}

}  // namespace
}  // namespace fabric
