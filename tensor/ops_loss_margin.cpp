// torch.nn.functional's margin and embedding losses (margin_ranking, hinge_embedding, soft_margin,
// multilabel_soft_margin, cosine_embedding, triplet_margin) and the distances they build on
// (cosine_similarity, pairwise_distance), as compositions of differentiable ops written in
// torch 1.13's own formulas, so autograd, double backward and the CUDA backend come from those
// ops and the values round as torch's do.
#include <cmath>

#include "tensor/autocast.h"
#include "tensor/loss_argument_checks.h"
#include "tensor/loss_margin_helpers.h"
#include "tensor/ops.h"
#include "tensor/ops_loss_weighted.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

using detail::apply_loss_reduction;
using detail::check_floating_arg;
using detail::check_label_arg;
// torch's legacy "elementwise_mean" too (with its warning).
constexpr auto parse_loss_reduction = detail::parse_loss_reduction_or_legacy;

}  // namespace

Tensor margin_ranking_loss(const Tensor& input1_in, const Tensor& input2_in,
                           const Tensor& target_in, double margin, std::string_view reduction) {
  const char* op = "margin_ranking_loss";
  Tensor input1 = input1_in, input2 = input2_in, target = target_in;
  apply_autocast(OpId::margin_ranking_loss, {&input1, &input2, &target});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "input1", input1);
  check_floating_arg(op, "input2", input2);
  check_label_arg(op, "target", target);
  // torch.nn.functional checks the dims before the ops broadcast the shapes.
  FABRIC_CHECK(input1.dim() == input2.dim() && input1.dim() == target.dim(), ShapeError, op,
               ": all input tensors should have the same number of dimensions, got input1 ",
               shape_str(input1.sizes()), ", input2 ", shape_str(input2.sizes()), " and target ",
               shape_str(target.sizes()));
  broadcast_shapes(broadcast_shapes(input1.sizes(), input2.sizes(), op), target.sizes(), op);
  // (-target * (input1 - input2) + margin).clamp_min(0)
  const Tensor losses = clamp(add(mul(neg(target), sub(input1, input2)), margin), 0, std::nullopt);
  return apply_loss_reduction(losses, red);
}

Tensor hinge_embedding_loss(const Tensor& input_in, const Tensor& target_in, double margin,
                            std::string_view reduction) {
  const char* op = "hinge_embedding_loss";
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::hinge_embedding_loss, {&input, &target});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "input", input);
  check_label_arg(op, "target", target);
  broadcast_shapes(input.sizes(), target.sizes(), op);
  // torch: where(target != 1, (margin - x).clamp_min(0), 0) + where(target != -1, x, 0), so a
  // label other than 1 and -1 counts both terms.
  const Tensor margin_term =
      where(ne(target, 1), clamp(add(neg(input), margin), 0, std::nullopt), 0);
  const Tensor self_term = where(ne(target, -1), input, 0);
  return apply_loss_reduction(add(margin_term, self_term), red);
}

Tensor soft_margin_loss(const Tensor& input_in, const Tensor& target_in,
                        std::string_view reduction) {
  const char* op = "soft_margin_loss";
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::soft_margin_loss, {&input, &target});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "input", input);
  check_label_arg(op, "target", target);
  // torch writes the loss into a tensor of the input's shape and dtype, so the target broadcasts
  // to the input, never the other way; it has no derivative for the target.
  FABRIC_CHECK(broadcast_shapes(input.sizes(), target.sizes(), op) == input.sizes(), ShapeError, op,
               ": target of shape ", shape_str(target.sizes()),
               " must broadcast to the input's shape ", shape_str(input.sizes()));
  detail::check_no_derivative_needed(op, "target", target);
  // log1p(exp(-input * target))
  const Tensor margin_term = mul(neg(input), target).to(input.dtype());
  return apply_loss_reduction(log1p(exp(margin_term)), red);
}

