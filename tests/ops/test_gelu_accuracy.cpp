// GELU (erf and tanh forms) and their derivatives in float32 against float64 over a dense sweep of
// float32 inputs: every 97th bit pattern (about 22 million values in [-10, 10], plus the tails down
// to where the results underflow and up to inf), through the ops users call (gelu,
// activation_backward), so the CPU kernels' lane split and every vector path are covered; and the
// tanh form in bfloat16 over all 65536 inputs; the tanh form's scalar path (float64) against a
// long double reference, and strided float32 rows against the contiguous ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/gelu_tanh_reference.h"

namespace fabric {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

// erfc keeps the left tail's relative accuracy that 1 + erf would cancel away.
double gelu_ref(double x) { return 0.5 * x * std::erfc(-x * kInvSqrt2); }
double gelu_grad_ref(double x) {
  return 0.5 * std::erfc(-x * kInvSqrt2) + x * std::exp(-0.5 * x * x) * kInvSqrt2Pi;
}

using gelu_test::gelu_tanh_grad_ref;
using gelu_test::gelu_tanh_ref;
using gelu_test::ulp_error;
using gelu_test::Worst;

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

// Past 2^64 in magnitude x^2 overflows float32: the left tail was inf - inf = NaN there, forward
// and backward, in float32 and bfloat16 (torch: 0 and 0).
TEST(GeluAccuracy, HugeNegativeInputsGiveZero) {
  // (float32's largest finite value would round to bfloat16's -inf: NaN there, as torch.)
  const std::vector<float> xs{-1.9e19f, -2e19f, -1e30f, -3e38f};
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const Tensor x = from_vector(xs).to(dt);
    const auto y = gelu(x).to(DType::float32).to_vector<float>();
    const auto d = activation_backward(ActGrad::gelu_erf, ones_like(x), x)
                       .to(DType::float32)
                       .to_vector<float>();
    for (size_t i = 0; i < xs.size(); ++i) {
      EXPECT_EQ(y[i], 0.0f) << dtype_name(dt) << " gelu(" << xs[i] << ")";
      EXPECT_EQ(d[i], 0.0f) << dtype_name(dt) << " gelu'(" << xs[i] << ")";
    }
  }
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

// ---- the tanh form's scalar path (float64 tensors); strided float32 rows ------------------------
// A long double reference (64-bit significand) of the same cancellation-free form: its own error
// is under 0.1 double ulp but at the far left tail (|2u| up to 745 carries ~745 * 2^-64 absolute,
// up to ~0.4 ulp there).
constexpr long double kSqrt2OverPiL = 0.797884560802865355879892119868763737L;
constexpr long double kKappaL = 0.044715L;
long double gelu_tanh_ref_ld(long double x) {
  const long double z = std::exp(-2.0L * std::fabs(kSqrt2OverPiL * (x + kKappaL * x * x * x)));
  return x >= 0 ? x / (1.0L + z) : x * z / (1.0L + z);
}
long double gelu_tanh_grad_ref_ld(long double x) {
  if (std::isinf(x)) return std::nanl("");
  const long double z = std::exp(-2.0L * std::fabs(kSqrt2OverPiL * (x + kKappaL * x * x * x)));
  const long double d = 1.0L + z, dd = 2.0L * kSqrt2OverPiL * (1.0L + 3.0L * kKappaL * x * x);
  return x >= 0 ? (d + dd * x * z) / (d * d) : z * (d + dd * x) / (d * d);
}

// |got - want| in units of ulp(double(want)) (2^-1074 for subnormal results), or of
// max(ulp, 2^-55) with `floor` (float32's 2^-26 floor moved to double: ulp(0.125)).
double ulp_error64(double got, long double want, bool floor) {
  const double wd = static_cast<double>(want);
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e30;
  if (std::isinf(wd) || std::isinf(got)) return got == wd ? 0 : 1e30;
  double ulp = std::fabs(wd) < std::numeric_limits<double>::min()
                   ? std::ldexp(1.0, -1074)
                   : std::ldexp(1.0, std::ilogb(wd) - 52);
  if (floor) ulp = std::max(ulp, std::ldexp(1.0, -55));
  return static_cast<double>(std::fabs(static_cast<long double>(got) - want) / ulp);
}

// float64 inputs: a dense grid over [-25, 25] (the left tail underflows at x = -21.5), every
// 2^43rd bit pattern (all magnitudes, both signs), and the special points.
std::vector<double> float64_inputs() {
  std::vector<double> xs;
  constexpr int64_t kGrid = 3000017;
  for (int64_t i = 0; i <= kGrid; ++i) xs.push_back(-25.0 + 50.0 * static_cast<double>(i) / kGrid);
  for (uint64_t b = 0; b < (uint64_t{1} << 21); ++b) {
    const uint64_t u = b << 43 | (b * 0x9E3779B97F4A7C15ull >> 21);  // varied low bits
    double x;
    std::memcpy(&x, &u, sizeof x);
    if (!std::isnan(x)) xs.push_back(x);
  }
  for (double x :
       {0.0, -0.0, 24.0, -24.0, std::nextafter(-24.0, 0.0), -21.5, -20.6, 1e-310, -1e-310, 1e300,
        -1e300, std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest()})
    xs.push_back(x);
  return xs;
}

TEST(GeluTanhAccuracy, Float64) {
  const std::vector<double> xs = float64_inputs();
  const Tensor x = from_vector(xs);
  const auto y = gelu(x, "tanh").to_vector<double>();
  const auto d = activation_backward(ActGrad::gelu_tanh, ones_like(x), x).to_vector<double>();
  Worst fwd, fwd_subnormal, grad_floored, grad_tail;
  for (size_t i = 0; i < xs.size(); ++i) {
    const long double want = gelu_tanh_ref_ld(xs[i]);
    const bool subnormal =
        std::fabs(static_cast<double>(want)) < std::numeric_limits<double>::min();
    (subnormal ? fwd_subnormal : fwd).add(ulp_error64(y[i], want, false), xs[i]);
    const long double dwant = gelu_tanh_grad_ref_ld(xs[i]);
    grad_floored.add(ulp_error64(d[i], dwant, true), xs[i]);
    // Plain ulps away from the derivative's zero at x = -0.7517, subnormal results included.
    if (xs[i] >= 0 || xs[i] <= -2) grad_tail.add(ulp_error64(d[i], dwant, false), xs[i]);
  }
  std::printf(
      "gelu tanh float64: max %.3f ulp (x = %.17g), subnormal results %.3f ulp (x = %.17g); "
      "backward floored at 2^-55 %.3f (x = %.17g), plain off the zero %.3f (x = %.17g)\n",
      fwd.err, fwd.at, fwd_subnormal.err, fwd_subnormal.at, grad_floored.err, grad_floored.at,
      grad_tail.err, grad_tail.at);
  // 1 + tanh(u) cancelled the left tail away (and exp(-2u) overflowed past x = -19.6): relative
  // accuracy all the way down to where the results underflow.
  // Measured: 3.3, 1.2 (the reference's own error included), 4.0 and 5.8 (exp's error plus five
  // roundings of z (d + D x)/d^2 and D's two).
  EXPECT_LE(fwd.err, 4.0) << "at x = " << fwd.at;
  EXPECT_LE(fwd_subnormal.err, 1.5) << "at x = " << fwd_subnormal.at;
  EXPECT_LE(grad_floored.err, 5.0) << "at x = " << grad_floored.at;
  EXPECT_LE(grad_tail.err, 6.5) << "at x = " << grad_tail.at;
}

TEST(GeluTanhAccuracy, Float64SpecialValues) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const Tensor x = from_vector(std::vector<double>{-0.0, 0.0, kInf, -kInf, std::nan(""), -30.0,
                                                   30.0, 1e300, -1e300, 1e-310});
  const auto y = gelu(x, "tanh").to_vector<double>();
  EXPECT_TRUE(std::signbit(y[0]) && y[0] == 0) << "gelu(-0) = -0";
  EXPECT_TRUE(!std::signbit(y[1]) && y[1] == 0);
  EXPECT_EQ(y[2], kInf);
  EXPECT_TRUE(std::isnan(y[3])) << "-inf/2 (1 + tanh(-inf)) = -inf * 0, as PyTorch";
  EXPECT_TRUE(std::isnan(y[4]));
  EXPECT_TRUE(y[5] == 0 && std::signbit(y[5]));
  EXPECT_EQ(y[6], 30.0);
  EXPECT_EQ(y[7], 1e300) << "no overflow of x^3";
  EXPECT_TRUE(y[8] == 0 && std::signbit(y[8]));
  EXPECT_EQ(y[9], 0.5e-310) << "subnormal x: x/2";
  const auto d = activation_backward(ActGrad::gelu_tanh, ones_like(x), x).to_vector<double>();
  EXPECT_EQ(d[0], 0.5);
  EXPECT_EQ(d[1], 0.5);
  EXPECT_TRUE(std::isnan(d[2])) << "x/2 (1 - t^2) is inf * 0 at both infinities, as PyTorch";
  EXPECT_TRUE(std::isnan(d[3]));
  EXPECT_TRUE(std::isnan(d[4]));
  EXPECT_EQ(d[5], 0.0);
  EXPECT_EQ(d[6], 1.0);
  EXPECT_EQ(d[7], 1.0) << "the limits where x^3 overflows";
  EXPECT_EQ(d[8], 0.0);
  EXPECT_EQ(d[9], 0.5);
}

