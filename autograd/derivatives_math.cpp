// Derivatives of the trigonometric/hyperbolic/log family, erfinv, nan_to_num (ops_unary_math.cpp),
// atan2/fmod/remainder (ops_binary_math.cpp) and prod/cumprod (ops_prod.cpp), as torch's
// derivatives.yaml and FunctionsManual. Each is a composition of recorded ops, so a gradient
// taken with create_graph differentiates again (autograd/double_backward.cpp lists them).
#include <cmath>

#include "autograd/derivatives.h"
#include "autograd/grad_mode.h"
#include "autograd/saved.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

// ---- unary ------------------------------------------------------------------------------------

// A rule g -> g * f(x) on the saved input.
template <typename F>
FunctionNode::Backward times_input_fn(const OpRecord& rec, F f) {
  Tensor x = saved(rec.inputs[0]);
  return [x, f](const Grads& g) { return Grads{mul(g[0], f(x))}; };
}

// A rule g -> g / f(x), which torch's derivatives.yaml writes as a division (g * (1 / f) rounds
// twice: log2's gradient at 0.1 was an ulp off).
template <typename F>
FunctionNode::Backward over_input_fn(const OpRecord& rec, F f) {
  Tensor x = saved(rec.inputs[0]);
  return [x, f](const Grads& g) { return Grads{div(g[0], f(x))}; };
}

FABRIC_DERIVATIVE(tan) {  // 1 + tan(x)^2, from the output as torch
  Tensor y = saved(rec.outputs[0]);
  return [y](const Grads& g) { return Grads{mul(g[0], add(mul(y, y), 1.0))}; };
}
FABRIC_DERIVATIVE(asin) {
  return times_input_fn(rec, [](const Tensor& x) { return rsqrt(add(neg(mul(x, x)), 1.0)); });
}
FABRIC_DERIVATIVE(acos) {
  return times_input_fn(rec, [](const Tensor& x) { return neg(rsqrt(add(neg(mul(x, x)), 1.0))); });
}
FABRIC_DERIVATIVE(atan) {
  return over_input_fn(rec, [](const Tensor& x) { return add(mul(x, x), 1.0); });
}
FABRIC_DERIVATIVE(sinh) {
  return times_input_fn(rec, [](const Tensor& x) { return cosh(x); });
}
FABRIC_DERIVATIVE(cosh) {
  return times_input_fn(rec, [](const Tensor& x) { return sinh(x); });
}
FABRIC_DERIVATIVE(asinh) {
  return times_input_fn(rec, [](const Tensor& x) { return rsqrt(add(mul(x, x), 1.0)); });
}
FABRIC_DERIVATIVE(acosh) {
  return times_input_fn(rec, [](const Tensor& x) { return rsqrt(sub(mul(x, x), 1.0)); });
}
FABRIC_DERIVATIVE(atanh) {
  return over_input_fn(rec, [](const Tensor& x) { return add(neg(mul(x, x)), 1.0); });
}
// The constants as derivatives.yaml spells them (2.3025850929940456 is not the double nearest
// ln 10, M_LN10: float64 log10 gradients were an ulp off).
FABRIC_DERIVATIVE(log2) {
  return over_input_fn(rec, [](const Tensor& x) { return mul(x, 0.6931471805599453); });
}
FABRIC_DERIVATIVE(log10) {
  return over_input_fn(rec, [](const Tensor& x) { return mul(x, 2.3025850929940456); });
}
// d erfinv(x)/dx = sqrt(pi)/2 * exp(erfinv(x)^2), from the output as torch.
FABRIC_DERIVATIVE(erfinv) {
  Tensor y = saved(rec.outputs[0]);
  return
      [y](const Grads& g) { return Grads{mul(g[0], mul(exp(mul(y, y)), 0.5 * std::sqrt(M_PI)))}; };
}
// The gradient passes where the input was finite and is zero where a value was replaced.
FABRIC_DERIVATIVE(nan_to_num) {
  Tensor x = saved(rec.inputs[0]);
  return [x](const Grads& g) { return Grads{where(isfinite(x), g[0], 0.0)}; };
}

