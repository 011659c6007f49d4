// Double backward (create_graph = true): every op whose derivative supports it, its second
// derivative against central differences of its first derivative in float64; a Hessian-vector
// product of a small MLP and WGAN-GP critic steps (MLP and CNN critics) against torch 1.13; the
// error of an op whose derivative is a fused kernel; and the default (create_graph = false)
// gradients, which keep no history.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/autocast.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/autograd/double_backward_fixture.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using V = std::vector<Tensor>;
using Fn = std::function<Tensor(const V&)>;

// An input: its shape and the range its random values are drawn from (lo > 0 keeps log, sqrt,
// division and pow's base in their domain).
struct In {
  Shape shape;
  double lo = -2, hi = 2;
};
In Pos(Shape s) { return {std::move(s), 0.3, 2.0}; }

struct SecondOrderCase {
  std::string name;
  std::vector<In> inputs;
  Fn f;
};

Tensor f64(const std::vector<double>& v, const Shape& shape) {
  if (shape.empty()) return scalar_tensor(v[0], {.dtype = DType::float64});
  return from_vector(v, shape, {.dtype = DType::float64});
}

std::vector<double> random_values(const In& in, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(in.lo, in.hi);
  std::vector<double> v(numel_of(in.shape));
  for (double& x : v) x = u(rng);
  return v;
}

// s(inputs, w) = sum_k <d sum(f(inputs) w) / d input_k, v_k>: its gradient is a Hessian-vector
// product (in the inputs) and a Jacobian-vector product (in w), both taken by double backward.
// With create_graph = false it is the finite-difference objective (first derivatives only).
Tensor first_order_objective(const Fn& f, const V& inputs, const Tensor& w, const V& vs,
                             bool create_graph) {
  Tensor out = f(inputs);
  V g = grad({sum(mul(out, w))}, inputs, {}, std::nullopt, create_graph, /*allow_unused=*/true);
  Tensor s = scalar_tensor(0.0, {.dtype = DType::float64});
  for (size_t k = 0; k < g.size(); ++k)
    if (g[k].defined()) s = add(s, sum(mul(g[k], vs[k])));
  return s;
}

void check_second_order(const SecondOrderCase& c, std::mt19937_64& rng) {
  SCOPED_TRACE(c.name);
  std::vector<std::vector<double>> vals;
  V inputs, vs;
  for (const In& in : c.inputs) {
    vals.push_back(random_values(in, rng));
    inputs.push_back(f64(vals.back(), in.shape).set_requires_grad(true));
    vs.push_back(f64(random_values({in.shape, -1, 1}, rng), in.shape));
  }
  Shape out_shape;
  {
    NoGradGuard ng;
    out_shape = c.f(inputs).sizes();
  }
  const In w_in{out_shape, -1, 1};
  vals.push_back(random_values(w_in, rng));
  Tensor w = f64(vals.back(), out_shape).set_requires_grad(true);

  // The first derivative taken with create_graph (a composition for the fused ops) is the
  // default one (the fused kernel), which keeps no history.
  {
    const V plain = grad({sum(mul(c.f(inputs), w))}, inputs, {}, std::nullopt, false, true);
    const V graphed = grad({sum(mul(c.f(inputs), w))}, inputs, {}, std::nullopt, true, true);
    for (size_t k = 0; k < inputs.size(); ++k) {
      ASSERT_EQ(plain[k].defined(), graphed[k].defined()) << c.name << ": input " << k;
      if (!plain[k].defined()) continue;
      EXPECT_FALSE(plain[k].requires_grad()) << c.name << ": input " << k;
      const std::vector<double> want = plain[k].to_vector<double>();
      const std::vector<double> got = graphed[k].to_vector<double>();
      for (size_t e = 0; e < want.size(); ++e)
        EXPECT_NEAR(got[e], want[e], 1e-12 * std::max(1.0, std::abs(want[e])))
            << c.name << ": first derivative, input " << k << " element " << e;
    }
  }

  V wrt = inputs;
  wrt.push_back(w);
  Tensor s = first_order_objective(c.f, inputs, w, vs, /*create_graph=*/true);
  ASSERT_TRUE(s.requires_grad()) << "the gradient taken with create_graph has no history";
  V analytic = grad({s}, wrt, {}, std::nullopt, false, /*allow_unused=*/true);

  const double h = 1e-6;
  for (size_t k = 0; k < wrt.size(); ++k) {
    const Shape& shape = k < inputs.size() ? c.inputs[k].shape : out_shape;
    std::vector<double> ga = analytic[k].defined() ? analytic[k].to_vector<double>()
                                                   : std::vector<double>(numel_of(shape), 0.0);
    for (int64_t e = 0; e < numel_of(shape); ++e) {
      auto at = [&](double delta) {
        V probe;
        for (size_t i = 0; i < inputs.size(); ++i) {
          std::vector<double> v = vals[i];
          if (i == k) v[e] += delta;
          probe.push_back(f64(v, c.inputs[i].shape).set_requires_grad(true));
        }
        std::vector<double> wv = vals.back();
        if (k == inputs.size()) wv[e] += delta;
        return first_order_objective(c.f, probe, f64(wv, out_shape), vs, false).item<double>();
      };
      const double numeric = (at(h) - at(-h)) / (2 * h);
      EXPECT_NEAR(ga[e], numeric, 1e-5 * std::max(1.0, std::abs(numeric)))
          << c.name << ": d/d "
          << (k < inputs.size() ? "input " + std::to_string(k) : std::string("w")) << " element "
          << e;
    }
  }
}

