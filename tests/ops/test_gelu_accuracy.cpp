// GELU (erf and tanh forms) and their derivatives in float32 against float64 over a dense sweep of
// float32 inputs: every 97th bit pattern (about 22 million values in [-10, 10], plus the tails down
// to where the results underflow and up to inf), through the ops users call (gelu,
// activation_backward), so the CPU kernels' lane split and every vector path are covered; and the
// tanh form in bfloat16 over all 65536 inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

// erfc keeps the left tail's relative accuracy that 1 + erf would cancel away.
double gelu_ref(double x) { return 0.5 * x * std::erfc(-x * kInvSqrt2); }
double gelu_grad_ref(double x) {
  return 0.5 * std::erfc(-x * kInvSqrt2) + x * std::exp(-0.5 * x * x) * kInvSqrt2Pi;
}

// The tanh form, PyTorch's x/2 (1 + tanh(u)) and its derivative (1 + t)/2 + x/2 (1 - t^2) du/dx,
// written without 1 + tanh's cancellation (sigmoid(2u) = 1/(1 + e) or e/(1 + e), 1 - t^2 =
// 4e/(1 + e)^2, e = exp(-|2u|)) so the left tail keeps its relative accuracy in float64 too.
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kKappa = 0.044715;
double gelu_tanh_ref(double x) {
  const double u = kSqrt2OverPi * (x + kKappa * x * x * x);
  return x / (1.0 + std::exp(-2.0 * u));
}
double gelu_tanh_grad_ref(double x) {
  if (std::isinf(x)) return std::nan("");  // x/2 (1 - t^2) = inf * 0, as in PyTorch
  const double u = kSqrt2OverPi * (x + kKappa * x * x * x);
  const double e = std::exp(-2.0 * std::fabs(u));
  const double sig = u >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
  const double sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e));
  return sig + 0.5 * x * sech2 * kSqrt2OverPi * (1.0 + 3.0 * kKappa * x * x);
}

// |got - want| in units of ulp(float(want)) (2^-149 for subnormal results), or of
// max(ulp, 2^-26) with `floor` (the measure of tests/ops/test_elementwise.cpp's accuracy tests).
double ulp_error(float got, double want, bool floor) {
  const float wf = static_cast<float>(want);
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e30;
  if (std::isinf(wf) || std::isinf(got)) return got == wf ? 0 : 1e30;
  double ulp = std::fabs(wf) < std::numeric_limits<float>::min()
                   ? std::ldexp(1.0, -149)
                   : std::ldexp(1.0, std::ilogb(wf) - 23);
  if (floor) ulp = std::max(ulp, std::ldexp(1.0, -26));
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

struct Worst {
  double err = 0;
  float at = 0;
  void add(double e, float x) {
    if (e > err) err = e, at = x;
  }
};

struct SweepResult {
  Worst plain;            // plain ulps where the result is a normal float
  Worst plain_subnormal;  // plain ulps (of 2^-149) where it is subnormal
  Worst floored;          // max(ulp, 2^-26) units everywhere
};

// fn maps a float32 tensor to the float32 results; runs in chunks to bound the memory.
template <typename Fn, typename Ref>
SweepResult sweep(const Fn& fn, const Ref& ref) {
  SweepResult r;
  std::vector<float> xs;
  auto flush = [&] {
    const std::vector<float> ys = fn(from_vector(xs)).template to_vector<float>();
    for (size_t i = 0; i < xs.size(); ++i) {
      const double want = ref(static_cast<double>(xs[i]));
      const bool subnormal =
          std::fabs(static_cast<float>(want)) < std::numeric_limits<float>::min();
      (subnormal ? r.plain_subnormal : r.plain).add(ulp_error(ys[i], want, false), xs[i]);
      r.floored.add(ulp_error(ys[i], want, true), xs[i]);
    }
    xs.clear();
  };
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 97) {
    const uint32_t u = static_cast<uint32_t>(b);
    float x;
    std::memcpy(&x, &u, sizeof x);
    if (std::isnan(x)) continue;
    xs.push_back(x);
    if (xs.size() == (size_t{1} << 20)) flush();
  }
  // The split point of the erf kernels' two halves and its neighbours; the tanh kernels' clamp.
  for (float x : {1.31201458f, -1.31201458f, std::nextafter(1.31201458f, 0.0f),
                  std::nextafter(-1.31201458f, 0.0f), 8.0f, std::nextafter(8.0f, 9.0f), 12.0f,
                  -12.0f, std::nextafter(-12.0f, 0.0f), std::nextafter(12.0f, 0.0f)})
    xs.push_back(x);
  flush();
  return r;
}

