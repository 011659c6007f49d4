// Harness cases for nn/math_extra.h, tensor/math_extra.h and tensor/bitwise.h: each function
// against a float64 reference from <cmath> (or a naive formula), in every dtype torch's CPU kernel
// takes, contiguous and strided, with finite-difference gradients for the differentiable ones.
// torch's own bits are in tests/tensor/test_math_extra_torch.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "nn/math_extra.h"
#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using V = std::vector<Tensor>;
const std::vector<DType> kInt = {DType::int64};  // integer inputs: the case dtype is moot
const std::vector<DType> kNoHalf = {DType::float64, DType::float32, DType::bfloat16};
const std::vector<DType> kF64F32 = {DType::float64, DType::float32};
const double kPi = 3.14159265358979323846;
const double kInf = std::numeric_limits<double>::infinity();

const std::vector<Shape> kShapes = {{7, 9}, {2, 3, 17}, {0, 4}, {1}, {}, {40, 33}};

double sinc_ref(double a) { return a == 0 ? 1.0 : std::sin(kPi * a) / (kPi * a); }
double logit_ref(double a, double eps) {
  if (eps >= 0) a = std::min(std::max(a, eps), 1 - eps);
  return std::log(a / (1 - a));
}
// digamma by the recurrence up to 20 and the asymptotic series (independent of the Cephes code).
double digamma_ref(double x) {
  long double r = 0, z = x;
  while (z < 20) r -= 1 / z++, (void)0;
  const long double z2 = 1 / (z * z);
  return static_cast<double>(r + std::log(z) - 1 / (2 * z) -
                             z2 * (1.0L / 12 - z2 * (1.0L / 120 - z2 * (1.0L / 252 - z2 / 240))));
}
// polygamma(n, x) = (-1)^(n+1) n! sum_k 1 / (x + k)^(n+1): the first 30 terms, then the tail by
// Euler-Maclaurin (its integral, half its first term and five Bernoulli corrections).
double polygamma_ref(int n, double x) {
  const int m = n + 1, shift = 30;
  long double s = 0;
  for (int k = 0; k < shift; ++k) s += std::pow(static_cast<long double>(x) + k, -m);
  const long double z = static_cast<long double>(x) + shift;
  s += std::pow(z, 1 - m) / (m - 1) + std::pow(z, -m) / 2;
  const long double bernoulli_over_factorial[] = {1.0L / 6 / 2, -1.0L / 30 / 24, 1.0L / 42 / 720,
                                                  -1.0L / 30 / 40320, 5.0L / 66 / 3628800};
  long double rising = m;  // m (m + 1) ... (m + 2j - 2), the derivative's factor
  for (int j = 1; j <= 5; ++j) {
    s += bernoulli_over_factorial[j - 1] * rising * std::pow(z, -(m + 2 * j - 1));
    rising *= (m + 2 * j - 1) * static_cast<long double>(m + 2 * j);
  }
  return static_cast<double>((n % 2 ? 1 : -1) * std::tgamma(n + 1.0L) * s);
}
double mvlgamma_ref(double x, int p) {
  double s = p * (p - 1) / 4.0 * std::log(kPi);
  for (int j = 0; j < p; ++j) s += std::lgamma(x - j / 2.0);
  return s;
}
// I0 and I1 by their power series (converge for every x, in long double).
double bessel_i_ref(int order, double x) {
  long double term = order == 0 ? 1 : x / 2.0L, s = term;
  for (int k = 1; k < 200; ++k) {
    term *= (x / 2.0L) * (x / 2.0L) / (k * static_cast<long double>(k + order));
    s += term;
  }
  return static_cast<double>(s);
}
double floor_div_ref(double a, double b) { return std::floor(a / b); }

