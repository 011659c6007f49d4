// The backward engine: accumulation, graph sharing, retain_graph, autograd::grad, hooks and
// their order, leaf/non-leaf semantics and grad mode; and, against torch 1.13, the derivative
// rules at their special points and the names of the nodes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>

#include "autograd/autograd.h"
#include "autograd/checkpoint.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

Tensor leaf(std::vector<double> v, Shape s = {}) {
  return from_vector(v, s, {.dtype = DType::float64, .requires_grad = true});
}

TEST(Autograd, SimpleChainAndAccumulation) {
  Tensor x = leaf({1, 2, 3});
  Tensor y = sum(mul(x, x));  // d/dx = 2x
  EXPECT_FALSE(is_leaf(y));
  EXPECT_EQ(grad_fn_name(y), "SumBackward0");
  EXPECT_EQ(grad_fn_name(mul(x, x)), "MulBackward0");
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 4, 6}));
  sum(x).backward();  // accumulates
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3, 5, 7}));
  zero_grad(x);
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, SharedSubgraphSumsPaths) {
  Tensor x = leaf({2});
  Tensor a = mul(x, x);         // x^2
  Tensor y = add(mul(a, x), a);  // x^3 + x^2 -> 3x^2 + 2x = 16
  y.backward(ones({1}, {.dtype = DType::float64}));
  EXPECT_DOUBLE_EQ(x.grad().item<double>(), 16.0);
}

TEST(Autograd, RetainGraphAndSecondBackwardError) {
  Tensor x = leaf({3});
  Tensor y = sum(mul(x, x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item<double>(), 12.0);
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, ViewsPropagate) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = sum(mul(x.t().slice(0, 1, 3).select(1, 1), full({2}, 10.0, {.dtype = DType::float64})));
  y.backward();
  // picks x[1][1], x[1][2] (row 1 of x, cols 1..2)
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 0, 0, 10, 10}));
  Tensor z = leaf({1, 2, 3});
  sum(z.view({3, 1}).expand({3, 4})).backward();
  EXPECT_EQ(z.grad().to_vector<double>(), (std::vector<double>{4, 4, 4}));
}

TEST(Autograd, BroadcastGradientsAreReduced) {
  Tensor a = leaf({1, 2, 3}, {3});
  Tensor b = leaf({1, 1}, {2, 1});
  sum(mul(a, b)).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(b.grad().sizes(), (Shape{2, 1}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{6, 6}));
}

TEST(Autograd, CastBackwardReturnsSourceDtype) {
  Tensor x = from_vector<float>({1.5f, -2.f}, {}, {.requires_grad = true});
  sum(x.to(DType::float64)).backward();
  EXPECT_EQ(x.grad().dtype(), DType::float32);
}

TEST(Autograd, GradFunctionDoesNotTouchDotGrad) {
  Tensor x = leaf({1, 2});
  Tensor y = sum(mul(x, x));
  auto g = grad({y}, {x});
  EXPECT_EQ(g[0].to_vector<double>(), (std::vector<double>{2, 4}));
  EXPECT_FALSE(x.grad().defined());
  Tensor unused = leaf({1});
  Tensor y2 = sum(x);
  EXPECT_THROW(grad({y2}, {unused}), ValueError);
}

// autograd.grad runs only the nodes on a path to its inputs, as torch's: a node below them is
// neither run (its saved tensors stay for a later backward, its hooks do not fire) nor freed.
// The gradient of a non-leaf input is taken before that tensor's hooks, as torch 1.13's.
TEST(Autograd, GradRunsOnlyTheNodesAboveItsInputs) {
  Tensor x = leaf({0.5, 1, 1.5}, {3});
  Tensor z = exp(x);
  Tensor h = mul(z, 2.0);
  int below = 0;
  register_hook(z, [&](const Tensor& g) {
    ++below;
    return g;
  });
  const Tensor g = grad({sum(mul(h, h))}, {h})[0];
  EXPECT_EQ(below, 0);
  const std::vector<double> hv = h.to_vector<double>(), gv = g.to_vector<double>();
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(gv[i], 2 * hv[i]);
  sum(z).backward();  // exp's saved output is still there
  const std::vector<double> xv = x.to_vector<double>(), dx = x.grad().to_vector<double>();
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(dx[i], std::exp(xv[i]));
  EXPECT_EQ(below, 1);

  Tensor y = mul(leaf({1, 2}, {2}), 2.0);
  register_hook(y, [](const Tensor& gy) { return mul(gy, 10.0); });
  EXPECT_EQ(grad({sum(mul(y, 3.0))}, {y})[0].to_vector<double>(), (std::vector<double>{3, 3}));
}