void report(const char* what, const SweepResult& r) {
  std::printf(
      "%s: max %.3f ulp (x = %.9g), subnormal results %.3f ulp (x = %.9g), "
      "floored at 2^-26 %.3f (x = %.9g)\n",
      what, r.plain.err, r.plain.at, r.plain_subnormal.err, r.plain_subnormal.at, r.floored.err,
      r.floored.at);
}

TEST(GeluAccuracy, ForwardDenseSweepFloat32) {
  const SweepResult r = sweep([](const Tensor& x) { return gelu(x); }, gelu_ref);
  report("gelu", r);
  EXPECT_LE(r.floored.err, 2.0) << "at x = " << r.floored.at;
  // Plain ulps hold to within a few units all the way down the left tail (1 + erf cancellation
  // would give millions of ulps there).
  EXPECT_LE(r.plain.err, 4.0) << "at x = " << r.plain.at;
  EXPECT_LE(r.plain_subnormal.err, 8.0) << "at x = " << r.plain_subnormal.at;
}

TEST(GeluAccuracy, BackwardDenseSweepFloat32) {
  // The derivative crosses 0 at x = -0.7518 and cancels around it: only the floored measure is
  // meaningful there.
  const SweepResult r =
      sweep([](const Tensor& x) { return activation_backward(ActGrad::gelu_erf, ones_like(x), x); },
            gelu_grad_ref);
  report("gelu backward", r);
  EXPECT_LE(r.floored.err, 3.0) << "at x = " << r.floored.at;
}

TEST(GeluAccuracy, SpecialValues) {
  const Tensor x = from_vector(std::vector<float>{
      -0.0f, 0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::quiet_NaN(), -30.0f, 30.0f, 8.5f, -13.5f});
  const auto y = gelu(x).to_vector<float>();
  EXPECT_TRUE(std::signbit(y[0]) && y[0] == 0) << "gelu(-0) = -0, as x * Phi(x)";
  EXPECT_TRUE(!std::signbit(y[1]) && y[1] == 0);
  EXPECT_EQ(y[2], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(y[3])) << "-inf * Phi(-inf) = -inf * 0, as PyTorch";
  EXPECT_TRUE(std::isnan(y[4]));
  EXPECT_TRUE(std::signbit(y[5]) && y[5] == 0);
  EXPECT_EQ(y[6], 30.0f);
  EXPECT_EQ(y[7], 8.5f);
  EXPECT_NEAR(y[8], gelu_ref(-13.5), 1e-45) << "subnormal result of the left tail";
  const auto d = activation_backward(ActGrad::gelu_erf, ones_like(x), x).to_vector<float>();
  EXPECT_EQ(d[0], 0.5f);
  EXPECT_EQ(d[1], 0.5f);
  // PyTorch's Phi(x) + x phi(x) is inf * 0 at both infinities.
  EXPECT_TRUE(std::isnan(d[2]));
  EXPECT_TRUE(std::isnan(d[3]));
  EXPECT_TRUE(std::isnan(d[4]));
  EXPECT_EQ(d[5], 0.0f);
  EXPECT_EQ(d[6], 1.0f);
  EXPECT_EQ(d[7], 1.0f);
}

TEST(GeluTanhAccuracy, ForwardDenseSweepFloat32) {
  const SweepResult r = sweep([](const Tensor& x) { return gelu(x, "tanh"); }, gelu_tanh_ref);
  report("gelu tanh", r);
  EXPECT_LE(r.floored.err, 2.0) << "at x = " << r.floored.at;
  // The left tail keeps its relative accuracy down to where it underflows (x = -10.7): exp(-|2u|)
  // and 2u to float32 accuracy, not 1 + tanh(u) (or an overflowing exp(-2u) past x = -10).
  EXPECT_LE(r.plain.err, 3.5) << "at x = " << r.plain.at;
  EXPECT_LE(r.plain_subnormal.err, 2.0) << "at x = " << r.plain_subnormal.at;
}

TEST(GeluTanhAccuracy, BackwardDenseSweepFloat32) {
  // The derivative crosses 0 at x = -0.7517: only the floored measure is meaningful around it; the
  // subnormal results of the left tail keep plain ulps.
  const SweepResult r = sweep(
      [](const Tensor& x) { return activation_backward(ActGrad::gelu_tanh, ones_like(x), x); },
      gelu_tanh_grad_ref);
  report("gelu tanh backward", r);
  EXPECT_LE(r.floored.err, 5.0) << "at x = " << r.floored.at;
  EXPECT_LE(r.plain_subnormal.err, 3.0) << "at x = " << r.plain_subnormal.at;
}

