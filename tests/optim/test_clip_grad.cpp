// Gradient clipping: total norm over several gradients, scaling, inf norm, the non-finite error,
// dtype of the returned norm, and clipping by value.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "optim/clip_grad.h"
#include "optim_test_util.h"

namespace fabric::optim {
namespace {
using namespace testing;

TEST(ClipGradNorm, TotalNormAndScaling) {
  Tensor a = param({3.0, 4.0}), b = param({12.0}), c = param({7.0});  // c has no gradient
  set_grad_values(a, {3.0, 4.0});
  set_grad_values(b, {12.0});
  // Per-gradient norms 5 and 12, total sqrt(25 + 144) = 13.
  const Tensor total = clip_grad_norm_({a, b, c}, 6.5);
  EXPECT_EQ(total.dim(), 0);
  EXPECT_EQ(total.dtype(), DType::float64);
  EXPECT_NEAR(total.item<double>(), 13.0, 1e-14);
  const double coef = 6.5 / (13.0 + 1e-6);
  expect_close(values(a.grad()), {3.0 * coef, 4.0 * coef}, 1e-15);
  expect_close(values(b.grad()), {12.0 * coef}, 1e-15);
  EXPECT_FALSE(c.grad().defined());
}

TEST(ClipGradNorm, BelowMaxNormLeavesGradients) {
  Tensor a = param({0.0, 0.0});
  set_grad_values(a, {0.3, -0.4});
  const Tensor total = clip_grad_norm_({a}, 1.0);
  EXPECT_NEAR(total.item<double>(), 0.5, 1e-15);
  expect_close(values(a.grad()), {0.3, -0.4}, 0);
}

TEST(ClipGradNorm, OtherNorms) {
  Tensor a = param({0.0, 0.0}), b = param({0.0});
  set_grad_values(a, {-3.0, 1.0});
  set_grad_values(b, {2.0});
  const Tensor inf = clip_grad_norm_({a, b}, 1.5, std::numeric_limits<double>::infinity());
  EXPECT_EQ(inf.item<double>(), 3.0);
  const double coef = 1.5 / (3.0 + 1e-6);
  expect_close(values(a.grad()), {-3.0 * coef, 1.0 * coef}, 1e-15);
  expect_close(values(b.grad()), {2.0 * coef}, 1e-15);

  set_grad_values(a, {-3.0, 1.0});
  set_grad_values(b, {2.0});
  const Tensor l1 = clip_grad_norm_({a, b}, 100.0, 1.0);  // |a|_1 = 4, |b|_1 = 2, total 6
  EXPECT_NEAR(l1.item<double>(), 6.0, 1e-14);
  expect_close(values(a.grad()), {-3.0, 1.0}, 1e-15);
}

TEST(ClipGradNorm, Float32GradientsGiveFloat32Norm) {
  Tensor a = param({0.0, 0.0}, DType::float32);
  set_grad_values(a, {6.0, 8.0});
  const Tensor total = clip_grad_norm_({a}, 1.0);
  EXPECT_EQ(total.dtype(), DType::float32);
  EXPECT_NEAR(total.item<double>(), 10.0, 1e-5);
  expect_close(values(a.grad()), {0.6, 0.8}, 1e-6);
}

// torch 1.13's bits: clip_grad_norm_([p], 0.3) on these float32 gradients gives
// total 4.932277202606201 and the gradients below (its coefficient is reciprocal(total + 1e-6) *
// 0.3, which here differs in the last bit from 0.3 / (total + 1e-6)).
TEST(ClipGradNorm, Float32CoefficientIsTorchs) {
  Tensor a = param(std::vector<double>(7, 0.0), DType::float32);
  set_grad_values(a,
                  {-2.4263057708740234, 0.9465538263320923, 1.0407565832138062, 3.6195082664489746,
                   0.3804255425930023, -1.7082825899124146, -0.5454050302505493});
  const Tensor total = clip_grad_norm_({a}, 0.3);
  EXPECT_EQ(total.item<float>(), 4.932277202606201f);
  const std::vector<float> want = {
      -0.1475771814584732f, 0.057573020458221436f, 0.06330279260873795f, 0.22015231847763062f,
      0.02313893474638462f, -0.10390427708625793f, -0.03317361697554588f};
  EXPECT_EQ(a.grad().to_vector<float>(), want);
}

// A max_norm past float16's range (65504) leaves half gradients as they are (the coefficient
// overflows to inf and is clamped to 1) instead of failing to make a float16 tensor of it; a small
// one scales them.
TEST(ClipGradNorm, HalfGradientsTakeAnyMaxNorm) {
  for (DType dt : {DType::float16, DType::bfloat16}) {
    Tensor a = param({0.0, 0.0, 0.0}, dt);
    set_grad_values(a, {1.0, 2.0, -2.0});
    const Tensor total = clip_grad_norm_({a}, 1e5);
    EXPECT_EQ(total.item<double>(), 3.0) << dtype_name(dt);
    EXPECT_EQ(values(a.grad()), (std::vector<double>{1.0, 2.0, -2.0})) << dtype_name(dt);
    clip_grad_norm_({a}, 1.5);
    expect_close(values(a.grad()), {0.5, 1.0, -1.0}, 1e-2);
  }
}

TEST(ClipGradNorm, NonFinite) {
  Tensor a = param({0.0, 0.0});
  set_grad_values(a, {std::numeric_limits<double>::infinity(), 1.0});
  const std::string msg = thrown<ValueError>([&] { clip_grad_norm_({a}, 1.0, 2.0, true); });
  EXPECT_CONTAINS(msg, "total norm of order 2");
  EXPECT_CONTAINS(msg, "non-finite");
  EXPECT_EQ(values(a.grad()), (std::vector<double>{std::numeric_limits<double>::infinity(), 1.0}));  // untouched
  // Without the check the gradients are scaled by the non-finite norm (PyTorch's behaviour).
  const Tensor total = clip_grad_norm_({a}, 1.0);
  EXPECT_TRUE(std::isinf(total.item<double>()));
}

TEST(ClipGradNorm, NoGradients) {
  Tensor a = param({1.0});
  const Tensor total = clip_grad_norm_({a}, 1.0);
  EXPECT_EQ(total.item<double>(), 0.0);
}

TEST(ClipGradValue, Clamps) {
  Tensor a = param({0.0, 0.0, 0.0});
  set_grad_values(a, {-5.0, 0.25, 3.0});
  const Tensor g = a.grad();
  clip_grad_value_({a}, 1.0);
  expect_close(values(a.grad()), {-1.0, 0.25, 1.0}, 0);
  EXPECT_TRUE(a.grad().is_same(g));  // in place
}

// torch 1.13 takes any clip_value: clamp_(min=-c, max=c) applies the lower bound, then the upper,
// so c < 0 sets every element to c (a NaN gradient stays NaN), c = NaN makes every element NaN,
// and signed zeros come out as torch's (torch's float.hex() of each element, float32 and float64;
// 45 elements reach the vectorized loop and its tail).
TEST(ClipGradValue, AnyClipValueAsTorch) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> grad = {0.5, -3.0, 2.0, nan, -0.0};
  const std::vector<std::pair<double, std::vector<double>>> cases = {
      {-1.0, {-1.0, -1.0, -1.0, nan, -1.0}}, {-0.0, {-0.0, 0.0, -0.0, nan, -0.0}},
      {0.0, {0.0, -0.0, 0.0, nan, -0.0}},    {-2.5, {-2.5, -2.5, -2.5, nan, -2.5}},
      {1.5, {0.5, -1.5, 1.5, nan, -0.0}},    {nan, {nan, nan, nan, nan, nan}},
  };
  for (DType dt : {DType::float32, DType::float64}) {
    for (const auto& [clip, want] : cases) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " clip_value " + std::to_string(clip));
      std::vector<double> g;
      for (int r = 0; r < 9; ++r) g.insert(g.end(), grad.begin(), grad.end());
      Tensor a = param(std::vector<double>(g.size(), 0.0), dt);
      set_grad_values(a, g);
      clip_grad_value_({a}, clip);
      const std::vector<double> got = values(a.grad());
      for (size_t i = 0; i < got.size(); ++i) {
        const double w = want[i % want.size()];
        if (std::isnan(w)) {
          EXPECT_TRUE(std::isnan(got[i])) << i << ": " << got[i];
        } else {
          EXPECT_EQ(got[i], w) << i;
          EXPECT_EQ(std::signbit(got[i]), std::signbit(w)) << i << ": " << got[i];
        }
      }
    }
  }
}

}  // namespace
}  // namespace fabric::optim