TEST(Autograd, HooksModifyAndPostAccumulateFiresInBackwardOrder) {
  Tensor w1 = leaf({1, 1});
  Tensor w2 = leaf({2, 2});
  std::vector<int> order;
  register_post_accumulate_grad_hook(w1, [&](Tensor&) { order.push_back(1); });
  register_post_accumulate_grad_hook(w2, [&](Tensor& p) {
    order.push_back(2);
    EXPECT_TRUE(p.grad().defined());
  });
  register_hook(w1, [](const Tensor& g) { return mul(g, 3.0); });
  Tensor h = mul(w1, 2.0);        // first layer
  Tensor out = sum(mul(h, w2));   // second layer: its gradient is final first
  out.backward();
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
  EXPECT_EQ(w1.grad().to_vector<double>(), (std::vector<double>{12, 12}));
  Tensor mid = mul(w1, 1.0);
  retain_grad(mid);
  sum(mul(mid, 5.0)).backward();
  EXPECT_EQ(mid.grad().to_vector<double>(), (std::vector<double>{5, 5}));
}

// A hook's replacement must be a gradient the tensor could have, as torch checks: another shape
// or dtype is refused at the hook (it became a leaf's .grad, or broke a node far away).
TEST(Autograd, AHookThatChangesTheGradientsShapeOrDtypeIsRefused) {
  for (bool leaf : {true, false}) {
    const Tensor w = ones({2}, {.requires_grad = true});
    const Tensor shape_hooked = leaf ? w : mul(w, 1.0);
    register_hook(shape_hooked, [](const Tensor&) { return ones({3}); });
    EXPECT_CONTAINS(thrown<ShapeError>([&] { sum(mul(shape_hooked, 2.0)).backward(); }),
                    "a tensor hook has changed the size of the gradient (was (2,), got (3,))");
    EXPECT_FALSE(w.grad().defined());
    const Tensor v = ones({2}, {.requires_grad = true});
    const Tensor dtype_hooked = leaf ? v : mul(v, 1.0);
    register_hook(dtype_hooked, [](const Tensor& g) { return g.to(DType::float64); });
    EXPECT_CONTAINS(
        thrown<DTypeError>([&] { sum(mul(dtype_hooked, 2.0)).backward(); }),
        "a tensor hook has changed the type of the gradient (was float32, got float64)");
  }
}

TEST(Autograd, NoGradAndDetach) {
  Tensor x = leaf({1});
  {
    NoGradGuard g;
    Tensor y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
  }
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_THROW(sum(d).backward(), ValueError);
  Tensor big = leaf({1, 2});
  EXPECT_THROW(mul(big, 2.0).backward(), ValueError);  // non-scalar root needs a gradient
  EXPECT_THROW(zeros({2}, {.dtype = DType::int64}).set_requires_grad(true), DTypeError);
}

