// cross_entropy and nll_loss with a per-class weight, and cross_entropy with class-probability
// targets, as compositions of differentiable ops (log_softmax, gather, index_select, where, mul,
// sum, div) in the order torch 1.13's aten composes them (LossNLL.cpp): autograd, autocast and
// the CUDA backend come from those ops. They run in the accumulation dtype (float32 for
// half-precision inputs, as the fused kernels do) and return the dtype torch returns.
#include "tensor/ops_loss_weighted.h"

#include <algorithm>
#include <bit>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/deferred_check.h"
#include "tensor/factory.h"
#include "tensor/loss_argument_checks.h"
#include "tensor/loss_reduction.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/reduce_kernels.h"
#include "tensor/warning.h"

namespace fabric::detail {
namespace {

using Reduction = LossReduction;
constexpr auto parse_reduction = parse_loss_reduction_or_legacy;

bool is_float_dtype(DType d) { return is_floating(d) && !is_fp8(d); }

// The class dim: 0 for an unbatched (C) input, else 1 of (N, C, d...).
int64_t class_dim(const Tensor& input) { return input.dim() == 1 ? 0 : 1; }

void check_input(const char* op, const Tensor& input) {
  FABRIC_CHECK(input.defined(), ValueError, op, ": input is undefined");
  FABRIC_CHECK(is_float_dtype(input.dtype()), DTypeError, op,
               ": expected floating-point input (float64/float32/float16/bfloat16), got ",
               dtype_name(input.dtype()), " of shape ", shape_str(input.sizes()));
  FABRIC_CHECK(input.dim() >= 1, ShapeError, op,
               ": expected input of shape (C), (N, C) or (N, C, d...), got ",
               shape_str(input.sizes()));
}

// One weight per class, on the input's device. Class-index targets need the input's dtype
// (torch's nll_loss raises otherwise); probability targets promote with it, as torch's product.
void check_weight(const char* op, const Tensor& weight, const Tensor& input, bool same_dtype) {
  if (!weight.defined()) return;
  const int64_t classes = input.size(class_dim(input));
  FABRIC_CHECK(weight.dim() == 1 && weight.numel() == classes, ShapeError, op,
               ": weight must hold one value per class: expected shape ", shape_str(Shape{classes}),
               " for input of shape ", shape_str(input.sizes()), ", got weight of shape ",
               shape_str(weight.sizes()));
  FABRIC_CHECK(is_float_dtype(weight.dtype()), DTypeError, op,
               ": expected a floating-point weight, got ", dtype_name(weight.dtype()));
  FABRIC_CHECK(!same_dtype || weight.dtype() == input.dtype(), DTypeError, op,
               ": expected weight of the input's dtype ", dtype_name(input.dtype()), ", got ",
               dtype_name(weight.dtype()));
  FABRIC_CHECK(weight.device() == input.device(), DeviceError, op, ": weight on ", weight.device(),
               ", input on ", input.device());
}

// The weight viewed to broadcast along the class dim of `input`: (C) or (1, C, 1...).
Tensor weight_along_classes(const Tensor& weight, const Tensor& input) {
  if (input.dim() == 1) return weight;
  Shape s(static_cast<size_t>(input.dim()), 1);
  s[1] = weight.numel();
  return weight.reshape(s);
}

// The shape of class-index targets: the input's without the class dim.
Shape class_target_shape(const Tensor& input) {
  Shape s;
  for (int64_t d = 0; d < input.dim(); ++d)
    if (d != class_dim(input)) s.push_back(input.sizes()[d]);
  return s;
}

// The op's IndexError for a target out of [0, C) that is not ignore_index, around the value: the
// fused path's text (ops_loss.cpp), so either path and either device read the same.
RangeErrorText target_error_text(const char* op, const Tensor& input, const Tensor& target,
                                 int64_t ignore_index) {
  const int64_t classes = input.size(class_dim(input));
  return {cat(op, ": target "),
          cat(" is out of bounds for ", classes, " classes (expected a value in [0, ", classes,
              ") or ignore_index=", ignore_index, "); input shape ", shape_str(input.sizes()),
              ", target shape ", shape_str(target.sizes()))};
}

// Whether the input's device checks class targets inside its kernels (CUDA): then the range check
// is armed_target_check's, made by the device without a wait.
bool device_checks_targets(const Tensor& input) {
  return arm_range_check_stub.find(input.device()) != nullptr;
}

// Class-index targets: int64/int32, the input's shape without the class dim, each in [0, C) or
// ignore_index. On the CPU the bounds are read here, so an out-of-range class names itself
// instead of failing inside gather; a device that checks in its kernels gets armed_target_check.
Tensor checked_class_targets(const char* op, const Tensor& input, const Tensor& target,
                             int64_t ignore_index) {
  FABRIC_CHECK(target.defined(), ValueError, op, ": target is undefined");
  FABRIC_CHECK(target.dtype() == DType::int64 || target.dtype() == DType::int32 ||
                   target.dtype() == DType::uint8,
               DTypeError, op,
               ": expected a target of class indices with dtype int64 (or int32, uint8), got ",
               dtype_name(target.dtype()), " of shape ", shape_str(target.sizes()));
  const Shape want = class_target_shape(input);
  FABRIC_CHECK(target.sizes() == want, ShapeError, op, ": expected target of shape ",
               shape_str(want), " for input of shape ", shape_str(input.sizes()),
               ", got target of shape ", shape_str(target.sizes()));
  FABRIC_CHECK(target.device() == input.device(), DeviceError, op, ": target on ", target.device(),
               ", input on ", input.device());
  const Tensor t = target.detach().to(DType::int64);
  if (device_checks_targets(input)) return t;
  const int64_t classes = input.size(class_dim(input));
  for (int64_t v : t.to(Device::cpu()).to_vector<int64_t>()) {
    if (v == ignore_index || (v >= 0 && v < classes)) continue;
    const RangeErrorText text = target_error_text(op, input, target, ignore_index);
    throw IndexError(cat(text.head, v, text.tail));
  }
  return t;
}

// On a device that checks targets in its kernels (CUDA), the check of checked_class_targets
// without reading the targets back (which waited for the device on every call): the fused
// nll_loss kernel runs over the log-probabilities with an armed check, so an out-of-range target
// surfaces at the device's next synchronisation with the CPU's text. Its per-position losses and
// valid count are scratch: the composition computes the weighted loss. Queued before that
// composition's gather, so the first failure the device records is this one. Elsewhere: nothing.
void armed_target_check(const char* op, const Tensor& log_probs, const Tensor& t,
                        const Tensor& target, int64_t ignore_index) {
  ArmRangeCheckFn arm = arm_range_check_stub.find(log_probs.device());
  if (!arm || t.numel() == 0) return;
  ClassGeometry g;
  if (log_probs.dim() == 1) {
    g.classes = log_probs.size(0);
  } else {
    g.outer = log_probs.size(0);
    g.classes = log_probs.size(1);
    for (int64_t d = 2; d < log_probs.dim(); ++d) g.inner *= log_probs.size(d);
  }
  const Tensor lp = log_probs.detach().contiguous(), tc = t.contiguous();
  Tensor valid = empty({}, {.dtype = DType::int64, .device = lp.device()});
  Tensor losses = empty(t.sizes(), {.dtype = reduce_acc_dtype(lp.dtype()), .device = lp.device()});
  TargetCheck check;
  check.id = arm(lp.device().index, target_error_text(op, log_probs, target, ignore_index));
  check.valid_count = static_cast<int64_t*>(valid.data_ptr());
  nll_loss_stub(lp.device())(g, lp.data_ptr(), lp.dtype(), tc.data_ptr(), tc.dtype(), ignore_index,
                             losses.data_ptr(), check);
}

// nll_cascade_sums over A values. The level step is 2^max(4, CeilLog2(P) / 8) (c10's CeilLog2:
// 1 for P <= 2), and a level flushes into the next after a counted position b whose low bits of
// that level are all zero; an ignored position neither adds nor flushes.
template <typename A>
NllSums cascade_sums(const A* loss, const A* weight, const int64_t* target, int64_t positions,
                     int64_t ignore_index) {
  constexpr int64_t kLevels = 8;
  const int64_t ceil_log2 =
      positions <= 2 ? 1 : 64 - std::countl_zero(static_cast<uint64_t>(positions - 1));
  const int64_t power = std::max<int64_t>(4, ceil_log2 / kLevels);
  const int64_t step_mask = (int64_t{1} << power) - 1;
  A loss_sums[kLevels] = {}, weight_sums[kLevels] = {};
  int64_t ignored = 0;
  for (int64_t b = 0; b < positions; ++b) {
    if (target[b] == ignore_index) {
      ++ignored;
      continue;
    }
    loss_sums[0] += loss[b];
    if (weight) weight_sums[0] += weight[b];
    for (int64_t j = 0; j + 1 < kLevels; ++j) {
      if ((b & (step_mask << (j * power))) != 0) break;
      loss_sums[j + 1] += loss_sums[j];
      weight_sums[j + 1] += weight_sums[j];
      loss_sums[j] = 0;
      weight_sums[j] = 0;
    }
  }
  A loss_total = 0, weight_total = 0;  // std::accumulate from 0, level 0 first
  for (int64_t j = 0; j < kLevels; ++j) {
    loss_total += loss_sums[j];
    weight_total += weight_sums[j];
  }
  if (!weight) weight_total = static_cast<A>(positions - ignored);
  return {static_cast<double>(loss_total), static_cast<double>(weight_total)};
}

// A fresh 0-dim result `s` of sum() given the value `value` in place: sum's gradient does not
// read its result, so autograd is sum's while the value is torch's nll reduction.
Tensor with_value(Tensor s, double value) {
  s.detach().fill_(value);
  return s;
}

// Class targets: loss_i = -w[t_i] * logp[i, t_i], 0 where t_i == ignore_index; with smoothing ls,
// (1 - ls) * that + ls / C * (-sum_c w_c * logp[i, c]) (0 where ignored). "mean" divides both
// sums by the sum of w[t_i] over the targets not ignored (nll_loss's total weight; torch divides
// the smoothing term by the same, LossNLL.cpp's #61309 note): NaN when that is 0, and then a zero
// gradient where every target is ignored (the masks below are where()s, not products, so the
// infinite 1/0 never reaches a gradient).
Tensor class_target_loss(const Tensor& log_probs, const Tensor& t, const Tensor& weight,
                         int64_t ignore_index, Reduction red, double ls) {
  const int64_t cd = class_dim(log_probs);
  const int64_t classes = log_probs.size(cd);
  const Tensor valid = ne(t, ignore_index);
  const Tensor safe = where(valid, t, 0);  // an ignored target still needs an index in range
  const Tensor picked = gather(log_probs, cd, safe.unsqueeze(cd)).squeeze(cd);    // logp[i, t_i]
  const Tensor w_t = index_select(weight, 0, safe.flatten()).reshape(t.sizes());  // w[t_i]
  const Tensor nll = where(valid, neg(mul(w_t, picked)), 0.0);
  Tensor smooth;
  if (ls > 0.0)
    smooth =
        where(valid, neg(sum(mul(log_probs, weight_along_classes(weight, log_probs)), {cd})), 0.0);
  auto combine = [&](const Tensor& n, const Tensor& s) {
    return ls > 0.0 ? add(mul(n, 1.0 - ls), mul(s, ls / static_cast<double>(classes))) : n;
  };
  if (red == Reduction::none) return combine(nll, smooth);
  // The nll part's sum and total weight: torch's nll kernel's cascade on the CPU; elsewhere the
  // generic sums.
  Tensor nll_sum = sum(nll), total_weight;
  if (log_probs.device().is_cpu()) {
    const NllSums sums =
        nll_cascade_sums(nll.detach().contiguous(), w_t.detach().contiguous(), t, ignore_index);
    nll_sum = with_value(nll_sum, sums.loss);
    total_weight = scalar_tensor(sums.total_weight, {.dtype = w_t.dtype()});
  } else {
    total_weight = sum(where(valid, w_t, 0.0));
  }
  if (red == Reduction::sum) return combine(nll_sum, ls > 0.0 ? sum(smooth) : Tensor());
  // torch divides the smoothing term by its own sum of the counted targets' weights (the
  // generic sum over just those, LossNLL.cpp's #61309 note), not by the nll kernel's.
  const Tensor smooth_weight = ls > 0.0 ? sum(masked_select(w_t, valid)) : Tensor();
  return combine(div(nll_sum, total_weight), ls > 0.0 ? div(sum(smooth), smooth_weight) : Tensor());
}

// Probability targets (the input's shape): loss_i = -sum_c w_c * p[i, c] * logp[i, c], with
// smoothing p = p * (1 - ls) + ls / C; "mean" divides by the number of positions (N * d...), not
// by weights, as torch's cross_entropy_loss_prob_target.
Tensor probability_target_loss(const Tensor& log_probs, const Tensor& probs, const Tensor& weight,
                               Reduction red, double ls) {
  const int64_t cd = class_dim(log_probs);
  const int64_t classes = log_probs.size(cd);
  const Tensor p = ls > 0.0 ? add(mul(probs, 1.0 - ls), ls / static_cast<double>(classes)) : probs;
  Tensor prod = mul(log_probs, p);
  if (weight.defined()) prod = mul(prod, weight_along_classes(weight, log_probs));
  switch (red) {
    case Reduction::none:
      return neg(sum(prod, {cd}));
    case Reduction::sum:
      return neg(sum(prod));
    case Reduction::mean: {
      int64_t positions = 1;  // numel / C, without dividing by a C of 0
      for (int64_t d = 0; d < log_probs.dim(); ++d)
        if (d != cd) positions *= log_probs.size(d);
      return div(neg(sum(prod)), static_cast<double>(positions));  // 0 positions: NaN, as torch
    }
  }
  return prod;
}

Tensor probability_cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                 Reduction red, double ls, const Tensor& weight) {
  const char* op = "cross_entropy";
  // A floating target shaped as class indices is a dtype mistake (torch: "expected scalar type
  // Long"); any other shape is a probability target of the wrong shape.
  FABRIC_CHECK(target.sizes() != class_target_shape(logits), DTypeError, op,
               ": expected a target of class indices with dtype int64 (or int32), got ",
               dtype_name(target.dtype()), " of shape ", shape_str(target.sizes()),
               " (class probabilities need the input's shape ", shape_str(logits.sizes()), ")");
  FABRIC_CHECK(target.sizes() == logits.sizes(), ShapeError, op,
               ": a floating target holds class probabilities and must have the input's shape ",
               shape_str(logits.sizes()), ", got ", shape_str(target.sizes()),
               " (class indices are an int64 target without the class dim)");
  FABRIC_CHECK(is_float_dtype(target.dtype()), DTypeError, op,
               ": expected class probabilities of a floating dtype, got ",
               dtype_name(target.dtype()));
  FABRIC_CHECK(target.device() == logits.device(), DeviceError, op, ": target on ", target.device(),
               ", input on ", logits.device());
  FABRIC_CHECK(ignore_index < 0, ValueError, op,
               ": ignore_index is not supported for class-probability targets, got ignore_index=",
               ignore_index, " (pass a negative value, e.g. the default -100)");
  check_weight(op, weight, logits, false);
  // torch's result is the product's dtype: input, target and weight promoted. As torch's
  // cross_entropy_loss_prob_target, the log-softmax is taken in the input's own dtype (the
  // accumulation dtype for half precision) and a wider target or weight promotes only at the
  // products: a float32 input with a float64 target has float32 log-probabilities.
  DType out_dt = promote_types(logits.dtype(), target.dtype());
  if (weight.defined()) out_dt = promote_types(out_dt, weight.dtype());
  const Tensor lp = log_softmax(logits, class_dim(logits), reduce_acc_dtype(logits.dtype()));
  auto widened = [](const Tensor& t) { return t.to(reduce_acc_dtype(t.dtype())); };
  const Tensor w = weight.defined() ? widened(weight) : Tensor();
  return probability_target_loss(lp, widened(target), w, red, ls).to(out_dt);
}

}  // namespace

