// torch.nn.functional's elementwise losses: l1, smooth_l1, huber, binary_cross_entropy (+ with
// logits) and kl_div, as compositions of differentiable ops written in torch 1.13's own formulas
// (so autograd, autocast and the CUDA backend come from those ops). binary_cross_entropy and
// binary_cross_entropy_with_logits record themselves: their gradients are torch's closed forms
// (autograd/derivatives_loss.cpp), finite at probabilities 0 and 1 and at infinite logits where
// the compositions' would be 0 * inf = NaN.
#include <cmath>

#include "tensor/autocast.h"
#include "tensor/deferred_check.h"
#include "tensor/loss_argument_checks.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/unit_interval_check.h"
#include "tensor/warning.h"

namespace fabric {
namespace {

enum class Reduction { none, mean, sum, batchmean };

Reduction parse_reduction(const char* op, std::string_view r, bool batchmean_allowed = false) {
  if (r == "mean") return Reduction::mean;
  if (r == "elementwise_mean") {  // torch's _Reduction.get_enum: deprecated, then "mean"
    warn("reduction='elementwise_mean' is deprecated, please use reduction='mean' instead.");
    return Reduction::mean;
  }
  if (r == "sum") return Reduction::sum;
  if (r == "none") return Reduction::none;
  if (batchmean_allowed && r == "batchmean") return Reduction::batchmean;
  throw ValueError(detail::cat(op, ": reduction must be ",
                               batchmean_allowed ? "\"mean\", \"sum\", \"none\" or \"batchmean\""
                                                 : "\"mean\", \"sum\" or \"none\"",
                               ", got \"", r, "\""));
}

Tensor reduce(const Tensor& losses, Reduction r) {
  switch (r) {
    case Reduction::none:
      return losses;
    case Reduction::sum:
      return sum(losses);
    case Reduction::mean:
      return mean(losses);  // an empty input gives NaN, as torch
    case Reduction::batchmean:
      break;  // kl_div divides the sum itself
  }
  return losses;
}

void check_floating(const char* op, const char* what, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": ", what, " is undefined");
  FABRIC_CHECK(is_floating(t.dtype()) && !is_fp8(t.dtype()), DTypeError, op, ": expected a ", what,
               " of a floating dtype (float64/float32/float16/bfloat16), got ",
               dtype_name(t.dtype()), " of shape ", shape_str(t.sizes()));
}

// The checks of the losses whose target broadcasts against the input (torch broadcasts both
// ways there): both floating, shapes broadcastable.
void check_pair(const char* op, const Tensor& input, const Tensor& target) {
  check_floating(op, "input", input);
  check_floating(op, "target", target);
  broadcast_shapes(input.sizes(), target.sizes(), op);  // raises ShapeError naming both
}

// weight / pos_weight multiply the loss in place in torch, so they broadcast one way only: to
// the input's shape, never growing it.
void check_broadcasts_to_input(const char* op, const char* what, const Tensor& t,
                               const Tensor& input) {
  if (!t.defined()) return;
  check_floating(op, what, t);
  const Shape &ts = t.sizes(), &is = input.sizes();
  bool fits = ts.size() <= is.size();
  for (size_t d = 1; fits && d <= ts.size(); ++d)
    fits = ts[ts.size() - d] == 1 || ts[ts.size() - d] == is[is.size() - d];
  FABRIC_CHECK(fits, ShapeError, op, ": ", what, " of shape ", shape_str(ts),
               " must broadcast to the input's shape ", shape_str(is));
}

// binary_cross_entropy's input must lie in [0, 1]; NaN fails the test too, as in torch's kernel
// check. The CPU counts the failures and raises at once; a device whose kernels check values as
// they run (CUDA) counts them in a kernel under an armed check instead of reading the count back
// (which waited for the device on every call): the same ValueError surfaces at its next
// synchronisation.
RangeErrorText unit_interval_error_text(const char* op, const Tensor& x) {
  return {
      detail::cat(op, ": all elements of input should be between 0 and 1; "),
      detail::cat(" of ", x.numel(), " in the input of shape ", shape_str(x.sizes()), " are not"),
      RangeErrorText::Kind::value_count};
}

void check_unit_interval_input(const char* op, const Tensor& x) {
  if (ArmRangeCheckFn arm = arm_range_check_stub.find(x.device())) {
    if (x.numel() == 0) return;
    const Tensor xc = x.contiguous();
    const uint64_t id = arm(x.device().index, unit_interval_error_text(op, x));
    check_unit_interval_stub(x.device())(xc.data_ptr(), xc.dtype(), xc.numel(), id);
    return;
  }
  const int64_t outside = sum(logical_not(logical_and(ge(x, 0), le(x, 1)))).item<int64_t>();
  if (outside == 0) return;
  const RangeErrorText text = unit_interval_error_text(op, x);
  throw ValueError(detail::cat(text.head, outside, text.tail));
}

// 1 - t, exactly; +0 at t == 1 (-(t - 1) would give -0, and 1 / -0 = -inf).
Tensor one_minus(const Tensor& t) { return add(neg(t), 1); }

// (input - target).abs(), torch's z.
Tensor abs_diff(const Tensor& input, const Tensor& target) { return abs(sub(input, target)); }

// smooth_l1/huber's losses plus a term that is 0 with a zero gradient wherever the difference d is
// a number, and where it is NaN a NaN whose gradient is NaN and whose second derivative is 0, as
// torch's kernels give a NaN difference (their comparisons fail; the backward multiplies by d, the
// double backward tests |d| < beta). nan_d * detach(nan_d): no branch multiplies 0 by an infinite
// d, which would leak NaN into a finite gradient.
// Only a loss that records a gradient needs it (where it is not 0, the loss is NaN already), so
// one that does not skips its four passes.
Tensor with_nan_difference_term(const Tensor& losses, const Tensor& d) {
  if (!grad_mode_enabled() || !d.requires_grad()) return losses;
  const Tensor nan_d = where(isnan(d), d, 0.0);
  return add(losses, mul(nan_d, nan_d.detach()));
}

}  // namespace

