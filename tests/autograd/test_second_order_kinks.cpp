// Second derivatives at points where the first derivative was built from masked or absolute values:
// - smooth_l1_loss / huber_loss at a zero residual: 1 / beta and 1, torch 1.13's values (they
//   squared |d|, whose subgradient 0 at 0 made the curvature 0);
// - pow(a, b) with a zero base where b is learnable: the masked-out entries no longer compute
//   log(0) or 0^(b-1), whose zero gradient times -inf/inf made the second derivatives NaN (here
//   torch 1.13 gives NaN too; the limit a^b log(a)^2 -> 0 is what a MAML step needs).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

std::vector<double> second_derivative_diagonal(const std::function<Tensor(const Tensor&)>& f,
                                               const Tensor& x0) {
  Tensor x = x0.clone();
  x.set_requires_grad(true);
  const Tensor g = grad({f(x)}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return grad({sum(g)}, {x})[0].to_vector<double>();
}

TEST(SecondOrderKinks, SmoothL1AndHuberHaveTheirCurvatureAtAZeroResidual) {
  const Tensor x = from_vector<double>({0.2, 1.0, -3.0}), y = from_vector<double>({0.2, 0.5, 0.0});
  EXPECT_EQ(
      second_derivative_diagonal([&](const Tensor& v) { return smooth_l1_loss(v, y, "sum"); }, x),
      (std::vector<double>{1, 1, 0}));
  EXPECT_EQ(second_derivative_diagonal([&](const Tensor& v) { return huber_loss(v, y, "sum"); }, x),
            (std::vector<double>{1, 1, 0}));
  EXPECT_EQ(second_derivative_diagonal(
                [&](const Tensor& v) { return smooth_l1_loss(v, y, "sum", 0.5); }, x),
            (std::vector<double>{2, 0, 0}));
}

TEST(SecondOrderKinks, PowWithAZeroBaseHasFiniteExponentCurvature) {
  // d2/db2 of sum(a^b) is a^b log(a)^2: 0 where a == 0 (b > 0), not NaN.
  const Tensor a = from_vector<double>({0.0, 2.0, 0.5});
  Tensor b = from_vector<double>({1.5, 0.5, 2.0});
  b.set_requires_grad(true);
  const Tensor gb = grad({sum(pow(a, b))}, {b}, {}, true, true)[0];
  const std::vector<double> h = grad({sum(gb)}, {b})[0].to_vector<double>();
  EXPECT_EQ(h[0], 0.0);
  EXPECT_NEAR(h[1], std::pow(2.0, 0.5) * std::log(2.0) * std::log(2.0), 1e-12);
  EXPECT_NEAR(h[2], 0.25 * std::log(0.5) * std::log(0.5), 1e-12);
}

// binary_cross_entropy at saturated probabilities: torch's second derivative (its double backward's
// formula), not g / 1e-12 from the clamp's zero derivative; first derivatives unchanged.
TEST(SecondOrderKinks, BinaryCrossEntropyAtSaturatedProbabilities) {
  Tensor p = from_vector<double>({1e-20, 0.5, 1.0 - 1e-17, 0.3});
  p.set_requires_grad(true);
  const Tensor t = from_vector<double>({0.0, 0.3, 1.0, 0.7});
  const Tensor g = grad({binary_cross_entropy(p, t, Tensor(), "sum")}, {p}, {}, true, true)[0];
  const std::vector<double> first = g.to_vector<double>(),
                            second = grad({sum(g)}, {p})[0].to_vector<double>();
  const std::vector<double> torch_first = {1.0000000039958028e-08, 0.8, 0.0, -1.9047619047619047};
  const std::vector<double> torch_second = {9.99999979998e-17, 3.9999999999680007, 0.0,
                                            8.39002267565706};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(first[i], torch_first[i], 1e-15 + 1e-12 * std::abs(torch_first[i])) << i;
    EXPECT_NEAR(second[i], torch_second[i], 1e-15 + 1e-9 * std::abs(torch_second[i])) << i;
  }
}

// diag(v) of a vector that requires grad differentiates twice (it was a copy_ into the diagonal
// view, whose CopySlices gradient refused create_graph); values and shape as before.
TEST(SecondOrderKinks, DiagOfAVectorDifferentiatesTwice) {
  for (int64_t k : {0, 1, -2}) {
    SCOPED_TRACE(k);
    Tensor v = from_vector<double>({0.5, -1.0, 2.0});
    v.set_requires_grad(true);
    const Tensor d = diag(v, k);
    EXPECT_EQ(d.sizes(), (Shape{3 + std::abs(k), 3 + std::abs(k)}));
    EXPECT_EQ(d.detach().to_vector<double>(), diag(v.detach(), k).to_vector<double>());
    const Tensor g = grad({sum(pow(d, Scalar(3)))}, {v}, {}, true, true)[0];
    EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{0.75, 3, 12}));
    EXPECT_EQ(grad({sum(g)}, {v})[0].to_vector<double>(), (std::vector<double>{3, -6, 12}));
  }
}

}  // namespace
}  // namespace fabric
