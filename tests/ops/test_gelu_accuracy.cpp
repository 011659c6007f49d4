// GELU (erf form) and its derivative in float32 against float64 over a dense sweep of float32
// inputs: every 97th bit pattern (about 22 million values in [-10, 10], plus the tails down to
// where the results underflow and up to inf), through the ops users call (gelu,
// activation_backward), so the CPU kernels' lane split and every vector path are covered.
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
  // The split point of the kernels' two halves and its neighbours.
  for (float x : {1.31201458f, -1.31201458f, std::nextafter(1.31201458f, 0.0f),
                  std::nextafter(-1.31201458f, 0.0f), 8.0f, std::nextafter(8.0f, 9.0f)})
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

}  // namespace
}  // namespace fabric
