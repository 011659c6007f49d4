// torch 1.13's CPU distributions over its Mersenne Twister, and its normal_fill_16 kernels. Every
// product-then-add of torch's source is written as the fma its compiler made of it: GCC fuses, in
// statement order, each product whose only use is an add, so of `y = y * z; t = e * q; y = y + t`
// the first product is fused (fma(y, z, e * q)), not the second. Checked bit for bit against
// Debian's torch (tests/tensor/test_torch_cpu_rng.cpp).
#include "tensor/torch_cpu_rng.h"

#include <bit>
#include <cmath>
#include <limits>
#include <numbers>

namespace fabric {

float TorchCpuRng::uniform_float(int digits, float from, float width) {
  const uint32_t mask = (uint32_t{1} << digits) - 1;
  const float u = static_cast<float>(random() & mask) * std::ldexp(1.0f, -digits);
  return std::fmaf(u, width, from);
}

double TorchCpuRng::uniform_double(double from, double width) {
  const uint64_t mask = (uint64_t{1} << 53) - 1;
  const double u = static_cast<double>(random64() & mask) * 0x1p-53;
  return std::fma(u, width, from);
}

double TorchCpuRng::normal_double(double mean, double std) {
  if (next_normal_) {
    const double z = *next_normal_;
    next_normal_.reset();
    return std::fma(z, std, mean);
  }
  const double u1 = uniform_double(0.0, 1.0);
  const double u2 = uniform_double(0.0, 1.0);
  const double r = std::sqrt(-2.0 * std::log(1.0 - u2));
  const double theta = 2.0 * std::numbers::pi * u1;
  next_normal_ = r * std::sin(theta);
  return std::fma(r * std::cos(theta), std, mean);
}

int64_t TorchCpuRng::uniform_int(uint64_t range, int64_t base) {
  const uint64_t draw = range >= (uint64_t{1} << 32) ? random64() : random();
  return static_cast<int64_t>(draw % range + static_cast<uint64_t>(base));
}

namespace {

// avx_mathfun.h declares its constants as float arrays initialised from double literals: each
// is the double rounded to float, which for a few decimals differs from the float literal.
constexpr float F(double v) { return static_cast<float>(v); }

float bits_float(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t float_bits(float f) { return std::bit_cast<uint32_t>(f); }

// avx_mathfun.h's log256_ps (Cephes logf), one lane. x <= 0 gives NaN.
float cephes_log(float x) {
  const bool invalid = x <= 0.0f;
  x = std::fmax(x, bits_float(0x00800000u));  // no denormals
  int32_t exponent = static_cast<int32_t>(float_bits(x) >> 23);
  x = bits_float((float_bits(x) & ~0x7f800000u) | float_bits(0.5f));  // mantissa in [0.5, 1)
  float e = static_cast<float>(exponent - 0x7f) + 1.0f;
  const bool below = x < F(0.707106781186547524);
  const float tmp = below ? x : 0.0f;
  x = x - 1.0f;
  e = e - (below ? 1.0f : 0.0f);
  x = x + tmp;
  const float z = x * x;
  float y = F(7.0376836292E-2);
  for (float p : {F(-1.1514610310E-1), F(1.1676998740E-1), F(-1.2420140846E-1), F(1.4249322787E-1),
                  F(-1.6668057665E-1), F(2.0000714765E-1), F(-2.4999993993E-1), F(3.3333331174E-1)})
    y = std::fmaf(y, x, p);
  y = y * x;
  y = std::fmaf(y, z, e * F(-2.12194440e-4));
  y = std::fmaf(-z, 0.5f, y);
  x = x + y;
  x = std::fmaf(e, F(0.693359375), x);
  return invalid ? std::numeric_limits<float>::quiet_NaN() : x;
}

// avx_mathfun.h's sincos256_ps (Cephes sinf/cosf with one range reduction), one lane.
void cephes_sincos(float x, float& s, float& c) {
  const bool negative = std::signbit(x);
  x = std::fabs(x);
  int32_t j = static_cast<int32_t>(x * F(1.27323954473516));  // 4/π, truncated as cvttps
  j = (j + 1) & ~1;
  const float y = static_cast<float>(j);
  const bool sin_swap = (j & 4) != 0;
  const bool sin_poly_is_cos = (j & 2) != 0;  // the polynomial selection mask, inverted
  const bool cos_negative = ((j - 2) & 4) == 0;
  x = std::fmaf(y, F(-0.78515625), x);  // x - y·π/4 in three pieces
  x = std::fmaf(y, F(-2.4187564849853515625e-4), x);
  x = std::fmaf(y, F(-3.77489497744594108e-8), x);
  const float z = x * x;
  float yc = std::fmaf(F(2.443315711809948E-005), z, F(-1.388731625493765E-003));
  yc = std::fmaf(yc, z, F(4.166664568298827E-002));
  yc = yc * z;
  yc = std::fmaf(yc, z, -(z * 0.5f));
  yc = yc + 1.0f;
  float ys = std::fmaf(F(-1.9515295891E-4), z, F(8.3321608736E-3));
  ys = std::fmaf(ys, z, F(-1.6666654611E-1));
  ys = ys * z;
  ys = std::fmaf(ys, x, x);
  s = sin_poly_is_cos ? yc : ys;
  c = sin_poly_is_cos ? ys : yc;
  if (negative != sin_swap) s = -s;
  if (cos_negative) c = -c;
}

}  // namespace

void torch_normal_fill_16(float* data, float mean, float std) {
  const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - data[j];
    const float u2 = data[j + 8];
    const float radius = std::sqrt(-2.0f * cephes_log(u1));
    float s, c;
    cephes_sincos(two_pi * u2, s, c);
    data[j] = std::fmaf(radius * c, std, mean);
    data[j + 8] = std::fmaf(radius * s, std, mean);
  }
}

void torch_normal_fill_16(double* data, double mean, double std) {
  for (int j = 0; j < 8; ++j) {
    const double u1 = 1.0 - data[j];
    const double u2 = data[j + 8];
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * std::numbers::pi * u2;
    data[j] = std::fma(radius * std::cos(theta), std, mean);
    data[j + 8] = std::fma(radius * std::sin(theta), std, mean);
  }
}

}  // namespace fabric
