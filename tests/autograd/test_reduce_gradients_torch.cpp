// Reduction gradients as torch 1.13's (values from torch, /usr/bin/python3): norm's p = 1 and inf
// gradients keep a graph under create_graph (torch's sgn), so differentiating them gives zeros.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

Tensor leaf(const std::vector<float>& v, const Shape& shape) {
  Tensor x = from_vector(v, shape);
  x.set_requires_grad(true);
  return x;
}

void expect_same(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "element " << i;
}

TEST(ReduceGradientsTorch, NormOneAndInfGradientsCanBeDifferentiatedAgain) {
  for (double p : {1.0, std::numeric_limits<double>::infinity()}) {
    SCOPED_TRACE(p);
    Tensor x = leaf({1, -2, 3}, {3});
    const std::vector<Tensor> g = grad({norm(x, p)}, {x}, {}, std::nullopt, true);
    ASSERT_TRUE(g[0].requires_grad());
    sum(mul(g[0], g[0])).backward();  // torch: x.grad == [0, 0, 0]
    expect_same(x.grad().to_vector<float>(), {0, 0, 0});
  }
}

}  // namespace
}  // namespace fabric
