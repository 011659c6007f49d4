// Degenerate inputs that crashed or were computed wrongly (torch 1.13's results, checked by hand
// with /usr/bin/python3):
// - size(d) / stride(d) of a 0-dim tensor read past an empty vector (SIGSEGV): an IndexError now;
// - einsum with a zero-size operand broadcast against a size-1 dim gave 1 instead of 0;
// - linear / matmul backward with zero in or out features could not infer reshape({-1, 0});
// - uniform_ / normal_ into an expanded view wrote one draw per memory location: refused as torch.
#include <gtest/gtest.h>

#include <vector>

#include "autograd/autograd.h"
#include "nn/unflatten.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

TEST(DegenerateInputs, SizeAndStrideOfA0DimTensorAreIndexErrors) {
  const Tensor s = scalar_tensor(0.3);
  EXPECT_CONTAINS(thrown<IndexError>([&] { (void)s.size(0); }),
                  "size: dimension specified as 0 but the tensor has no dimensions (0-dim)");
  EXPECT_CONTAINS(thrown<IndexError>([&] { (void)s.size(-1); }), "no dimensions");
  EXPECT_CONTAINS(thrown<IndexError>([&] { (void)s.stride(0); }),
                  "stride: dimension specified as 0");
  EXPECT_CONTAINS(thrown<IndexError>([&] {
                    nn::Unflatten({.dim = 0, .unflattened_size = {-1, 2}}).forward(s);
                  }),
                  "Unflatten: dimension specified as 0 but the input has no dimensions");
}

TEST(DegenerateInputs, EinsumWithAZeroSizeOperand) {
  EXPECT_EQ(einsum("ij,jk->ik", {randn({0, 4}), randn({4, 2})}).sizes(), (Shape{0, 2}));
  EXPECT_EQ(einsum("ij,jk->ik", {randn({3, 4}), randn({4, 0})}).sizes(), (Shape{3, 0}));
  EXPECT_EQ(einsum("ij,j->i", {randn({0, 3}), randn({3})}).sizes(), (Shape{0}));
}

TEST(DegenerateInputs, LinearAndMatmulBackwardWithZeroFeatures) {
  Tensor x = randn({2, 4});
  x.set_requires_grad(true);
  for (const Shape& ws : {Shape{0, 4}}) {
    Tensor w = randn(ws);
    w.set_requires_grad(true);
    backward(sum(linear(x, w)));
    EXPECT_EQ(w.grad().sizes(), ws);
    EXPECT_EQ(x.grad().sizes(), (Shape{2, 4}));
    EXPECT_EQ(x.grad().to_vector<float>(), std::vector<float>(8, 0.f));
  }
  Tensor a = randn({2, 3, 0}), b = randn({0, 2});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  backward(sum(matmul(a, b)));
  EXPECT_EQ(a.grad().sizes(), (Shape{2, 3, 0}));
  EXPECT_EQ(b.grad().sizes(), (Shape{0, 2}));
  Tensor c = randn({2, 3, 4}), d = randn({4, 0});
  c.set_requires_grad(true);
  d.set_requires_grad(true);
  backward(sum(matmul(c, d)));
  EXPECT_EQ(c.grad().to_vector<float>(), std::vector<float>(24, 0.f));
  EXPECT_EQ(d.grad().sizes(), (Shape{4, 0}));
}

TEST(DegenerateInputs, RandomFillsRefuseAnExpandedView) {
  Tensor e = zeros({1, 3}).expand({2, 3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { uniform_(e); }),
                  "uniform_: unsupported operation: more than one element");
  EXPECT_CONTAINS(thrown<ValueError>([&] { normal_(e); }), "normal_: unsupported operation");
  Tensor t = zeros({2, 3}).transpose(0, 1);  // strided but not overlapping: fine
  uniform_(t);
}

}  // namespace
}  // namespace fabric
