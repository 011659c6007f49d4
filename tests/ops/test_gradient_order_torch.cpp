// Backward rules in the order torch 1.13's derivatives.yaml writes them, so their float32 bits are
// torch's: g / (x ln 2) rather than g * (1 / (x ln 2)) (log2, log10, atan, atanh), atan2's
// (g * b) * r, pow's g * (e * x^(e-1)), addcmul's g * (t2 * v). Expected values: torch 1.13 CPU
// (printed by the script in this file's history, /usr/bin/python3), as hex floats.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

std::vector<float> input_gradient(const std::function<Tensor(const Tensor&)>& f,
                                  const std::vector<float>& x, const std::vector<float>& g) {
  Tensor t = from_vector(x, {static_cast<int64_t>(x.size())});
  t.set_requires_grad(true);
  f(t).backward(from_vector(g, {static_cast<int64_t>(g.size())}));
  return t.grad().to_vector<float>();
}

TEST(GradientOrderTorch, UnaryRulesAreTorchsBits) {
  const std::vector<float> g = {-3.f, 0.7f, 2.f};
  EXPECT_EQ(input_gradient([](const Tensor& t) { return log2(t); }, {0.1f, 3.7f, 1e-3f}, g),
            (std::vector<float>{-0x1.5a3f2ep+5f, 0x1.177e3p-2f, 0x1.68ac7cp+11f}));
  EXPECT_EQ(input_gradient([](const Tensor& t) { return log10(t); }, {0.99999994f, 3.7f, 1e-3f}, g),
            (std::vector<float>{-0x1.4d89c6p+0f, 0x1.508b02p-4f, 0x1.b24b62p+9f}));
  EXPECT_EQ(input_gradient([](const Tensor& t) { return atan(t); }, {20.f, 0.3f, -7.f}, g),
            (std::vector<float>{-0x1.ea4b54p-8f, 0x1.48ceacp-1f, 0x1.47ae14p-5f}));
  EXPECT_EQ(input_gradient([](const Tensor& t) { return atanh(t); }, {0.001f, 0.3f, -0.7f}, g),
            (std::vector<float>{-0x1.80001ap+1f, 0x1.89d89ep-1f, 0x1.f5f5f6p+1f}));
}

TEST(GradientOrderTorch, BinaryRulesAreTorchsBits) {
  Tensor a = from_vector(std::vector<float>{-3.76529455f, 0.5f, 2.f}, {3});
  Tensor b = from_vector(std::vector<float>{-0.42250228f, -1.5f, 0.3f}, {3});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  atan2(a, b).backward(from_vector(std::vector<float>{0.975905f, 0.3f, -1.1f}, {3}));
  EXPECT_EQ(a.grad().to_vector<float>(),
            (std::vector<float>{-0x1.d692p-6f, -0x1.70a3d8p-3f, -0x1.4a7bf0p-4f}));
  EXPECT_EQ(b.grad().to_vector<float>(),
            (std::vector<float>{0x1.061acp-2f, -0x1.eb852p-5f, 0x1.136746p-1f}));

  Tensor t1 = from_vector(std::vector<float>{0.3f, -1.7f, 2.9f}, {3});
  Tensor t2 = from_vector(std::vector<float>{1.1f, 0.37f, -5.3f}, {3});
  t1.set_requires_grad(true);
  t2.set_requires_grad(true);
  addcmul(from_vector(std::vector<float>{1.f, 2.f, 3.f}, {3}), t1, t2, 0.1)
      .backward(from_vector(std::vector<float>{0.9f, -1.3f, 0.77f}, {3}));
  EXPECT_EQ(t1.grad().to_vector<float>(),
            (std::vector<float>{0x1.958108p-4f, -0x1.8a0902p-5f, -0x1.a1e4f8p-2f}));
  EXPECT_EQ(t2.grad().to_vector<float>(),
            (std::vector<float>{0x1.ba5e36p-6f, 0x1.c49ba6p-3f, 0x1.c95184p-3f}));
}

}  // namespace
}  // namespace fabric
