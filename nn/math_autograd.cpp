// The differentiable math of nn/math_extra.h: each function's value is a tensor-layer kernel
// (tensor/math_extra.h's math_values, tensor/special_functions.h), its gradient an autograd
// Function whose backward is torch's formula from derivatives.yaml, written with differentiable
// ops so that a gradient taken with create_graph can be differentiated again.
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "autograd/custom_function.h"
#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "nn/math_extra.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/host_elementwise.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kLn2 = 0.693147180559945309417232121458176568;

// A gradient summed down to the input's (broadcast) shape, in the input's dtype.
Tensor fit(const Tensor& grad, const Tensor& input) {
  Tensor g = sum_to(grad, input.sizes());
  return g.dtype() == input.dtype() ? g : g.to(input.dtype());
}

// Gradients for two tensor inputs, each only where autograd needs it.
template <typename GA, typename GB>
std::vector<Tensor> two_grads(AutogradContext* ctx, const Tensor& a, const Tensor& b, GA ga,
                              GB gb) {
  return {ctx->needs_input_grad(0) ? fit(ga(), a) : Tensor(),
          ctx->needs_input_grad(1) ? fit(gb(), b) : Tensor()};
}

struct Hypot : Function<Hypot> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    Tensor out = math_values::hypot(a, b);
    ctx->save_for_backward({a, b, out});
    return out;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();  // a, b, hypot(a, b)
    return two_grads(
        ctx, s[0], s[1], [&] { return div(mul(g[0], s[0]), s[2]); },
        [&] { return div(mul(g[0], s[1]), s[2]); });
  }
};

// grad / (1 + e(other - self)), e = exp or 2^x
template <bool base2>
Tensor log_add_exp_grad(const Tensor& grad, const Tensor& self, const Tensor& other) {
  const Tensor d = sub(other, self);
  return div(grad, add(base2 ? exp2(d) : exp(d), 1));
}

struct LogAddExp : Function<LogAddExp> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    ctx->save_for_backward({a, b});
    return math_values::logaddexp(a, b);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    return two_grads(
        ctx, s[0], s[1], [&] { return log_add_exp_grad<false>(g[0], s[0], s[1]); },
        [&] { return log_add_exp_grad<false>(g[0], s[1], s[0]); });
  }
};

struct LogAddExp2 : Function<LogAddExp2> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    ctx->save_for_backward({a, b});
    return math_values::logaddexp2(a, b);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    return two_grads(
        ctx, s[0], s[1], [&] { return log_add_exp_grad<true>(g[0], s[0], s[1]); },
        [&] { return log_add_exp_grad<true>(g[0], s[1], s[0]); });
  }
};

// xlogy / xlog1py: d/dx = xlog(1p)y(grad, y), 0 where x == 0 and y <= 0 (<= -1); d/dy = grad x / y
// (/ (y + 1)).
template <bool log1p_form>
struct XLogY : Function<XLogY<log1p_form>> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& y) {
    ctx->save_for_backward({x, y});
    return log1p_form ? math_values::xlog1py(x, y) : math_values::xlogy(x, y);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const Tensor &x = s[0], &y = s[1];
    return two_grads(
        ctx, x, y,
        [&] {
          const Tensor v = log1p_form ? xlog1py(g[0], y) : xlogy(g[0], y);
          return masked_fill(v, logical_and(eq(x, 0), le(y, log1p_form ? -1 : 0)), 0);
        },
        [&] { return div(mul(g[0], x), log1p_form ? add(y, 1) : y); });
  }
};

// torch's copysign_tensor_self_backward: grad * result / self, 0 where self == 0; none to other.
struct Copysign : Function<Copysign> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    Tensor out = math_values::copysign(a, b);
    ctx->save_for_backward({a, b, out});
    return out;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    return two_grads(
        ctx, s[0], s[1], [&] { return mul(g[0], masked_fill(div(s[2], s[0]), eq(s[0], 0), 0)); },
        [&] { return zeros_like(s[1]); });
  }
};

// fmax / fmin: the gradient to a where a >= b (a <= b for fmin) or b is NaN, the rest to b.
template <bool is_max>
struct FMaxMin : Function<FMaxMin<is_max>> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    ctx->save_for_backward({a, b});
    return is_max ? math_values::fmax(a, b) : math_values::fmin(a, b);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const Tensor to_a = logical_or(is_max ? ge(s[0], s[1]) : le(s[0], s[1]), isnan(s[1]));
    return two_grads(
        ctx, s[0], s[1], [&] { return masked_fill(g[0], logical_not(to_a), 0); },
        [&] { return masked_fill(g[0], to_a, 0); });
  }
};

