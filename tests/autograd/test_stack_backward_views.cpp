// stack's backward (autograd/derivatives_index.cpp) hands each piece the slice of the incoming
// gradient along the stacked dim as a view, as torch's StackBackward0 does (grad.unbind(dim)): no
// copy per piece, whatever the dim.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

TEST(StackBackward, PiecesGetViewsOfTheIncomingGradient) {
  const Tensor a = randn({4, 5}).set_requires_grad(true);
  const Tensor b = randn({4, 5}).set_requires_grad(true);
  for (const int64_t dim : {0, 1, 2, -1}) {
    const std::string what = "dim " + std::to_string(dim);
    // Non-leaf pieces, so that their hooks see the gradient stack's backward made.
    const Tensor pa = mul(a, Scalar(2.0)), pb = mul(b, Scalar(3.0));
    std::vector<Tensor> seen(2);
    register_hook(pa, [&](const Tensor& g) {
      seen[0] = g;
      return Tensor();
    });
    register_hook(pb, [&](const Tensor& g) {
      seen[1] = g;
      return Tensor();
    });
    const Tensor y = stack({pa, pb}, dim);
    const Tensor G = randn(y.sizes());
    y.backward(G);
    for (int64_t i = 0; i < 2; ++i) {
      const Tensor& g = seen[static_cast<size_t>(i)];
      ASSERT_TRUE(g.defined()) << what;
      EXPECT_EQ(g.storage(), G.storage()) << what << ": piece " << i << " got a copy";
      EXPECT_EQ(g.to_vector<float>(), G.select(dim, i).to_vector<float>()) << what;
    }
    // The leaves' gradients are the chain rule's, through the views.
    EXPECT_EQ(a.grad().to_vector<float>(), mul(G.select(dim, 0), Scalar(2.0)).to_vector<float>());
    EXPECT_EQ(b.grad().to_vector<float>(), mul(G.select(dim, 1), Scalar(3.0)).to_vector<float>());
    zero_grad(a);
    zero_grad(b);
  }
}

}  // namespace
}  // namespace fabric