std::vector<SecondOrderCase> second_order_cases() {
  const Shape s34{3, 4};
  return {
      // ---- elementwise arithmetic (with broadcasting) ----
      {"add", {{s34}, {{4}}}, [](const V& x) { return add(x[0], x[1], 2.5); }},
      {"sub", {{s34}, {{3, 1}}}, [](const V& x) { return sub(x[0], x[1]); }},
      {"mul", {{s34}, {{4}}}, [](const V& x) { return mul(x[0], x[1]); }},
      {"mul_self", {{s34}}, [](const V& x) { return mul(x[0], x[0]); }},
      {"mul_scalar", {{s34}}, [](const V& x) { return mul(mul(x[0], x[0]), -1.5); }},
      {"div", {{s34}, Pos({4})}, [](const V& x) { return div(x[0], x[1]); }},
      {"div_scalar", {{s34}}, [](const V& x) { return div(mul(x[0], x[0]), 3.0); }},
      {"pow_scalar", {Pos(s34)}, [](const V& x) { return pow(x[0], 2.5); }},
      {"pow_cube", {{s34}}, [](const V& x) { return pow(x[0], 3.0); }},
      {"pow_tensor", {Pos(s34), {s34}}, [](const V& x) { return pow(x[0], x[1]); }},
      {"maximum", {{s34}, {s34}}, [](const V& x) { return mul(maximum(x[0], x[1]), x[0]); }},
      {"minimum", {{s34}, {s34}}, [](const V& x) { return mul(minimum(x[0], x[1]), x[1]); }},
      {"where",
       {{s34}, {s34}},
       [](const V& x) { return where(gt(x[0], 0.0), mul(x[0], x[1]), exp(x[1])); }},
      {"addcmul", {{s34}, {s34}, {s34}}, [](const V& x) { return addcmul(x[0], x[1], x[2], 0.5); }},
      // ---- unary ----
      {"neg", {{s34}}, [](const V& x) { return neg(mul(x[0], x[0])); }},
      {"abs", {{s34}}, [](const V& x) { return mul(abs(x[0]), x[0]); }},
      {"exp", {{s34}}, [](const V& x) { return exp(x[0]); }},
      {"log", {Pos(s34)}, [](const V& x) { return log(x[0]); }},
      {"sqrt", {Pos(s34)}, [](const V& x) { return sqrt(x[0]); }},
      {"rsqrt", {Pos(s34)}, [](const V& x) { return rsqrt(x[0]); }},
      {"reciprocal", {Pos(s34)}, [](const V& x) { return reciprocal(x[0]); }},
      {"sin", {{s34}}, [](const V& x) { return sin(x[0]); }},
      {"cos", {{s34}}, [](const V& x) { return cos(x[0]); }},
      {"log1p", {Pos(s34)}, [](const V& x) { return log1p(x[0]); }},
      {"expm1", {{s34}}, [](const V& x) { return expm1(x[0]); }},
      {"erf", {{s34}}, [](const V& x) { return erf(x[0]); }},
      {"tan", {{s34, -1, 1}}, [](const V& x) { return tan(x[0]); }},
      {"asin", {{s34, -0.8, 0.8}}, [](const V& x) { return asin(x[0]); }},
      {"acos", {{s34, -0.8, 0.8}}, [](const V& x) { return acos(x[0]); }},
      {"atan", {{s34}}, [](const V& x) { return atan(x[0]); }},
      {"sinh", {{s34}}, [](const V& x) { return sinh(x[0]); }},
      {"cosh", {{s34}}, [](const V& x) { return cosh(x[0]); }},
      {"asinh", {{s34}}, [](const V& x) { return asinh(x[0]); }},
      {"acosh", {{s34, 1.2, 3}}, [](const V& x) { return acosh(x[0]); }},
      {"atanh", {{s34, -0.8, 0.8}}, [](const V& x) { return atanh(x[0]); }},
      {"log2", {Pos(s34)}, [](const V& x) { return log2(x[0]); }},
      {"log10", {Pos(s34)}, [](const V& x) { return log10(x[0]); }},
      {"erfinv", {{s34, -0.8, 0.8}}, [](const V& x) { return erfinv(x[0]); }},
      {"nan_to_num", {{s34}}, [](const V& x) { return mul(nan_to_num(x[0]), x[0]); }},
      {"atan2", {{s34}, Pos({4})}, [](const V& x) { return atan2(x[0], x[1]); }},
      // fmod/remainder are piecewise linear: their second derivatives come from the product.
      {"fmod", {{s34}, Pos({4})}, [](const V& x) { return mul(fmod(x[0], x[1]), x[1]); }},
      {"remainder", {{s34}, Pos({4})}, [](const V& x) { return mul(remainder(x[0], x[1]), x[0]); }},
      // sign's zero gradient inside a product: d2/dx2 of sign(x) x^2 = 2 sign(x) off zero.
      {"sign_times_square", {{s34}}, [](const V& x) { return mul(sign(x[0]), mul(x[0], x[0])); }},
      {"tanh", {{s34}}, [](const V& x) { return tanh(x[0]); }},
      {"sigmoid", {{s34}}, [](const V& x) { return sigmoid(x[0]); }},
      {"relu", {{s34}}, [](const V& x) { return mul(relu(x[0]), x[0]); }},
      {"silu", {{s34}}, [](const V& x) { return silu(x[0]); }},
      {"gelu", {{s34}}, [](const V& x) { return gelu(x[0]); }},
      {"gelu_tanh", {{s34}}, [](const V& x) { return gelu(x[0], "tanh"); }},
      {"clamp", {{s34}}, [](const V& x) { return mul(clamp(x[0], -1.0, 1.0), x[0]); }},
      // parameterised activations (the piecewise-linear ones times x, for a second derivative)
      {"leaky_relu", {{s34}}, [](const V& x) { return mul(leaky_relu(x[0], 0.2), x[0]); }},
      {"elu", {{s34}}, [](const V& x) { return elu(x[0], 0.5); }},
      {"selu", {{s34}}, [](const V& x) { return selu(x[0]); }},
      {"celu", {{s34}}, [](const V& x) { return celu(x[0], 2.0); }},
      {"softplus", {{s34}}, [](const V& x) { return softplus(x[0], 2.0); }},
      {"hardtanh", {{s34}}, [](const V& x) { return mul(hardtanh(x[0], -0.5, 1.0), x[0]); }},
      {"relu6", {{{3, 4}, -2, 8}}, [](const V& x) { return mul(relu6(x[0]), x[0]); }},
      {"mish", {{s34}}, [](const V& x) { return mish(x[0]); }},
      {"hardswish", {{s34}}, [](const V& x) { return hardswish(x[0]); }},
      {"hardsigmoid", {{{3, 4}, -4, 4}}, [](const V& x) { return mul(hardsigmoid(x[0]), x[0]); }},
      {"log_sigmoid", {{s34}}, [](const V& x) { return log_sigmoid(x[0]); }},
      {"hardshrink", {{s34}}, [](const V& x) { return mul(hardshrink(x[0], 0.3), x[0]); }},
      {"softshrink", {{s34}}, [](const V& x) { return mul(softshrink(x[0], 0.3), x[0]); }},
      {"threshold", {{s34}}, [](const V& x) { return mul(threshold(x[0], 0.1, 2.0), x[0]); }},
      {"prelu", {{s34}, {{4}}}, [](const V& x) { return mul(prelu(x[0], x[1]), x[0]); }},
      {"glu", {{s34}}, [](const V& x) { return glu(x[0]); }},
      {"normalize", {{s34}}, [](const V& x) { return normalize(x[0]); }},
      {"local_response_norm",
       {{{2, 4, 3}}},
       [](const V& x) { return local_response_norm(x[0], 3, 0.5, 0.75, 1.0); }},
      // ---- linear algebra ----
      {"matmul", {{{3, 4}}, {{4, 2}}}, [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul_batched",
       {{{2, 3, 4}}, {{4, 2}}},
       [](const V& x) { return tanh(matmul(x[0], x[1])); }},
      {"matmul_vector", {{{4}}, {{4, 3}}}, [](const V& x) { return sin(matmul(x[0], x[1])); }},
      {"matmul_dot", {{{4}}, {{4}}}, [](const V& x) { return exp(matmul(x[0], x[1])); }},
      {"mm", {{{3, 4}}, {{4, 2}}}, [](const V& x) { return mm(x[0], x[1]); }},
      {"bmm", {{{2, 3, 4}}, {{2, 4, 2}}}, [](const V& x) { return bmm(x[0], x[1]); }},
      {"addmm",
       {{{3, 5}}, {{3, 4}}, {{4, 5}}},
       [](const V& x) { return sin(addmm(x[0], x[1], x[2], 0.5, -1.5)); }},
      {"baddbmm",
       {{{5}}, {{2, 3, 4}}, {{2, 4, 5}}},
       [](const V& x) { return sin(baddbmm(x[0], x[1], x[2], 2, 0.5)); }},
      {"addbmm",
       {{{3, 5}}, {{2, 3, 4}}, {{2, 4, 5}}},
       [](const V& x) { return sin(addbmm(x[0], x[1], x[2], -1, 0.7)); }},
      {"diagonal", {{{3, 4}}}, [](const V& x) { return exp(diagonal(x[0], 1)); }},
      {"einsum_diagonal_contraction",
       {{{3, 3, 2}}, {{2, 4}}},
       [](const V& x) {
         return sin(einsum("iij,jk->ik", {x[0], x[1]}));
       }},
      {"linear",
       {{{5, 3}}, {{4, 3}}, {{4}}},
       [](const V& x) { return tanh(linear(x[0], x[1], x[2])); }},
      {"linear_3d",
       {{{2, 2, 3}}, {{4, 3}}},
       [](const V& x) { return sigmoid(linear(x[0], x[1])); }},
      {"gelu_mlp",
       {{{2, 2, 3}}, {{4, 3}}, {{4}}, {{2, 4}}, {{2}}},
       [](const V& x) { return tanh(gelu_mlp(x[0], x[1], x[2], x[3], x[4])); }},
      // ---- reductions ----
      {"sum", {{s34}}, [](const V& x) { return mul(sum(x[0], {1}, true), x[0]); }},
      {"sum_all", {{s34}}, [](const V& x) { return mul(sum(mul(x[0], x[0])), sum(x[0])); }},
      {"mean", {{s34}}, [](const V& x) { return exp(mean(x[0], {0})); }},
      {"norm", {{s34}}, [](const V& x) { return norm(x[0], 2, {1}); }},
      {"norm_all", {{s34}}, [](const V& x) { return norm(x[0]); }},
      {"norm_p3", {Pos(s34)}, [](const V& x) { return norm(x[0], 3, {0}); }},
      {"var", {{s34}}, [](const V& x) { return var(x[0], {1}); }},
      {"std", {{s34}}, [](const V& x) { return std(x[0], {1}); }},
      {"logsumexp", {{s34}}, [](const V& x) { return logsumexp(x[0], {1}); }},
      {"amax", {{s34}}, [](const V& x) { return mul(amax(x[0], {1}, true), x[0]); }},
      {"cumsum", {{s34}}, [](const V& x) { return sin(cumsum(x[0], 1)); }},
      {"prod_dim", {{s34}}, [](const V& x) { return prod(x[0], 1); }},
      {"prod_all", {{{2, 3}}}, [](const V& x) { return prod(x[0]); }},
      {"cumprod", {{s34}}, [](const V& x) { return cumprod(x[0], 0); }},
      {"softmax", {{s34}}, [](const V& x) { return softmax(x[0], 1); }},
      {"log_softmax", {{s34}}, [](const V& x) { return log_softmax(x[0], -1); }},
      {"max_dim", {{s34}}, [](const V& x) { return exp(std::get<0>(max(x[0], 1))); }},
      {"min_dim_keepdim",
       {{s34}},
       [](const V& x) { return mul(std::get<0>(min(x[0], 0, true)), x[0]); }},
      // ---- normalisations ----
      {"layer_norm",
       {{s34}, {{4}}, {{4}}},
       [](const V& x) { return layer_norm(x[0], {4}, x[1], x[2]); }},
      {"layer_norm_weight_only",
       {{{2, 3, 4}}, {{3, 4}}},
       [](const V& x) {
         return layer_norm(x[0], {3, 4}, x[1], Tensor(), 1e-3);
       }},
      {"layer_norm_no_affine", {{s34}}, [](const V& x) { return layer_norm(x[0], {4}); }},
      {"rms_norm", {{s34}, {{4}}}, [](const V& x) { return rms_norm(x[0], {4}, x[1]); }},
      {"rms_norm_no_weight",
       {{{2, 3, 4}}},
       [](const V& x) {
         return rms_norm(x[0], {3, 4}, Tensor(), 1e-2);
       }},
      {"batch_norm_train",
       {{{3, 2, 4}}, {{2}}, {{2}}},
       [](const V& x) {
         return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], /*training=*/true);
       }},
      {"batch_norm_train_no_affine",
       {{{4, 3}}},
       [](const V& x) { return batch_norm(x[0], Tensor(), Tensor(), {}, {}, true, 0.1, 1e-3); }},
      {"batch_norm_eval",
       {{{3, 2, 2, 2}}, {{2}}, {{2}}},
       [](const V& x) {
         const Tensor rm = from_vector<double>({0.3, -0.2}, {2});
         const Tensor rv = from_vector<double>({1.5, 0.7}, {2});
         return mul(batch_norm(x[0], rm, rv, x[1], x[2], /*training=*/false), x[0]);
       }},
      {"group_norm",
       {{{2, 4, 3}}, {{4}}, {{4}}},
       [](const V& x) { return group_norm(x[0], 2, x[1], x[2]); }},
      {"group_norm_no_affine",
       {{{2, 3, 2, 2}}},
       [](const V& x) { return group_norm(x[0], 3, Tensor(), Tensor(), 1e-3); }},
      // ---- views, indexing, joining ----
      {"reshape",
       {{s34}},
       [](const V& x) {
         return sin(mul(x[0].reshape({2, 6}), x[0].reshape({2, 6})));
       }},
      {"transpose", {{s34}}, [](const V& x) { return mul(x[0].t(), x[0].transpose(0, 1)); }},
      {"permute",
       {{{2, 3, 2}}},
       [](const V& x) {
         return exp(x[0].permute({2, 0, 1}));
       }},
      {"expand",
       {{{3, 1}}},
       [](const V& x) {
         return mul(x[0].expand({3, 4}), x[0]);
       }},
      {"slice", {{s34}}, [](const V& x) { return exp(x[0].slice(1, 1, 3)); }},
      {"select", {{s34}}, [](const V& x) { return exp(x[0].select(0, 1)); }},
      {"narrow_step", {{s34}}, [](const V& x) { return sin(x[0].slice(1, 0, 4, 2)); }},
      {"cat",
       {{s34}, {{2, 4}}},
       [](const V& x) {
         return exp(cat({x[0], x[1]}, 0));
       }},
      {"stack",
       {{s34}, {s34}},
       [](const V& x) {
         return mul(stack({x[0], x[1]}, 1), stack({x[1], x[0]}, 1));
       }},
      {"tril", {{{4, 4}}}, [](const V& x) { return exp(tril(x[0])); }},
      {"embedding",
       {{{5, 3}}},
       [](const V& x) {
         return sin(embedding(x[0], from_vector<int64_t>({0, 4, 4, 2}, {2, 2})));
       }},
      {"index_select",
       {{s34}},
       [](const V& x) {
         return sin(index_select(x[0], 1, from_vector<int64_t>({3, 0, 3}, {3})));
       }},
      {"gather",
       {{s34}},
       [](const V& x) {
         return exp(gather(x[0], 1, from_vector<int64_t>({1, 1, 0, 3, 2, 0}, {3, 2})));
       }},
      // The index writes: scatter and scatter_reduce's rules, and the compositions over them.
      {"scatter",
       {{s34}, {{3, 2}}},
       [](const V& x) {
         return exp(scatter(x[0], 1, from_vector<int64_t>({1, 3, 0, 2, 2, 0}, {3, 2}), x[1]));
       }},
      {"scatter_reduce_sum_mean",
       {{s34}, {{3, 3}}},
       [](const V& x) {
         const Tensor at = from_vector<int64_t>({1, 1, 0, 3, 2, 3, 0, 0, 0}, {3, 3});
         return mul(scatter_reduce(x[0], 1, at, x[1], "sum"),
                    scatter_reduce(x[0], 1, at, x[1], "mean", false));
       }},
      {"scatter_reduce_amax_prod",
       {{s34}, {{3, 3}}},
       [](const V& x) {
         const Tensor at = from_vector<int64_t>({1, 1, 0, 3, 2, 3, 0, 0, 0}, {3, 3});
         return mul(exp(scatter_reduce(x[0], 1, at, x[1], "amax")),
                    scatter_reduce(x[0], 1, at, x[1], "prod", false));
       }},
      {"index_put_accumulate_and_masked_scatter",
       {{s34}, {{2, 4}}},
       [](const V& x) {
         const Tensor rows = from_vector<int64_t>({2, 2});
         const Tensor mask = gt(x[0].detach(), Scalar(0));
         return sin(
             mul(index_put(x[0], {rows}, x[1], true),
                 masked_scatter(x[0], mask, cat({x[1].reshape({-1}), x[1].reshape({-1})}, 0))));
       }},
      // ---- convolution and pooling (random float64 inputs: no ties in a max pool's window) ----
      {"conv2d",
       {{{2, 2, 5, 5}}, {{3, 2, 3, 3}}, {{3}}},
       [](const V& x) { return tanh(conv2d(x[0], x[1], x[2], {1}, {1})); }},
      // Row 5 of the input reaches no output window (its gradient is zero).
      {"conv2d_stride_padding_dilation_groups",
       {{{2, 4, 6, 7}}, {{4, 2, 2, 3}}, {{4}}},
       [](const V& x) { return tanh(conv2d(x[0], x[1], x[2], {2}, {1}, {2}, 2)); }},
      {"conv2d_leftover_rows_and_columns",
       {{{1, 2, 6, 6}}, {{2, 2, 3, 2}}},
       [](const V& x) {
         return sin(conv2d(x[0], x[1], Tensor(), {2, 3}));
       }},
      {"conv2d_unbatched",
       {{{2, 4, 4}}, {{3, 2, 2, 2}}},
       [](const V& x) { return conv2d(x[0], x[1]); }},
      // conv1d: conv2d over a unit height (views around it).
      {"conv1d_stride_padding_dilation_groups",
       {{{2, 4, 9}}, {{4, 2, 3}}, {{4}}},
       [](const V& x) { return tanh(conv1d(x[0], x[1], x[2], 2, 1, 2, 2)); }},
      // conv_transpose2d: conv2d_backward_input with x as the gradient, then a bias add.
      {"conv_transpose2d_stride_output_padding_groups",
       {{{2, 4, 3, 3}}, {{4, 1, 3, 2}}, {{2}}},
       [](const V& x) { return tanh(conv_transpose2d(x[0], x[1], x[2], {2}, {1}, {1}, 2)); }},
      // output_padding >= stride (< dilation): the result is cut from a larger gradient and
      // zero-extended (narrow and cat).
      {"conv_transpose2d_output_padding_below_dilation",
       {{{1, 2, 3, 3}}, {{2, 2, 2, 2}}},
       [](const V& x) {
         return sin(conv_transpose2d(x[0], x[1], Tensor(), {1}, {1, 0}, {1, 2}, 1, {2, 3}));
       }},
      // conv3d: its gradients are the recorded conv3d_backward_input / _weight ops.
      {"conv3d_stride_padding_dilation_groups",
       {{{2, 4, 4, 5, 4}}, {{4, 2, 2, 3, 2}}, {{4}}},
       [](const V& x) {
         return tanh(conv3d(x[0], x[1], x[2], {2, 1, 2}, {1}, {1, 2, 1}, 2));
       }},
      {"conv3d_unbatched",
       {{{2, 3, 3, 3}}, {{2, 2, 2, 2, 2}}},
       [](const V& x) { return sin(conv3d(x[0], x[1])); }},
      // conv_transpose3d: conv3d_backward_input with x as the gradient, then a bias add.
      {"conv_transpose3d_stride_output_padding_groups",
       {{{1, 4, 2, 3, 2}}, {{4, 1, 2, 2, 3}}, {{2}}},
       [](const V& x) {
         return tanh(conv_transpose3d(x[0], x[1], x[2], {2, 1, 2}, {1, 0, 1}, {1, 0, 1}, 2));
       }},
      // conv_transpose1d: conv_transpose2d over a unit height (views around it).
      {"conv_transpose1d_stride_output_padding_dilation",
       {{{2, 2, 4}}, {{2, 3, 3}}, {{3}}},
       [](const V& x) { return tanh(conv_transpose1d(x[0], x[1], x[2], 2, 1, 1, 1, 2)); }},
      // pad: compositions of slice, cat and index_select (constant; reflect, replicate).
      {"pad_constant_crop_and_pad",
       {{{2, 3, 4}}},
       [](const V& x) {
         return exp(pad(x[0], {1, -1, 2, 0}, "constant", 0.5));
       }},
      {"pad_reflect_times_replicate",
       {{{1, 2, 3, 4}}},
       [](const V& x) {
         return mul(pad(x[0], {1, 2, 2, 1}, "reflect"), pad(x[0], {2, 1, 1, 2}, "replicate"));
       }},
      // circular and 3-d pads, pixel shuffles and interpolate's composed modes (index_select, mul,
      // add, adaptive_avg_pool2d), squared so that their second derivatives are not zero.
      {"pad_circular_3d_times_replicate_3d",
       {{{1, 2, 2, 3, 3}}},
       [](const V& x) {
         return mul(pad(x[0], {1, -1, 2, 0, 1, 1}, "circular"),
                    pad(x[0], {1, -1, 2, 0, 1, 1}, "replicate"));
       }},
      {"pixel_shuffle_unshuffle",
       {{{1, 4, 2, 4}}},
       [](const V& x) { return exp(pixel_unshuffle(pixel_shuffle(x[0], 2), 2)); }},
      {"interpolate_bicubic_squared",
       {{{1, 2, 3, 4}}},
       [](const V& x) {
         const Tensor y = interpolate(x[0], {5, 3}, {}, "bicubic", true);
         return mul(y, y);
       }},
      {"interpolate_nearest_exact_and_area",
       {{{1, 2, 5, 4}}},
       [](const V& x) {
         return mul(interpolate(x[0], {3, 7}, {}, "nearest-exact"),
                    interpolate(x[0], {3, 7}, {}, "area"));
       }},
      {"interpolate_5d_nearest_exact_and_area",
       {{{1, 2, 3, 5, 4}}},
       [](const V& x) {
         return mul(interpolate(x[0], {2, 3, 7}, {}, "nearest-exact"),
                    interpolate(x[0], {2, 3, 7}, {}, "area"));
       }},
      {"max_pool2d_overlapping",
       {{{2, 2, 5, 5}}},
       [](const V& x) { return exp(max_pool2d(x[0], {3}, {2}, {1})); }},
      {"max_pool2d_leftover_row",
       {{{1, 3, 7, 6}}},
       [](const V& x) { return mul(max_pool2d(x[0], {2}), max_pool2d(x[0], {2})); }},
      {"max_pool2d_unbatched",
       {{{2, 4, 5}}},
       [](const V& x) { return sin(max_pool2d(x[0], {2}, {1})); }},
      {"avg_pool2d_padding",
       {{{2, 2, 5, 6}}},
       [](const V& x) { return exp(avg_pool2d(x[0], {3}, {2}, {1})); }},
      // Overlapping windows (7 -> 3 rows, 5 -> 4 columns), then more outputs than inputs.
      {"adaptive_avg_pool2d_overlapping",
       {{{2, 2, 7, 5}}},
       [](const V& x) {
         return exp(adaptive_avg_pool2d(x[0], {3, 4}));
       }},
      {"adaptive_avg_pool2d_upsampling_unbatched",
       {{{2, 3, 4}}},
       [](const V& x) {
         Tensor p = adaptive_avg_pool2d(x[0], {5, 7});
         return mul(p, p);
       }},
      // 3-d pools, adaptive max pooling and unfold/fold (tensor/ops_pool3d.cpp, ops_fold.cpp).
      {"max_pool3d_overlapping",
       {{{1, 2, 4, 5, 5}}},
       [](const V& x) { return exp(max_pool3d(x[0], {3}, {2}, {1})); }},
      {"avg_pool3d_padding",
       {{{1, 2, 4, 5, 4}}},
       [](const V& x) {
         return exp(avg_pool3d(x[0], {3, 2, 3}, {2, 1, 2}, {1, 1, 1}));
       }},
      {"adaptive_avg_pool3d_overlapping_unbatched",
       {{{2, 5, 4, 3}}},
       [](const V& x) {
         Tensor p = adaptive_avg_pool3d(x[0], {3, 3, 2});
         return mul(p, p);
       }},
      {"adaptive_max_pool2d_overlapping",
       {{{2, 2, 7, 5}}},
       [](const V& x) {
         return exp(std::get<0>(adaptive_max_pool2d(x[0], {3, 4})));
       }},
      {"adaptive_max_pool3d_overlapping_unbatched",
       {{{2, 5, 4, 3}}},
       [](const V& x) {
         Tensor p = std::get<0>(adaptive_max_pool3d(x[0], {3, 3, 2}));
         return mul(p, p);
       }},
      {"unfold_fold_overlapping",
       {{{1, 2, 5, 6}}},
       [](const V& x) {
         Tensor c = unfold(x[0], {2, 3}, {1}, {1}, {1, 2});
         return fold(mul(c, c), {5, 6}, {2, 3}, {1}, {1}, {1, 2});
       }},
      // masked_fill (a where) with a 0-dim value tensor: second derivatives through both.
      {"masked_fill_value_tensor",
       {{{4, 4}}, {{}}},
       [](const V& x) {
         return mul(masked_fill(x[0], logical_not(causal_mask(4, 4)), x[1]), x[0]);
       }},
      {"conv_pool_chain",
       {{{1, 2, 6, 6}}, {{3, 2, 3, 3}}, {{3}}},
       [](const V& x) {
         Tensor h = max_pool2d(tanh(conv2d(x[0], x[1], x[2], {1}, {1})), {2});
         return avg_pool2d(mul(h, h), {2}, {1}, {1});
       }},
      // ---- attention (the fused kernel without dropout) ----
      {"attention",
       {{{2, 3, 4}}, {{2, 5, 4}}, {{2, 5, 2}}},
       [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
      {"attention_causal",
       {{{1, 2, 4, 3}}, {{1, 2, 4, 3}}, {{1, 2, 4, 3}}},
       [](const V& x) {
         return scaled_dot_product_attention(x[0], x[1], x[2], Tensor(), 0.0, true, 0.7);
       }},
      // ---- losses ----
      {"mse_loss", {{s34}, {s34}}, [](const V& x) { return mse_loss(tanh(x[0]), x[1]); }},
      {"mse_loss_sum", {{s34}, {s34}}, [](const V& x) { return mse_loss(x[0], x[1], "sum"); }},
      {"nll_loss",
       {{s34}},
       [](const V& x) {
         return nll_loss(log_softmax(x[0], 1), from_vector<int64_t>({0, 3, 1}, {3}));
       }},
      {"cross_entropy",
       {{s34}},
       [](const V& x) {
         return cross_entropy(x[0], from_vector<int64_t>({0, 3, 1}, {3}));
       }},
      // int32 targets: the recorded-op derivatives index with int64 (one_hot, scatter_add).
      {"nll_loss_int32_target",
       {{s34}},
       [](const V& x) {
         return nll_loss(log_softmax(x[0], 1), from_vector<int32_t>({0, 3, 1}, {3}));
       }},
      {"cross_entropy_int32_target",
       {{s34}},
       [](const V& x) {
         return cross_entropy(x[0], from_vector<int32_t>({2, -100, 1}, {3}), -100, "mean", 0.1);
       }},
      {"cross_entropy_ignore_smoothing",
       {{s34}},
       [](const V& x) {
         return cross_entropy(x[0], from_vector<int64_t>({2, -1, 1}, {3}), -1, "mean", 0.2);
       }},
      {"cross_entropy_sum",
       {{s34}},
       [](const V& x) {
         return cross_entropy(x[0], from_vector<int64_t>({2, 2, -100}, {3}), -100, "sum", 0.1);
       }},
      {"cross_entropy_none",
       {{s34}},
       [](const V& x) {
         return cross_entropy(x[0], from_vector<int64_t>({3, -100, 0}, {3}), -100, "none", 0.3);
       }},
      {"cross_entropy_spatial",
       {{{2, 3, 2}}},
       [](const V& x) {
         return cross_entropy(x[0], from_vector<int64_t>({0, 2, 1, -100}, {2, 2}));
       }},
      {"cross_entropy_unbatched",
       {{{4}}},
       [](const V& x) { return cross_entropy(x[0], scalar_tensor(2, {.dtype = DType::int64})); }},
      {"cross_entropy_class_weights",
       {{s34}},
       [](const V& x) {
         return cross_entropy(
             x[0], from_vector<int64_t>({0, 3, 3}, {3}), -100, "mean", 0.1,
             from_vector<double>({0.5, 1.0, 2.0, 1.5}, {4}, {.dtype = DType::float64}));
       }},
      {"cross_entropy_probabilities",
       {{s34}, {s34}},
       [](const V& x) { return cross_entropy(x[0], softmax(x[1], 1), -100, "mean", 0.1); }},
      {"binary_cross_entropy",
       {{s34, 0.1, 0.9}, {s34, 0.0, 1.0}},
       [](const V& x) { return binary_cross_entropy(x[0], x[1]); }},
      {"bce_with_logits",
       {{s34}, {s34, 0.0, 1.0}},
       [](const V& x) { return binary_cross_entropy_with_logits(x[0], x[1]); }},
      {"smooth_l1_loss",
       {{s34}, {s34}},
       [](const V& x) { return smooth_l1_loss(mul(x[0], x[0]), x[1]); }},
      // ---- recurrent cells (compositions: their second derivatives are their parts') ----
      {"lstm_cell",
       {{{2, 3}}, {{2, 4}}, {{2, 4}}, {{16, 3}, -1, 1}, {{16, 4}, -1, 1}, {{16}}, {{16}}},
       [](const V& x) {
         auto [h, c] = lstm_cell(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
         return stack({h, c}, 0);
       }},
      {"gru_cell",
       {{{2, 3}}, {{2, 4}}, {{12, 3}, -1, 1}, {{12, 4}, -1, 1}, {{12}}, {{12}}},
       [](const V& x) { return gru_cell(x[0], x[1], x[2], x[3], x[4], x[5]); }},
      {"rnn_tanh_cell",
       {{{3}}, {{4}}, {{4, 3}, -1, 1}, {{4, 4}, -1, 1}},
       [](const V& x) { return rnn_tanh_cell(x[0], x[1], x[2], x[3]); }},
  };
}

TEST(DoubleBackward, SecondDerivativesMatchFiniteDifferences) {
  std::mt19937_64 rng(7);
  for (const SecondOrderCase& c : second_order_cases()) check_second_order(c, rng);
}

TEST(DoubleBackward, ThirdDerivativeOfElementwise) {
  Tensor x =
      from_vector<double>({0.5, -1.25, 2.0}, {3}, {.dtype = DType::float64, .requires_grad = true});
  Tensor y = sum(add(pow(x, 4.0), sin(x)));
  Tensor d1 = grad({y}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];        // 4x^3 + cos x
  Tensor d2 = grad({sum(d1)}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];  // 12x^2 - sin x
  Tensor d3 = grad({sum(d2)}, {x})[0];                                           // 24x - cos x
  const std::vector<double> xs = {0.5, -1.25, 2.0};
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_NEAR(d2.to_vector<double>()[i], 12 * xs[i] * xs[i] - std::sin(xs[i]), 1e-12);
    EXPECT_NEAR(d3.to_vector<double>()[i], 24 * xs[i] - std::cos(xs[i]), 1e-12);
  }
}

// gelu's erf form: its gradient's Phi(x) has a recorded node of its own (no erf op).
TEST(DoubleBackward, ThirdDerivativeOfGelu) {
  const std::vector<double> xs = {0.5, -1.25, 2.0, 0.0};
  Tensor x = from_vector<double>(xs, {4}, {.dtype = DType::float64, .requires_grad = true});
  Tensor d1 = grad({sum(gelu(x))}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  Tensor d2 = grad({sum(d1)}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  Tensor d3 = grad({sum(d2)}, {x})[0];
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i], pdf = std::exp(-v * v / 2) / std::sqrt(2 * M_PI);
    EXPECT_NEAR(d1.to_vector<double>()[i], 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * pdf,
                1e-12);
    EXPECT_NEAR(d2.to_vector<double>()[i], pdf * (2 - v * v), 1e-12);
    EXPECT_NEAR(d3.to_vector<double>()[i], v * pdf * (v * v - 4), 1e-12);
  }
}

TEST(DoubleBackward, BackwardWithCreateGraphKeepsHistoryInDotGrad) {
  Tensor x =
      from_vector<double>({1.5, -2.0}, {2}, {.dtype = DType::float64, .requires_grad = true});
  backward(sum(mul(mul(x, x), x)), Tensor(), std::nullopt, /*create_graph=*/true);  // .grad = 3x^2
  Tensor g = x.grad();
  ASSERT_TRUE(g.requires_grad());
  zero_grad(x);
  backward(sum(g));  // d/dx sum(3x^2) = 6x
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{9.0, -12.0}));
}