Tensor multilabel_soft_margin_loss(const Tensor& input_in, const Tensor& target_in,
                                   const Tensor& weight_in, std::string_view reduction) {
  const char* op = "multilabel_soft_margin_loss";
  Tensor input = input_in, target = target_in, weight = weight_in;
  apply_autocast(OpId::multilabel_soft_margin_loss, {&input, &target, &weight});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "input", input);
  check_floating_arg(op, "target", target);
  if (weight.defined()) check_floating_arg(op, "weight", weight);
  FABRIC_CHECK(input.dim() >= 1, ShapeError, op,
               ": expected an input with a class dimension (C) or (N, C), got shape ",
               shape_str(input.sizes()));
  Shape loss_shape = broadcast_shapes(input.sizes(), target.sizes(), op);
  if (weight.defined()) loss_shape = broadcast_shapes(loss_shape, weight.sizes(), op);
  // -(t * log_sigmoid(x) + (1 - t) * log_sigmoid(-x)), times weight (which torch, composing it in
  // Python, differentiates), averaged over the input's last dim.
  Tensor losses =
      neg(add(mul(target, log_sigmoid(input)), mul(add(neg(target), 1), log_sigmoid(neg(input)))));
  if (weight.defined()) losses = mul(losses, weight);
  const int64_t class_dim = input.dim() - 1;
  losses = div(sum(losses, {class_dim}), static_cast<double>(input.size(class_dim)));
  return apply_loss_reduction(losses, red);
}

Tensor cosine_embedding_loss(const Tensor& input1_in, const Tensor& input2_in,
                             const Tensor& target_in, double margin, std::string_view reduction) {
  const char* op = "cosine_embedding_loss";
  Tensor input1 = input1_in, input2 = input2_in, target = target_in;
  apply_autocast(OpId::cosine_embedding_loss, {&input1, &input2, &target});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "input1", input1);
  check_floating_arg(op, "input2", input2);
  check_label_arg(op, "target", target);
  const int64_t target_dim = target.dim();
  FABRIC_CHECK(target_dim <= 1, ShapeError, op,
               ": expected a 0-d or 1-d target (one label per pair; multi-target is not "
               "supported), got shape ",
               shape_str(target.sizes()));
  FABRIC_CHECK(input1.dim() == target_dim + 1 && input2.dim() == target_dim + 1, ShapeError, op,
               ": a ", target_dim, "-d target expects ", target_dim + 1,
               "-d inputs, got inputs of shapes ", shape_str(input1.sizes()), " and ",
               shape_str(input2.sizes()));
  const Shape pair = broadcast_shapes(input1.sizes(), input2.sizes(), op);
  const Shape pairs = target_dim == 1 ? Shape{pair[0]} : Shape{};
  broadcast_shapes(pairs, target.sizes(), op);
  // torch's EPSILON: added to each squared magnitude before the square root.
  constexpr double kEpsilon = 1e-12;
  const Tensor prod_sum = sum(mul(input1, input2), {target_dim});
  const Tensor mag_square1 = add(sum(mul(input1, input1), {target_dim}), kEpsilon);
  const Tensor mag_square2 = add(sum(mul(input2, input2), {target_dim}), kEpsilon);
  const Tensor cos = div(prod_sum, sqrt(mul(mag_square1, mag_square2)));
  // where(target == 1, 1 - cos, 0) + where(target == -1, (cos - margin).clamp_min(0), 0)
  const Tensor pos = where(eq(target, 1), add(neg(cos), 1), 0);
  const Tensor neg_term = where(eq(target, -1), clamp(sub(cos, margin), 0, std::nullopt), 0);
  return apply_loss_reduction(add(pos, neg_term), red);
}

