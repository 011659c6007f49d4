// torch.nn.functional's negative log-likelihood losses of a Poisson and a Gaussian target
// (poisson_nll_loss, gaussian_nll_loss), as compositions of differentiable ops in torch 1.13's own
// formulas, so autograd, double backward and the CUDA backend come from those ops.
#include <cmath>
#include <numbers>

#include "tensor/autocast.h"
#include "tensor/loss_margin_helpers.h"
#include "tensor/ops.h"
#include "tensor/ops_loss_weighted.h"

namespace fabric {

using detail::apply_loss_reduction;
using detail::check_floating_arg;
// torch's legacy "elementwise_mean" too (with its warning).
constexpr auto parse_loss_reduction = detail::parse_loss_reduction_or_legacy;

Tensor poisson_nll_loss(const Tensor& input_in, const Tensor& target_in, bool log_input, bool full,
                        double eps, std::string_view reduction) {
  const char* op = "poisson_nll_loss";
  Tensor input = input_in, target = target_in;
  apply_autocast(OpId::poisson_nll_loss, {&input, &target});
  const auto red = parse_loss_reduction(op, reduction);
  check_floating_arg(op, "input", input);
  check_floating_arg(op, "target", target);
  broadcast_shapes(input.sizes(), target.sizes(), op);
  // log_input: exp(x) - t * x (x is the log of the rate); else x - t * log(x + eps).
  Tensor losses = log_input ? sub(exp(input), mul(target, input))
                            : sub(input, mul(target, log(add(input, eps))));
  if (full) {
    // Stirling's approximation of log(t!), t * log(t) - t + 0.5 * log(2 * pi * t), added only
    // where t > 1 (torch masks the rest to 0, after computing it: at t == 0 the target's
    // gradient is NaN there, as torch's).
    const Tensor stirling = add(sub(mul(target, log(target)), target),
                                mul(log(mul(target, 2 * std::numbers::pi)), 0.5));
    losses = add(losses, masked_fill(stirling, le(target, 1), 0));
  }
  return apply_loss_reduction(losses, red);
}

Tensor gaussian_nll_loss(const Tensor& input_in, const Tensor& target_in, const Tensor& var_in,
                         bool full, double eps, std::string_view reduction) {
  const char* op = "gaussian_nll_loss";
  Tensor input = input_in, target = target_in, var = var_in;
  apply_autocast(OpId::gaussian_nll_loss, {&input, &target, &var});
  check_floating_arg(op, "input", input);
  check_floating_arg(op, "target", target);
  check_floating_arg(op, "var", var);
  // var: one per expectation (heteroscedastic, the input's shape) or one per sample (homoscedastic:
  // the input's shape without its last dim, or with a last dim of 1).
  const Shape& is = input.sizes();
  const Shape& vs = var.sizes();
  if (vs != is) {
    const Shape batch(is.begin(), is.end() - (is.empty() ? 0 : 1));
    if (!is.empty() && vs == batch) {
      var = var.unsqueeze(-1);
    } else {
      const bool last_is_one =
          !vs.empty() && !is.empty() && vs.back() == 1 && Shape(vs.begin(), vs.end() - 1) == batch;
      FABRIC_CHECK(last_is_one, ShapeError, op, ": var of shape ", shape_str(vs),
                   " is of incorrect size for the input of shape ", shape_str(is), "; expected ",
                   shape_str(is), ", ", shape_str(batch), " or ", shape_str(batch),
                   " with a last dim of 1");
    }
  }
  const auto red = parse_loss_reduction(op, reduction);
  broadcast_shapes(broadcast_shapes(is, target.sizes(), op), var.sizes(), op);
  // A host sync, as torch's torch.any(var < 0).
  const int64_t negative = sum(lt(var.detach(), 0)).item<int64_t>();
  FABRIC_CHECK(negative == 0, ValueError, op, ": var has negative entries (", negative, " of ",
               var.numel(), "); variances must be >= 0");
  // Clamped at eps for stability in place under no_grad in torch: the gradient ignores the clamp.
  var = detail::clamp_min_straight_through(var, eps);
  // 0.5 * (log(var) + (input - target)^2 / var), plus 0.5 * log(2 * pi) with full.
  Tensor losses = mul(add(log(var), div(pow(sub(input, target), 2), var)), 0.5);
  if (full) losses = add(losses, 0.5 * std::log(2 * std::numbers::pi));
  return apply_loss_reduction(losses, red);
}

}  // namespace fabric
