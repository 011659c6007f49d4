// Float64 references for GELU (tanh form) and the float32 error measure of the GELU accuracy tests
// (tests/ops/test_gelu_accuracy.cpp through the ops, tests/tensor/test_gelu_tanh_math.cpp on the
// shared formulation itself).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

namespace fabric::gelu_test {

// PyTorch's x/2 (1 + tanh(u)) and its derivative (1 + t)/2 + x/2 (1 - t^2) du/dx,
// u = sqrt(2/pi) (x + k x^3), written without 1 + tanh's cancellation (sigmoid(2u) = 1/(1 + e) or
// e/(1 + e), 1 - t^2 = 4e/(1 + e)^2, e = exp(-|2u|)) so the left tail keeps its relative accuracy
// in float64 too; an independent form, not the one under test.
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kKappa = 0.044715;
inline double gelu_tanh_ref(double x) {
  const double u = kSqrt2OverPi * (x + kKappa * x * x * x);
  const double e = std::exp(-2.0 * std::fabs(u));
  return u >= 0 ? x / (1.0 + e) : x * e / (1.0 + e);
}
inline double gelu_tanh_grad_ref(double x) {
  if (std::isinf(x)) return std::nan("");  // x/2 (1 - t^2) = inf * 0, as in PyTorch
  const double u = kSqrt2OverPi * (x + kKappa * x * x * x);
  const double e = std::exp(-2.0 * std::fabs(u));
  const double sig = u >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
  const double sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e));
  return sig + 0.5 * x * sech2 * kSqrt2OverPi * (1.0 + 3.0 * kKappa * x * x);
}

// |got - want| in units of ulp(float(want)) (2^-149 for subnormal results), or of
// max(ulp, 2^-26) with `floor` (the measure where a result crosses zero, as
// tests/ops/test_elementwise.cpp's accuracy tests).
inline double ulp_error(float got, double want, bool floor) {
  const float wf = static_cast<float>(want);
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e30;
  if (std::isinf(wf) || std::isinf(got)) return got == wf ? 0 : 1e30;
  double ulp = std::fabs(wf) < std::numeric_limits<float>::min()
                   ? std::ldexp(1.0, -149)
                   : std::ldexp(1.0, std::ilogb(wf) - 23);
  if (floor) ulp = std::max(ulp, std::ldexp(1.0, -26));
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

// The largest error seen and where.
struct Worst {
  double err = 0;
  float at = 0;
  void add(double e, float x) {
    if (e > err) err = e, at = x;
  }
};

}  // namespace fabric::gelu_test
