// Derivatives of the pointwise ops. Gradients come out in the broadcast shape and compute dtype;
// the engine sums them back to each input's shape and casts to its dtype.
#include <cmath>

#include "autograd/accumulate_grad.h"
#include "autograd/autograd_meta.h"
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

bool has_scalar(const OpRecord& rec) { return rec.num_inputs == 1; }

FABRIC_DERIVATIVE(add) {
  if (has_scalar(rec)) return [](const Grads& g) { return Grads{g[0]}; };
  Scalar alpha = attrs_of<AlphaAttrs>(rec).alpha;
  return [alpha](const Grads& g) {
    const bool unit = alpha.to_double() == 1.0;
    return Grads{g[0], unit ? g[0] : mul(g[0], alpha)};
  };
}

FABRIC_DERIVATIVE(sub) {
  if (has_scalar(rec)) return [](const Grads& g) { return Grads{g[0]}; };
  Scalar alpha = attrs_of<AlphaAttrs>(rec).alpha;
  return [alpha](const Grads& g) { return Grads{g[0], mul(g[0], -alpha.to_double())}; };
}

FABRIC_DERIVATIVE(mul) {
  if (has_scalar(rec)) {
    Scalar s = attrs_of<ScalarAttrs>(rec).value;
    saves_a_scalar();
    return [s](const Grads& g) { return Grads{mul(g[0], s)}; };
  }
  const bool need_a = rec.inputs[0].requires_grad(), need_b = rec.inputs[1].requires_grad();
  Tensor a = need_b ? saved(rec.inputs[0]) : Tensor(), b = need_a ? saved(rec.inputs[1]) : Tensor();
  return [a, b](const Grads& g) {
    return Grads{b.defined() ? mul(g[0], b) : Tensor(), a.defined() ? mul(g[0], a) : Tensor()};
  };
}

FABRIC_DERIVATIVE(div) {
  if (has_scalar(rec)) {
    Scalar s = attrs_of<ScalarAttrs>(rec).value;
    saves_a_scalar();
    return [s](const Grads& g) { return Grads{div(g[0], s)}; };
  }
  // torch's rule, which saves a (not the quotient: a / b then written in place, as a hand-made
  // norm's `y.mul_(gamma)`, must not invalidate the gradient) and rounds d(a/b)/db as
  // -g * ((a / b) / b).
  Tensor b = saved(rec.inputs[1]);
  Tensor a = rec.inputs[1].requires_grad() ? saved(rec.inputs[0]) : Tensor();
  return [a, b](const Grads& g) {
    return Grads{div(g[0], b), a.defined() ? mul(neg(g[0]), div(div(a, b), b)) : Tensor()};
  };
}

// maximum/minimum: the gradient goes to the selected input, split evenly on ties. As PyTorch, an
// input is refused the gradient only where the other one strictly wins: where either is NaN (no
// comparison holds) both get all of it.
FunctionNode::Backward minmax_rule(const OpRecord& rec, bool is_max) {
  Tensor a = saved(rec.inputs[0]), b = saved(rec.inputs[1]);
  return [a, b, is_max](const Grads& g) {
    Tensor zero = zeros_like(g[0]);
    Tensor shared = where(eq(a, b), mul(g[0], 0.5), g[0]);
    Tensor b_wins = is_max ? lt(a, b) : gt(a, b);
    Tensor a_wins = is_max ? gt(a, b) : lt(a, b);
    return Grads{where(b_wins, zero, shared), where(a_wins, zero, shared)};
  };
}
FABRIC_DERIVATIVE(maximum) { return minmax_rule(rec, true); }
FABRIC_DERIVATIVE(minimum) { return minmax_rule(rec, false); }

