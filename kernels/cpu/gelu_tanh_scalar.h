// GELU (tanh form) and its derivative in double, for float64 tensors and the rows the vector
// kernels do not take (strided float32/bfloat16/float16 activation_backward): vec_math.h's
// gelu_tanh_ps / gelu_tanh_grad_ps formulation, x sigmoid(2u) from z = exp(-|2u|) <= 1, so the
// left tail has neither 1 + tanh(u)'s cancellation nor exp(-2u)'s overflow.
// u = sqrt(2/pi) (x + k x^3), k = 0.044715 (PyTorch's definition). exp(-|2u|)'s relative error is
// 2u's absolute error (|2u| up to 745), so 2u is carried as an unevaluated sum hi + lo, as the
// float32 kernel does; results that are subnormal round once (z scaled by 2^128 until the end).
// Always inlined: as out-of-line functions of the shared library they were called through the PLT
// from the element loops.
// Special values as the vector code: gelu(NaN) = NaN, gelu(inf) = inf, gelu(-inf) = NaN (PyTorch's
// -inf/2 (1 + tanh(-inf)) = -inf * 0); the derivative is NaN at NaN and +-inf.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

namespace fabric::cpu::gelu_tanh {

// Past |x| = 24, 2u < -1024: exp(-|2u|) is 0 in double (the results are x itself, or 0).
constexpr double kClamp = 24.0;

// z = exp(2u(xn)) = zs * unscale at xn = -min(|x|, kClamp) (2u is odd in x). A product with
// unscale (a power of 2) rounds once, as ldexp, at a fraction of its cost.
struct NegExp {
  double zs;
  double unscale;  // 1, or 2^-128 where z would be near or below DBL_MIN
  double z() const { return zs * unscale; }
};

[[gnu::always_inline]] inline NegExp neg_exp_2u(double xn) {
  constexpr double kA = 1.5957691216057308, kALo = -9.96930880911092e-17;        // 2 sqrt(2/pi)
  constexpr double kK = 0.044715, kKLo = 2.1960211427085595e-18;                 // 0.044715
  constexpr double kShift = 88.722839111673, kShiftLo = 2.9683799217232634e-15;  // 128 ln2
  // P = xn (1 + k xn^2) as p + p_lo: each rounding error recovered with an fma (1 - w is exact
  // for 1 <= w < 2^53), plus k's low part.
  const double s = xn * xn;
  const double s_lo = std::fma(xn, xn, -s);
  const double w = std::fma(kK, s, 1.0);
  const double w_lo = std::fma(kK, s_lo, std::fma(kKLo, s, std::fma(kK, s, 1.0 - w)));
  const double p = xn * w;
  const double p_lo = std::fma(xn, w_lo, std::fma(xn, w, -p));
  // 2u = A P as h + l.
  double h = kA * p;
  double l = std::fma(kA, p, -h) + std::fma(kA, p_lo, kALo * p);
  double unscale = 1.0;
  if (h < -700.0) {  // exp(h) near or below DBL_MIN: exp(h + 128 ln2), the sum's error into l
    const double hs = h + kShift;
    l += ((h - hs) + kShift) + kShiftLo;
    h = hs;
    unscale = 0x1p-128;
  }
  // exp(h + l) = exp(h) (1 + l): |l| < 2^-40, l^2 is far below double's rounding.
  const double e = std::exp(h);
  return {std::fma(e, l, e), unscale};
}

// neg (0 or 1) ? v : 1, exactly, without a branch: GCC branches on a plain select, which the
// unpredictable sign of the data mispredicts half the time (twice the cost of the whole forward).
[[gnu::always_inline]] inline double pick(double neg, double v) {
  return std::fma(neg, v, 1.0 - neg);
}

[[gnu::always_inline]] inline double forward(double x) {
  const double xn = -std::min(std::fabs(x), kClamp);  // NaN stays NaN
  const NegExp e = neg_exp_2u(xn);
  const double d = 1.0 + e.z();
  // x / d or x z / d. +inf: inf; -inf: -inf * 0 = NaN.
  const double neg = x < 0;
  return x * pick(neg, e.zs) / d * pick(neg, e.unscale);
}

// PyTorch's (1 + t)/2 + x/2 (1 - t^2) du/dx, t = tanh(u): with d = 1 + z and D = 2 du/dx =
// A (1 + 3k x^2), (d + D x z)/d^2 for x >= 0 and z (d + D x)/d^2 for x < 0, where d + D x crosses
// 0 (x = -0.7517) with one rounding (fma). D x is taken at the clamped x, whose z is 0: the limits
// 1 and 0 hold where D x itself would overflow.
[[gnu::always_inline]] inline double derivative(double x) {
  if (!std::isfinite(x)) return std::numeric_limits<double>::quiet_NaN();  // inf * 0 at +-inf
  constexpr double kA = 1.5957691216057308, k3K = 3.0 * 0.044715;
  const double ax = std::min(std::fabs(x), kClamp);
  const NegExp e = neg_exp_2u(-ax);
  const double z = e.z();
  const double d = 1.0 + z;
  const double dd = kA * std::fma(k3K, ax * ax, 1.0);  // D
  const double neg = x < 0;
  // neg ? a : b, exactly for finite a and b, as pick.
  const double num =
      std::fma(neg, e.zs * std::fma(-dd, ax, d), (1.0 - neg) * std::fma(dd * ax, z, d));
  return num / (d * d) * pick(neg, e.unscale);
}

}  // namespace fabric::cpu::gelu_tanh