// PyTorch's zeros in the left tail (torch 1.13, gelu(x, approximate="tanh") and its backward, in
// float32, bfloat16 and float64): tanh(u) rounds to -1 there, so gelu is x/2 (+0) = -0 and the
// gradient g ((1 + t)/2 + x/2 (1 - t^2) du/dx) = g (+0 + -0) = g (+0). Ours keep the true tiny
// values further left (PyTorch's zeros start at x = -5.06 in float32, -3.06 in bfloat16, -7.15 in
// float64); where they underflow too (in the output's dtype), they must be PyTorch's zeros:
// forward -0, gradient +0 for g > 0 and -0 for g < 0 (the true derivative is negative there, so
// g times it rounded would be -g 0). Contiguous rows and strided ones (gathered into the same
// vector code).
TEST(GeluTanhAccuracy, LeftTailZerosAreTorchs) {
  std::vector<double> xs;
  for (double x = -40.0; x <= -2.0; x += 1.0 / 1024) xs.push_back(x);
  for (double x : {-1e10, -1e30, -3e38}) xs.push_back(x);
  for (DType dt : {DType::float32, DType::bfloat16, DType::float16, DType::float64}) {
    const Tensor x = from_vector(xs).to(dt);
    const Tensor strided = stack({x, x}, 1).select(1, 0);
    const std::vector<double> xv = x.to_vector<double>();
    const std::string name(dtype_name(dt));
    int64_t zeros = 0;
    for (const Tensor& in : {x, strided}) {
      const auto y = gelu(in, "tanh").to_vector<double>();
      for (size_t i = 0; i < y.size(); ++i) {
        if (y[i] != 0) continue;
        ++zeros;
        ASSERT_TRUE(std::signbit(y[i])) << name << " gelu(" << xv[i] << ") = +0, PyTorch's is -0";
      }
      for (double g : {1.0, -1.0, 0.75}) {
        const auto d =
            activation_backward(ActGrad::gelu_tanh, full_like(x, g), in).to_vector<double>();
        for (size_t i = 0; i < d.size(); ++i) {
          if (std::isnan(d[i]) || d[i] != 0) continue;  // float16's -3e38 is -inf: NaN
          ++zeros;
          ASSERT_EQ(std::signbit(d[i]), std::signbit(g))
              << name << (in.is_contiguous() ? "" : " strided") << " gradient at x = " << xv[i]
              << ", g = " << g << ": " << d[i] << ", PyTorch's is g * (+0)";
        }
      }
    }
    EXPECT_GT(zeros, 1000) << name << ": the sweep must reach where the results underflow";
  }
  // PyTorch's values at points where ours are zero as well.
  const Tensor x32 =
      from_vector(std::vector<float>{-11.5f, -12.0f, -16.0f, -20.0f, -100.0f, -1e10f});
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const Tensor x = x32.to(dt);
    const auto y = gelu(x, "tanh").to_vector<double>();
    const auto d = activation_backward(ActGrad::gelu_tanh, ones_like(x), x).to_vector<double>();
    const auto dn =
        activation_backward(ActGrad::gelu_tanh, full_like(x, -1.0), x).to_vector<double>();
    for (size_t i = 0; i < y.size(); ++i) {
      EXPECT_TRUE(y[i] == 0 && std::signbit(y[i])) << dtype_name(dt) << " i = " << i;
      EXPECT_TRUE(d[i] == 0 && !std::signbit(d[i])) << dtype_name(dt) << " i = " << i;
      EXPECT_TRUE(dn[i] == 0 && std::signbit(dn[i])) << dtype_name(dt) << " i = " << i;
    }
  }
  const Tensor x64 = from_vector(std::vector<double>{-22.0, -25.0, -30.0, -100.0, -1e10, -1e30});
  const auto y = gelu(x64, "tanh").to_vector<double>();
  const auto d = activation_backward(ActGrad::gelu_tanh, ones_like(x64), x64).to_vector<double>();
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_TRUE(y[i] == 0 && std::signbit(y[i])) << "float64 i = " << i;
    EXPECT_TRUE(d[i] == 0 && !std::signbit(d[i])) << "float64 i = " << i;
  }
}