// ---- binary -----------------------------------------------------------------------------------

FABRIC_DERIVATIVE(atan2) {
  Tensor a = saved(rec.inputs[0]), b = saved(rec.inputs[1]);
  return [a, b](const Grads& g) {
    // torch's atan2_backward: r = 1 / (a^2 + b^2); (g * b) * r and (g * -a) * r.
    const Tensor r = reciprocal(add(mul(a, a), mul(b, b)));
    return Grads{mul(mul(g[0], b), r), mul(mul(g[0], neg(a)), r)};
  };
}
// fmod(a, b) = a - trunc(a/b) * b and remainder(a, b) = a - floor(a/b) * b: 1 for a, minus the
// rounded quotient for b.
FABRIC_DERIVATIVE(fmod) {
  const bool need_b = rec.inputs[1].requires_grad();
  Tensor a = need_b ? saved(rec.inputs[0]) : Tensor(), b = need_b ? saved(rec.inputs[1]) : Tensor();
  return [a, b](const Grads& g) {
    return Grads{g[0], b.defined() ? neg(mul(g[0], trunc(div(a, b)))) : Tensor()};
  };
}
// torch's floor division (div(a, b, rounding_mode="floor")) as its kernel computes it: from
// fmod rather than floor(a / b), so -1 // inf is -1 as in Python, inf // 2 is NaN, b == 0 gives
// a / b and a zero quotient takes the sign of a / b.
Tensor torch_floor_divide(const Tensor& a, const Tensor& b) {
  const Tensor mod = fmod(a, b);
  Tensor q = div(sub(a, mod), b);
  q = where(logical_and(ne(mod, 0.0), logical_xor(lt(b, 0.0), lt(mod, 0.0))), sub(q, 1.0), q);
  Tensor fl = floor(q);
  fl = where(gt(sub(q, fl), 0.5), add(fl, 1.0), fl);
  const Tensor exact = div(a, b);
  return where(eq(b, 0.0), exact, where(ne(q, 0.0), fl, mul(exact, 0.0)));
}
FABRIC_DERIVATIVE(remainder) {
  const bool need_b = rec.inputs[1].requires_grad();
  Tensor a = need_b ? saved(rec.inputs[0]) : Tensor(), b = need_b ? saved(rec.inputs[1]) : Tensor();
  return [a, b](const Grads& g) {
    return Grads{g[0], b.defined() ? neg(mul(g[0], torch_floor_divide(a, b))) : Tensor()};
  };
}

// ---- products ---------------------------------------------------------------------------------

Tensor reversed_cumsum(const Tensor& t, int64_t dim) {
  return flip(cumsum(flip(t, {dim}), dim), {dim});
}

// The product of every other element along `dim` at each position: the prefix product before it
// times the suffix product after it (torch's prod_safe_zeros_backward). No division, so one zero
// leaves the others' product at its own position and zeros elsewhere, two zeros zero everywhere.
Tensor product_of_others(const Tensor& x, int64_t dim) {
  const int64_t n = x.sizes()[dim];
  if (n == 1) return ones_like(x);
  const Tensor one = ones_like(x.narrow(dim, 0, 1));
  const Tensor before = cumprod(cat({one, x.narrow(dim, 0, n - 1)}, dim), dim);
  const Tensor after_reversed = cumprod(cat({one, flip(x, {dim}).narrow(dim, 0, n - 1)}, dim), dim);
  return mul(before, flip(after_reversed, {dim}));
}