std::vector<OpCase> math_extra_cases() {
  std::vector<OpCase> c;
  auto unary = [&](const std::string& name, std::function<Tensor(const Tensor&)> op,
                   std::function<double(double)> ref, double lo, double hi,
                   std::vector<DType> dtypes = {}, bool grad = true) {
    for (const Shape& s : kShapes) {
      OpCase k{name + "/" + shape_str(s),
               {F(s, lo, hi)},
               [op](const V& x) { return op(x[0]); },
               ref_unary(ref)};
      if (!dtypes.empty()) k.dtypes = dtypes;
      k.grad_check = grad;
      c.push_back(k);
    }
  };
  unary(
      "exp2", [](const Tensor& x) { return exp2(x); }, [](double a) { return std::exp2(a); }, -4,
      4);
  unary(
      "sinc", [](const Tensor& x) { return sinc(x); }, sinc_ref, -3, 3, kNoHalf);
  unary(
      "logit", [](const Tensor& x) { return logit(x); }, [](double a) { return logit_ref(a, -1); },
      0.05, 0.95, kNoHalf);
  unary(
      "logit/eps_inside", [](const Tensor& x) { return logit(x, 0.2); },
      [](double a) { return logit_ref(a, 0.2); }, 0.3, 0.7, kNoHalf);
  unary(
      "logit/eps_clamped", [](const Tensor& x) { return logit(x, 0.2); },
      [](double a) { return logit_ref(a, 0.2); }, 0.01, 0.15, kNoHalf);
  unary(
      "erfc", [](const Tensor& x) { return erfc(x); }, [](double a) { return std::erfc(a); }, -3, 3,
      kNoHalf);
  unary(
      "lgamma", [](const Tensor& x) { return lgamma(x); }, [](double a) { return std::lgamma(a); },
      0.1, 6, kNoHalf);
  unary(
      "lgamma/negative", [](const Tensor& x) { return lgamma(x); },
      [](double a) { return std::lgamma(a); }, -2.9, -2.1, kNoHalf);
  unary(
      "digamma", [](const Tensor& x) { return digamma(x); }, digamma_ref, 0.2, 6, kNoHalf);
  for (int n : {1, 2, 3}) {
    unary(
        "polygamma" + std::to_string(n), [n](const Tensor& x) { return polygamma(n, x); },
        [n](double a) { return polygamma_ref(n, a); }, 0.5, 5, kNoHalf);
  }
  for (int p : {1, 2, 3}) {
    unary(
        "mvlgamma" + std::to_string(p), [p](const Tensor& x) { return mvlgamma(x, p); },
        [p](double a) { return mvlgamma_ref(a, p); }, 1.2, 5, kNoHalf);
  }
  unary(
      "i0", [](const Tensor& x) { return i0(x); }, [](double a) { return bessel_i_ref(0, a); }, -5,
      5, kNoHalf);
  unary(
      "special_i1", [](const Tensor& x) { return special::i1(x); },
      [](double a) { return bessel_i_ref(1, a); }, -5, 5, kF64F32);
  unary(
      "deg2rad", [](const Tensor& x) { return deg2rad(x); }, [](double a) { return a * kPi / 180; },
      -360, 360);
  unary(
      "rad2deg", [](const Tensor& x) { return rad2deg(x); }, [](double a) { return a * 180 / kPi; },
      -4, 4);
  unary(
      "frac", [](const Tensor& x) { return frac(x); }, [](double a) { return a - std::trunc(a); },
      -5, 5);
  unary(
      "square", [](const Tensor& x) { return square(x); }, [](double a) { return a * a; }, -3, 3);
  unary(
      "sgn", [](const Tensor& x) { return sgn(x); },
      [](double a) { return a > 0   ? 1.0
                            : a < 0 ? -1.0
                                    : 0.0; }, -2, 2);
  unary(
      "positive", [](const Tensor& x) { return positive(x); }, [](double a) { return a; }, -2, 2);

  // ---- binary, broadcasting -------------------------------------------------------------------
  const std::vector<std::pair<Shape, Shape>> pairs = {{{3, 4}, {3, 4}}, {{4, 1, 3}, {5, 3}},
                                                      {{2, 3, 4}, {4}}, {{0, 3}, {1, 3}},
                                                      {{}, {2, 3}},     {{3, 2}, {}}};
  auto binary = [&](const std::string& name, std::function<Tensor(const Tensor&, const Tensor&)> op,
                    std::function<double(double, double)> ref, InputSpec (*ia)(Shape),
                    InputSpec (*ib)(Shape), std::vector<DType> dtypes = {}, bool grad = true) {
    for (const auto& [sa, sb] : pairs) {
      OpCase k{name + "/" + shape_str(sa) + "x" + shape_str(sb),
               {ia(sa), ib(sb)},
               [op](const V& x) { return op(x[0], x[1]); },
               ref_binary(ref)};
      if (!dtypes.empty()) k.dtypes = dtypes;
      k.grad_check = grad;
      c.push_back(k);
    }
  };
  const auto f = [](Shape s) { return F(std::move(s)); };
  const auto p = [](Shape s) { return P(std::move(s), 0.3, 3); };
  binary(
      "hypot", [](const Tensor& a, const Tensor& b) { return hypot(a, b); },
      [](double a, double b) { return std::hypot(a, b); }, f, p, kNoHalf);
  binary(
      "logaddexp", [](const Tensor& a, const Tensor& b) { return logaddexp(a, b); },
      [](double a, double b) { return std::log(std::exp(a) + std::exp(b)); }, f, f, kNoHalf);
  binary(
      "logaddexp2", [](const Tensor& a, const Tensor& b) { return logaddexp2(a, b); },
      [](double a, double b) { return std::log2(std::exp2(a) + std::exp2(b)); }, f, f, kNoHalf);
  binary(
      "xlogy", [](const Tensor& a, const Tensor& b) { return xlogy(a, b); },
      [](double x, double y) { return x == 0 ? 0.0 : x * std::log(y); }, f, p);
  binary(
      "xlog1py", [](const Tensor& a, const Tensor& b) { return xlog1py(a, b); },
      [](double x, double y) { return x == 0 ? 0.0 : x * std::log1p(y); }, f, p);
  binary(
      "copysign", [](const Tensor& a, const Tensor& b) { return copysign(a, b); },
      [](double a, double b) { return std::copysign(a, b); }, p, f);
  binary(
      "fmax", [](const Tensor& a, const Tensor& b) { return fmax(a, b); },
      [](double a, double b) { return std::fmax(a, b); }, f, f);
  binary(
      "fmin", [](const Tensor& a, const Tensor& b) { return fmin(a, b); },
      [](double a, double b) { return std::fmin(a, b); }, f, f);
  binary(
      "clamp_min", [](const Tensor& a, const Tensor& b) { return clamp_min(a, b); },
      [](double a, double b) { return std::max(a, b); }, f, f);
  binary(
      "clamp_max", [](const Tensor& a, const Tensor& b) { return clamp_max(a, b); },
      [](double a, double b) { return std::min(a, b); }, f, f);
  binary(
      "float_power", [](const Tensor& a, const Tensor& b) { return float_power(a, b); },
      [](double a, double b) { return std::pow(a, b); }, p, f);
  binary(
      "true_divide", [](const Tensor& a, const Tensor& b) { return true_divide(a, b); },
      [](double a, double b) { return a / b; }, f, p);
  // No derivative in torch: values only.
  binary(
      "floor_divide", [](const Tensor& a, const Tensor& b) { return floor_divide(a, b); },
      floor_div_ref, f, p, {}, false);
  binary(
      "heaviside", [](const Tensor& a, const Tensor& b) { return heaviside(a, b); },
      [](double a, double b) { return a == 0  ? b
                                      : a > 0 ? 1.0
                                              : 0.0; }, f, f, {}, false);
  binary(
      "nextafter", [](const Tensor& a, const Tensor& b) { return nextafter(a, b); },
      [](double a, double b) { return std::nextafter(a, b); }, f, f, {DType::float64}, false);

  // ---- Scalar operands ------------------------------------------------------------------------
  auto scalar = [&](const std::string& name, std::function<Tensor(const Tensor&)> op,
                    std::function<double(double)> ref, InputSpec in,
                    std::vector<DType> dtypes = {}) {
    OpCase k{name, {std::move(in)}, [op](const V& x) { return op(x[0]); }, ref_unary(ref)};
    if (!dtypes.empty()) k.dtypes = dtypes;
    c.push_back(k);
  };
  scalar(
      "clamp_min/scalar", [](const Tensor& x) { return clamp_min(x, 0.5); },
      [](double a) { return std::max(a, 0.5); }, F({4, 5}), kNoHalf);
  scalar(
      "clamp_max/scalar", [](const Tensor& x) { return clamp_max(x, -0.5); },
      [](double a) { return std::min(a, -0.5); }, F({4, 5}), kNoHalf);
  scalar(
      "xlogy/scalar_y", [](const Tensor& x) { return xlogy(x, 3.0); },
      [](double a) { return a * std::log(3.0); }, F({4, 5}));
  scalar(
      "xlogy/scalar_x", [](const Tensor& y) { return xlogy(2.0, y); },
      [](double b) { return 2 * std::log(b); }, P({4, 5}));
  scalar(
      "xlog1py/scalar_y", [](const Tensor& x) { return xlog1py(x, 0.5); },
      [](double a) { return a * std::log1p(0.5); }, F({4, 5}));
  scalar(
      "copysign/scalar_neg_zero", [](const Tensor& x) { return copysign(x, -0.0); },
      [](double a) { return -std::abs(a); }, P({4, 5}));
  scalar(
      "float_power/scalar_exp", [](const Tensor& x) { return float_power(x, 1.5); },
      [](double a) { return std::pow(a, 1.5); }, P({4, 5}));
  scalar(
      "float_power/scalar_base", [](const Tensor& x) { return float_power(2.0, x); },
      [](double a) { return std::pow(2.0, a); }, F({4, 5}));

  // ---- special points (values only) -------------------------------------------------------------
  auto special = [&](const std::string& name, std::vector<double> v,
                     std::function<Tensor(const Tensor&)> op, std::function<double(double)> ref,
                     std::vector<DType> dtypes = {DType::float64}) {
    OpCase k{name,
             {harness::V({static_cast<int64_t>(v.size())}, v)},
             [op](const V& x) { return op(x[0]); },
             ref_unary(ref)};
    k.grad_check = false;
    k.dtypes = dtypes;
    c.push_back(k);
  };
  special(
      "lgamma/poles", {0.0, -1.0, -2.0, kInf, -kInf}, [](const Tensor& x) { return lgamma(x); },
      [](double) { return kInf; });
  special(
      "digamma/zero_and_poles", {0.0, -0.0, -1.0, -3.0}, [](const Tensor& x) { return digamma(x); },
      [](double a) {
        return a == 0 ? std::copysign(kInf, -a) : std::numeric_limits<double>::quiet_NaN();
      });
  special(
      "sinc/zero", {0.0, -0.0}, [](const Tensor& x) { return sinc(x); }, [](double) { return 1.0; },
      kNoHalf);
  special(
      "logit/edges", {0.0, 1.0, -0.5, 1.5}, [](const Tensor& x) { return logit(x); },
      [](double a) {
        return a == 0 ? -kInf : a == 1 ? kInf : std::numeric_limits<double>::quiet_NaN();
      });

  // ---- integers and bool (exact) ----------------------------------------------------------------
  auto exact = [&](const std::string& name, std::vector<InputSpec> in, OpFn run, RefFn ref) {
    OpCase k{name, std::move(in), std::move(run), std::move(ref)};
    k.exact = true;
    k.grad_check = false;
    k.dtypes = kInt;
    c.push_back(k);
  };
  for (DType dt : {DType::int64, DType::int32, DType::int8, DType::uint8}) {
    const std::string d(dtype_name(dt));
    const double lo = dt == DType::uint8 ? 0 : -100, hi = 100;
    exact(
        "bitwise_and/" + d, {I({4, 6}, lo, hi, dt), I({6}, lo, hi, dt)},
        [](const V& x) { return bitwise_and(x[0], x[1]); }, ref_binary([](double a, double b) {
          return static_cast<double>(static_cast<int64_t>(a) & static_cast<int64_t>(b));
        }));
    exact(
        "bitwise_or/" + d, {I({4, 6}, lo, hi, dt), I({6}, lo, hi, dt)},
        [](const V& x) { return bitwise_or(x[0], x[1]); }, ref_binary([](double a, double b) {
          return static_cast<double>(static_cast<int64_t>(a) | static_cast<int64_t>(b));
        }));
    exact(
        "bitwise_xor/" + d, {I({4, 6}, lo, hi, dt), I({6}, lo, hi, dt)},
        [](const V& x) { return bitwise_xor(x[0], x[1]); }, ref_binary([](double a, double b) {
          return static_cast<double>(static_cast<int64_t>(a) ^ static_cast<int64_t>(b));
        }));
    exact(
        "gcd/" + d, {I({4, 6}, lo, hi, dt), I({6}, lo, hi, dt)},
        [](const V& x) { return gcd(x[0], x[1]); }, ref_binary([](double a, double b) {
          return static_cast<double>(std::gcd(static_cast<int64_t>(a), static_cast<int64_t>(b)));
        }));
    exact(
        "lcm/" + d, {I({4, 6}, 0, 11, dt), I({6}, 0, 11, dt)},
        [](const V& x) { return lcm(x[0], x[1]); }, ref_binary([](double a, double b) {
          return static_cast<double>(std::lcm(static_cast<int64_t>(a), static_cast<int64_t>(b)));
        }));
    exact(
        "floor_divide/" + d, {I({4, 6}, lo, hi, dt), I({6}, 1, 9, dt)},
        [](const V& x) { return floor_divide(x[0], x[1]); }, ref_binary(floor_div_ref));
    // shifts by 0 .. 3 of values small enough not to overflow any dtype
    exact(
        "bitwise_left_shift/" + d, {I({4, 6}, 0, 15, dt), I({6}, 0, 4, dt)},
        [](const V& x) { return bitwise_left_shift(x[0], x[1]); },
        ref_binary([](double a, double b) { return a * std::exp2(b); }));
    exact(
        "bitwise_right_shift/" + d, {I({4, 6}, lo, hi, dt), I({6}, 0, 4, dt)},
        [](const V& x) { return bitwise_right_shift(x[0], x[1]); },
        ref_binary([](double a, double b) { return std::floor(a / std::exp2(b)); }));
    exact(
        "bitwise_not/" + d, {I({3, 5}, lo, hi, dt)}, [](const V& x) { return bitwise_not(x[0]); },
        ref_unary([dt](double a) {
          return dt == DType::uint8 ? 255 - a : -a - 1;  // ~a in two's complement
        }));
    exact(
        "signbit/" + d, {I({3, 5}, lo, hi, dt)}, [](const V& x) { return signbit(x[0]); },
        ref_unary([](double a) { return a < 0 ? 1.0 : 0.0; }));
    exact(
        "heaviside/" + d, {I({3, 5}, lo, hi, dt), I({5}, 0, 9, dt)},
        [](const V& x) { return heaviside(x[0], x[1]); }, ref_binary([](double a, double b) {
          return a == 0 ? b : a > 0 ? 1.0 : 0.0;
        }));
  }
  exact(
      "bitwise_and/bool", {B({4, 5}), B({5})}, [](const V& x) { return bitwise_and(x[0], x[1]); },
      ref_binary([](double a, double b) { return a * b; }));
  exact(
      "bitwise_xor/bool_scalar", {B({4, 5})}, [](const V& x) { return bitwise_xor(x[0], true); },
      ref_unary([](double a) { return 1 - a; }));
  exact(
      "bitwise_not/bool", {B({4, 5})}, [](const V& x) { return bitwise_not(x[0]); },
      ref_unary([](double a) { return 1 - a; }));
  OpCase sb{"signbit/float_signed_zeros",
            {harness::V({4}, {-0.0, 0.0, -1.5, 2.0})},
            [](const V& x) { return signbit(x[0]); },
            ref_unary([](double a) { return std::signbit(a) ? 1.0 : 0.0; })};
  sb.exact = true;
  sb.grad_check = false;
  c.push_back(sb);
  return c;
}

TEST(OpHarness, MathExtra) { run_cases(math_extra_cases()); }
TEST(OpHarnessCuda, MathExtra) { run_cases_on_cuda(math_extra_cases()); }

}  // namespace
}  // namespace fabric::harness
