// CPU kernels of the extra unary math (tensor/math_extra_kernels.h), each computing as torch
// 1.13's CPU kernel does, element by element, so that float32 and float64 give its bits:
//   exp2, sinc: cpu_kernel (libm's exp2 / sin for every element);
//   logit: cpu_kernel_vec (SLEEF's log on whole vector blocks of a contiguous row, libm's on the
//     rest), reduced precision rounding after each operation as Vectorized<BFloat16> does;
//   erfc, lgamma: vml (SLEEF's erfc_u15 / lgamma_u1 on every element);
//   digamma, polygamma, i0, i1: ATen's scalar Cephes functions (torch_gamma_math.h,
//     torch_bessel_math.h).
// bfloat16 computes in float and rounds once except where noted; float16 is refused where torch
// has no kernel for it (the op layer checks first).
#include <cmath>
#include <limits>

#include "kernels/cpu/sleef_scalar_dp.h"
#include "kernels/cpu/sleef_scalar_sp.h"
#include "kernels/cpu/torch_bessel_math.h"
#include "kernels/cpu/torch_gamma_math.h"
#include "kernels/cpu/torch_loop_partition.h"
#include "tensor/error.h"
#include "tensor/math_extra_kernels.h"

#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu {
namespace {

using ew::opmath_t;
using torch_loop::map1;
using torch_loop::round_to;
using torch_loop::vec_or_scalar1;

// SLEEF's function of the opmath type (float for float/bf16/fp16, double for double).
inline float sleef_log(float x) { return sleef_scalar::sp::logf_u10(x); }
inline double sleef_log(double x) { return sleef_scalar::dp::logd_u10(x); }
inline float sleef_erfc(float x) { return sleef_scalar::sp::erfcf_u15(x); }
inline double sleef_erfc(double x) { return sleef_scalar::dp::erfcd_u15(x); }
inline float sleef_lgamma(float x) { return sleef_scalar::sp::lgammaf_u1(x); }
inline double sleef_lgamma(double x) { return sleef_scalar::dp::lgammad_u1(x); }

// torch's logit: log(x / (1 - x)) with x first clamped to [eps, 1 - eps] when eps >= 0; eps and
// 1 - eps are computed in T, as scalar_t values. The vector form clamps with vminps/vmaxps (NaN
// passes) and lets x = 1 reach log(inf); the scalar one returns inf at 1 itself.
template <typename T>
void logit(const StridedLoop& loop, double eps_arg) {
  using M = opmath_t<T>;
  const bool clamp = eps_arg >= 0;
  const M lo = static_cast<M>(T(eps_arg));
  const M hi = round_to<T>(M(1) - lo);
  vec_or_scalar1<T>(
      loop,
      [&](M x) {
        if (clamp) {  // vmaxps(lo, x) then vminps(hi, .): each gives its second operand for NaN
          x = lo > x ? lo : x;
          x = hi < x ? hi : x;
        }
        return round_to<T>(sleef_log(round_to<T>(x / round_to<T>(M(1) - x))));
      },
      [&](M x) {
        if (clamp) x = x < lo ? lo : (x > hi ? hi : x);
        if (x == M(1)) return std::numeric_limits<M>::infinity();
        return round_to<T>(std::log(round_to<T>(x / round_to<T>(M(1) - x))));
      });
}

template <typename T>
void unary_typed(ExtraUnaryOp op, const StridedLoop& loop, const ExtraUnaryArgs& args) {
  using M = opmath_t<T>;
  namespace tm = torch_math;
  switch (op) {
    case ExtraUnaryOp::exp2:
      return map1<T>(loop, [](M x) { return std::exp2(x); });
    case ExtraUnaryOp::sinc:
      // pi and pi x are scalar_t values (bfloat16 rounds them, and sin's result, as c10 does)
      return map1<T>(loop, [](M x) {
        if (x == M(0)) return M(1);
        const M product = round_to<T>(round_to<T>(static_cast<M>(tm::kPi)) * x);
        return round_to<T>(std::sin(product)) / product;
      });
    case ExtraUnaryOp::logit:
      return logit<T>(loop, args.eps);
    case ExtraUnaryOp::erfc:
      return map1<T>(loop, [](M x) { return sleef_erfc(x); });
    case ExtraUnaryOp::lgamma:
      return map1<T>(loop, [](M x) { return sleef_lgamma(x); });
    case ExtraUnaryOp::digamma:
      return map1<T>(loop, [](M x) { return tm::digamma(x); });
    case ExtraUnaryOp::polygamma: {
      const int64_t n = args.n;
      if (n == 0) return map1<T>(loop, [](M x) { return tm::digamma(x); });
      if (n == 1) return map1<T>(loop, [](M x) { return tm::trigamma(x); });
      if constexpr (std::is_same_v<T, BFloat16>) {
        return map1<T>(loop, [n](M x) {
          return tm::polygamma_bf16(n, x, [](float v) { return round_to<BFloat16>(v); });
        });
      }
      return map1<T>(loop, [n](M x) { return tm::polygamma(n, x); });
    }
    case ExtraUnaryOp::i0:
      return map1<T>(loop, [](M x) { return tm::i0(x); });
    case ExtraUnaryOp::i1:
      return map1<T>(loop, [](M x) { return tm::i1(x); });
  }
}

void extra_unary_kernel(ExtraUnaryOp op, const StridedLoop& loop, const ExtraUnaryArgs& args) {
  switch (loop.ops[0].dtype) {
    case DType::float64:
      return unary_typed<double>(op, loop, args);
    case DType::float32:
      return unary_typed<float>(op, loop, args);
    case DType::bfloat16:
      return unary_typed<BFloat16>(op, loop, args);
    case DType::float16:
      return unary_typed<Half>(op, loop, args);
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("extra unary kernel: op ", static_cast<int>(op),
                                         " needs a floating dtype, got ",
                                         dtype_name(loop.ops[0].dtype)));
}

// signbit: std::signbit for floats (-0.0 and -NaN are negative), a < 0 for signed integers.
void signbit_kernel(const StridedLoop& loop) {
  visit_dtype(loop.ops[1].dtype, [&](auto tag) {
    using T = decltype(tag);
    for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
      for (int64_t i = 0; i < n; ++i) {
        const T a = ew::load_elem<T>(p[1] + i * s[1]);
        bool neg;
        if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, uint8_t>) {
          neg = false;
        } else if constexpr (std::is_integral_v<T>) {
          neg = a < 0;
        } else if constexpr (std::is_same_v<T, double>) {
          neg = std::signbit(a);
        } else {
          neg = std::signbit(static_cast<float>(a));
        }
        ew::store_elem<bool>(p[0] + i * s[0], neg);
      }
    });
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(extra_unary_stub, cpu, &cpu::extra_unary_kernel);
FABRIC_REGISTER_KERNEL(signbit_stub, cpu, &cpu::signbit_kernel);
}  // namespace fabric