TEST(DoubleBackward, RetainGraphDefaultsToCreateGraph) {
  Tensor x = from_vector<double>({3.0}, {1}, {.dtype = DType::float64, .requires_grad = true});
  Tensor y = sum(exp(x));
  grad({y}, {x}, {}, std::nullopt, /*create_graph=*/true);
  EXPECT_NO_THROW(grad({y}, {x}));      // the graph was retained
  EXPECT_THROW(grad({y}, {x}), Error);  // ...and freed by the default (retain_graph = false) call
}

TEST(DoubleBackward, DefaultGradientsKeepNoHistory) {
  Tensor x =
      from_vector<double>({0.3, -0.7}, {2}, {.dtype = DType::float64, .requires_grad = true});
  Tensor g = grad({sum(tanh(mul(x, x)))}, {x})[0];
  EXPECT_FALSE(g.requires_grad());
  backward(sum(sigmoid(x)));
  EXPECT_FALSE(x.grad().requires_grad());
}

// An op whose derivative is a fused kernel: the first-order gradient taken with create_graph is
// right, differentiating it again raises, naming the op.
TEST(DoubleBackward, UnsupportedOpRaisesWhenDifferentiatedAgain) {
  struct Unsupported {
    std::string op;
    Fn f;
  };
  const std::vector<Unsupported> cases = {
      // The fused kernel's dropout mask cannot be redrawn by a composition.
      {"scaled_dot_product_attention",
       [](const V& x) {
         const Tensor q = x[0].reshape({1, 3, 4});
         return scaled_dot_product_attention(q, q, q, Tensor(), 0.25);
       }},
      // cdist's own kernels (p != 2, or few rows): torch's _cdist_backward has no derivative.
      {"cdist", [](const V& x) { return cdist(x[0], mul(x[0], 0.5), 1.0); }},
  };
  for (const Unsupported& c : cases) {
    SCOPED_TRACE(c.op);
    Tensor x = from_vector<double>({0.1, -0.4, 0.9, 1.3, -1.1, 0.2, 0.5, -0.8, 0.7, 0.0, -0.3, 1.6},
                                   {3, 4}, {.dtype = DType::float64, .requires_grad = true});
    Tensor out = sum(mul(c.f({x}), c.f({x})));
    Tensor g_plain = grad({out}, {x}, {}, /*retain_graph=*/true)[0];
    Tensor g = grad({out}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
    EXPECT_EQ(g.to_vector<double>(), g_plain.to_vector<double>());
    ASSERT_TRUE(g.requires_grad());
    const std::string msg = thrown<NotImplementedError>([&] { grad({sum(g)}, {x}); });
    EXPECT_CONTAINS(msg, "double backward of " + c.op + " is not supported");
  }
}

// A tiny GPT-shaped block, embedding -> layer_norm -> linear -> cross_entropy: the gradient
// penalty sum_k |d loss / d param_k|^2 differentiated again (every op on the path switches from
// its fused gradient to a composition) against central differences of the penalty.
TEST(DoubleBackward, GptBlockGradientPenaltyMatchesFiniteDifferences) {
  const Shape shapes[] = {{6, 4}, {4}, {4}, {6, 4}, {6}};  // wte, ln w, ln b, head w, head b
  std::mt19937_64 rng(11);
  std::vector<std::vector<double>> vals;
  for (const Shape& shape : shapes) vals.push_back(random_values({shape, -1, 1}, rng));
  const Tensor tokens = from_vector<int64_t>({0, 5, 2, 5, 3}, {5});
  const Tensor targets = from_vector<int64_t>({5, 2, -100, 3, 1}, {5});
  auto penalty = [&](const std::vector<std::vector<double>>& v, bool create_graph, V* params) {
    V p;
    for (size_t i = 0; i < v.size(); ++i) p.push_back(f64(v[i], shapes[i]).set_requires_grad(true));
    Tensor h = layer_norm(embedding(p[0], tokens), {4}, p[1], p[2]);
    Tensor loss = cross_entropy(linear(h, p[3], p[4]), targets, -100, "mean", 0.1);
    V g = grad({loss}, p, {}, std::nullopt, create_graph);
    Tensor total = scalar_tensor(0.0, {.dtype = DType::float64});
    for (const Tensor& gk : g) total = add(total, sum(mul(gk, gk)));
    if (params) *params = p;
    return total;
  };
  V params;
  Tensor gp = penalty(vals, /*create_graph=*/true, &params);
  V analytic = grad({gp}, params);
  const double h = 1e-6;
  for (size_t k = 0; k < params.size(); ++k) {
    const std::vector<double> ga = analytic[k].to_vector<double>();
    for (size_t e = 0; e < ga.size(); ++e) {
      auto at = [&](double delta) {
        std::vector<std::vector<double>> v = vals;
        v[k][e] += delta;
        return penalty(v, false, nullptr).item<double>();
      };
      const double numeric = (at(h) - at(-h)) / (2 * h);
      EXPECT_NEAR(ga[e], numeric, 1e-5 * std::max(1.0, std::abs(numeric)))
          << "d penalty / d param " << k << " element " << e;
    }
  }
}

namespace fx = double_backward_fixture;

Tensor fixture(const std::vector<double>& v, Shape shape, bool requires_grad = false) {
  return from_vector(v, std::move(shape),
                     {.dtype = DType::float64, .requires_grad = requires_grad});
}

void expect_close(const Tensor& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], want[i], 1e-12 * std::max(1.0, std::abs(want[i]))) << what << "[" << i << "]";
}