FABRIC_DERIVATIVE(pow) {
  Tensor a = saved(rec.inputs[0]);
  if (has_scalar(rec)) {
    Scalar e = attrs_of<ScalarAttrs>(rec).value;
    return [a, e](const Grads& g) {
      const double ed = e.to_double();
      if (ed == 0.0) return Grads{zeros_like(g[0])};
      // x^2, the common case, needs no pow pass: x^1 is x, bit for bit.
      const Tensor a_pow = ed == 2.0 ? a : pow(a, Scalar(ed - 1.0));
      return Grads{mul(g[0], mul(a_pow, ed))};  // torch's g * (e * x^(e-1))
    };
  }
  Tensor b = saved(rec.inputs[1]);
  Tensor out = saved(rec.outputs[0]);
  return [a, b, out](const Grads& g) {
    // d/da = b * a^(b-1), masked to 0 where b == 0 (as PyTorch); d/db = a^b * log(a), 0 where a ==
    // 0 and b >= 0. The masked-out entries compute with a base of 1 instead of a: where's backward
    // gives them a zero gradient, which times a^(b-1) = inf or log(0) = -inf made the second
    // derivatives NaN.
    const Tensor b_zero = eq(b, 0.0), a_zero = logical_and(eq(a, 0.0), ge(b, 0.0));
    // In torch's order: g * (b * a^(b-1)) and g * (a^b * log(a)).
    Tensor ga =
        where(b_zero, zeros_like(g[0]),
              mul(g[0], mul(b, pow(where(logical_not(b_zero), a, Scalar(1.0)), sub(b, 1.0)))));
    Tensor gb = where(a_zero, zeros_like(g[0]),
                      mul(g[0], mul(out, log(where(logical_not(a_zero), a, Scalar(1.0))))));
    return Grads{ga, gb};
  };
}

FABRIC_DERIVATIVE(where) {
  Tensor cond = saved(rec.inputs[0]);
  const bool scalar_b = rec.num_inputs == 2;
  return [cond, scalar_b](const Grads& g) {
    Tensor z = zeros_like(g[0]);
    if (scalar_b) return Grads{Tensor(), where(cond, g[0], z)};
    return Grads{Tensor(), where(cond, g[0], z), where(cond, z, g[0])};
  };
}

FABRIC_DERIVATIVE(addcmul) {
  Scalar v = attrs_of<ScalarAttrs>(rec).value;
  Tensor t1 = saved(rec.inputs[1]), t2 = saved(rec.inputs[2]);
  return [v, t1, t2](const Grads& g) {  // torch's g * (t2 * v) and g * (t1 * v)
    return Grads{g[0], mul(g[0], mul(t2, v)), mul(g[0], mul(t1, v))};
  };
}

// ---- unary ----------------------------------------------------------------------------------

FABRIC_DERIVATIVE(neg) {
  return [](const Grads& g) { return Grads{neg(g[0])}; };
}
FABRIC_DERIVATIVE(abs) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) {
    Tensor sign = sub(gt(a, 0.0).to(g[0].dtype()), lt(a, 0.0).to(g[0].dtype()));
    return Grads{mul(g[0], sign)};
  };
}
FABRIC_DERIVATIVE(exp) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) { return Grads{mul(g[0], out)}; };
}
FABRIC_DERIVATIVE(log) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) { return Grads{div(g[0], a)}; };
}
FABRIC_DERIVATIVE(sqrt) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) { return Grads{div(g[0], mul(out, 2.0))}; };
}
FABRIC_DERIVATIVE(rsqrt) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) { return Grads{mul(mul(g[0], pow(out, 3.0)), -0.5)}; };
}
FABRIC_DERIVATIVE(reciprocal) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) { return Grads{neg(mul(g[0], mul(out, out)))}; };
}
FABRIC_DERIVATIVE(sin) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) { return Grads{mul(g[0], cos(a))}; };
}
FABRIC_DERIVATIVE(cos) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) { return Grads{neg(mul(g[0], sin(a)))}; };
}
// The activations' gradients are fused kernels (tensor/activation_backward.h), which record
// nothing; in grad mode (create_graph) they are composed of recorded ops instead, so that the
// gradient can be differentiated again.
Tensor one_minus(const Tensor& t) { return add(neg(t), 1.0); }