// clamp_min / clamp_max with a tensor bound: to a where a >= min (a <= max), to the bound where
// a < min (a > max); NaN comparisons give neither.
template <bool is_min>
struct ClampBound : Function<ClampBound<is_min>> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& bound) {
    ctx->save_for_backward({a, bound});
    return is_min ? math_values::clamp_min(a, bound) : math_values::clamp_max(a, bound);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    return two_grads(
        ctx, s[0], s[1], [&] { return where(is_min ? ge(s[0], s[1]) : le(s[0], s[1]), g[0], 0.0); },
        [&] { return where(is_min ? lt(s[0], s[1]) : gt(s[0], s[1]), g[0], 0.0); });
  }
};

struct Exp2 : Function<Exp2> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    Tensor out = math_values::exp2(a);
    ctx->save_for_backward({a, out});
    return out;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    return {fit(mul(mul(g[0], s[1]), kLn2), s[0])};
  }
};

// torch's sinc_backward: grad (pi x cos(pi x) - sin(pi x)) / (pi x^2), 0 where pi x^2 == 0.
struct Sinc : Function<Sinc> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    ctx->save_for_backward({a});
    return math_values::sinc(a);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    const Tensor self_pi = mul(x, kPi);
    const Tensor self_squared_pi = mul(mul(x, x), kPi);
    const Tensor out =
        div(mul(g[0], sub(mul(self_pi, cos(self_pi)), sin(self_pi))), self_squared_pi);
    return {fit(where(ne(self_squared_pi, 0.0), out, 0.0), x)};
  }
};

// logit's gradient: torch's logit_backward kernel, or under create_graph the same formula of
// differentiable ops (grad / (x (1 - x)); NaN outside [0, 1] without eps, 0 outside the clamp).
struct Logit : Function<Logit> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, std::optional<double> eps) {
    ctx->save_for_backward({a});
    ctx->saved_data["eps"] = eps;
    return math_values::logit(a, eps);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    const auto eps = std::any_cast<std::optional<double>>(ctx->saved_data["eps"]);
    if (!grad_enabled()) return {fit(math_values::logit_backward(g[0], x, eps), x), Tensor()};
    const Tensor d = div(g[0], mul(x, sub(ones_like(x), x)));
    const Tensor outside =
        eps ? logical_or(lt(x, *eps), gt(x, 1.0 - *eps)) : logical_or(lt(x, 0.0), gt(x, 1.0));
    const double fill = eps ? 0.0 : std::numeric_limits<double>::quiet_NaN();
    return {fit(masked_fill(d, outside, fill), x), Tensor()};
  }
};

// -2 / sqrt(pi) exp(-x^2) grad
struct Erfc : Function<Erfc> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    ctx->save_for_backward({a});
    return math_values::erfc(a);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    return {fit(mul(mul(exp(neg(pow(x, 2))), -2.0 / std::sqrt(kPi)), g[0]), x)};
  }
};

struct Lgamma : Function<Lgamma> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    ctx->save_for_backward({a});
    return math_values::lgamma(a);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    return {fit(mul(g[0], digamma(x)), x)};
  }
};

// polygamma(n, x)'s gradient is polygamma(n + 1, x); digamma is n = 0.
struct Polygamma : Function<Polygamma> {
  static Tensor forward(AutogradContext* ctx, int64_t n, const Tensor& a) {
    ctx->save_for_backward({a});
    ctx->saved_data["n"] = n;
    return math_values::polygamma(n, a);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    const auto n = std::any_cast<int64_t>(ctx->saved_data["n"]);
    return {Tensor(), fit(mul(g[0], polygamma(n + 1, x)), x)};
  }
};

// The mvlgamma arguments x - j / 2, j < p: arange(-p / 2 + 1/2, 1/2, 1/2) + x.unsqueeze(-1).
Tensor mvlgamma_args(const Tensor& x, int64_t p) {
  const DType dt = float_result_dtype(x.dtype());
  const Tensor offsets = arange(-static_cast<double>(p) * 0.5 + 0.5, 0.5, 0.5, dt, x.device());
  return add(offsets, x.to(dt).unsqueeze(-1));
}

// The sum of lgamma over the arguments plus p (p - 1) / 4 log(pi); gradient grad times the sum of
// their digammas (torch's mvlgamma_backward).
struct Mvlgamma : Function<Mvlgamma> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, int64_t p) {
    ctx->save_for_backward({a});
    ctx->saved_data["p"] = p;
    const double constant = static_cast<double>(p * (p - 1)) * std::log(kPi) * 0.25;
    return add(sum(math_values::lgamma(mvlgamma_args(a, p)), {-1}), constant);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    const auto p = std::any_cast<int64_t>(ctx->saved_data["p"]);
    return {fit(mul(g[0], sum(digamma(mvlgamma_args(x, p)), {-1})), x), Tensor()};
  }
};