TEST(GeluTanhAccuracy, SpecialValues) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const Tensor x = from_vector(std::vector<float>{-0.0f, 0.0f, kInf, -kInf,
                                                  std::numeric_limits<float>::quiet_NaN(), -30.0f,
                                                  30.0f, 1e30f, -1e30f, -3e38f, 1e-40f, -1e-40f});
  const auto y = gelu(x, "tanh").to_vector<float>();
  EXPECT_TRUE(std::signbit(y[0]) && y[0] == 0) << "gelu(-0) = -0";
  EXPECT_TRUE(!std::signbit(y[1]) && y[1] == 0);
  EXPECT_EQ(y[2], kInf);
  EXPECT_TRUE(std::isnan(y[3])) << "-inf/2 (1 + tanh(-inf)) = -inf * 0, as PyTorch";
  EXPECT_TRUE(std::isnan(y[4]));
  EXPECT_TRUE(y[5] == 0 && std::signbit(y[5]));
  EXPECT_EQ(y[6], 30.0f);
  EXPECT_EQ(y[7], 1e30f);
  EXPECT_TRUE(y[8] == 0 && std::signbit(y[8]));
  EXPECT_TRUE(y[9] == 0 && std::signbit(y[9])) << "no overflow in the left tail";
  EXPECT_EQ(y[10], static_cast<float>(gelu_tanh_ref(1e-40))) << "subnormal x: x/2, rounded once";
  EXPECT_EQ(y[11], static_cast<float>(gelu_tanh_ref(-1e-40)));
  const auto d = activation_backward(ActGrad::gelu_tanh, ones_like(x), x).to_vector<float>();
  EXPECT_EQ(d[0], 0.5f);
  EXPECT_EQ(d[1], 0.5f);
  EXPECT_TRUE(std::isnan(d[2])) << "x/2 (1 - t^2) is inf * 0 at both infinities, as PyTorch";
  EXPECT_TRUE(std::isnan(d[3]));
  EXPECT_TRUE(std::isnan(d[4]));
  EXPECT_EQ(d[5], 0.0f);
  EXPECT_EQ(d[6], 1.0f);
  // The derivative's limits, where float32's x^3 overflows (PyTorch's float kernel gives NaN).
  EXPECT_EQ(d[7], 1.0f);
  EXPECT_EQ(d[8], 0.0f);
  EXPECT_EQ(d[9], 0.0f);
  EXPECT_EQ(d[10], 0.5f);
  EXPECT_EQ(d[11], 0.5f);
}

// Distance in bfloat16 codes between two non-NaN values (adjacent codes, zeros of either sign: 1,
// 0).
int64_t bf16_code_distance(BFloat16 a, BFloat16 b) {
  auto ordered = [](BFloat16 v) {
    const int64_t c = v.x;
    return c & 0x8000 ? -(c & 0x7FFF) : c;
  };
  return std::abs(ordered(a) - ordered(b));
}

// Every bfloat16 input: the result within one bfloat16 code of the float64 reference rounded
// (the kernels compute in float with the cheaper argument bfloat16 allows), NaN where it is NaN.
template <typename Fn, typename Ref>
void check_all_bf16(const char* what, const Fn& fn, const Ref& ref) {
  std::vector<BFloat16> xs;
  for (uint32_t c = 0; c < 65536; ++c) xs.push_back(BFloat16::from_bits(static_cast<uint16_t>(c)));
  const auto ys = fn(from_vector(xs)).template to_vector<BFloat16>();
  int64_t worst = 0, inexact = 0;
  float worst_at = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float x = static_cast<float>(xs[i]);
    const double want = ref(static_cast<double>(x));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(static_cast<float>(ys[i]))) << what << " at x = " << x;
      continue;
    }
    ASSERT_FALSE(std::isnan(static_cast<float>(ys[i]))) << what << " at x = " << x;
    const int64_t dist = bf16_code_distance(ys[i], BFloat16(want));
    inexact += dist != 0;
    if (dist > worst) worst = dist, worst_at = x;
  }
  std::printf(
      "%s, bfloat16: %lld of 65536 results not the reference rounded, at most %lld code "
      "(x = %.9g)\n",
      what, static_cast<long long>(inexact), static_cast<long long>(worst), worst_at);
  EXPECT_LE(worst, 1) << what << " at x = " << worst_at;
}

TEST(GeluTanhAccuracy, AllBFloat16Inputs) {
  check_all_bf16(
      "gelu tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, gelu_tanh_ref);
  check_all_bf16(
      "gelu tanh backward",
      [](const Tensor& x) { return activation_backward(ActGrad::gelu_tanh, ones_like(x), x); },
      gelu_tanh_grad_ref);
}

}  // namespace
}  // namespace fabric