FABRIC_DERIVATIVE(tanh) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) {
    if (grad_enabled()) return Grads{mul(g[0], one_minus(mul(out, out)))};
    return Grads{activation_backward(ActGrad::tanh, g[0], out)};
  };
}
FABRIC_DERIVATIVE(sigmoid) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) {
    if (grad_enabled()) return Grads{mul(g[0], mul(out, one_minus(out)))};
    return Grads{activation_backward(ActGrad::sigmoid, g[0], out)};
  };
}
FABRIC_DERIVATIVE(relu) {
  Tensor out = saved(rec.outputs[0]);
  return [out](const Grads& g) {
    // threshold_backward's select: 0 where out <= 0, so a NaN output passes the gradient
    if (grad_enabled()) return Grads{where(le(out, 0.0), zeros_like(g[0]), g[0])};
    return Grads{activation_backward(ActGrad::relu, g[0], out)};
  };
}
FABRIC_DERIVATIVE(silu) {
  Tensor a = saved(rec.inputs[0]);
  return [a](const Grads& g) {
    if (grad_enabled()) {  // s (1 + a (1 - s)), s = sigmoid(a)
      Tensor s = sigmoid(a);
      return Grads{mul(g[0], mul(s, add(mul(a, one_minus(s)), 1.0)))};
    }
    return Grads{activation_backward(ActGrad::silu, g[0], a)};
  };
}

}  // namespace

// See derivatives.h.
Tensor gelu_tanh_derivative(const Tensor& x) {
  const double beta = std::sqrt(2.0 / M_PI), kappa = 0.044715;
  Tensor x_sq = mul(x, x);
  Tensor t = tanh(mul(add(x, mul(mul(x_sq, x), kappa)), beta));
  Tensor left_derivative = mul(add(t, 1.0), 0.5);
  Tensor right_derivative =
      mul(mul(mul(x, 0.5), one_minus(mul(t, t))), add(mul(x_sq, 3.0 * kappa), 1.0));
  return add(left_derivative, mul(right_derivative, beta));
}

namespace {

// The standard normal density exp(-x^2/2) / sqrt(2 pi), of recorded ops.
Tensor normal_pdf(const Tensor& x) {
  return mul(exp(mul(mul(x, x), -0.5)), 1.0 / std::sqrt(2.0 * M_PI));
}

// The standard normal CDF Phi(x), recorded with its derivative phi(x). No op computes it (there
// is no erf op): its value comes from gelu's fused gradient (Phi(x) + x phi(x)), its history is a
// node of its own whose gradient, g phi(x), is of recorded ops (so it differentiates again).
Tensor normal_cdf(const Tensor& x) {
  Tensor value;
  {
    NoGradGuard no_grad;
    value = sub(activation_backward(ActGrad::gelu_erf, ones_like(x), x), mul(x, normal_pdf(x)));
  }
  if (!x.requires_grad()) return value;
  Tensor xs = x.detach();
  auto node = std::make_shared<FunctionNode>(
      "normal_cdf", [xs](const Grads& g) { return Grads{mul(g[0], normal_pdf(xs))}; });
  SavedVersion s{x.storage(), x.storage()->version(), x.sizes(), x.dtype(), xs};
  s.input_nr = 0;
  node->set_saved_versions({s});
  node->set_supports_double_backward(true);
  node->next_edges = {gradient_edge(x)};
  node->input_meta = {{x.sizes(), x.dtype(), x.device()}};
  value.impl()->requires_grad = true;
  AutogradMeta& m = autograd_meta(value);
  m.grad_fn = std::move(node);
  m.output_nr = 0;
  return value;
}

FABRIC_DERIVATIVE(gelu) {
  Tensor a = saved(rec.inputs[0]);
  const ActGrad kind =
      attrs_of<GeluAttrs>(rec).tanh_approx ? ActGrad::gelu_tanh : ActGrad::gelu_erf;
  return [a, kind](const Grads& g) {
    if (!grad_enabled()) return Grads{activation_backward(kind, g[0], a)};
    if (kind == ActGrad::gelu_tanh) return Grads{mul(g[0], gelu_tanh_derivative(a))};
    return Grads{mul(g[0], add(normal_cdf(a), mul(a, normal_pdf(a))))};  // Phi + x phi
  };
}
FABRIC_DERIVATIVE(clamp) {
  Tensor a = saved(rec.inputs[0]);
  ClampAttrs c = attrs_of<ClampAttrs>(rec);
  return [a, c](const Grads& g) {
    // Passes the gradient where min <= a <= max (bounds inclusive, as PyTorch).
    Tensor keep = ones_like(a).to(DType::bool_);
    if (c.min) keep = logical_and(keep, ge(a, *c.min));
    if (c.max) keep = logical_and(keep, le(a, *c.max));
    return Grads{where(keep, g[0], zeros_like(g[0]))};
  };
}

}  // namespace
}  // namespace fabric
