// In-place ops under autograd, with PyTorch's rules (torch 1.13 gives the numbers in the
// comments): a leaf that requires grad refuses them in grad mode, a non-leaf takes the op's
// history, an operand that requires grad pulls the written tensor into the graph, overwriting
// writes give the old value a zero gradient, and a saved tensor modified before backward is
// refused rather than giving a wrong gradient. Writes into views: test_inplace_views.cpp.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

Tensor leaf(std::vector<double> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return from_vector(v, {n}, {.dtype = DType::float64, .requires_grad = true});
}

Tensor plain(std::vector<double> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return from_vector(v, {n}, {.dtype = DType::float64});
}

using V = std::vector<double>;

TEST(Inplace, LeafThatRequiresGradRefusesInGradModeOnly) {
  Tensor w = leaf({1, 2});
  EXPECT_CONTAINS(thrown<Error>([&] { add_(w, 1.0); }), "a leaf Variable that requires grad");
  EXPECT_CONTAINS(thrown<Error>([&] { mul_(w, plain({2, 2})); }), "mul_");
  EXPECT_CONTAINS(thrown<Error>([&] { w.fill_(0); }), "fill_");
  EXPECT_CONTAINS(thrown<Error>([&] { w.copy_(plain({3, 4})); }), "copy_");
  EXPECT_CONTAINS(thrown<Error>([&] { uniform_(w); }), "uniform_");
  EXPECT_EQ(w.to_vector<double>(), V({1, 2})) << "a refused write leaves the values";
  {
    NoGradGuard no_grad;  // how optimizers and initialisers write parameters
    add_(w, 1.0);
    w.copy_(mul(w, 2.0));
  }
  EXPECT_EQ(w.to_vector<double>(), V({4, 6}));
  EXPECT_TRUE(is_leaf(w));
}

// y = w * 2; y.mul_(3): dL/dw = 6 (was 2 while in-place writes were invisible to autograd).
TEST(Inplace, NonLeafTakesTheHistoryOfTheOp) {
  Tensor w = leaf({1, 2});
  Tensor y = mul(w, 2.0);
  mul_(y, 3.0);
  EXPECT_EQ(grad_fn_name(y), "MulBackward0");
  EXPECT_EQ(y.to_vector<double>(), V({6, 12}));
  sum(y).backward();
  EXPECT_EQ(w.grad().to_vector<double>(), V({6, 6}));
}

// The README's form: the in-place methods are the free functions (y.mul_(3) is mul_(y, 3)).
TEST(Inplace, MethodsForwardToTheFreeFunctions) {
  Tensor w = leaf({1, 2});
  Tensor y = mul(w, 2.0);
  y.mul_(3);
  y.add_(plain({1, 1}), 2).sub_(1.0).div_(2.0).add_(0.5);
  EXPECT_EQ(y.to_vector<double>(), V({4, 7}));  // ((6 + 2 - 1) / 2 + 0.5, (12 + 2 - 1) / 2 + 0.5)
  sum(y).backward();
  EXPECT_EQ(w.grad().to_vector<double>(), V({3, 3}));
  Tensor z = zeros({1000}, {.dtype = DType::float64});
  z.sub_(plain(V(1000, 1.0)), 2).mul_(plain(V(1000, 0.5))).div_(plain(V(1000, 4.0)));
  EXPECT_EQ(z.to_vector<double>()[0], -0.25);
  Generator g(7), h(7);
  Tensor u = empty({1000}, {.dtype = DType::float64});
  u.uniform_(-1, 1, &g);
  EXPECT_EQ(u.to_vector<double>(), uniform_(z, -1, 1, &h).to_vector<double>());
  u.normal_(5, 0.1, &g);
  EXPECT_NEAR(mean(u).item<double>(), 5.0, 0.02);
  EXPECT_CONTAINS(thrown<Error>([&] { w.mul_(2); }), "a leaf Variable that requires grad");
}

// y = x * 1; y.div_(w); y.add_(w, alpha=2); y.sub_(b): both operands and the old value get
// their gradients. dy/dx = 1/w, dy/dw = -x/w^2 + 2, dy/db = -1.
TEST(Inplace, OperandsThatRequireGradJoinTheGraph) {
  Tensor x = leaf({3, -4}), w = leaf({2, 0.5}), b = leaf({1, 1});
  Tensor y = mul(x, 1.0);
  div_(y, w);
  add_(y, w, 2.0);
  sub_(y, b);
  EXPECT_EQ(y.to_vector<double>(), V({3.0 / 2 + 4 - 1, -4 / 0.5 + 1 - 1}));
  sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), V({0.5, 2}));
  EXPECT_EQ(w.grad().to_vector<double>(), V({-3.0 / 4 + 2, 4 / 0.25 + 2}));
  EXPECT_EQ(b.grad().to_vector<double>(), V({-1, -1}));
}

// A tensor that needs no grad becomes part of the graph when the operand requires grad.
TEST(Inplace, PlainTensorWrittenFromAnOperandThatRequiresGrad) {
  Tensor acc = plain({10, 20});
  Tensor w = leaf({1, 2});
  mul_(acc, w);
  EXPECT_TRUE(acc.requires_grad());
  EXPECT_FALSE(is_leaf(acc));
  sum(acc).backward();
  EXPECT_EQ(w.grad().to_vector<double>(), V({10, 20}));
}

// Overwriting writes: the new values' gradient goes to their source, the old value gets zero.
// y = x * 2; y.copy_(z): dL/dz = 1, dL/dx = 0. y = x * 2; y.fill_(5); L = sum(y * x): dL/dx = 5.
TEST(Inplace, OverwritingWritesGiveTheOldValueAZeroGradient) {
  Tensor x = leaf({1, 2}), z = leaf({7, 8});
  Tensor y = mul(x, 2.0);
  y.copy_(z);
  sum(y).backward();
  EXPECT_EQ(z.grad().to_vector<double>(), V({1, 1}));
  EXPECT_EQ(x.grad().to_vector<double>(), V({0, 0}));

  Tensor x2 = leaf({1, 2});
  Tensor y2 = mul(x2, 2.0);
  y2.fill_(5);
  EXPECT_TRUE(y2.requires_grad());
  sum(mul(y2, x2)).backward();
  EXPECT_EQ(x2.grad().to_vector<double>(), V({5, 5}));

  // A broadcasting, converting copy: the gradient is summed back to the source's shape and dtype.
  Tensor src = from_vector<float>({1.5f}, {1}, {.requires_grad = true});
  Tensor dst = mul(leaf({0, 0, 0}), 1.0);
  dst.copy_(src);
  sum(dst).backward();
  EXPECT_EQ(src.grad().dtype(), DType::float32);
  EXPECT_EQ(src.grad().to_vector<double>(), V({3}));
}

// torch: exp saves its result; modifying it in place before backward raises "one of the variables
// needed for gradient computation has been modified by an inplace operation" (it would give
// 2e instead of e here). An op that saved nothing is unaffected.
TEST(Inplace, ModifiedSavedTensorIsRefusedInBackward) {
  Tensor x = leaf({1});
  Tensor y = exp(x);
  mul_(y, 2.0);
  EXPECT_CONTAINS(thrown<Error>([&] { sum(y).backward(); }), "modified by an inplace operation");

  Tensor x2 = leaf({1, 2});
  Tensor y2 = mul(x2, 2.0);
  Tensor z2 = add(y2, 1.0);  // saves nothing of y2
  mul_(y2, 3.0);
  sum(add(z2, y2)).backward();
  EXPECT_EQ(x2.grad().to_vector<double>(), V({8, 8}));
}

}  // namespace
}  // namespace fabric
