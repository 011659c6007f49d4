// GELU (tanh form) and its derivative, one formulation for both devices: the CPU's float64 and
// strided rows (in double) and every CUDA GELU-tanh kernel (float for fp32/bf16/fp16, double for
// float64) compile these functions, so the two cannot drift. The CPU's contiguous float32/bf16/f16
// rows take the same formulation in AVX-512 (kernels/cpu/vec_math.h, gelu_tanh_ps).
//
// gelu(x) = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + k x^3), k = 0.044715 (PyTorch's definition),
// computed as x sigmoid(2u) from z = exp(-|2u|) <= 1: x/(1 + z) for x >= 0 and x z/(1 + z) for
// x < 0, so the left tail has neither 1 + tanh(u)'s cancellation nor exp(-2u)'s overflow.
// exp(-|2u|)'s relative error is 2u's absolute error (|2u| up to 1024 in double, 318 in float), so
// 2u is carried as an unevaluated sum hi + lo; results that would be subnormal round once (z
// scaled by 2^128 until the end).
// Special values: gelu(NaN) = NaN, gelu(inf) = inf, gelu(-inf) = NaN (PyTorch's
// -inf/2 (1 + tanh(-inf)) = -inf * 0); the derivative is NaN at NaN and +-inf.
// Against float64 / long double (tests/tensor/test_gelu_tanh_math.cpp, tests/ops/
// test_gelu_accuracy.cpp): in double, forward 3.3 ulp, derivative 4.0 floored at 2^-55; in float
// (with glibc's expf), forward 3.8 ulp, derivative 4.0 floored at 2^-26.
//
// Written for both compilers alike: products that feed a sum go through mul(), which neither
// compiler can contract into an fma (nvcc's default -fmad=true would, and so does GCC's C++
// default -ffp-contract=fast, even under -std=c++20; an fma there breaks the hi + lo sums' error
// terms): __fmul_rn/__dmul_rn on the device, a product behind an empty asm on the host. Host and
// device evaluate the same expressions and differ only in exp's last bits (glibc's and CUDA's,
// each within 1-2 ulp).
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define FABRIC_GELU_HD __host__ __device__ __forceinline__
#else
// Always inlined: as out-of-line functions of the shared library they were called through the PLT
// from the element loops.
#define FABRIC_GELU_HD [[gnu::always_inline]] inline
#endif

namespace fabric::gelu_tanh {

// The constants per compute type: A = 2 sqrt(2/pi) and k as hi + lo, 128 ln2 as hi + lo.
template <typename T>
struct Consts;
template <>
struct Consts<double> {
  // Past |x| = 24, 2u < -1024: exp(-|2u|) is 0 in double, scaled or not (the results are x
  // itself, or 0; -inf * 0 = NaN).
  static constexpr double kClamp = 24.0;
  static constexpr double kA = 1.5957691216057308, kALo = -9.96930880911092e-17;
  static constexpr double kK = 0.044715, kKLo = 2.1960211427085595e-18, k3K = 3.0 * 0.044715;
  static constexpr double kShift = 88.722839111673, kShiftLo = 2.9683799217232634e-15;
  static constexpr double kScaleBelow = -700.0;  // exp(h) near DBL_MIN (e^-708.4)
  static constexpr double kUnscale = 0x1p-128;
  static constexpr double kMax = 0x1.fffffffffffffp+1023;
};
template <>
struct Consts<float> {
  // Past |x| = 16, 2u < -317: exp(-|2u|) is 0 in float even scaled by 2^128 (e^-229), so
  // gelu(-inf) = -inf * 0 = NaN as in double.
  static constexpr float kClamp = 16.0f;
  static constexpr float kA = 1.595769167e+00f, kALo = -4.534068054e-08f;
  static constexpr float kK = 4.471499845e-02f, kKLo = 1.546144435e-09f, k3K = 1.341450065e-01f;
  static constexpr float kShift = 8.872283936e+01f, kShiftLo = -2.437957392e-07f;
  static constexpr float kScaleBelow = -80.0f;  // exp(h) near FLT_MIN (e^-87.3)
  static constexpr float kUnscale = 0x1p-128f;  // subnormal, exact: one rounding as ldexp
  static constexpr float kMax = 0x1.fffffep+127f;
};

// The libm functions of either type, by overload (the host's fma(float...) would be double's).
FABRIC_GELU_HD float fma_t(float a, float b, float c) { return fmaf(a, b, c); }
FABRIC_GELU_HD double fma_t(double a, double b, double c) { return ::fma(a, b, c); }
FABRIC_GELU_HD float exp_t(float v) { return expf(v); }
FABRIC_GELU_HD double exp_t(double v) { return ::exp(v); }
FABRIC_GELU_HD float fabs_t(float v) { return fabsf(v); }
FABRIC_GELU_HD double fabs_t(double v) { return ::fabs(v); }
// a * b rounded, never fused with a following add (see the file comment).
FABRIC_GELU_HD float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  float r = a * b;
  asm("" : "+x"(r));  // opaque to GCC, which contracts a product with a following add in C++
  return r;
#endif
}
FABRIC_GELU_HD double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  double r = a * b;
  asm("" : "+x"(r));  // opaque to GCC, which contracts a product with a following add in C++
  return r;