Tensor l1_loss(const Tensor& input_in, const Tensor& target_in, std::string_view reduction) {
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::l1_loss, {&input, &target});
  const Reduction red = parse_reduction("l1_loss", reduction);
  check_pair("l1_loss", input, target);
  detail::warn_if_target_size_differs("l1_loss", input, target);
  return reduce(abs_diff(input, target), red);
}

Tensor smooth_l1_loss(const Tensor& input_in, const Tensor& target_in, std::string_view reduction,
                      double beta) {
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::smooth_l1_loss, {&input, &target});
  const Reduction red = parse_reduction("smooth_l1_loss", reduction);
  FABRIC_CHECK(beta >= 0, ValueError, "smooth_l1_loss: beta must be >= 0, got ", beta);
  check_pair("smooth_l1_loss", input, target);
  detail::warn_if_target_size_differs("smooth_l1_loss", input, target);
  // beta == 0 is l1 (the quadratic branch would divide by zero, and its NaN gradient would leak
  // through where's backward), with torch's subgradients at x == y where abs's are 0: -1 for the
  // input (its kernel tests x <= -beta first) and -1 for the target too, as torch differentiates
  // the target by the same kernel with input and target swapped. The tie branch is 0 with
  // exactly those gradients; elsewhere |d| has sign(d) and -sign(d).
  if (beta == 0) {
    const Tensor d = sub(input, target);
    const Tensor tie = sub(sub(input.detach(), input), sub(target, target.detach()));
    return reduce(with_nan_difference_term(where(eq(d, 0), tie, where(lt(d, 0), neg(d), d)), d),
                  red);
  }
  const Tensor d = sub(input, target), z = abs(d), dq = clamp(d, -beta, beta);
  // z < beta ? 0.5 * z * z / beta : z - 0.5 * beta. The quadratic branch reads z clamped to beta:
  // the same values where it is taken, and where it is not (z infinite or overflowing) its unused
  // gradient is 0 * beta, not the 0 * inf = NaN that would reach the input through where.
  // It squares the signed difference (clamped to [-beta, beta]), whose square is |d|'s bit for bit:
  // through |d| the second derivative at d == 0 was 0 (abs's subgradient there), not 1 / beta.
  const Tensor losses = where(lt(z, beta), div(mul(mul(dq, 0.5), dq), beta), sub(z, 0.5 * beta));
  return reduce(with_nan_difference_term(losses, d), red);
}

