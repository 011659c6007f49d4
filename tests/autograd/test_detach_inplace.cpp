// Tensor::detach_() as torch 1.13 has it (the outcomes in the comments are torch's): the tensor
// itself stops requiring grad and becomes a leaf, graphs built through it before keep working,
// views of it keep their own history, and any view made by a view op refuses to be detached in
// place, whatever its requires_grad.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

constexpr DType f64 = DType::float64;

Tensor leaf() { return from_vector<double>({1, 2, 3}, {3}, {.dtype = f64, .requires_grad = true}); }
Tensor plain() { return from_vector<double>({1, 2, 3}, {3}, {.dtype = f64}); }

// A tensor to detach in place: `make` returns it; torch leaves it a leaf that does not require
// grad.
struct Detachable {
  const char* name;
  std::function<Tensor()> make;
};

TEST(DetachInPlace, TheTensorBecomesALeafWithoutGrad) {
  const std::vector<Detachable> cases = {
      {"non-leaf (x * 2)", [] { return mul(leaf(), 2.0); }},
      {"leaf that requires grad", [] { return leaf(); }},
      {"tensor without grad", [] { return plain(); }},
      {"detach() of a leaf (not a view autograd follows)", [] { return leaf().detach(); }},
      {"retain_grad non-leaf",
       [] {
         Tensor y = mul(leaf(), 2.0);
         retain_grad(y);
         return y;
       }},
  };
  for (const Detachable& c : cases) {
    Tensor t = c.make();
    Tensor& self = t.detach_();
    EXPECT_TRUE(self.is_same(t)) << c.name;
    EXPECT_FALSE(t.requires_grad()) << c.name;
    EXPECT_TRUE(is_leaf(t)) << c.name;
    EXPECT_EQ(grad_fn_name(t), "") << c.name;
    // torch: "element 0 of tensors does not require grad and does not have a grad_fn"
    EXPECT_THROW(sum(t).backward(), Error) << c.name;
    // It can require grad again, as a fresh leaf.
    t.set_requires_grad(true);
    EXPECT_TRUE(is_leaf(t)) << c.name;
    sum(mul(t, t)).backward();
    EXPECT_EQ(t.grad().to_vector<double>(), mul(t, 2.0).to_vector<double>()) << c.name;
  }
}

TEST(DetachInPlace, GraphsBuiltBeforeKeepWorking) {
  Tensor x = leaf();
  Tensor y = mul(x, 2.0);
  Tensor z = mul(y, 3.0);
  Tensor v = y.narrow(0, 0, 2);  // a view of y, made before
  y.detach_();
  sum(z).backward();  // torch: x.grad = [6, 6, 6]
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{6, 6, 6}));
  // The view keeps its own history (torch: requires_grad True, SliceBackward0).
  EXPECT_TRUE(v.requires_grad());
  EXPECT_FALSE(is_leaf(v));
}

// torch 1.13 raises for every view made by a view op (is_view()), leaf or not, requiring grad
// or not: "Can't detach views in-place. Use detach() instead."
TEST(DetachInPlace, ViewsRefuse) {
  const std::vector<Detachable> cases = {
      {"slice of a tensor without grad", [] { return plain().narrow(0, 0, 2); }},
      {"view of a tensor without grad", [] { return plain().view({3}); }},
      {"slice of a leaf that requires grad", [] { return leaf().narrow(0, 0, 2); }},
      {"slice of a leaf made under no_grad (a leaf view)",
       [] {
         Tensor x = leaf();
         NoGradGuard no_grad;
         return x.narrow(0, 0, 2);
       }},
      {"view of a non-leaf", [] { return mul(leaf(), 2.0).view({3}); }},
      {"transpose of a non-leaf", [] { return mul(leaf(), 2.0).unsqueeze(0).transpose(0, 1); }},
  };
  for (const Detachable& c : cases) {
    Tensor t = c.make();
    const bool requires_grad = t.requires_grad();
    EXPECT_CONTAINS(thrown<Error>([&] { t.detach_(); }),
                    "detach_: Can't detach views in-place. Use detach() instead")
        << c.name;
    EXPECT_EQ(t.requires_grad(), requires_grad) << c.name;  // unchanged
    Tensor d = t.detach();                                  // what the message suggests
    EXPECT_FALSE(d.requires_grad()) << c.name;
  }
  EXPECT_CONTAINS(thrown<Error>([] { plain().narrow(0, 1, 2).detach_(); }),
                  "this float64 tensor of shape (2,) is a view of a tensor of shape (3,)");
  EXPECT_THROW(Tensor().detach_(), ValueError);
}

}  // namespace
}  // namespace fabric
