// digamma, trigamma, Hurwitz zeta and polygamma as torch 1.13's CPU kernels compute them: the
// Cephes-derived scalar functions of ATen/native/Math.h, transcribed with their operation order,
// the libm calls they make and the products GCC fuses into fmas in torch's AVX2 build (written out
// as std::fma here, everything else compiled without contraction), so that float32 and float64
// give torch's bits. zeta accumulates in double for float arguments, as acc_type<float> on the CPU.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu::torch_math {

inline constexpr double kPi = 3.14159265358979323846;

// Cephes polevl: coefficients highest degree first, len + 1 of them.
template <typename T>
inline T polevl(T x, const T* a, int len) {
  T result = 0;
  for (int i = 0; i <= len; ++i) result = std::fma(result, x, a[i]);
  return result;
}

inline double digamma(double x) {
  constexpr double kPsi10 = 2.25175258906672110764;
  if (x == 0) return std::copysign(std::numeric_limits<double>::infinity(), -x);
  if (x < 0) {
    if (x == std::trunc(x)) return std::numeric_limits<double>::quiet_NaN();
    double q;
    const double r = std::modf(x, &q);
    // tan(pi * r) of the fractional part: pi * x loses accuracy for |x| > 1
    return digamma(1 - x) - kPi / std::tan(kPi * r);
  }
  double result = 0;
  while (x < 10) {
    result -= 1 / x;
    x += 1;
  }
  if (x == 10) return result + kPsi10;
  static const double A[] = {
      8.33333333333333333333E-2,  -2.10927960927960927961E-2, 7.57575757575757575758E-3,
      -4.16666666666666666667E-3, 3.96825396825396825397E-3,  -8.33333333333333333333E-3,
      8.33333333333333333333E-2,
  };
  double y = 0;
  if (x < 1.0e17) {
    const double z = 1.0 / (x * x);
    y = z * polevl(z, A, 6);
  }
  return result + std::log(x) - (0.5 / x) - y;
}

inline float digamma(float x) {
  constexpr float kPsi10 = 2.25175258906672110764f;
  if (x == 0) return std::copysign(std::numeric_limits<float>::infinity(), -x);
  if (x < 0) {
    if (x == std::trunc(x)) return std::numeric_limits<float>::quiet_NaN();
    double q;
    const double r = std::modf(static_cast<double>(x), &q);
    const auto pi_over_tan_pi_x = static_cast<float>(kPi / std::tan(kPi * r));
    return digamma(1 - x) - pi_over_tan_pi_x;
  }
  float result = 0;
  while (x < 10) {
    result -= 1 / x;
    x += 1;
  }
  if (x == 10) return result + kPsi10;
  static const float A[] = {
      8.33333333333333333333E-2f,  -2.10927960927960927961E-2f, 7.57575757575757575758E-3f,
      -4.16666666666666666667E-3f, 3.96825396825396825397E-3f,  -8.33333333333333333333E-3f,
      8.33333333333333333333E-2f,
  };
  float y = 0;
  if (x < 1.0e17f) {
    const float z = 1 / (x * x);
    y = z * polevl(z, A, 6);
  }
  return result + std::log(x) - (0.5f / x) - y;
}

// polygamma(1, x): reflection below 0.5, six recurrence steps, then the asymptotic series.
template <typename T>
inline T trigamma(T x) {
  T sign = +1;
  T result = 0;
  if (x < T(0.5)) {
    sign = -1;
    const T pi = static_cast<T>(kPi);
    const T sin_pi_x = std::sin(pi * x);
    result -= (pi * pi) / (sin_pi_x * sin_pi_x);
    x = 1 - x;
  }
  for (int i = 0; i < 6; ++i) {
    result += 1 / (x * x);
    x += 1;
  }
  const T ixx = 1 / (x * x);
  const T series =
      std::fma(ixx, std::fma(-ixx, std::fma(-ixx, T(1) / T(42), T(1) / T(30)), T(1) / T(6)),
               1 + 1 / (2 * x));
  result += series / x;
  return sign * result;
}

// Hurwitz zeta(x, q) (Cephes zeta) accumulated in Acc: double for float and double arguments
// (acc_type on the CPU), float for bfloat16.
template <typename Acc>
inline Acc zeta(Acc x, Acc q) {
  const Acc kMachEp = static_cast<Acc>(1.11022302462515654042E-16);
  static const Acc A[] = {
      Acc(12.0),
      Acc(-720.0),
      Acc(30240.0),
      Acc(-1209600.0),
      Acc(47900160.0),
      Acc(-1.8924375803183791606e9), /*1.307674368e12/691*/
      Acc(7.47242496e10),
      Acc(-2.950130727918164224e12),  /*1.067062284288e16/3617*/
      Acc(1.1646782814350067249e14),  /*5.109094217170944e18/43867*/
      Acc(-4.5979787224074726105e15), /*8.028576626982912e20/174611*/
      Acc(1.8152105401943546773e17),  /*1.5511210043330985984e23/854513*/
      Acc(-7.1661652561756670113e18)  /*1.6938241367317436694528e27/236364091*/
  };
  if (x == 1) return std::numeric_limits<Acc>::infinity();
  if (x < 1) return std::numeric_limits<Acc>::quiet_NaN();
  if (q <= 0) {
    if (q == std::floor(q)) return std::numeric_limits<Acc>::infinity();
    if (x != std::floor(x)) return std::numeric_limits<Acc>::quiet_NaN();
  }
  Acc s = std::pow(q, -x);
  Acc a = q, b = 0;
  int i = 0;
  while (i < 9 || a <= Acc(9)) {
    i += 1;
    a += 1;
    b = std::pow(a, -x);
    s += b;
    if (-kMachEp * s < b && b < kMachEp * s) return s;
  }
  const Acc w = a;
  s += b * w / (x - 1);
  s = std::fma(-Acc(0.5), b, s);
  a = 1;
  Acc k = 0;
  for (int j = 0; j < 12; ++j) {
    a *= x + k;
    b /= w;
    Acc t = a * b / A[j];
    s = s + t;
    t = std::fabs(t / s);
    if (t < kMachEp) return s;
    k += 1;
    a *= x + k;
    b /= w;
    k += 1;
  }
  return s;
}

// polygamma(n, x) for n >= 2: (-1)^(n+1) n! zeta(n + 1, x), n! as exp(lgamma(n + 1)).
inline double polygamma(int64_t n, double x) {
  const double sign = n % 2 ? 1.0 : -1.0;
  const double nd = static_cast<double>(n);
  return sign * std::exp(std::lgamma(nd + 1)) * zeta(nd + 1, x);
}
inline float polygamma(int64_t n, float x) {
  const float sign = n % 2 ? 1.0f : -1.0f;
  const float nf = static_cast<float>(n);
  const auto z = static_cast<float>(zeta(static_cast<double>(nf + 1), static_cast<double>(x)));
  return sign * std::exp(std::lgamma(nf + 1)) * z;
}
// calc_polygamma<BFloat16>: zeta accumulated in float and returned as a bfloat16 (round_bf16 is
// the caller's rounding to bfloat16 and back), the rest in float; n + 1 is a bfloat16 sum.
template <typename RoundBf16>
inline float polygamma_bf16(int64_t n, float x, RoundBf16 round_bf16) {
  const float sign = n % 2 ? 1.0f : -1.0f;
  const float n1 = round_bf16(round_bf16(static_cast<float>(n)) + 1.0f);
  return sign * std::exp(std::lgamma(n1)) * round_bf16(zeta(n1, x));
}

}  // namespace fabric::cpu::torch_math

#pragma GCC pop_options
