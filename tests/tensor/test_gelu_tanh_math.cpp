// tensor/gelu_tanh_math.h on the host: the float instantiation, which only the CUDA kernels run
// (fp32/bf16/fp16 GELU-tanh forward and backward), against a float64 reference over a sweep of
// float32 inputs and at the special values, so the device formulation is checked on machines
// without a GPU (the device evaluates the same expressions: the header's mul() keeps nvcc from
// fusing them; only expf's last bits differ, CUDA's within 2 ulp where glibc's is within 1); and
// the float64 instantiation as the CPU's float64 op itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/gelu_tanh_math.h"
#include "tensor/ops.h"
#include "tests/common/gelu_tanh_reference.h"

namespace fabric {
namespace {

using gelu_test::ulp_error;
using gelu_test::Worst;
const auto forward_ref = gelu_test::gelu_tanh_ref;
const auto derivative_ref = gelu_test::gelu_tanh_grad_ref;

// Every 257th float32 bit pattern (all magnitudes, both signs), a dense grid over [-20, 20] (the
// float clamp is 16, the results underflow from -10.7) and the points around the clamp.
std::vector<float> float_inputs() {
  std::vector<float> xs;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 257) {
    const uint32_t u = static_cast<uint32_t>(b);
    float x;
    std::memcpy(&x, &u, sizeof x);
    if (!std::isnan(x)) xs.push_back(x);
  }
  constexpr int kGrid = 4000037;
  for (int i = 0; i <= kGrid; ++i)
    xs.push_back(static_cast<float>(-20.0 + 40.0 * static_cast<double>(i) / kGrid));
  for (float x : {16.0f, -16.0f, std::nextafter(16.0f, 0.0f), std::nextafter(-16.0f, 0.0f),
                  std::nextafter(16.0f, 17.0f), std::nextafter(-16.0f, -17.0f)})
    xs.push_back(x);
  return xs;
}

TEST(GeluTanhMath, FloatAgainstFloat64Reference) {
  Worst fwd, fwd_subnormal, grad_floored, grad_tail;
  for (float x : float_inputs()) {
    const double want = forward_ref(x);
    const bool subnormal = std::fabs(static_cast<float>(want)) < std::numeric_limits<float>::min();
    (subnormal ? fwd_subnormal : fwd).add(ulp_error(gelu_tanh::forward(x), want, false), x);
    const double dwant = derivative_ref(x);
    const float d = gelu_tanh::derivative(x);
    grad_floored.add(ulp_error(d, dwant, true), x);
    // Plain ulps away from the derivative's zero at x = -0.7517.
    if (x >= 0 || x <= -2) grad_tail.add(ulp_error(d, dwant, false), x);
  }
  std::printf(
      "gelu tanh, float formulation (CUDA's): forward %.3f ulp (x = %.9g), subnormal results "
      "%.3f (x = %.9g); derivative floored at 2^-26 %.3f (x = %.9g), plain off the zero %.3f "
      "(x = %.9g)\n",
      fwd.err, fwd.at, fwd_subnormal.err, fwd_subnormal.at, grad_floored.err, grad_floored.at,
      grad_tail.err, grad_tail.at);
  // Measured with glibc's expf: 3.79, 1.29, 4.03 and 6.72 (exp's rounding, then five or six
  // roundings of x z / d and z (d + D x) / d^2; 2u's own error is ~2^-40). CUDA's expf (2 ulp)
  // can add about one more. The CPU's float32 vector code: 3.1, 1.1 and 4.7 floored.
  EXPECT_LE(fwd.err, 4.0) << "at x = " << fwd.at;
  EXPECT_LE(fwd_subnormal.err, 1.5) << "at x = " << fwd_subnormal.at;
  EXPECT_LE(grad_floored.err, 4.5) << "at x = " << grad_floored.at;
  EXPECT_LE(grad_tail.err, 7.0) << "at x = " << grad_tail.at;
}

TEST(GeluTanhMath, FloatSpecialValues) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  constexpr float kMax = std::numeric_limits<float>::max();
  using gelu_tanh::derivative;
  using gelu_tanh::forward;
  EXPECT_TRUE(std::isnan(forward(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(forward(kInf), kInf);
  EXPECT_TRUE(std::isnan(forward(-kInf))) << "-inf/2 (1 + tanh(-inf)) = -inf * 0, as PyTorch";
  EXPECT_TRUE(forward(-0.0f) == 0 && std::signbit(forward(-0.0f)));
  EXPECT_TRUE(forward(0.0f) == 0 && !std::signbit(forward(0.0f)));
  EXPECT_EQ(forward(1e-40f), static_cast<float>(forward_ref(1e-40))) << "x/2, rounded once";
  EXPECT_EQ(forward(-1e-40f), static_cast<float>(forward_ref(-1e-40)));
  EXPECT_EQ(forward(30.0f), 30.0f);
  EXPECT_EQ(forward(kMax), kMax) << "no overflow of x^3";
  for (float x : {-11.0f, -16.0f, -30.0f, -1e30f, -kMax})
    EXPECT_TRUE(forward(x) == 0 && std::signbit(forward(x))) << "x = " << x;
  EXPECT_TRUE(std::isnan(derivative(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(derivative(kInf))) << "x/2 (1 - t^2) = inf * 0, as PyTorch";
  EXPECT_TRUE(std::isnan(derivative(-kInf)));
  EXPECT_EQ(derivative(0.0f), 0.5f);
  EXPECT_EQ(derivative(-0.0f), 0.5f);
  EXPECT_EQ(derivative(1e-40f), 0.5f);
  EXPECT_EQ(derivative(30.0f), 1.0f);
  EXPECT_EQ(derivative(kMax), 1.0f) << "the limits where x^3 overflows";
  EXPECT_EQ(derivative(-kMax), 0.0f);
  EXPECT_EQ(derivative(-30.0f), 0.0f);
}

// A gradient that rounds to zero is PyTorch's g * (+0), whatever sign the product of g and the
// derivative had (negative in the left tail); other values pass.
TEST(GeluTanhMath, TorchZeroOfTheGradient) {
  using gelu_tanh::with_torch_zero;
  EXPECT_FALSE(std::signbit(with_torch_zero(1.0f, -0.0f)));
  EXPECT_TRUE(std::signbit(with_torch_zero(-1.0f, 0.0f)));
  EXPECT_TRUE(std::signbit(with_torch_zero(-1.0f, -0.0f)));
  EXPECT_FALSE(std::signbit(with_torch_zero(2.0, -0.0)));
  EXPECT_TRUE(std::isnan(with_torch_zero(std::nan(""), std::nan(""))));
  EXPECT_EQ(with_torch_zero(1.0f, -1e-44f), -1e-44f);
  EXPECT_EQ(with_torch_zero(-1.0f, 0.25f), 0.25f);
}

// The float64 instantiation is the CPU's float64 GELU (the CUDA float64 kernels compile the same
// code): bit for bit, over the float sweep's values.
TEST(GeluTanhMath, DoubleIsTheCpuFloat64Op) {
  std::vector<double> xs;
  for (float x : float_inputs()) xs.push_back(x);
  const Tensor x = from_vector(xs);
  const auto y = gelu(x, "tanh").to_vector<double>();
  const auto d = activation_backward(ActGrad::gelu_tanh, ones_like(x), x).to_vector<double>();
  int64_t differ = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double fy = gelu_tanh::forward(xs[i]), fd = gelu_tanh::derivative(xs[i]);
    const bool same_y =
        std::memcmp(&fy, &y[i], sizeof fy) == 0 || (std::isnan(fy) && std::isnan(y[i]));
    // The op's gradient is the derivative with PyTorch's zero (g = 1: +0 where it underflows).
    const double gd = gelu_tanh::with_torch_zero(1.0, fd);
    const bool same_d =
        std::memcmp(&gd, &d[i], sizeof gd) == 0 || (std::isnan(gd) && std::isnan(d[i]));
    if (!same_y || !same_d) {
      if (++differ <= 3)
        ADD_FAILURE() << "x = " << xs[i] << ": " << fy << " vs " << y[i] << ", " << gd << " vs "
                      << d[i];
    }
  }
  EXPECT_EQ(differ, 0);
}

}  // namespace
}  // namespace fabric