TEST(DoubleBackward, MlpHessianVectorProductMatchesTorch) {
  Tensor x = fixture(fx::mlp_x, {5, 3}), y = fixture(fx::mlp_y, {5, 2});
  V params = {fixture(fx::mlp_w1, {4, 3}, true), fixture(fx::mlp_b1, {4}, true),
              fixture(fx::mlp_w2, {2, 4}, true), fixture(fx::mlp_b2, {2}, true)};
  V vs = {fixture(fx::mlp_v0, {4, 3}), fixture(fx::mlp_v1, {4}), fixture(fx::mlp_v2, {2, 4}),
          fixture(fx::mlp_v3, {2})};
  Tensor loss = mse_loss(linear(tanh(linear(x, params[0], params[1])), params[2], params[3]), y);
  expect_close(loss, fx::mlp_loss, "loss");
  V g = grad({loss}, params, {}, std::nullopt, /*create_graph=*/true);
  Tensor gv = scalar_tensor(0.0, {.dtype = DType::float64});
  for (size_t i = 0; i < g.size(); ++i) gv = add(gv, sum(mul(g[i], vs[i])));
  V hv = grad({gv}, params);
  const std::vector<const std::vector<double>*> want = {&fx::mlp_hv0, &fx::mlp_hv1, &fx::mlp_hv2,
                                                        &fx::mlp_hv3};
  for (size_t i = 0; i < hv.size(); ++i)
    expect_close(hv[i], *want[i], "Hv[" + std::to_string(i) + "]");
}