// torch 1.13: y = (x + 1).sum(); y.backward(); y.backward() gives x.grad = [2, 2, 2]: no node
// saved a tensor, so the first backward freed nothing the second needs. A node that saved one
// frees it after the first backward and refuses a second, and so does a product or quotient by a
// number, which torch saves as a wrapped tensor ((x + 1).mul(2) raises there).
TEST(Autograd, SecondBackwardRunsNodesThatSavedNothing) {
  Tensor x = leaf({1, 1, 1});
  Tensor y = sum(add(x, 1.0));
  y.backward();
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 2, 2}));
  for (bool divide : {false, true}) {
    Tensor z = leaf({1, 1});
    Tensor by_number = sum(divide ? div(add(z, 1.0), 2.0) : mul(add(z, 1.0), 2.0));
    by_number.backward();
    EXPECT_CONTAINS(thrown<Error>([&] { by_number.backward(); }),
                    divide ? "DivBackward0 a second time" : "MulBackward0 a second time");
    Tensor kept = sum(divide ? div(z, 2.0) : mul(z, 2.0));
    kept.backward(Tensor(), /*retain_graph=*/true);
    kept.backward();
  }

  Tensor x2 = leaf({1, 2});
  Tensor y2;
  std::weak_ptr<StorageImpl> held;
  {
    Tensor e = exp(x2);  // exp saves its result
    held = e.storage();
    y2 = sum(e);
  }
  EXPECT_FALSE(held.expired()) << "exp's node holds its result until backward";
  y2.backward();
  EXPECT_TRUE(held.expired()) << "backward frees what exp's node saved";
  EXPECT_CONTAINS(thrown<Error>([&] { y2.backward(); }), "ExpBackward0 a second time");
}

// torch 1.13: (x * 2).requires_grad_(False) raises "you can only change requires_grad flags of
// leaf variables"; requires_grad_(True) on it is a no-op.
TEST(Autograd, RequiresGradOfANonLeafCannotBeTurnedOff) {
  Tensor x = leaf({1, 2});
  Tensor h = mul(x, 2.0);
  EXPECT_CONTAINS(thrown<Error>([&] { h.set_requires_grad(false); }), "leaf variables");
  EXPECT_TRUE(h.requires_grad());
  h.set_requires_grad(true);
  EXPECT_EQ(grad_fn_name(h), "MulBackward0");
  sum(h).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 2}));
  x.set_requires_grad(false);  // a leaf's flag is its own
  EXPECT_FALSE(x.requires_grad());
}

// torch 1.13: std's gradient is 0 where std is 0 (std(ones(3)).backward() gives [0, 0, 0], not
// NaN); elsewhere the chain through var: std(x, dim 1) of [[1, 1], [1, 2]] gives
// [[0, 0], [-0.7071, 0.7071]].
TEST(Autograd, StdGradientIsZeroWhereStdIsZero) {
  Tensor x = leaf({1, 1, 1});
  fabric::std(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 0}));
  Tensor m = leaf({1, 1, 1, 2}, {2, 2});
  sum(fabric::std(m, {1})).backward();
  const std::vector<double> g = m.grad().to_vector<double>();
  const std::vector<double> want{0, 0, -0.7071067811865476, 0.7071067811865476};
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], 1e-12) << i;
}