Tensor huber_loss(const Tensor& input_in, const Tensor& target_in, std::string_view reduction,
                  double delta) {
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::huber_loss, {&input, &target});
  const Reduction red = parse_reduction("huber_loss", reduction);
  FABRIC_CHECK(delta > 0, ValueError, "huber_loss: delta must be > 0, got ", delta);
  check_pair("huber_loss", input, target);
  detail::warn_if_target_size_differs("huber_loss", input, target);
  const Tensor d = sub(input, target), z = abs(d), dq = clamp(d, -delta, delta);
  // z < delta ? 0.5 * z * z : delta * (z - 0.5 * delta), written into a tensor of the input's
  // dtype (torch's loss is empty_like(input)) before the reduction.
  // The quadratic branch reads z clamped to delta, as smooth_l1_loss's: no NaN gradient from an
  // infinite difference.
  // Squared signed (a second derivative of 1 at d == 0, as smooth_l1_loss's).
  const Tensor losses =
      with_nan_difference_term(
          where(lt(z, delta), mul(mul(dq, 0.5), dq), mul(sub(z, 0.5 * delta), delta)), d)
          .to(input.dtype());
  return reduce(losses, red);
}

Tensor binary_cross_entropy(const Tensor& input_in, const Tensor& target_in,
                            const Tensor& weight_in, std::string_view reduction) {
  const char* op = "binary_cross_entropy";
  Tensor input = input_in, target = target_in, weight = weight_in;
  // torch refuses it under CUDA autocast: in fp16 it saturates (spec §3, "CUDA ban").
  FABRIC_CHECK(!(input.defined() && input.device().is_cuda() && autocast_enabled(DeviceType::cuda)),
               NotImplementedError, op,
               ": unsafe to autocast on CUDA; a sigmoid before it and this loss should be "
               "combined into binary_cross_entropy_with_logits, which is safe to autocast");
  apply_autocast(OpId::binary_cross_entropy, {&input, &target, &weight});
  const Reduction red = parse_reduction(op, reduction);
  check_floating(op, "input", input);
  check_floating(op, "target", target);
  FABRIC_CHECK(target.dtype() == input.dtype(), DTypeError, op,
               ": expected a target of the input's dtype ", dtype_name(input.dtype()), ", got ",
               dtype_name(target.dtype()));
  FABRIC_CHECK(target.sizes() == input.sizes(), ShapeError, op, ": target of shape ",
               shape_str(target.sizes()), " must have the input's shape ", shape_str(input.sizes()),
               " (binary_cross_entropy does not broadcast them)");
  check_broadcasts_to_input(op, "weight", weight, input);
  detail::check_no_derivative_needed(op, "weight", weight);
  const Tensor x = input.detach(), t = target.detach();
  const Tensor w = weight.defined() ? weight.detach().to(input.dtype()) : Tensor();
  check_unit_interval_input(op, x);
  // (t - 1) * max(log(1 - x), -100) - t * max(log(x), -100), times weight: computed on detached
  // tensors, so only the op itself records.
  const Tensor log_x = clamp(log(x), -100, std::nullopt);
  const Tensor log_1mx = clamp(log(one_minus(x)), -100, std::nullopt);
  Tensor losses = sub(mul(sub(t, 1), log_1mx), mul(t, log_x));
  if (w.defined()) losses = mul(losses, w);
  Tensor out = reduce(losses, red);
  LossAttrs attrs{0, red == Reduction::none ? "none" : red == Reduction::sum ? "sum" : "mean", 0.0};
  record_op(OpId::binary_cross_entropy, {input, target, weight}, {&out}, &attrs,
            "BinaryCrossEntropyBackward0");
  return out;
}