FABRIC_DERIVATIVE(prod) {
  const ReduceAttrs attrs = attrs_of<ReduceAttrs>(rec);
  Tensor x = saved(rec.inputs[0]);
  return [attrs, x](const Grads& g) {
    if (x.numel() == 0) return Grads{zeros_like(x)};
    if (x.dim() == 0) return Grads{g[0]};
    if (attrs.dims.size() == 1) {
      const int64_t dim = attrs.dims[0];
      const Tensor gk = attrs.keepdim ? g[0] : g[0].unsqueeze(dim);
      return Grads{mul(gk, product_of_others(x, dim))};
    }
    // Over every element: the same along the flattened tensor.
    const Tensor others = product_of_others(x.reshape({x.numel()}), 0).reshape(x.sizes());
    return Grads{mul(g[0].reshape({}), others)};
  };
}

// torch's cumprod_backward without its division. Along dim, with z the first zero of x:
// before z, dy_j/dx_k = y_j / x_k (x_k != 0), so grad_k = sum_{j>=k} g_j y_j / x_k; at z,
// grad_z = sum_{j>=z} g_j * prod_{i<=j, i!=z} x_i, the cumprod of x with x_z set to 1; after z
// every product holds x_z = 0 and the gradient is zero. O(n), and exact, but only at this x: the
// masks are not differentiable.
Tensor cumprod_grad_masked(const Tensor& x, const Tensor& y, const Tensor& g, int64_t dim) {
  const Tensor is_zero = eq(x, 0.0);
  const Tensor zeros_so_far = cumsum(is_zero, dim);
  const Tensor before = eq(zeros_so_far, 0);
  const Tensor first = logical_and(is_zero, eq(zeros_so_far, 1));
  const Tensor one = ones_like(x);
  const Tensor grad_before =
      where(before, div(reversed_cumsum(mul(g, y), dim), where(before, x, one)), 0.0);
  const Tensor y_without_first = cumprod(where(first, one, x), dim);
  const Tensor grad_first = where(first, reversed_cumsum(mul(g, y_without_first), dim), 0.0);
  return add(grad_before, grad_first);
}

// The same gradient as a polynomial in x, for create_graph (torch, too, switches to an O(n^2)
// form there): grad_k = prod_{i<k} x_i * sum_{j>=k} g_j prod_{k<i<=j} x_i, the inner products
// from an (n, n) cumprod of x with the entries i <= k set to 1. Valid in a neighbourhood of x,
// zeros included, so it differentiates again.
Tensor cumprod_grad_polynomial(const Tensor& x, const Tensor& g, int64_t dim) {
  const Tensor xt = x.transpose(dim, -1), gt_ = g.transpose(dim, -1);
  const int64_t n = xt.sizes().back();
  Shape square = xt.sizes();
  square.insert(square.end() - 1, n);  // (..., k, i)
  const Tensor square_ones = ones({n, n}, {.dtype = x.dtype(), .device = x.device()});
  const Tensor after_k = ne(triu(square_ones, 1), 0.0);  // i > k
  const Tensor from_k = ne(triu(square_ones, 0), 0.0);   // j >= k
  const Tensor tail = cumprod(where(after_k, xt.unsqueeze(-2).expand(square), 1.0), -1);
  const Tensor inner = sum(where(from_k, mul(tail, gt_.unsqueeze(-2)), 0.0), {-1});
  const Tensor one = ones_like(xt.narrow(-1, 0, 1));
  const Tensor head = cumprod(cat({one, xt.narrow(-1, 0, n - 1)}, -1), -1);  // prod_{i<k}
  return mul(head, inner).transpose(dim, -1);
}

FABRIC_DERIVATIVE(cumprod) {
  const int64_t dim = attrs_of<DimAttrs>(rec).dim;
  Tensor x = saved(rec.inputs[0]), y = saved(rec.outputs[0]);
  return [dim, x, y](const Grads& g) {
    if (x.dim() == 0) return Grads{g[0]};
    if (x.numel() == 0) return Grads{zeros_like(x)};
    if (grad_enabled()) return Grads{cumprod_grad_polynomial(x, g[0], dim)};
    return Grads{cumprod_grad_masked(x, y, g[0], dim)};
  };
}

}  // namespace
}  // namespace fabric
