// The losses: cross_entropy (fused log-softmax + pick, PyTorch's ignore_index, label smoothing and
// mean over non-ignored targets), nll_loss, mse_loss, cross_entropy_backward (ops_backward.h) and
// nll_loss_backward (ops_backward_loss.h).
// A class weight or probability targets go to ops_loss_weighted.cpp's composition instead.
#include <cmath>
#include <limits>

#include "tensor/autocast.h"
#include "tensor/deferred_check.h"
#include "tensor/factory.h"
#include "tensor/loss_argument_checks.h"
#include "tensor/loss_reduction.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/ops_backward_loss.h"
#include "tensor/ops_loss_weighted.h"
#include "tensor/promotion.h"
#include "tensor/reduce_kernels.h"

namespace fabric {
namespace {

using detail::cat;
using Reduction = detail::LossReduction;
constexpr auto parse_reduction = detail::parse_loss_reduction_or_legacy;

// A loss's input and target must both be defined (checked before anything reads them).
void check_loss_operands(const char* op, const Tensor& input, const Tensor& target) {
  FABRIC_CHECK(input.defined(), ValueError, op, ": got an undefined tensor (input)");
  FABRIC_CHECK(target.defined(), ValueError, op, ": got an undefined tensor (target)");
}

// The class layout of a (C) / (N, C) / (N, C, d...) input against its target, checked.
ClassGeometry class_geometry(const char* op, const Tensor& input, const Tensor& target) {
  check_loss_operands(op, input, target);
  FABRIC_CHECK(is_floating(input.dtype()) && !is_fp8(input.dtype()), DTypeError, op,
               ": expected floating-point input (float64/float32/float16/bfloat16), got ",
               dtype_name(input.dtype()), " of shape ", shape_str(input.sizes()));
  FABRIC_CHECK(target.dtype() == DType::int64 || target.dtype() == DType::int32, DTypeError, op,
               ": expected a target of class indices with dtype int64 (or int32, uint8), got ",
               dtype_name(target.dtype()), " of shape ", shape_str(target.sizes()),
               is_floating(target.dtype()) ? " (class-probability targets are not supported)" : "");
  FABRIC_CHECK(input.dim() >= 1, ShapeError, op,
               ": expected input of shape (C), (N, C) or (N, C, d...), got ",
               shape_str(input.sizes()));
  Shape want;
  ClassGeometry g;
  if (input.dim() == 1) {
    g.classes = input.sizes()[0];
  } else {
    g.outer = input.sizes()[0];
    g.classes = input.sizes()[1];
    want.push_back(input.sizes()[0]);
    for (int64_t d = 2; d < input.dim(); ++d) {
      g.inner *= input.sizes()[d];
      want.push_back(input.sizes()[d]);
    }
  }
  FABRIC_CHECK(target.sizes() == want, ShapeError, op, ": expected target of shape ",
               shape_str(want), " for input of shape ", shape_str(input.sizes()),
               ", got target of shape ", shape_str(target.sizes()));
  return g;
}

// The op's IndexError for a target out of [0, classes) that is not ignore_index, around the value.
RangeErrorText target_error_text(const char* op, const ClassGeometry& g, int64_t ignore_index,
                                 const Tensor& input, const Tensor& target) {
  return {cat(op, ": target "),
          cat(" is out of bounds for ", g.classes, " classes (expected a value in [0, ", g.classes,
              ") or ignore_index=", ignore_index, "); input shape ", shape_str(input.sizes()),
              ", target shape ", shape_str(target.sizes()))};
}

// How the targets are checked: on a device whose kernels check them as they run (CUDA), an armed
// check (a bad target surfaces at the device's next synchronisation) and, for the forward kernels
// (`valid_count` given), a device count of the valid targets that the mean divides by there, so
// the op never waits for the device; elsewhere (the CPU) nothing: the kernel returns TargetStats
// and the op checks them at once.
TargetCheck arm_target_check(const char* op, const ClassGeometry& g, int64_t ignore_index,
                             const Tensor& input, const Tensor& target, Tensor* valid_count) {
  TargetCheck check;
  ArmRangeCheckFn arm = arm_range_check_stub.find(input.device());
  if (!arm) return check;
  check.id = arm(input.device().index, target_error_text(op, g, ignore_index, input, target));
  if (valid_count) {
    *valid_count = empty({}, {.dtype = DType::int64, .device = input.device()});
    check.valid_count = static_cast<int64_t*>(valid_count->data_ptr());
  }
  return check;
}

void check_targets(const char* op, const TargetStats& st, const ClassGeometry& g,
                   int64_t ignore_index, const Tensor& input, const Tensor& target) {
  if (!st.bad) return;
  const RangeErrorText text = target_error_text(op, g, ignore_index, input, target);
  throw IndexError(cat(text.head, st.bad_value, text.tail));
}

// Sums a contiguous tensor into a 0-dim tensor of out_dt, dividing by `divisor` (0/0 gives NaN,
// as PyTorch's mean over no valid targets).
Tensor full_sum(const Tensor& losses, DType out_dt, double divisor) {
  Tensor out = empty({}, {.dtype = out_dt, .device = losses.device()});
  ReduceGeometry g;
  g.in = static_cast<const char*>(losses.data_ptr());
  g.in_dtype = losses.dtype();
  g.out = static_cast<char*>(out.data_ptr());
  g.out_dtype = out_dt;
  g.nred = 1;
  g.red_sizes[0] = losses.numel();
  g.red_in[0] = 1;
  ReduceParams p;
  p.divisor = divisor;
  reduce_stub(losses.device())(ReduceOp::sum, g, p);
  return out;
}

// The targets a reduction reads: which positions count (not ignore_index) and whether the sum is
// torch's nll kernel's cascade (cross_entropy without label smoothing, nll_loss) or a plain sum
// of the per-position losses (label smoothing: each position mixes two of torch's terms).
struct ReductionTargets {
  const Tensor& target;
  int64_t ignore_index;
  bool nll_cascade;
};

// Per-position losses (acc dtype) -> the reduced result in out_dt. The mean divides by `valid`, or
// by `device_valid` where the kernels counted on the device (divided there: no wait for it). On
// the CPU, nll's sums are torch's nll kernel's: detail::nll_cascade_sums in the acc dtype, the
// mean divided in it by the count (both rounded once more only into a narrower out_dt).
Tensor apply_reduction(const Tensor& losses, Reduction r, int64_t valid, const Tensor& device_valid,
                       DType out_dt, const ReductionTargets& rt) {
  if (r == Reduction::none) return losses.to(out_dt);
  if (rt.nll_cascade && losses.device().is_cpu() && !device_valid.defined()) {
    const detail::NllSums s =
        detail::nll_cascade_sums(losses, Tensor(), rt.target, rt.ignore_index);
    const Tensor total = scalar_tensor(s.loss, {.dtype = losses.dtype()});
    if (r == Reduction::sum) return total.to(out_dt);
    // An empty target: 0 / 0, torch's NaN for "mean" as its count of 0 is.
    return div(total, scalar_tensor(s.total_weight, {.dtype = losses.dtype()})).to(out_dt);
  }
  switch (r) {
    case Reduction::none:
      return losses.to(out_dt);
    case Reduction::sum:
      return full_sum(losses, out_dt, 1.0);
    case Reduction::mean:
      if (device_valid.defined())
        return div(full_sum(losses, losses.dtype(), 1.0), device_valid).to(out_dt);
      return full_sum(losses, out_dt, static_cast<double>(valid));
  }
  return losses;
}

const char* reduction_name(Reduction r) {
  return r == Reduction::none ? "none" : r == Reduction::sum ? "sum" : "mean";
}

// A loss backward's incoming gradient: target-shaped for "none", one element otherwise.
void check_grad_loss_shape(const char* op, Reduction r, const Tensor& grad_loss,
                           const Tensor& target) {
  if (r == Reduction::none) {
    FABRIC_CHECK(grad_loss.sizes() == target.sizes(), ShapeError, op,
                 ": with reduction \"none\" grad_loss must have ", "the target's shape ",
                 shape_str(target.sizes()), ", got ", shape_str(grad_loss.sizes()));
  } else {
    FABRIC_CHECK(grad_loss.numel() == 1, ShapeError, op, ": with reduction \"", reduction_name(r),
                 "\" grad_loss must have one element, got shape ", shape_str(grad_loss.sizes()));
  }
}

// The node torch 1.13's nll_loss (cross_entropy's last op) ends with, which names the backward
// node: nll_loss2d past (N, C), viewed back to the target's shape for reduction "none" unless
// the input is 4-D.
const char* nll_node_name(int64_t input_dim, Reduction r) {
  if (input_dim <= 2) return "NllLossBackward0";
  if (r == Reduction::none && input_dim != 4) return "ViewBackward0";
  return "NllLoss2DBackward0";
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target_in, int64_t ignore_index,
                     std::string_view reduction, double label_smoothing, const Tensor& weight) {
  check_loss_operands("cross_entropy", logits_in, target_in);
  // torch smooths only by a value > 0: a negative (or NaN) one is no smoothing; > 1 is refused.
  FABRIC_CHECK(!(label_smoothing > 1.0), ValueError,
               "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  if (!(label_smoothing > 0.0)) label_smoothing = 0.0;
  const Tensor target = detail::widened_class_target(target_in);
  if (detail::cross_entropy_is_composed(target, weight))
    return detail::cross_entropy_composed(logits_in, target, ignore_index, reduction,
                                          label_smoothing, weight);
  Tensor logits = logits_in;
  // Autocast runs cross_entropy in float32. A CUDA float16/bfloat16 input is not copied to
  // float32 for it: the kernels widen each element as they load it (exactly, as the cast does)
  // and compute in float32, the loss comes out in float32, and the gradient, computed in float32,
  // is rounded to the input's dtype once as it is stored, which is what the cast's backward does
  // to the float32 gradient: the same bits, without two float32 passes over the logits (for
  // GPT-2's 8 x 1024 x 50304 logits, 3 ms of a 38 ms H200 step).
  const bool widen_in_kernel =
      logits.defined() && logits.device().is_cuda() &&
      (logits.dtype() == DType::bfloat16 || logits.dtype() == DType::float16) &&
      autocast_enabled(DeviceType::cuda) &&
      autocast_policy(OpId::cross_entropy, DeviceType::cuda) == AutocastPolicy::fp32;
  if (!widen_in_kernel) apply_autocast(OpId::cross_entropy, {&logits});
  const DType out_dtype = widen_in_kernel ? DType::float32 : logits.dtype();
  const Reduction red = parse_reduction("cross_entropy", reduction);
  const ClassGeometry g = class_geometry("cross_entropy", logits, target);
  Tensor losses =
      empty(target.sizes(), {.dtype = reduce_acc_dtype(logits.dtype()), .device = logits.device()});
  TargetStats st;
  Tensor device_valid;
  if (losses.numel() > 0) {
    Tensor lc = logits.detach().contiguous(), tc = target.detach().contiguous();
    const TargetCheck check =
        arm_target_check("cross_entropy", g, ignore_index, logits, target, &device_valid);
    st = cross_entropy_stub(logits.device())(g, lc.data_ptr(), lc.dtype(), tc.data_ptr(),
                                             tc.dtype(), ignore_index, label_smoothing,
                                             losses.data_ptr(), check);
    if (!check.id) check_targets("cross_entropy", st, g, ignore_index, logits, target);
  }
  Tensor out = apply_reduction(losses, red, st.valid, device_valid, out_dtype,
                               {target, ignore_index, label_smoothing == 0.0});
  LossAttrs attrs{ignore_index, reduction_name(red), label_smoothing};
  // torch composes cross_entropy: log_softmax, nll_loss, and with smoothing a final add.
  record_op(OpId::cross_entropy, {logits, target}, {&out}, &attrs,
            label_smoothing > 0.0 ? "AddBackward0" : nll_node_name(logits.dim(), red));
  return out;
}

Tensor cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target,
                              int64_t ignore_index, std::string_view reduction,
                              double label_smoothing) {
  const char* op = "cross_entropy_backward";
  const Reduction red = parse_reduction(op, reduction);
  const ClassGeometry g = class_geometry(op, logits, target);
  const DType acc = reduce_acc_dtype(logits.dtype());
  check_grad_loss_shape(op, red, grad_loss, target);
  Tensor dlogits = empty(logits.sizes(), {.dtype = logits.dtype(), .device = logits.device()});
  if (dlogits.numel() == 0) return dlogits;
  Tensor lc = logits.detach().contiguous(), tc = target.detach().contiguous();
  Tensor gc = grad_loss.detach().to(acc).contiguous();
  const TargetCheck check = arm_target_check(op, g, ignore_index, logits, target, nullptr);
  TargetStats st = cross_entropy_backward_stub(logits.device())(
      g, lc.data_ptr(), lc.dtype(), tc.data_ptr(), tc.dtype(), ignore_index, label_smoothing,
      gc.data_ptr(), red != Reduction::none, red == Reduction::mean, dlogits.data_ptr(), check);
  if (!check.id) check_targets(op, st, g, ignore_index, logits, target);
  return dlogits;
}

Tensor nll_loss(const Tensor& log_probs_in, const Tensor& target_in, int64_t ignore_index,
                std::string_view reduction, const Tensor& weight) {
  check_loss_operands("nll_loss", log_probs_in, target_in);
  const Tensor target = detail::widened_class_target(target_in);
  if (weight.defined())
    return detail::nll_loss_weighted(log_probs_in, target, ignore_index, reduction, weight);
  Tensor log_probs = log_probs_in;
  apply_autocast(OpId::nll_loss, {&log_probs});
  const Reduction red = parse_reduction("nll_loss", reduction);
  const ClassGeometry g = class_geometry("nll_loss", log_probs, target);
  Tensor losses = empty(
      target.sizes(), {.dtype = reduce_acc_dtype(log_probs.dtype()), .device = log_probs.device()});
  TargetStats st;
  Tensor device_valid;
  if (losses.numel() > 0) {
    Tensor lc = log_probs.detach().contiguous(), tc = target.detach().contiguous();
    const TargetCheck check =
        arm_target_check("nll_loss", g, ignore_index, log_probs, target, &device_valid);
    st = nll_loss_stub(log_probs.device())(g, lc.data_ptr(), lc.dtype(), tc.data_ptr(), tc.dtype(),
                                           ignore_index, losses.data_ptr(), check);
    if (!check.id) check_targets("nll_loss", st, g, ignore_index, log_probs, target);
  }
  Tensor out = apply_reduction(losses, red, st.valid, device_valid, log_probs.dtype(),
                               {target, ignore_index, true});
  LossAttrs attrs{ignore_index, reduction_name(red), 0.0};
  record_op(OpId::nll_loss, {log_probs, target}, {&out}, &attrs,
            nll_node_name(log_probs.dim(), red));
  return out;
}

Tensor nll_loss_backward(const Tensor& grad_loss, const Tensor& log_probs, const Tensor& target,
                         int64_t ignore_index, std::string_view reduction) {
  const char* op = "nll_loss_backward";
  const Reduction red = parse_reduction(op, reduction);
  const ClassGeometry g = class_geometry(op, log_probs, target);
  check_grad_loss_shape(op, red, grad_loss, target);
  Tensor dlog_probs =
      empty(log_probs.sizes(), {.dtype = log_probs.dtype(), .device = log_probs.device()});
  if (dlog_probs.numel() == 0) return dlog_probs;
  // The gradient in the input's dtype: torch computes nll_loss's backward in it.
  Tensor tc = target.detach().contiguous();
  Tensor gc = grad_loss.detach().to(log_probs.dtype()).contiguous();
  const TargetCheck check = arm_target_check(op, g, ignore_index, log_probs, target, nullptr);
  const TargetStats st = nll_loss_backward_stub(log_probs.device())(
      g, log_probs.dtype(), tc.data_ptr(), tc.dtype(), ignore_index, gc.data_ptr(),
      red != Reduction::none, red == Reduction::mean, dlog_probs.data_ptr(), check);
  if (!check.id) check_targets(op, st, g, ignore_index, log_probs, target);
  return dlog_probs;
}

Tensor mse_loss(const Tensor& input_in, const Tensor& target_in, std::string_view reduction) {
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::mse_loss, {&input, &target});
  check_loss_operands("mse_loss", input, target);
  const Reduction red = parse_reduction("mse_loss", reduction);
  for (const Tensor* t : {&input, &target})
    FABRIC_CHECK(is_floating(t->dtype()) && !is_fp8(t->dtype()), DTypeError,
                 "mse_loss: expected floating-point input and target, got ",
                 dtype_name(input.dtype()), " ", shape_str(input.sizes()), " and ",
                 dtype_name(target.dtype()), " ", shape_str(target.sizes()));
  const DType dt = promote_types(input.dtype(), target.dtype());
  const Shape shape = broadcast_shapes(input.sizes(), target.sizes(), "mse_loss");
  detail::warn_if_target_size_differs("mse_loss", input, target);
  Tensor a = input.detach().to(dt), b = target.detach().to(dt);
  Tensor out;
  if (red == Reduction::none) {
    out = empty(shape, {.dtype = dt, .device = a.device()});
    if (out.numel() > 0)
      squared_diff_stub(a.device())(make_strided_loop("mse_loss", out, {&a, &b}));
  } else {
    Tensor sq = empty(shape, {.dtype = reduce_acc_dtype(dt), .device = a.device()});
    if (sq.numel() > 0) squared_diff_stub(a.device())(make_strided_loop("mse_loss", sq, {&a, &b}));
    out = full_sum(sq, dt, red == Reduction::mean ? static_cast<double>(sq.numel()) : 1.0);
  }
  LossAttrs attrs{0, reduction_name(red), 0.0};
  record_op(OpId::mse_loss, {input, target}, {&out}, &attrs);
  return out;
}

}  // namespace fabric
