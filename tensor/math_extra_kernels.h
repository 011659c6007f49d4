// Dispatch stubs for the elementwise math beyond math_kernels.h (tensor/math_extra.h,
// tensor/special_functions.h, tensor/bitwise.h): their ops live in the tensor layer, their CPU
// kernels in kernels/cpu/math_extra_*.cpp and kernels/cpu/bitwise.cpp. Kept apart so adding them
// rebuilt nothing else. No CUDA kernels: the ops compute a CUDA tensor on the host and copy back.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/strided_loop.h"

namespace fabric {

// out = f(a), loop (out, a) of one floating dtype (float64/32, bfloat16, float16); bf16/fp16
// compute in float. Each follows torch 1.13's CPU kernel for it: which elements go through the
// SLEEF function its Vectorized<T> calls and which through libm (see math_extra_unary.cpp).
enum class ExtraUnaryOp : uint8_t {
  exp2,       // libm's exp2 (a scalar kernel in torch)
  sinc,       // sin(pi x) / (pi x), 1 at 0
  logit,      // log(x / (1 - x)), x clamped to [eps, 1 - eps] when eps >= 0
  erfc,       // SLEEF erfc_u15 everywhere
  lgamma,     // SLEEF lgamma_u1 everywhere
  digamma,    // ATen's calc_digamma
  polygamma,  // n >= 1: ATen's trigamma / calc_polygamma
  i0,         // ATen's calc_i0
  i1,         // ATen's calc_i1 (i0's derivative)
};
struct ExtraUnaryArgs {
  int64_t n = 0;      // polygamma's order
  double eps = -1.0;  // logit's eps; < 0: none
};
using ExtraUnaryFn = void (*)(ExtraUnaryOp op, const StridedLoop& loop, const ExtraUnaryArgs& args);
FABRIC_DECLARE_STUB(extra_unary_stub, ExtraUnaryFn);

// out = f(a, b), loop (out, a, b) of one dtype (the op layer promotes and casts).
enum class ExtraBinaryOp : uint8_t {
  hypot,           // floating
  logaddexp,       // floating
  logaddexp2,      // floating
  xlogy,           // floating: NaN if y is NaN, 0 where x == 0, else x log y
  xlog1py,         // floating: as xlogy with log1p
  nextafter,       // floating
  copysign,        // floating: |a| with b's sign bit
  floor_divide,    // floating or integer (the op refuses integer division by zero first)
  heaviside,       // any dtype: b where a == 0, else a > 0
  fmax,            // any dtype: the larger, a NaN ignored (torch.fmax)
  fmin,            // any dtype: the smaller, a NaN ignored (torch.fmin)
  clamp_min,       // any dtype: torch.maximum (NaN propagates), as clamp_min(Tensor, Tensor)
  clamp_max,       // any dtype: torch.minimum, as clamp_max(Tensor, Tensor)
  logit_backward,  // floating: (grad, x) -> grad / (x (1 - x)) as torch's logit_backward
};
struct ExtraBinaryArgs {
  double eps = -1.0;  // logit_backward's eps; < 0: none
};
using ExtraBinaryFn = void (*)(ExtraBinaryOp op, const StridedLoop& loop,
                               const ExtraBinaryArgs& args);
FABRIC_DECLARE_STUB(extra_binary_stub, ExtraBinaryFn);

// Integer and bool ops (tensor/bitwise.h): out = f(a, b) over one integral or bool dtype; shifts,
// gcd and lcm take integers only.
enum class BitwiseOp : uint8_t { bit_and, bit_or, bit_xor, shift_left, shift_right, gcd, lcm };
using BitwiseFn = void (*)(BitwiseOp op, const StridedLoop& loop);
FABRIC_DECLARE_STUB(bitwise_stub, BitwiseFn);

// out = ~a (bool: !a), loop (out, a) of one integral or bool dtype.
using BitwiseNotFn = void (*)(const StridedLoop& loop);
FABRIC_DECLARE_STUB(bitwise_not_stub, BitwiseNotFn);

// out (bool) = the sign bit of a (any dtype; unsigned never), loop (out, a).
using SignbitFn = void (*)(const StridedLoop& loop);
FABRIC_DECLARE_STUB(signbit_stub, SignbitFn);

}  // namespace fabric
