// Gradients as torch 1.13's (values from torch, /usr/bin/python3): norm's p = 1 and inf gradients
// keep a graph under create_graph (torch's sgn), so differentiating them gives zeros; root
// gradients are cast to the root's dtype; cumsum with a dtype rounds the gradient to x's dtype
// before the reversed sum.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
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

// torch's validate_outputs: a root gradient of another dtype is cast to the root's dtype first.
// torch: h = tensor([1., 2.], float64, requires_grad); (h * 3).backward(tensor([0.1, 0.2])) gives
// h.grad == [0.30000000447034836, 0.60000000894069672] (0.1f in float64, times 3), float64.
TEST(EngineTorch, RootGradientsAreCastToTheRootsDtype) {
  Tensor h = from_vector<double>({1, 2}, {2});
  h.set_requires_grad(true);
  mul(h, 3.0).backward(from_vector<float>({0.1f, 0.2f}, {2}));
  EXPECT_EQ(h.grad().dtype(), DType::float64);
  EXPECT_EQ(h.grad().to_vector<double>(), (std::vector<double>{3.0 * static_cast<double>(0.1f),
                                                               3.0 * static_cast<double>(0.2f)}));
  Tensor x = from_vector<double>({1, 2}, {2});
  x.set_requires_grad(true);
  x.backward(from_vector<int64_t>({1, 2}, {2}));  // a leaf root stores the cast gradient
  EXPECT_EQ(x.grad().dtype(), DType::float64);
  EXPECT_THROW(grad({mul(x, 2.0)}, {}, {}),
               ValueError);  // torch: "grad requires non-empty inputs."
}

TEST(ReduceGradientsTorch, CumsumWithADtypeRoundsTheGradientFirst) {
  // torch: x = (arange(15).reshape(3, 5) * 0.37 + 0.11) float32; w = arange(15) float64 *
  // 0.1234567891234 + 0.3; (x.cumsum(1, dtype=float64) * w).sum().backward()
  Tensor x = add(mul(arange(0, 15, 1, DType::float32).reshape({3, 5}), 0.37), 0.11).detach();
  x.set_requires_grad(true);
  const Tensor w = add(mul(arange(0, 15, 1, DType::float64).reshape({3, 5}), 0.1234567891234), 0.3);
  const Tensor y = cumsum(x, 1, DType::float64);
  EXPECT_EQ(y.dtype(), DType::float64);
  sum(mul(y, w)).backward();
  const std::vector<uint32_t> want = {0x402f0329, 0x401bcff6, 0x4000b60b, 0x3fbb6ad3, 0x3f4b3842,
                                      0x40ba4588, 0x409ceb24, 0x40773ac9, 0x402cb892, 0x3fb49f4a,
                                      0x410e84bd, 0x40ebee4d, 0x40b6dfc3, 0x407bbbbb, 0x4001d139};
  ASSERT_EQ(x.grad().dtype(), DType::float32);
  const std::vector<float> got = x.grad().to_vector<float>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), want[i]) << "element " << i;
}

}  // namespace
}  // namespace fabric
