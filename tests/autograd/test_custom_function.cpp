// Custom autograd functions (autograd/custom_function.h) against what torch's
// torch.autograd.Function does with the same forward and backward: gradients, double backward
// through saved inputs and outputs, non-differentiable outputs, materialized gradients, the
// argument/gradient count checks, in-place checks and freeing.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/custom_function.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/autograd/float64_values.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using test::expect_values;
using test::leaf;

struct MulConstant : Function<MulConstant> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, double c) {
    ctx->saved_data["c"] = c;
    return mul(x, c);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    return {mul(g[0], std::any_cast<double>(ctx->saved_data["c"])), Tensor()};
  }
};

// x^3, saving its input: backward 3 x^2 g is made of ops, so it differentiates again (6 x).
struct Cube : Function<Cube> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x) {
    ctx->save_for_backward({x});
    return mul(mul(x, x), x);
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor x = ctx->get_saved_variables()[0];
    return {mul(mul(mul(x, x), 3.0), g[0])};
  }
};

// exp, saving its output (torch's classic example).
struct Exp : Function<Exp> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x) {
    Tensor y = exp(x);
    ctx->save_for_backward({y});
    return y;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    return {mul(g[0], ctx->get_saved_variables()[0])};
  }
};

// Two outputs: x * w and the argmax-like mask (x > 0) as float, marked non-differentiable.
struct ScaleAndMask : Function<ScaleAndMask> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& x, const Tensor& w) {
    ctx->save_for_backward({x, w});
    Tensor mask = gt(x, 0.0).to(x.dtype());
    ctx->mark_non_differentiable({mask});
    return {mul(x, w), mask};
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    EXPECT_TRUE(g[1].defined());  // materialized zeros
    EXPECT_EQ(amax(abs(g[1])).item<double>(), 0.0);
    return {ctx->needs_input_grad(0) ? mul(g[0], s[1]) : Tensor(),
            ctx->needs_input_grad(1) ? mul(g[0], s[0]) : Tensor()};
  }
};

TEST(CustomFunction, GradientsAndNodeName) {
  Tensor x = leaf({1, -2, 3});
  Tensor y = MulConstant::apply(x, 2.5);
  EXPECT_EQ(grad_fn_name(y), "MulConstantBackward");
  EXPECT_TRUE(y.requires_grad());
  backward(sum(mul(y, y)));
  expect_values(x.grad(), {12.5, -25, 37.5}, "2 * 2.5 * 2.5 * x");
}

TEST(CustomFunction, DoubleBackwardThroughSavedInputAndOutput) {
  Tensor x = leaf({0.5, -1, 2});
  Tensor g = grad({sum(Cube::apply(x))}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  expect_values(g, {0.75, 3, 12}, "3 x^2");
  expect_values(grad({sum(g)}, {x})[0], {3, -6, 12}, "6 x");

  Tensor z = leaf({0, 1});
  Tensor gz = grad({sum(Exp::apply(z))}, {z}, {}, std::nullopt, true)[0];
  expect_values(gz, {1, std::exp(1.0)}, "exp");
  expect_values(grad({sum(gz)}, {z})[0], {1, std::exp(1.0)}, "exp again");
}

TEST(CustomFunction, NonDifferentiableOutputAndNeedsInputGrad) {
  Tensor x = leaf({1, -2, 3});
  Tensor w = from_vector<double>({2, 2, 2}, {3});  // needs no grad
  std::vector<Tensor> out = ScaleAndMask::apply(x, w);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].requires_grad());
  EXPECT_FALSE(out[1].requires_grad());
  expect_values(out[1], {1, 0, 1}, "mask");
  backward(sum(out[0]));
  expect_values(x.grad(), {2, 2, 2}, "x.grad");
}

TEST(CustomFunction, UnderNoGradOrWithoutGradInputsNothingIsRecorded) {
  Tensor x = leaf({1, 2});
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(MulConstant::apply(x, 2.0).requires_grad());
  }
  const Tensor c = from_vector<double>({1, 2}, {2});
  EXPECT_FALSE(MulConstant::apply(c, 2.0).requires_grad());
}