NllSums nll_cascade_sums(const Tensor& losses, const Tensor& weights, const Tensor& target,
                         int64_t ignore_index) {
  const Tensor t = target.to(DType::int64).contiguous();
  const int64_t positions = t.numel();
  FABRIC_CHECK(losses.numel() == positions && (!weights.defined() || weights.numel() == positions),
               ShapeError, "nll_cascade_sums: expected one loss (and weight) per target, got ",
               losses.numel(), " losses for ", positions, " targets");
  const Tensor l = losses.contiguous();
  const Tensor w = weights.defined() ? weights.to(l.dtype()).contiguous() : Tensor();
  const int64_t* tp = t.data<int64_t>();
  if (l.dtype() == DType::float64)
    return cascade_sums<double>(l.data<double>(), w.defined() ? w.data<double>() : nullptr, tp,
                                positions, ignore_index);
  FABRIC_CHECK(l.dtype() == DType::float32, DTypeError,
               "nll_cascade_sums: expected float32 or float64 losses, got ", dtype_name(l.dtype()));
  return cascade_sums<float>(l.data<float>(), w.defined() ? w.data<float>() : nullptr, tp,
                             positions, ignore_index);
}

LossReduction parse_loss_reduction_or_legacy(const char* op, std::string_view r) {
  if (r != "elementwise_mean") return parse_loss_reduction(op, r);
  warn("reduction='elementwise_mean' is deprecated, please use reduction='mean' instead.");
  return LossReduction::mean;
}