TEST(DoubleBackward, WganGpCriticStepMatchesTorch) {
  Tensor real = fixture(fx::gp_real, {6, 3}), fake = fixture(fx::gp_fake, {6, 3}),
         eps = fixture(fx::gp_eps, {6, 1});
  V p = {fixture(fx::gp_w1, {5, 3}, true), fixture(fx::gp_b1, {5}, true),
         fixture(fx::gp_w2, {4, 5}, true), fixture(fx::gp_b2, {4}, true),
         fixture(fx::gp_w3, {1, 4}, true), fixture(fx::gp_b3, {1}, true)};
  auto critic = [&](const Tensor& in) {
    Tensor h = relu(linear(in, p[0], p[1]));
    return linear(tanh(linear(h, p[2], p[3])), p[4], p[5]);
  };
  Tensor x_hat =
      add(mul(eps, real), mul(add(neg(eps), 1.0), fake)).detach().set_requires_grad(true);
  Tensor d_hat = critic(x_hat);
  Tensor gx = grad({d_hat}, {x_hat}, {ones_like(d_hat)}, std::nullopt, /*create_graph=*/true)[0];
  Tensor gp = mean(pow(sub(norm(gx, 2, {1}), 1.0), 2.0));
  expect_close(gp, fx::gp_penalty, "gradient penalty");
  Tensor loss = add(sub(mean(critic(fake)), mean(critic(real))), mul(gp, 10.0));
  expect_close(loss, fx::gp_loss, "critic loss");
  backward(loss);
  const std::vector<const std::vector<double>*> want = {&fx::gp_grad_w1, &fx::gp_grad_b1,
                                                        &fx::gp_grad_w2, &fx::gp_grad_b2,
                                                        &fx::gp_grad_w3, &fx::gp_grad_b3};
  for (size_t i = 0; i < p.size(); ++i)
    expect_close(p[i].grad(), *want[i], "grad of critic parameter " + std::to_string(i));
}

