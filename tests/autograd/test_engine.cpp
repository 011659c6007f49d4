// The backward engine: accumulation, graph sharing, retain_graph, autograd::grad, hooks and
// their order, leaf/non-leaf semantics and grad mode.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

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

}  // namespace
}  // namespace fabric
