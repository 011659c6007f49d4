// pow(tensor, scalar) on CUDA: which exact form an exponent selects (PyTorch's special exponents:
// x*x, sqrt, 1/x, ...) and the value of each form, host and device, so that the CPU tests can
// hold it to kernels/cpu/elementwise_binary.cpp, the spec (vec_binary, pow_scalar_half_like).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "tensor/float_formats.h"  // Half, BFloat16
#include "tensor/host_device.h"

namespace fabric::cuda {

// bf16_cube/bf16_inv_square round x*x to bfloat16 first, as torch 1.13's bfloat16 kernel does.
// general_via_double is libm's pow for float16/bfloat16: computed in double and rounded to float,
// it is the correctly rounded float value the CPU's powf gives (the device's powf is a few ulp
// off, which float16 can round either way).
enum class PowForm : uint8_t {
  general,
  square,
  cube,
  sqrt,
  rsqrt,
  reciprocal,
  inv_square,
  bf16_cube,
  bf16_inv_square,
  general_via_double
};

// float32/float64 tensors: the form of exponent e, judged in the compute type (the CPU's rule).
inline PowForm pow_form(double e) {
  if (e == 2.0) return PowForm::square;
  if (e == 3.0) return PowForm::cube;
  if (e == 0.5) return PowForm::sqrt;
  if (e == -0.5) return PowForm::rsqrt;
  if (e == -1.0) return PowForm::reciprocal;
  if (e == -2.0) return PowForm::inv_square;
  return PowForm::general;
}

// float16/bfloat16 tensors, as the CPU's pow_scalar_half_like (torch 1.13): the exponent rounds
// to the dtype first; float16 takes pow for all but x*x (pow(-0, 0.5) = +0 and pow(-inf, 0.5) =
// +inf, unlike sqrt); bfloat16 keeps the float shortcuts for 0.5, -0.5 and -1 (judged on the
// unrounded exponent) and rounds x*x to bfloat16 for 3 and -2. *exponent becomes the exponent the
// pow forms use.
template <typename T>
PowForm half_like_pow_form(float e, float* exponent) {
  static_assert(std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>);
  if constexpr (std::is_same_v<T, BFloat16>) {
    if (e == 0.5f || e == -0.5f || e == -1.0f) return pow_form(e);
  }
  const float et = static_cast<float>(T(e));
  *exponent = et;
  if (et == 2.0f) return PowForm::square;
  if constexpr (std::is_same_v<T, BFloat16>) {
    if (et == 3.0f) return PowForm::bf16_cube;
    if (et == -2.0f) return PowForm::bf16_inv_square;
  }
  return PowForm::general_via_double;
}

// a to the power b in the form `form` (float32 math; the result is then rounded to the dtype).
FABRIC_HD_INLINE float pow_value(PowForm form, float a, float b) {
  switch (form) {
    case PowForm::square:
      return a * a;
    case PowForm::cube:
      return a * a * a;
    case PowForm::sqrt:
      return sqrtf(a);
    case PowForm::rsqrt:
      return 1.0f / sqrtf(a);
    case PowForm::reciprocal:
      return 1.0f / a;
    case PowForm::inv_square:
      return 1.0f / (a * a);
    case PowForm::bf16_cube:
      return static_cast<float>(BFloat16(a * a)) * a;
    case PowForm::bf16_inv_square:
      return 1.0f / static_cast<float>(BFloat16(a * a));
    case PowForm::general_via_double:
      return static_cast<float>(::pow(static_cast<double>(a), static_cast<double>(b)));
    case PowForm::general:
      break;
  }
  return powf(a, b);
}

FABRIC_HD_INLINE double pow_value(PowForm form, double a, double b) {
  switch (form) {
    case PowForm::square:
      return a * a;
    case PowForm::cube:
      return a * a * a;
    case PowForm::sqrt:
      return ::sqrt(a);
    case PowForm::rsqrt:
      return 1.0 / ::sqrt(a);
    case PowForm::reciprocal:
      return 1.0 / a;
    case PowForm::inv_square:
      return 1.0 / (a * a);
    default:  // the bfloat16 forms are for float math only
      break;
  }
  return ::pow(a, b);
}

}  // namespace fabric::cuda