#endif
}

// z = exp(2u(xn)) = zs * unscale at xn = -min(|x|, kClamp) (2u is odd in x). A product with
// unscale (a power of 2) rounds once, as ldexp, at a fraction of its cost.
template <typename T>
struct NegExp {
  T zs;
  T unscale;  // 1, or 2^-128 where z would be near or below the smallest normal
  FABRIC_GELU_HD T z() const { return mul(zs, unscale); }
};

template <typename T>
FABRIC_GELU_HD NegExp<T> neg_exp_2u(T xn) {
  using C = Consts<T>;
  // P = xn (1 + k xn^2) as p + p_lo: each rounding error recovered with an fma (1 - w is exact:
  // 1 <= w < 27 here), plus k's low part.
  const T s = mul(xn, xn);
  const T s_lo = fma_t(xn, xn, -s);
  const T w = fma_t(C::kK, s, T(1));
  const T w_lo = fma_t(C::kK, s_lo, fma_t(C::kKLo, s, fma_t(C::kK, s, T(1) - w)));
  const T p = mul(xn, w);
  const T p_lo = fma_t(xn, w_lo, fma_t(xn, w, -p));
  // 2u = A P as h + l.
  T h = mul(C::kA, p);
  T l = fma_t(C::kA, p, -h) + fma_t(C::kA, p_lo, mul(C::kALo, p));
  T unscale = T(1);
  if (h < C::kScaleBelow) {  // exp(h + 128 ln2), the sum's rounding error into l
    const T hs = h + C::kShift;
    l += ((h - hs) + C::kShift) + C::kShiftLo;
    h = hs;
    unscale = C::kUnscale;
  }
  // exp(h + l) = exp(h) (1 + l): |l| is under 2^-17 (float) or 2^-40 (double); l^2 is far below
  // the type's rounding.
  const T e = exp_t(h);
  return {fma_t(e, l, e), unscale};
}

// neg (0 or 1) ? v : 1, exactly, without a branch: GCC branches on a plain select, which the
// unpredictable sign of the data mispredicts half the time (twice the cost of the whole forward).
template <typename T>
FABRIC_GELU_HD T pick(T neg, T v) {
  return fma_t(neg, v, T(1) - neg);
}

// -min(|x|, kClamp), NaN staying NaN.
template <typename T>
FABRIC_GELU_HD T neg_abs_clamped(T x) {
  const T ax = fabs_t(x);
  return -(Consts<T>::kClamp < ax ? Consts<T>::kClamp : ax);
}

template <typename T>
FABRIC_GELU_HD T forward(T x) {
  const NegExp<T> e = neg_exp_2u(neg_abs_clamped(x));
  const T d = T(1) + e.z();
  // x / d or x z / d. +inf: inf; -inf: -inf * 0 = NaN.
  const T neg = static_cast<T>(x < T(0));
  return mul(mul(x, pick(neg, e.zs)) / d, pick(neg, e.unscale));
}

// PyTorch's (1 + t)/2 + x/2 (1 - t^2) du/dx, t = tanh(u): with d = 1 + z and D = 2 du/dx =
// A (1 + 3k x^2), (d + D x z)/d^2 for x >= 0 and z (d + D x)/d^2 for x < 0, where d + D x crosses
// 0 (x = -0.7517) with one rounding (fma). D x is taken at the clamped x, whose z is 0: the limits
// 1 and 0 hold where D x itself would overflow.
template <typename T>
FABRIC_GELU_HD T derivative(T x) {
  using C = Consts<T>;
  if (!(fabs_t(x) <= C::kMax)) return x - x;  // NaN at NaN and +-inf (inf * 0 there)
  const T ax = -neg_abs_clamped(x);
  const NegExp<T> e = neg_exp_2u(-ax);
  const T z = e.z();
  const T d = T(1) + z;
  const T dd = mul(C::kA, fma_t(C::k3K, mul(ax, ax), T(1)));  // D
  const T neg = static_cast<T>(x < T(0));
  // neg ? a : b, exactly for finite a and b, as pick.
  const T num = fma_t(neg, mul(e.zs, fma_t(-dd, ax, d)), mul(T(1) - neg, fma_t(mul(dd, ax), z, d)));
  return mul(num / mul(d, d), pick(neg, e.unscale));
}

// The gradient g gelu'(x) once rounded to the output's dtype (`rounded`), with PyTorch's zeros:
// in the left tail tanh(u) rounds to -1 and PyTorch's (1 + t)/2 + x/2 (1 - t^2) du/dx is
// +0 + -0 = +0, so its zero gradient is g * (+0), where ours (g times the true, negative
// derivative, underflowing) would be -g * 0. Elsewhere (gelu' > 0 for x > -0.7517) a zero
// gradient is g * (+0) already, so no test of x is needed: the select is predictable (zeros are
// rare), a branch on x's sign would not be.
template <typename T>
FABRIC_GELU_HD T with_torch_zero(T g, T rounded) {
  return rounded == T(0) ? g * T(0) : rounded;
}

}  // namespace fabric::gelu_tanh