Tensor widened_class_target(const Tensor& target) {
  return target.defined() && target.dtype() == DType::uint8 ? target.to(DType::int64) : target;
}

bool cross_entropy_is_composed(const Tensor& target, const Tensor& weight) {
  return weight.defined() || (target.defined() && is_floating(target.dtype()));
}

Tensor cross_entropy_composed(const Tensor& logits_in, const Tensor& target_in,
                              int64_t ignore_index, std::string_view reduction,
                              double label_smoothing, const Tensor& weight_in) {
  const char* op = "cross_entropy";
  // The float32 class of cross_entropy (op_list.h) covers every floating argument, as torch's
  // autocast casts each tensor argument of a float32 op (the weight, probability targets).
  Tensor logits = logits_in, target = target_in, weight = weight_in;
  apply_autocast(OpId::cross_entropy, {&logits, &target, &weight});
  const Reduction red = parse_reduction(op, reduction);
  // torch smooths only by a value > 0: a negative (or NaN) one is no smoothing; > 1 is refused.
  FABRIC_CHECK(!(label_smoothing > 1.0), ValueError, op,
               ": label_smoothing must be in [0, 1], got ", label_smoothing);
  if (!(label_smoothing > 0.0)) label_smoothing = 0.0;
  check_input(op, logits);
  FABRIC_CHECK(target.defined(), ValueError, op, ": target is undefined");
  if (is_floating(target.dtype()))
    return probability_cross_entropy(logits, target, ignore_index, red, label_smoothing, weight);
  // Class indices come here only with a weight (cross_entropy_is_composed).
  const Tensor t = checked_class_targets(op, logits, target, ignore_index);
  check_weight(op, weight, logits, true);
  check_no_derivative_needed(op, "weight", weight);  // probability targets take its derivative
  const DType acc = reduce_acc_dtype(logits.dtype());
  const Tensor lp = log_softmax(logits, class_dim(logits), acc);
  armed_target_check(op, lp, t, target, ignore_index);
  return class_target_loss(lp, t, weight.to(acc), ignore_index, red, label_smoothing)
      .to(logits.dtype());
}

Tensor nll_loss_weighted(const Tensor& log_probs_in, const Tensor& target, int64_t ignore_index,
                         std::string_view reduction, const Tensor& weight_in) {
  const char* op = "nll_loss";
  Tensor log_probs = log_probs_in, weight = weight_in;
  apply_autocast(OpId::nll_loss, {&log_probs, &weight});
  const Reduction red = parse_reduction(op, reduction);
  check_input(op, log_probs);
  const Tensor t = checked_class_targets(op, log_probs, target, ignore_index);
  check_weight(op, weight, log_probs, true);
  check_no_derivative_needed(op, "weight", weight);
  const DType acc = reduce_acc_dtype(log_probs.dtype());
  const Tensor lp = log_probs.to(acc);
  armed_target_check(op, lp, t, target, ignore_index);
  return class_target_loss(lp, t, weight.to(acc), ignore_index, red, 0.0).to(log_probs.dtype());
}

}  // namespace fabric::detail