// The critic step on a CNN critic: the penalty differentiates conv2d's and both pools'
// gradients again (with stride, padding, dilation, groups and rows no window reaches).
TEST(DoubleBackward, WganGpCnnCriticStepMatchesTorch) {
  const Shape image{3, 2, 7, 7};
  Tensor real = fixture(fx::cnn_real, image), fake = fixture(fx::cnn_fake, image),
         eps = fixture(fx::cnn_eps, {3, 1, 1, 1});
  V p = {fixture(fx::cnn_w1, {4, 1, 3, 3}, true), fixture(fx::cnn_b1, {4}, true),
         fixture(fx::cnn_w2, {6, 4, 2, 2}, true), fixture(fx::cnn_b2, {6}, true),
         fixture(fx::cnn_w3, {1, 54}, true),      fixture(fx::cnn_b3, {1}, true)};
  auto critic = [&](const Tensor& in) {
    Tensor h = relu(conv2d(in, p[0], p[1], {1}, {2}, {2}, 2));  // (3, 4, 7, 7)
    h = max_pool2d(h, {2});                                     // (3, 4, 3, 3)
    h = relu(conv2d(h, p[2], p[3], {2}, {1}));                  // (3, 6, 2, 2)
    h = avg_pool2d(h, {2}, {1}, {1});                           // (3, 6, 3, 3)
    return linear(h.reshape({3, 54}), p[4], p[5]);
  };
  Tensor x_hat =
      add(mul(eps, real), mul(add(neg(eps), 1.0), fake)).detach().set_requires_grad(true);
  Tensor d_hat = critic(x_hat);
  Tensor gx = grad({d_hat}, {x_hat}, {ones_like(d_hat)}, std::nullopt, /*create_graph=*/true)[0];
  Tensor gp = mean(pow(sub(norm(gx.reshape({3, 98}), 2, {1}), 1.0), 2.0));
  expect_close(gp, fx::cnn_penalty, "gradient penalty");
  Tensor loss = add(sub(mean(critic(fake)), mean(critic(real))), mul(gp, 10.0));
  expect_close(loss, fx::cnn_loss, "critic loss");
  backward(loss);
  const std::vector<const std::vector<double>*> want = {&fx::cnn_grad_w1, &fx::cnn_grad_b1,
                                                        &fx::cnn_grad_w2, &fx::cnn_grad_b2,
                                                        &fx::cnn_grad_w3, &fx::cnn_grad_b3};
  for (size_t i = 0; i < p.size(); ++i)
    expect_close(p[i].grad(), *want[i], "grad of CNN critic parameter " + std::to_string(i));
}
// A gradient penalty taken with create_graph inside a CPU bf16 autocast region (linear runs in
// bfloat16 there, its casts recorded): the penalty and the float32 parameters' gradients follow the
// float32 computation to bfloat16's precision, and the gradients stay float32 as their leaves.
TEST(DoubleBackward, GradientPenaltyUnderCpuAutocastFollowsFloat32) {
  Generator gen(11);
  const Tensor x0 = randn({3, 4}, {}, &gen), w10 = randn({8, 4}, {}, &gen),
               w20 = randn({1, 8}, {}, &gen);
  std::vector<std::vector<float>> results;  // per run: penalty, then both gradients
  for (const bool autocast : {false, true}) {
    Tensor x = x0.clone().set_requires_grad(true), w1 = w10.clone().set_requires_grad(true),
           w2 = w20.clone().set_requires_grad(true);
    if (autocast) autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
    const Tensor y = sum(linear(gelu(linear(x, w1)), w2));
    const Tensor gx = grad({y}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
    const Tensor penalty = sum(mul(gx, gx));
    if (autocast) autocast_exit(DeviceType::cpu);
    penalty.backward();
    for (const Tensor& w : {w1, w2}) ASSERT_EQ(w.grad().dtype(), DType::float32);
    std::vector<float> r = {penalty.to(DType::float32).item<float>()};
    for (const Tensor& w : {w1, w2})
      for (float v : w.grad().to_vector<float>()) r.push_back(v);
    results.push_back(r);
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  EXPECT_NE(results[1], results[0]) << "the autocast region did not run linear in bfloat16";
  float scale = 0;
  for (float v : results[0]) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < results[0].size(); ++i)
    EXPECT_NEAR(results[1][i], results[0][i], 0.03f * scale) << "entry " << i;
}

}  // namespace
}  // namespace fabric
