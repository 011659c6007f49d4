// Two silent wrong gradients after in-place writes, now as torch 1.13 (values printed with
// /usr/bin/python3):
// - retain_grad, then an in-place write: .grad is the new value's gradient (torch moves its
//   retains_grad hook to the write's node); it was the old value's (3x too large after mul_(3)),
//   or missing for a view whose base was written.
// - An overwriting write (fill_, copy_, zero_) gives the old value's producers exactly zero, also
//   for an inf or NaN incoming gradient; 0 * inf made them NaN.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

Tensor leaf() {
  Tensor x = from_vector<double>({1, -2, 3});
  x.set_requires_grad(true);
  return x;
}

TEST(InplaceRetainGrad, TheRetainedGradIsTheNewValuesAfterAnInplaceWrite) {
  Tensor x = leaf();
  Tensor y = mul(x, 2.0);
  retain_grad(y);
  y.mul_(3.0);
  retain_grad(y);  // a second call changes nothing
  backward(sum(mul(y, y)));
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{12, -24, 36}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{72, -144, 216}));
}

TEST(InplaceRetainGrad, AViewKeepsItsRetainedGradWhenItsBaseIsWritten) {
  Tensor x = leaf();
  Tensor y = mul(x, 2.0).reshape({1, 3});
  Tensor v = y.select(0, 0);
  retain_grad(v);
  y.mul_(3.0);
  backward(sum(mul(v, v)));
  ASSERT_TRUE(v.grad().defined());
  EXPECT_EQ(v.grad().to_vector<double>(), (std::vector<double>{12, -24, 36}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{72, -144, 216}));
}

TEST(InplaceOverwrite, TheOldValueGetsExactZerosForANonFiniteGradient) {
  const double inf = std::numeric_limits<double>::infinity(),
               nan = std::numeric_limits<double>::quiet_NaN();
  for (int which = 0; which < 3; ++which) {
    SCOPED_TRACE(which);
    Tensor x = leaf();
    Tensor y = mul(x, 2.0);
    if (which == 0) y.fill_(1.0);
    if (which == 1) y.copy_(from_vector<double>({5, 6, 7}));
    if (which == 2) y.zero_();
    backward(y, from_vector<double>({inf, nan, 1}));
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 0}));
  }
}

}  // namespace
}  // namespace fabric