// A strided float32 input is gathered into the contiguous rows' kernel (so that a tensor and its
// non-contiguous copy give the same bits): the same results, bit for bit, left tail included.
TEST(GeluTanhAccuracy, BackwardStridedFloat32MatchesContiguous) {
  std::vector<float> xs;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 997) {
    const uint32_t u = static_cast<uint32_t>(b);
    float v;
    std::memcpy(&v, &u, sizeof v);
    if (!std::isnan(v)) xs.push_back(v);
  }
  const Tensor x = from_vector(xs);
  const Tensor strided = stack({x, x}, 1).select(1, 0);
  ASSERT_FALSE(strided.is_contiguous());
  const auto dc = activation_backward(ActGrad::gelu_tanh, ones_like(x), x).to_vector<float>();
  const auto ds = activation_backward(ActGrad::gelu_tanh, ones_like(x), strided).to_vector<float>();
  int64_t differ = 0;
  for (size_t i = 0; i < xs.size(); ++i)
    if (std::memcmp(&dc[i], &ds[i], sizeof(float)) != 0 && ++differ == 1)
      ADD_FAILURE() << "first difference at x = " << xs[i] << ": " << ds[i] << " strided vs "
                    << dc[i] << " contiguous";
  EXPECT_EQ(differ, 0);
}

}  // namespace
}  // namespace fabric
