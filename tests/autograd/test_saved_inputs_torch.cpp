// Derivative rules that save what torch's save, so the same programs run: div saves its inputs
// (its quotient may then be written in place), nll_loss's gradient keeps the log-probabilities as
// an input (a second grad gives zeros), the robust losses' gradient stays finite for an infinite
// difference, and scatter's src may be larger than its index. Values printed by torch 1.13.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

Tensor leaf(std::vector<double> v, DType dt = DType::float64) {
  Tensor t = from_vector(v).to(dt);
  t.set_requires_grad(true);
  return t;
}

// A hand-made norm: y = a / b, then y *= g in place (torch 1.13: no error).
TEST(SavedInputsTorch, AQuotientWrittenInPlaceStillDifferentiates) {
  Tensor a = leaf({1, 2, 3}, DType::float32), b = leaf({2, 4, 5}, DType::float32);
  Tensor g = leaf({1.5, 1.5, 1.5}, DType::float32);
  Tensor y = div(a, b);
  y.mul_(g);
  sum(y).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{0.75f, 0.375f, 0.3f}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{-0.375f, -0.1875f, -0.18f}));
  EXPECT_EQ(g.grad().to_vector<float>(), (std::vector<float>{0.5f, 0.5f, 0.6f}));
}

TEST(SavedInputsTorch, NllLossGradientDifferentiatesAgainToZeros) {
  Tensor lp = log_softmax(from_vector(std::vector<double>{0.1, 0.2, 0.3, 1, -1, 0}, {2, 3}), 1);
  lp.set_requires_grad(true);
  const Tensor t = from_vector(std::vector<int64_t>{2, 0});
  const Tensor g = grad({nll_loss(lp, t)}, {lp}, {}, std::nullopt, /*create_graph=*/true)[0];
  ASSERT_TRUE(g.requires_grad());
  const Tensor h = grad({sum(mul(g, g))}, {lp})[0];
  EXPECT_EQ(h.to_vector<double>(), std::vector<double>(6, 0.0));
  // -inf log-probabilities (masked classes) do not turn the zeros into NaN.
  Tensor masked = from_vector(std::vector<double>{-INFINITY, -0.5, -1}, {1, 3});
  masked.set_requires_grad(true);
  const Tensor gm = grad({nll_loss(masked, from_vector(std::vector<int64_t>{1}))}, {masked}, {},
                         std::nullopt, true)[0];
  EXPECT_EQ(grad({sum(mul(gm, gm))}, {masked})[0].to_vector<double>(), std::vector<double>(3, 0.0));
}

TEST(SavedInputsTorch, RobustLossesGiveFiniteGradientsForAnInfiniteDifference) {
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor y = from_vector(std::vector<double>{0, 0, inf});
  Tensor x = leaf({inf, -inf, 1});
  huber_loss(x, y, "mean", 0.5).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0 / 6, -1.0 / 6, -1.0 / 6}));
  zero_grad(x);
  smooth_l1_loss(x, y, "mean", 0.5).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0 / 3, -1.0 / 3, -1.0 / 3}));
  // float32: a difference that overflows to inf.
  Tensor xf = leaf({3e38, 0.3, 2}, DType::float32);
  const Tensor yf = from_vector(std::vector<float>{-3e38f, 0, 0});
  smooth_l1_loss(xf, yf, "mean", 0.5).backward();
  EXPECT_EQ(xf.grad().to_vector<float>(),
            (std::vector<float>{0.3333333432674408f, 0.20000001788139343f, 0.3333333432674408f}));
  zero_grad(xf);
  huber_loss(xf, yf, "mean", 0.5).backward();
  EXPECT_EQ(xf.grad().to_vector<float>(),
            (std::vector<float>{0.1666666716337204f, 0.10000000894069672f, 0.1666666716337204f}));
}

// index (1, 2) picks src's leading (1, 2) block; the rest of src (2, 3) is never read.
TEST(SavedInputsTorch, ASrcLargerThanTheIndexGetsZerosWhereItWasNotRead) {
  const Tensor idx = from_vector(std::vector<int64_t>{2, 0}, {1, 2});
  const Tensor w = add(arange(0, 12, 1, DType::float64).reshape({3, 4}), 1.0);  // 1 + 4r + c
  for (const char* op : {"scatter_add", "scatter", "scatter_reduce"}) {
    SCOPED_TRACE(op);
    Tensor src = leaf({1, 2, 3, 4, 5, 6});
    Tensor s2 = src.reshape({2, 3});
    const Tensor self = zeros({3, 4}, {.dtype = DType::float64});
    const std::string name = op;
    const Tensor out = name == "scatter_add" ? scatter_add(self, 0, idx, s2)
                       : name == "scatter"   ? scatter(self, 0, idx, s2)
                                             : scatter_reduce(self, 0, idx, s2, "sum");
    sum(mul(out, w)).backward();
    // Row 2 col 0 and row 0 col 1 were written: src[0][0] got w[2][0] = 9, src[0][1] w[0][1] = 2.
    EXPECT_EQ(src.grad().to_vector<double>(), (std::vector<double>{9, 2, 0, 0, 0, 0}));
  }
}

}  // namespace
}  // namespace fabric
