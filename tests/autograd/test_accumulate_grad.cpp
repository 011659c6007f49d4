// Leaf gradient accumulation as torch's AccumulateGrad: in place outside create_graph (what
// aliases .grad sees the sum), nothing for a leaf frozen after forward; the gradient count of
// backward/grad; and a very deep graph freed without one destructor call per node on the stack.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

std::vector<float> values(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

// torch: flat = zeros(5); p.grad = flat[1:4]; (p*p).sum().backward() writes 2p into flat.
TEST(AccumulateGrad, AGradientThatIsAViewOfABufferAccumulatesIntoTheBuffer) {
  Tensor p = from_vector(std::vector<float>{0.5f, 1.3f, 2.1f}).set_requires_grad(true);
  Tensor flat = zeros({5});
  set_grad(p, flat.narrow(0, 1, 3));
  sum(mul(p, p)).backward();
  EXPECT_EQ(values(flat), (std::vector<float>{0.f, 1.f, 2.6f, 4.2f, 0.f}));
  EXPECT_EQ(p.grad().storage().get(), flat.storage().get());
}

TEST(AccumulateGrad, AHeldGradientSeesTheSecondBackwardsSum) {
  Tensor q = ones({3}).set_requires_grad(true);
  sum(mul(q, 2.0)).backward();
  const Tensor held = q.grad();
  sum(mul(q, 2.0)).backward();
  EXPECT_EQ(values(held), (std::vector<float>{4.f, 4.f, 4.f}));
  EXPECT_EQ(held.impl(), q.grad().impl());
  // After zero_grad(set_to_none = false) the same tensor goes on accumulating.
  zero_grad(q, /*set_to_none=*/false);
  sum(mul(q, 3.0)).backward();
  EXPECT_EQ(values(held), (std::vector<float>{3.f, 3.f, 3.f}));
}

// A .grad with history (from create_graph) keeps it through a plain backward's in-place sum.
TEST(AccumulateGrad, AGradientWithHistoryKeepsItThroughAPlainBackward) {
  Tensor x = from_vector(std::vector<float>{1.f, 2.f}).set_requires_grad(true);
  sum(mul(mul(x, x), x)).backward({}, std::nullopt, /*create_graph=*/true);
  ASSERT_TRUE(x.grad().requires_grad());
  sum(mul(x, x)).backward();
  EXPECT_TRUE(x.grad().requires_grad());
  EXPECT_EQ(values(x.grad().detach()), (std::vector<float>{5.f, 16.f}));  // 3x² + 2x
}

TEST(AccumulateGrad, ALeafFrozenBetweenForwardAndBackwardGetsNoGradient) {
  Tensor x = ones({2}).set_requires_grad(true);
  Tensor w = ones({2}).set_requires_grad(true);
  Tensor loss = sum(mul(x, w));
  x.set_requires_grad(false);
  loss.backward();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(w.grad().defined());
}

TEST(AccumulateGrad, BackwardAndGradWantOneGradientPerTensorOrNone) {
  Tensor x = ones({2}).set_requires_grad(true);
  Tensor r1 = sum(x), r2 = sum(mul(x, 2.0));
  const std::string msg = thrown<ValueError>([&] { backward({r1, r2}, {Tensor()}); });
  EXPECT_CONTAINS(msg, "got 2 tensors and 1 gradients");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    grad({r1, r2}, {x}, {Tensor()});
                  }),
                  "got 2 tensors and 1 gradients");
  backward({r1, r2}, {});  // none: an implicit 1 for each
  EXPECT_EQ(values(x.grad()), (std::vector<float>{3.f, 3.f}));
}

// 250k nodes: freed one destructor inside another, the chain overflowed an 8 MiB stack (torch
// frees such graphs iteratively, as fabric now does).
TEST(AutogradGraph, AVeryDeepGraphIsFreedWithoutOverflowingTheStack) {
  Tensor x = ones({3}).set_requires_grad(true);
  {
    Tensor y = x;
    for (int i = 0; i < 250000; ++i) y = mul(y, 1.0);
  }  // dropped without backward
  {
    Tensor y = x;
    for (int i = 0; i < 250000; ++i) y = add(y, 1.0);
    sum(y).backward();
  }
  EXPECT_EQ(values(x.grad()), (std::vector<float>{1.f, 1.f, 1.f}));
}

}  // namespace
}  // namespace fabric
