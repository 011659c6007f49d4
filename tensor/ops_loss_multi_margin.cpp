// torch.nn.functional's multi-class hinge losses over class-index targets (multi_margin_loss,
// multilabel_margin_loss), as compositions of differentiable ops following torch 1.13's kernels
// term by term, so autograd, double backward and the CUDA backend come from those ops.
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/inplace_graph.h"
#include "tensor/loss_argument_checks.h"
#include "tensor/loss_margin_helpers.h"
#include "tensor/ops.h"
#include "tensor/ops_loss_weighted.h"

namespace fabric {
namespace {

using detail::apply_loss_reduction;
using detail::check_floating_arg;
using detail::check_index_arg;
// torch's legacy "elementwise_mean" too (with its warning).
constexpr auto parse_loss_reduction = detail::parse_loss_reduction_or_legacy;

// torch's inputs: (C), or (N, C) with N possibly 0 but C not; a 0-d input is one class of one
// sample. Returns {N, C}.
std::pair<int64_t, int64_t> frames_and_classes(const char* op, const Tensor& input) {
  const int64_t nd = input.dim();
  FABRIC_CHECK((nd == 2 && input.size(1) != 0) || (nd == 1 && input.size(0) != 0) || nd == 0,
               ShapeError, op,
               ": expected a non-empty vector (C) or matrix (N, C) (N may be 0), got an input of "
               "shape ",
               shape_str(input.sizes()));
  if (nd <= 1) return {1, nd == 0 ? 1 : input.size(0)};
  return {input.size(0), input.size(1)};
}

// torch's kernels read every class index (a host sync on CUDA, as torch's CPU check).
void check_classes_in_range(const char* op, const Tensor& target, int64_t lo, int64_t classes) {
  if (target.numel() == 0) return;
  const int64_t bad = sum(logical_or(lt(target, lo), ge(target, classes))).item<int64_t>();
  FABRIC_CHECK(bad == 0, IndexError, op, ": ", bad, " of ", target.numel(),
               " target values are out of range: expected class indices in [", lo, ", ", classes,
               ") for ", classes, " classes, got values from ", min(target).item<int64_t>(), " to ",
               max(target).item<int64_t>());
}

// The per-sample losses of torch's reduction "none": (N), or 0-d for a 0-d/1-d target holding
// one sample.
Tensor per_sample_losses(const Tensor& losses, bool scalar_target) {
  return scalar_target ? losses.reshape({}) : losses;
}

}  // namespace

Tensor multi_margin_loss(const Tensor& input_in, const Tensor& target, int64_t p, double margin,
                         const Tensor& weight_in, std::string_view reduction) {
  const char* op = "multi_margin_loss";
  Tensor input = input_in, weight = weight_in;
  apply_autocast(OpId::multi_margin_loss, {&input, &weight});
  const auto red = parse_loss_reduction(op, reduction);
  FABRIC_CHECK(p == 1 || p == 2, ValueError, op,
               ": only p == 1 and p == 2 are supported, got p = ", p);
  check_floating_arg(op, "input", input);
  check_index_arg(op, "target", target);
  if (weight.defined()) {
    check_floating_arg(op, "weight", weight);
    FABRIC_CHECK(weight.dim() == 1, ValueError, op,
                 ": weight must be one-dimensional (one per class), got shape ",
                 shape_str(weight.sizes()));
  }
  const auto [frames, classes] = frames_and_classes(op, input);
  FABRIC_CHECK(target.dim() <= 1 && target.numel() == frames, ShapeError, op,
               ": inconsistent target size: expected ", frames,
               " class indices (one per sample of ", "the input of shape ",
               shape_str(input.sizes()), "), got shape ", shape_str(target.sizes()));
  if (weight.defined())
    FABRIC_CHECK(weight.numel() == classes, ShapeError, op, ": inconsistent weight size: expected ",
                 classes, " weights (one per class), got shape ", shape_str(weight.sizes()));
  detail::check_no_derivative_needed(op, "weight", weight);
  check_classes_in_range(op, target, 0, classes);
  const Tensor x = input.reshape({frames, classes});  // (N, C)
  const Tensor t = target.reshape({frames, 1});       // (N, 1)
  // Over the classes d other than the target y: max(0, margin - x[y] + x[d])^p, times weight[y],
  // averaged over the C classes. relu's gradient is 0 at z == 0, as torch's kernel (z > 0).
  const Tensor z = add(add(neg(gather(x, 1, t)), margin), x);
  Tensor h = relu(z);
  if (p == 2) h = mul(h, h);
  if (weight.defined())
    h = mul(h, index_select(weight.to(input.dtype()), 0, t.reshape({frames})).reshape({frames, 1}));
  const Tensor is_target =
      eq(arange(classes, DType::int64, input.device()).reshape({1, classes}), t);
  const Tensor losses =
      div(sum(where(logical_not(is_target), h, 0), {1}), static_cast<double>(classes));
  if (red == detail::LossReduction::none) return per_sample_losses(losses, target.dim() == 0);
  return apply_loss_reduction(losses, red);
}

Tensor multilabel_margin_loss(const Tensor& input_in, const Tensor& target,
                              std::string_view reduction) {
  const char* op = "multilabel_margin_loss";
  Tensor input = input_in;
  apply_autocast(OpId::multilabel_margin_loss, {&input});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "input", input);
  check_index_arg(op, "target", target);
  const auto [frames, classes] = frames_and_classes(op, input);
  const bool target_fits =
      input.dim() <= 1 ? target.dim() <= 1 && target.numel() == classes
                       : target.dim() == 2 && target.size(0) == frames && target.size(1) == classes;
  FABRIC_CHECK(target_fits, ShapeError, op,
               ": inconsistent target size: expected the input's shape ", shape_str(input.sizes()),
               " (each sample's class indices, ended by -1 where fewer than C), got shape ",
               shape_str(target.sizes()));
  check_classes_in_range(op, target, -1, classes);
  // Each sample's labels are its target row up to the first -1 (a label listed twice counts
  // twice, as in torch). They are read on the host; the loss stays on the input's device.
  const std::vector<int64_t> rows = target.to(Device::cpu()).contiguous().to_vector<int64_t>();
  std::vector<int64_t> length(static_cast<size_t>(frames), classes);
  std::vector<int64_t> not_target(static_cast<size_t>(frames * classes), 1);
  int64_t longest = 0;
  for (int64_t n = 0; n < frames; ++n) {
    for (int64_t k = 0; k < classes; ++k) {
      const int64_t label = rows[n * classes + k];
      if (label < 0) {
        length[n] = k;
        break;
      }
      not_target[n * classes + label] = 0;
    }
    longest = std::max(longest, length[n]);
  }
  const Device device = input.device();
  const Tensor x = input.reshape({frames, classes});  // (N, C)
  const Tensor others =
      ne(from_vector(not_target, {frames, classes}).to(device), 0);  // (N, C): d not a label
  // For each label position k: sum over the non-labels d of max(0, 1 - x[label_k] + x[d]).
  // Zeros that carry x's history (a zero gradient, as torch's): with no label in the batch the
  // loss is still differentiable, not a constant that backward() refuses.
  Tensor total = sum(overwritten_history(x), {1});  // (N)
  for (int64_t k = 0; k < longest; ++k) {
    std::vector<int64_t> label(static_cast<size_t>(frames), 0),
        valid(static_cast<size_t>(frames), 0);
    for (int64_t n = 0; n < frames; ++n) {
      if (k >= length[n]) continue;
      label[n] = rows[n * classes + k];
      valid[n] = 1;
    }
    const Tensor label_k = from_vector(label, {frames, 1}).to(device);
    const Tensor valid_k = ne(from_vector(valid, {frames, 1}).to(device), 0);
    const Tensor z = add(add(neg(gather(x, 1, label_k)), 1), x);
    total = add(total, sum(where(logical_and(valid_k, others), relu(z), 0), {1}));
  }
  const Tensor losses = div(total, static_cast<double>(classes));
  if (red == detail::LossReduction::none) return per_sample_losses(losses, target.dim() <= 1);
  return apply_loss_reduction(losses, red);
}

}  // namespace fabric