// torch's i1_backward: grad (i0(x) - i1(x) / x), 0.5 grad where |x| <= eps of the dtype.
struct I1 : Function<I1> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    Tensor out = math_values::i1(a);
    ctx->save_for_backward({a, out});
    return out;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const Tensor &x = s[0], &result = s[1];
    const double eps = x.dtype() == DType::float64
                           ? std::numeric_limits<double>::epsilon()
                           : static_cast<double>(std::numeric_limits<float>::epsilon());
    const Tensor not_tiny = gt(abs(x), eps);
    const Tensor safe = where(not_tiny, x, eps);
    const Tensor gradx = sub(i0(safe), mul(result, reciprocal(safe)));
    return {fit(mul(g[0], where(not_tiny, gradx, 0.5)), x)};
  }
};

// i0's gradient is i1 (also for bfloat16, where torch's i1 kernel, and so its i0 backward,
// refuses).
struct I0 : Function<I0> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a) {
    ctx->save_for_backward({a});
    return math_values::i0(a);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    return {fit(mul(g[0], I1::apply(x)), x)};
  }
};

}  // namespace

Tensor hypot(const Tensor& a, const Tensor& b) { return Hypot::apply(a, b); }
Tensor logaddexp(const Tensor& a, const Tensor& b) { return LogAddExp::apply(a, b); }
Tensor logaddexp2(const Tensor& a, const Tensor& b) { return LogAddExp2::apply(a, b); }

Tensor xlogy(const Tensor& x, const Tensor& y) { return XLogY<false>::apply(x, y); }
Tensor xlogy(const Tensor& x, const Scalar& y) {
  check_host_operands("xlogy", x);
  return xlogy(x, wrapped_scalar(x, y, result_type({&x}, {&y})));
}
Tensor xlogy(const Scalar& x, const Tensor& y) {
  check_host_operands("xlogy", y);
  return xlogy(wrapped_scalar(y, x, result_type({&y}, {&x})), y);
}
Tensor xlog1py(const Tensor& x, const Tensor& y) { return XLogY<true>::apply(x, y); }
Tensor xlog1py(const Tensor& x, const Scalar& y) {
  check_host_operands("xlog1py", x);
  return xlog1py(x, wrapped_scalar(x, y, result_type({&x}, {&y})));
}
Tensor xlog1py(const Scalar& x, const Tensor& y) {
  check_host_operands("xlog1py", y);
  return xlog1py(wrapped_scalar(y, x, result_type({&y}, {&x})), y);
}

Tensor copysign(const Tensor& a, const Tensor& b) { return Copysign::apply(a, b); }
Tensor copysign(const Tensor& a, const Scalar& b) {
  check_host_operands("copysign", a);
  return copysign(a, wrapped_scalar(a, b, result_type({&a}, {&b})));
}

Tensor fmax(const Tensor& a, const Tensor& b) { return FMaxMin<true>::apply(a, b); }
Tensor fmin(const Tensor& a, const Tensor& b) { return FMaxMin<false>::apply(a, b); }
Tensor clamp_min(const Tensor& a, const Tensor& min) { return ClampBound<true>::apply(a, min); }
Tensor clamp_max(const Tensor& a, const Tensor& max) { return ClampBound<false>::apply(a, max); }
Tensor exp2(const Tensor& a) { return Exp2::apply(a); }
Tensor sinc(const Tensor& a) { return Sinc::apply(a); }
Tensor logit(const Tensor& a, std::optional<double> eps) {
  // torch treats a negative eps as none
  return Logit::apply(a, eps && *eps >= 0 ? eps : std::nullopt);
}
Tensor erfc(const Tensor& a) { return Erfc::apply(a); }
Tensor lgamma(const Tensor& a) { return Lgamma::apply(a); }
Tensor digamma(const Tensor& a) { return Polygamma::apply(int64_t{0}, a); }
Tensor polygamma(int64_t n, const Tensor& a) {
  FABRIC_CHECK(n >= 0, ValueError, "polygamma(n, x): n must be >= 0, got ", n,
               " (torch: polygamma does not support negative n)");
  return Polygamma::apply(n, a);
}
Tensor mvlgamma(const Tensor& a, int64_t p) {
  check_host_operands("mvlgamma", a);
  FABRIC_CHECK(p >= 1, ValueError, "mvlgamma: p has to be greater than or equal to 1, got ", p,
               " (input of shape ", shape_str(a.sizes()), ")");
  return Mvlgamma::apply(a, p);
}
Tensor i0(const Tensor& a) { return I0::apply(a); }
Tensor special::i1(const Tensor& a) {
  check_host_operands("special_i1", a);
  FABRIC_CHECK(a.dtype() != DType::bfloat16, DTypeError,
               "special_i1: not implemented for bfloat16 (torch's CPU kernel has none; shape ",
               shape_str(a.sizes()), "); cast to float32 first");
  return I1::apply(a);
}

}  // namespace fabric