Tensor binary_cross_entropy_with_logits(const Tensor& input_in, const Tensor& target_in,
                                        const Tensor& weight_in, const Tensor& pos_weight_in,
                                        std::string_view reduction) {
  const char* op = "binary_cross_entropy_with_logits";
  Tensor input = input_in, target = target_in, weight = weight_in, pos_weight = pos_weight_in;
  apply_autocast(OpId::binary_cross_entropy_with_logits, {&input, &target, &weight, &pos_weight});
  const Reduction red = parse_reduction(op, reduction);
  check_floating(op, "input", input);
  check_floating(op, "target", target);
  FABRIC_CHECK(target.sizes() == input.sizes(), ShapeError, op, ": target size ",
               shape_str(target.sizes()), " must be the same as input size ",
               shape_str(input.sizes()));
  check_broadcasts_to_input(op, "weight", weight, input);
  check_broadcasts_to_input(op, "pos_weight", pos_weight, input);
  detail::check_no_derivative_needed(op, "weight", weight);
  detail::check_no_derivative_needed(op, "pos_weight", pos_weight);
  // Computed on detached tensors and recorded as one op: torch 1.13 differentiates it by closed
  // forms (autograd/derivatives_loss.cpp), which stay finite at infinite logits where the
  // composition's gradient was NaN and round as torch's do elsewhere.
  const Tensor x = input.detach(), t = target.detach();
  const Tensor w = weight.defined() ? weight.detach() : Tensor();
  const Tensor pw = pos_weight.defined() ? pos_weight.detach() : Tensor();
  // torch's stable form: with m = max(-x, 0), log(1 + exp(-x)) = m + log(exp(-m) + exp(-x - m)),
  // whose log argument lies in [1, 2]: nothing overflows for any x.
  const Tensor m = clamp(neg(x), 0, std::nullopt);
  const Tensor log_term = log(add(exp(neg(m)), exp(sub(neg(x), m))));
  Tensor losses;
  if (pw.defined()) {
    // (1 - t) * x + (1 + (pos_weight - 1) * t) * (log_term + m)
    const Tensor log_weight = add(mul(sub(pw, 1), t), 1);
    losses = add(mul(one_minus(t), x), mul(log_weight, add(log_term, m)));
  } else {
    losses = add(add(mul(one_minus(t), x), m), log_term);
  }
  if (w.defined()) losses = mul(losses, w);
  // torch builds the loss in place on (1 - target): its dtype is the target's.
  Tensor out = reduce(losses.to(target.dtype()), red);
  LossAttrs attrs{0, red == Reduction::none ? "none" : red == Reduction::sum ? "sum" : "mean", 0.0};
  record_op(OpId::binary_cross_entropy_with_logits, {input, target, weight, pos_weight}, {&out},
            &attrs, "BinaryCrossEntropyWithLogitsBackward0");
  return out;
}

Tensor kl_div(const Tensor& input_in, const Tensor& target_in, std::string_view reduction,
              bool log_target) {
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::kl_div, {&input, &target});
  const Reduction red = parse_reduction("kl_div", reduction, /*batchmean_allowed=*/true);
  check_pair("kl_div", input, target);
  if (red == Reduction::mean)
    warn(
        "kl_div: reduction \"mean\" divides the total loss by both the batch size and the support "
        "size; \"batchmean\" divides only by the batch size, and aligns with the KL div math "
        "definition");
  Tensor losses;
  if (log_target) {
    losses = mul(exp(target), sub(target, input));  // exp(t) * (t - x)
  } else {
    // xlogy(t, t) - t * x; xlogy is 0 where t == 0 (a zero target contributes nothing).
    const Tensor xlogy = where(ne(target, 0), mul(target, log(target)), 0);
    losses = sub(xlogy, mul(target, input));
  }
  if (red != Reduction::batchmean) return reduce(losses, red);
  // torch.nn.functional.kl_div: the sum over the batch size (a 0-dim input is not divided).
  const Tensor total = sum(losses);
  return input.dim() == 0 ? total : div(total, static_cast<double>(input.size(0)));
}

}  // namespace fabric