// torch 1.13, a = [1, nan, 3, 2], b = [2, 1, nan, 2]: maximum gives a.grad = [0, 1, 1, 0.5],
// b.grad = [1, 1, 1, 0.5] (where either is NaN both get the gradient); minimum [1, 1, 1, 0.5]
// and [0, 1, 1, 0.5].
TEST(Autograd, MaximumMinimumGiveBothInputsTheGradientAtNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  using Op = std::function<Tensor(const Tensor&, const Tensor&)>;
  const struct {
    const char* what;
    Op op;
    std::vector<double> ga, gb;
  } cases[] = {
      {"maximum",
       [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       {0, 1, 1, 0.5},
       {1, 1, 1, 0.5}},
      {"minimum",
       [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       {1, 1, 1, 0.5},
       {0, 1, 1, 0.5}},
  };
  for (const auto& c : cases) {
    Tensor a = leaf({1, nan, 3, 2}), b = leaf({2, 1, nan, 2});
    sum(c.op(a, b)).backward();
    EXPECT_EQ(a.grad().to_vector<double>(), c.ga) << c.what;
    EXPECT_EQ(b.grad().to_vector<double>(), c.gb) << c.what;
  }
}

// torch 1.13, the gradient of sum(op(x)) where the rule meets a NaN, a zero or an empty mean:
// max()/min() share it among the NaNs when the result is NaN (evenly_distribute_backward), amax
// does not (every gradient is NaN); a norm of order p < 1 gives 0 at zero elements (not
// 0 * inf); nll_loss with every target ignored gives 0 (its mean is NaN, its gradient is not).
TEST(Autograd, DerivativesAtNaNZeroAndEmptyMeanMatchTorch) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor ignored = from_vector<int64_t>({-100, -100}, {2});
  const Tensor ignored_unbatched = scalar_tensor(int64_t{-100}, {.dtype = DType::int64});
  const struct {
    const char* what;
    std::function<Tensor(const Tensor&)> op;
    std::vector<double> x;
    Shape shape;
    std::vector<double> want;
  } cases[] = {
      {"max() over NaNs",
       [](const Tensor& x) { return max(x); },
       {1, nan, 3, nan},
       {4},
       {0, 0.5, 0, 0.5}},
      {"min() over NaNs",
       [](const Tensor& x) { return min(x); },
       {1, nan, 3, nan},
       {4},
       {0, 0.5, 0, 0.5}},
      {"max() one NaN", [](const Tensor& x) { return max(x); }, {nan, 2}, {2}, {1, 0}},
      {"amax over NaNs",
       [](const Tensor& x) { return amax(x); },
       {1, nan, 3, nan},
       {4},
       {nan, nan, nan, nan}},
      {"max() ties", [](const Tensor& x) { return max(x); }, {1, 3, 3, 2}, {4}, {0, 0.5, 0.5, 0}},
      {"norm(0.5) with zeros",
       [](const Tensor& x) { return norm(x, 0.5); },
       {0, 1, 4},
       {3},
       {0, 3, 1.5}},
      {"norm(0.5, dim 1) zero row",
       [](const Tensor& x) { return norm(x, 0.5, {1}); },
       {0, 0, 0, 1},
       {2, 2},
       {0, 0, 0, 1}},
      {"norm(-1) with a zero",
       [](const Tensor& x) { return norm(x, -1); },
       {0, 1, 4},
       {3},
       {0, 0, 0}},
      {"nll_loss all ignored",
       [&](const Tensor& x) { return nll_loss(x, ignored); },
       {1, 2, 3, 4},
       {2, 2},
       {0, 0, 0, 0}},
      {"nll_loss unbatched ignored",
       [&](const Tensor& x) { return nll_loss(x, ignored_unbatched); },
       {1, 2},
       {2},
       {0, 0}},
      // threshold_backward: grad where !(relu(x) <= 0), so NaN passes it. float32 too (16 lanes).
      {"relu at NaN", [](const Tensor& x) { return relu(x); }, {nan, -1, 0, 2}, {4}, {1, 0, 0, 1}},
      // torch's pooling kernels take every NaN they meet: the last of a window's NaNs wins.
      {"max_pool2d two NaNs",
       [](const Tensor& x) { return max_pool2d(x, {2}); },
       {1, nan, nan, 2},
       {1, 1, 2, 2},
       {0, 0, 1, 0}},
      {"relu at NaN, float32",
       [](const Tensor& x) { return relu(x.to(DType::float32)); },
       {nan, -1, 0, 2, nan, -1, 0, 2, nan, -1, 0, 2, nan, -1, 0, 2, nan},
       {17},
       {1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1}},
  };
  for (const auto& c : cases) {
    Tensor x = leaf(c.x, c.shape);
    sum(c.op(x)).backward();
    const std::vector<double> g = x.grad().to_vector<double>();
    ASSERT_EQ(g.size(), c.want.size()) << c.what;
    for (size_t i = 0; i < g.size(); ++i) {
      if (std::isnan(c.want[i])) {
        EXPECT_TRUE(std::isnan(g[i])) << c.what << " [" << i << "] = " << g[i];
      } else {
        EXPECT_EQ(g[i], c.want[i]) << c.what << " [" << i << "]";
      }
    }
  }
}

// torch 1.13: cat([zeros(0, 3), z]).sum().backward() leaves the empty leaf a defined (0, 3)
// gradient; so does a legacy-empty (0,) piece, which cat skips.
TEST(Autograd, CatGivesEmptyPiecesAnEmptyGradient) {
  for (const Shape& empty_shape : {Shape{0, 3}, Shape{0}}) {
    Tensor e = zeros(empty_shape, {.dtype = DType::float64, .requires_grad = true});
    Tensor z = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
    sum(cat({e, z, e})).backward();
    ASSERT_TRUE(e.grad().defined()) << shape_str(empty_shape);
    EXPECT_EQ(e.grad().sizes(), empty_shape);
    EXPECT_EQ(z.grad().to_vector<double>(), (std::vector<double>(6, 1.0)));
  }
}

// The node names torch 1.13 gives (type(t.grad_fn).__name__), where they are not the op's own
// name: an op standing for another (t() for transpose), torch's overload number, or the last op
// of torch's composition (matmul, cross_entropy).
TEST(Autograd, GradFnNamesMatchPyTorch) {
  Tensor x = randn({3, 4}, {.dtype = DType::float64, .requires_grad = true});
  Tensor v = randn({4}, {.dtype = DType::float64, .requires_grad = true});
  Tensor b3 = randn({2, 4, 3}, {.dtype = DType::float64, .requires_grad = true});
  Tensor w5 = randn({5, 4}, {.dtype = DType::float64, .requires_grad = true});
  Tensor bias5 = randn({5}, {.dtype = DType::float64, .requires_grad = true});
  Tensor img = randn({1, 2, 4, 4}, {.dtype = DType::float64, .requires_grad = true});
  const Tensor target = from_vector<int64_t>({0, 1, 3}, {3});
  const Tensor target_3d = zeros({2, 4}, {.dtype = DType::int64});
  const struct {
    const char* what;
    std::function<Tensor()> make;
    const char* name;
  } cases[] = {
      {"x.t()", [&] { return x.t(); }, "TBackward0"},
      {"x.transpose(0, 1)", [&] { return x.transpose(0, 1); }, "TransposeBackward0"},
      {"x.unsqueeze(0)", [&] { return x.unsqueeze(0); }, "UnsqueezeBackward0"},
      {"squeeze(0)", [&] { return x.unsqueeze(0).squeeze(0); }, "SqueezeBackward1"},
      {"squeeze()", [&] { return x.unsqueeze(0).squeeze(); }, "SqueezeBackward0"},
      {"x.view",
       [&] {
         return x.view({4, 3});
       },
       "ViewBackward0"},
      {"x.reshape (a view)",
       [&] {
         return x.reshape({4, 3});
       },
       "ReshapeAliasBackward0"},
      {"x.t().reshape (a copy)", [&] { return x.t().reshape({12}); }, "UnsafeViewBackward0"},
      {"x.flatten()", [&] { return x.flatten(); }, "ReshapeAliasBackward0"},
      {"x.to(float32)", [&] { return x.to(DType::float32); }, "ToCopyBackward0"},
      {"matmul 2-D 2-D", [&] { return matmul(x, x.t()); }, "MmBackward0"},
      {"matmul 1-D 1-D", [&] { return matmul(v, v); }, "DotBackward0"},
      {"matmul 2-D 1-D", [&] { return matmul(x, v); }, "MvBackward0"},
      {"matmul 1-D 2-D", [&] { return matmul(v, x.t()); }, "SqueezeBackward3"},
      {"matmul 2-D 3-D", [&] { return matmul(x, b3); }, "CloneBackward0"},
      {"matmul 3-D 2-D", [&] { return matmul(b3, x); }, "UnsafeViewBackward0"},
      {"mm", [&] { return mm(x, x.t()); }, "MmBackward0"},
      // F.linear (weight (5, 4)): addmm/mm for a matrix, a contiguous 3-D input folded and viewed
      // back, otherwise matmul then add.
      {"linear 2-D", [&] { return linear(x, w5, bias5); }, "AddmmBackward0"},
      {"linear 2-D no bias", [&] { return linear(x, w5); }, "MmBackward0"},
      {"linear 3-D", [&] { return linear(b3.transpose(1, 2).contiguous(), w5, bias5); }, "ViewBackward0"},
      {"linear 3-D strided", [&] { return linear(b3.transpose(1, 2), w5, bias5); }, "AddBackward0"},
      {"linear 3-D no bias", [&] { return linear(b3.transpose(1, 2), w5); }, "UnsafeViewBackward0"},
      {"linear 1-D", [&] { return linear(v, w5, bias5); }, "AddBackward0"},
      {"linear 1-D no bias", [&] { return linear(v, w5); }, "SqueezeBackward3"},
      {"sum()", [&] { return sum(x); }, "SumBackward0"},
      {"sum(dim)", [&] { return sum(x, {1}); }, "SumBackward1"},
      {"mean()", [&] { return mean(x); }, "MeanBackward0"},
      {"mean(dim)",
       [&] {
         return mean(x, {0, 1});
       },
       "MeanBackward1"},
      {"var", [&] { return var(x, {1}); }, "VarBackward0"},
      {"std", [&] { return fabric::std(x); }, "StdBackward0"},
      {"norm", [&] { return norm(x); }, "NormBackward1"},
      {"norm(p, dim)", [&] { return norm(x, 1, {1}); }, "NormBackward1"},
      {"max()", [&] { return max(x); }, "MaxBackward1"},
      {"max(dim)", [&] { return std::get<0>(max(x, 1)); }, "MaxBackward0"},
      {"amax", [&] { return amax(x, {1}); }, "AmaxBackward0"},
      {"clamp(min, max)", [&] { return clamp(x, 0.0, 1.0); }, "ClampBackward1"},
      {"clamp(min)", [&] { return clamp(x, 0.0, std::nullopt); }, "ClampBackward1"},
      {"pow(x, 2)", [&] { return pow(x, 2.0); }, "PowBackward0"},
      {"pow(x, x)", [&] { return pow(x, x); }, "PowBackward1"},
      {"layer_norm", [&] { return layer_norm(x, {4}); }, "NativeLayerNormBackward0"},
      {"cross_entropy", [&] { return cross_entropy(x, target); }, "NllLossBackward0"},
      {"cross_entropy smoothed", [&] { return cross_entropy(x, target, -100, "mean", 0.1); },
       "AddBackward0"},
      {"cross_entropy (N, C, d)", [&] { return cross_entropy(b3.transpose(1, 2), target_3d); },
       "NllLoss2DBackward0"},
      {"nll_loss", [&] { return nll_loss(log_softmax(x, 1), target); }, "NllLossBackward0"},
      {"conv2d",
       [&] {
         return conv2d(img, ones({2, 2, 1, 1}, {.dtype = DType::float64}));
       },
       "ConvolutionBackward0"},
      {"max_pool2d",
       [&] {
         return max_pool2d(img, {2, 2});
       },
       "MaxPool2DWithIndicesBackward0"},
      {"avg_pool2d",
       [&] {
         return avg_pool2d(img, {2, 2});
       },
       "AvgPool2DBackward0"},
      {"mul", [&] { return mul(x, 2.0); }, "MulBackward0"},
  };
  for (const auto& c : cases) EXPECT_EQ(grad_fn_name(c.make()), c.name) << c.what;
}

// A node none of whose outputs gets a gradient (here a's, the checkpoint using only its second
// input) gives its inputs none without running its rule (mul's would get an undefined tensor):
// x0.grad stays None, as in torch.
TEST(Autograd, ANodeWithoutAnyIncomingGradientGivesNone) {
  Tensor x0 = ones({2}, {.dtype = DType::float64, .requires_grad = true});
  Tensor b = ones({2}, {.dtype = DType::float64, .requires_grad = true});
  const Tensor a = mul(x0, 2.0);
  const std::vector<Tensor> out = checkpoint(
      [](const std::vector<Tensor>& in) { return std::vector<Tensor>{mul(in[1], 3.0)}; }, {a, b});
  backward(sum(out[0]));
  EXPECT_FALSE(x0.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_EQ(b.grad().to_vector<double>(), std::vector<double>({3, 3}));
}

}  // namespace
}  // namespace fabric
