// unbind: the slices as copies, one autograd node whose backward stacks the slices' gradients
// (zeros for slices that got none), double backward through it, and its argument errors.
#include <gtest/gtest.h>

#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

Tensor iota(Shape shape) {
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return from_vector(v, shape, {.dtype = DType::float64});
}

TEST(Unbind, SlicesAreCopiesAlongTheDim) {
  const Tensor x = iota({2, 3});  // [[0, 1, 2], [3, 4, 5]]
  const std::vector<Tensor> cols = unbind(x, -1);
  ASSERT_EQ(cols.size(), 3u);
  EXPECT_EQ(cols[1].sizes(), (Shape{2}));
  EXPECT_EQ(cols[1].to_vector<double>(), (std::vector<double>{1, 4}));
  const std::vector<Tensor> rows = unbind(x);
  EXPECT_EQ(rows[1].to_vector<double>(), (std::vector<double>{3, 4, 5}));
  // Copies: writing one leaves the source alone.
  Tensor r0 = rows[0];
  r0.fill_(9);
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(unbind(zeros({0, 4})).empty());
}

// The backward stacks: slices that get no gradient contribute zeros; one backward node for all.
TEST(Unbind, GradientStacksTheSlicesGradients) {
  Tensor x = iota({3, 2}).set_requires_grad(true);
  const std::vector<Tensor> s = unbind(x, 0);
  EXPECT_EQ(grad_fn_name(s[0]), "UnbindBackward0");
  sum(add(mul(s[2], 3.0), s[0])).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 1, 0, 0, 3, 3}));

  Tensor y = iota({2, 3}).set_requires_grad(true);
  const std::vector<Tensor> c = unbind(y, 1);
  sum(mul(c[1], c[1])).backward();  // d/dy of y[:, 1]^2
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{0, 2, 0, 0, 8, 0}));
}

TEST(Unbind, DifferentiatesTwice) {
  Tensor x = iota({2, 2}).set_requires_grad(true);
  const std::vector<Tensor> s = unbind(x, 1);
  const Tensor f = sum(mul(mul(s[0], s[0]), s[0]));  // sum of x[:, 0]^3
  const Tensor g = grad({f}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{0, 0, 12, 0}));  // 3 x^2 at 0 and 2
  const Tensor h = grad({sum(g)}, {x})[0];
  EXPECT_EQ(h.to_vector<double>(), (std::vector<double>{0, 0, 12, 0}));  // 6 x
}

TEST(Unbind, ArgumentErrors) {
  EXPECT_CONTAINS(thrown<ShapeError>([] { unbind(scalar_tensor(1.0)); }),
                  "unbind: a 0-dim tensor has no dim to unbind");
  EXPECT_CONTAINS(thrown<IndexError>([] { unbind(zeros({2, 3}), 2); }), "unbind");
  EXPECT_CONTAINS(thrown<ValueError>([] { unbind(Tensor()); }), "unbind: undefined input");
}

}  // namespace
}  // namespace fabric