struct TooFew : Function<TooFew> {
  static Tensor forward(AutogradContext*, const Tensor& x, double) { return mul(x, 2.0); }
  static std::vector<Tensor> backward(AutogradContext*, std::vector<Tensor> g) { return {g[0]}; }
};
struct GradForANumber : Function<GradForANumber> {
  static Tensor forward(AutogradContext*, const Tensor& x, double) { return mul(x, 2.0); }
  static std::vector<Tensor> backward(AutogradContext*, std::vector<Tensor> g) {
    return {g[0], g[0]};
  }
};
struct ExtraUndefined : Function<ExtraUndefined> {
  static Tensor forward(AutogradContext*, const Tensor& x) { return mul(x, 2.0); }
  static std::vector<Tensor> backward(AutogradContext*, std::vector<Tensor> g) {
    return {mul(g[0], 2.0), Tensor(), Tensor()};
  }
};

// torch's CppNode checks, in its words.
TEST(CustomFunction, GradientCountChecks) {
  Tensor x = leaf({1, 2});
  EXPECT_CONTAINS(thrown<ValueError>([&] { backward(sum(TooFew::apply(x, 1.0))); }),
                  "function TooFewBackward returned an incorrect number of gradients (expected 2, "
                  "got 1)");
  EXPECT_CONTAINS(thrown<ValueError>([&] { backward(sum(GradForANumber::apply(x, 1.0))); }),
                  "returned a gradient different than None at position 2, but the corresponding "
                  "forward input was not a Variable");
  backward(sum(ExtraUndefined::apply(x)));
  expect_values(x.grad(), {2, 2}, "extra undefined gradients are dropped");
}

TEST(CustomFunction, SavedTensorsAreCheckedAndFreed) {
  Tensor x = leaf({1, 2});
  Tensor h = mul(x, 1.0);
  Tensor y = Cube::apply(h);
  h.mul_(2.0);  // the saved input changed
  EXPECT_CONTAINS(thrown<Error>([&] { backward(sum(y)); }), "modified by an inplace operation");

  Tensor y2 = Cube::apply(x);
  backward(sum(y2));
  EXPECT_CONTAINS(thrown<Error>([&] { backward(sum(y2)); }), "a second time");
  Tensor y3 = Cube::apply(x);
  backward(sum(y3), Tensor(), /*retain_graph=*/true);
  backward(sum(y3));
  expect_values(x.grad(), {3 + 3 + 3, 12 + 12 + 12}, "three backwards of 3 x^2");
}

struct Identity : Function<Identity> {
  static Tensor forward(AutogradContext*, const Tensor& x) { return x; }
  static std::vector<Tensor> backward(AutogradContext*, std::vector<Tensor> g) {
    return {mul(g[0], 3.0)};
  }
};

TEST(CustomFunction, ReturningAnInputLeavesItsHistoryAlone) {
  Tensor x = leaf({1, 2});
  Tensor h = mul(x, 2.0);
  Tensor y = Identity::apply(h);
  EXPECT_EQ(grad_fn_name(h), "MulBackward0");
  EXPECT_EQ(grad_fn_name(y), "IdentityBackward");
  backward(sum(y));
  expect_values(x.grad(), {6, 6}, "3 * 2");
}

struct VectorArgs : Function<VectorArgs> {
  static Tensor forward(AutogradContext* ctx, const std::vector<Tensor>& xs, int scale) {
    ctx->saved_data["scale"] = scale;
    return mul(add(xs[0], xs[1]), static_cast<double>(scale));
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const double s = std::any_cast<int>(ctx->saved_data["scale"]);
    return {mul(g[0], s), mul(g[0], 2 * s), Tensor()};
  }
};

TEST(CustomFunction, VectorArgumentsCountOneGradientPerTensor) {
  Tensor a = leaf({1, 2}), b = leaf({3, 4});
  backward(sum(VectorArgs::apply(std::vector<Tensor>{a, b}, 2)));
  expect_values(a.grad(), {2, 2}, "a");
  expect_values(b.grad(), {4, 4}, "b (the custom backward's choice)");
}

template <int N>
struct ScaleBy : Function<ScaleBy<N>> {
  static Tensor forward(AutogradContext*, const Tensor& x) { return mul(x, double(N)); }
  static std::vector<Tensor> backward(AutogradContext*, std::vector<Tensor> g) {
    return {mul(g[0], double(N))};
  }
};

TEST(CustomFunction, ATemplateIsNamedWithoutItsArguments) {
  Tensor x = leaf({1});
  EXPECT_EQ(grad_fn_name(ScaleBy<3>::apply(x)), "ScaleByBackward");
}

}  // namespace
}  // namespace fabric