Tensor triplet_margin_loss(const Tensor& anchor_in, const Tensor& positive_in,
                           const Tensor& negative_in, double margin, double p, double eps,
                           bool swap, std::string_view reduction) {
  const char* op = "triplet_margin_loss";
  Tensor anchor = anchor_in, positive = positive_in, negative = negative_in;
  apply_autocast(OpId::triplet_margin_loss, {&anchor, &positive, &negative});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "anchor", anchor);
  check_floating_arg(op, "positive", positive);
  check_floating_arg(op, "negative", negative);
  FABRIC_CHECK(anchor.dim() == positive.dim() && positive.dim() == negative.dim(), ShapeError, op,
               ": the anchor, positive and negative must have the same number of dimensions, got ",
               anchor.dim(), "-d, ", positive.dim(), "-d and ", negative.dim(),
               "-d inputs (shapes ", shape_str(anchor.sizes()), ", ", shape_str(positive.sizes()),
               ", ", shape_str(negative.sizes()), ")");
  const Tensor dist_pos = pairwise_distance(anchor, positive, p, eps);
  Tensor dist_neg = pairwise_distance(anchor, negative, p, eps);
  // The swap (Balntas et al.): the harder of the two negatives' distances.
  if (swap) dist_neg = minimum(dist_neg, pairwise_distance(positive, negative, p, eps));
  const Tensor losses = clamp(sub(add(dist_pos, margin), dist_neg), 0, std::nullopt);
  return apply_loss_reduction(losses, red);
}

Tensor cosine_similarity(const Tensor& x1_in, const Tensor& x2_in, int64_t dim, double eps) {
  const char* op = "cosine_similarity";
  Tensor x1 = x1_in, x2 = x2_in;
  apply_autocast(OpId::cosine_similarity, {&x1, &x2});
  FABRIC_CHECK(x1.defined() && x2.defined(), ValueError, op, ": x1 and x2 must be defined");
  // Integer inputs are taken, as torch's, when their common dtype is floating.
  const DType common = promote_types(x1.dtype(), x2.dtype());
  FABRIC_CHECK(is_floating(common) && !is_fp8(common), DTypeError, op,
               ": expected the common dtype of x1 (", dtype_name(x1.dtype()), ") and x2 (",
               dtype_name(x2.dtype()), ") to be floating point, got ", dtype_name(common));
  const Shape shape = broadcast_shapes(x1.sizes(), x2.sizes(), op);
  const int64_t d = wrap_dim(dim, static_cast<int64_t>(shape.size()), op);
  const Tensor a = x1.to(common).expand(shape), b = x2.to(common).expand(shape);
  // torch 1.13 divides each input by its own norm first (keeping the result in [-1, 1]), the
  // squared norms clamped at eps^2 in place under no_grad: the gradient ignores the clamp.
  const double eps_sq = eps * eps;
  const Tensor norm_a = sqrt(detail::clamp_min_straight_through(sum(pow(a, 2), {d}, true), eps_sq));
  const Tensor norm_b = sqrt(detail::clamp_min_straight_through(sum(pow(b, 2), {d}, true), eps_sq));
  return sum(mul(div(a, norm_a), div(b, norm_b)), {d});
}

Tensor pairwise_distance(const Tensor& x1_in, const Tensor& x2_in, double p, double eps,
                         bool keepdim) {
  const char* op = "pairwise_distance";
  Tensor x1 = x1_in, x2 = x2_in;
  apply_autocast(OpId::pairwise_distance, {&x1, &x2});
  // Integer operands are fine, as torch's: x1 - x2 + eps promotes them to the default float.
  const Shape shape = broadcast_shapes(x1.sizes(), x2.sizes(), op);
  // torch: norm(x1 - x2 + eps, p, innermost dim of the broadcast shape); of 0-d inputs, the norm
  // of the one element.
  const Tensor diff = add(sub(x1, x2), eps);
  if (shape.empty()) return norm(diff, p);
  return norm(diff, p, {static_cast<int64_t>(shape.size()) - 1}, keepdim);
}

}  // namespace fabric
