// CPU kernels of the extra binary math (tensor/math_extra_kernels.h), each computing as torch
// 1.13's CPU kernel does, element by element:
//   hypot, logaddexp, logaddexp2, logit_backward: cpu_kernel_vec, SLEEF (hypot_u05, exp/log,
//     pow/log2) on the whole vector blocks of a contiguous row and libm on every other element
//     (torch_loop_partition.h), bfloat16 rounding after each operation where torch's
//     Vectorized<BFloat16> and c10::BFloat16 arithmetic do;
//   xlogy, xlog1py, heaviside, nextafter (bfloat16: c10's bit stepping): cpu_kernel, libm;
//   floor_divide: c10's div_floor_floating (exact but for its roundings) and torch's integer
//     floor division.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/cpu/sleef_scalar_dp.h"
#include "kernels/cpu/sleef_scalar_sp.h"
#include "kernels/cpu/torch_loop_partition.h"
#include "tensor/error.h"
#include "tensor/math_extra_kernels.h"

#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu {
namespace {

using ew::opmath_t;
using torch_loop::map2;
using torch_loop::round_to;
using torch_loop::vec_or_scalar2;

inline float sleef_exp(float x) { return sleef_scalar::sp::expf_u10(x); }
inline double sleef_exp(double x) { return sleef_scalar::dp::expd_u10(x); }
inline float sleef_log(float x) { return sleef_scalar::sp::logf_u10(x); }
inline double sleef_log(double x) { return sleef_scalar::dp::logd_u10(x); }
inline float sleef_log2(float x) { return sleef_scalar::sp::log2f_u10(x); }
inline double sleef_log2(double x) { return sleef_scalar::dp::log2d_u10(x); }
inline float sleef_pow2(float y) { return sleef_scalar::sp::pow2f_u10(y); }
inline double sleef_pow2(double y) { return sleef_scalar::dp::pow2d_u10(y); }
inline float sleef_fmod(float a, float b) { return sleef_scalar::sp::fmodf(a, b); }
inline double sleef_fmod(double a, double b) { return sleef_scalar::dp::fmodd(a, b); }
inline float sleef_hypot(float a, float b) { return sleef_scalar::sp::hypotf_u05(a, b); }
inline double sleef_hypot(double a, double b) { return sleef_scalar::dp::hypotd_u05(a, b); }

// c10::BFloat16's math functions return BFloat16 (a rounding); c10::Half has none of its own, so
// Half arguments reach the float function and its result stays float.
template <typename T, typename M>
M round_bf16(M x) {
  return std::is_same_v<T, BFloat16> ? round_to<T>(x) : x;
}

// at::vec::maximum: NaN (all bits set) when either is NaN, else vmaxps (b on ties).
template <typename M>
M vec_maximum(M a, M b) {
  if (std::isnan(a) || std::isnan(b)) {
    if constexpr (std::is_same_v<M, float>) return sleef_scalar::from_bits(0xFFFFFFFFu);
    if constexpr (std::is_same_v<M, double>) return sleef_scalar::from_bits(~uint64_t{0});
  }
  return a > b ? a : b;
}

// Whether x is a signaling NaN (its quiet bit clear).
inline bool is_signaling(float x) {
  return std::isnan(x) && !(sleef_scalar::bits(x) & 0x00400000u);
}
inline bool is_signaling(double x) {
  return std::isnan(x) && !(sleef_scalar::bits(x) & 0x0008000000000000ull);
}

// torch.fmax / fmin. float and double call glibc's fmax / fmin, written out here (GCC would
// otherwise inline vmaxss, which takes b on ties of +0 and -0): ties take a, a signaling NaN gives
// NaN. The reduced types take b on those ties, as torch 1.13 does for them.
template <typename T, typename M>
M fmax_value(M a, M b) {
  if constexpr (std::is_same_v<T, M>) {
    if (std::isgreaterequal(a, b)) return a;
    if (std::isless(a, b)) return b;
    if (is_signaling(a) || is_signaling(b)) return a + b;
    return std::isnan(b) ? a : b;
  } else {
    return std::isnan(a) ? b : std::isnan(b) ? a : (a > b ? a : b);
  }
}
template <typename T, typename M>
M fmin_value(M a, M b) {
  if constexpr (std::is_same_v<T, M>) {
    if (std::islessequal(a, b)) return a;
    if (std::isgreater(a, b)) return b;
    if (is_signaling(a) || is_signaling(b)) return a + b;
    return std::isnan(b) ? a : b;
  } else {
    return std::isnan(a) ? b : std::isnan(b) ? a : (a < b ? a : b);
  }
}

// torch.maximum / minimum (clamp_min / clamp_max with a tensor bound): NaN when either is NaN. The
// vector form is vmaxps / vminps (b on ties of +0 and -0, all bits set for NaN; float16's generic
// Vectorized keeps a NaN a and compares otherwise), the scalar one std::max / std::min (a on ties).
template <typename T, bool vec, bool is_max, typename M>
M extremum(M a, M b) {
  constexpr bool generic_half = std::is_same_v<T, Half>;
  if constexpr (vec && generic_half) {
    if (std::isnan(a)) return a;
    return is_max ? (a > b ? a : b) : (a < b ? a : b);
  }
  if (std::isnan(a) || std::isnan(b)) {
    if constexpr (vec && std::is_same_v<M, float>) return sleef_scalar::from_bits(0xFFFFFFFFu);
    if constexpr (vec && std::is_same_v<M, double>) return sleef_scalar::from_bits(~uint64_t{0});
    return std::numeric_limits<M>::quiet_NaN();
  }
  if constexpr (vec) return is_max ? (a > b ? a : b) : (a < b ? a : b);
  return is_max ? (a < b ? b : a) : (b < a ? b : a);
}

// torch's logaddexp / logaddexp2: max(a, b) + log(1 + exp(-|a - b|)) (base 2: log2 and pow(2, .)),
// a itself when a == b is infinite. `vec`: the Vectorized form (SLEEF, at::vec::maximum, a blend);
// otherwise the scalar lambda's (libm, std::max). bfloat16 computes in float, rounded once.
template <bool base2, bool vec, typename M>
M log_add_exp(M a, M b) {
  const bool same_inf = vec ? (a == b && std::fabs(a) == std::numeric_limits<M>::infinity())
                            : (std::isinf(a) && a == b);
  if (same_inf) return a;
  const M m = vec ? vec_maximum(a, b) : std::max(a, b);
  const M d = -std::fabs(a - b);
  if constexpr (base2) {
    return m + (vec ? sleef_log2(M(1) + sleef_pow2(d)) : std::log2(M(1) + std::pow(M(2), d)));
  } else {
    return m + (vec ? sleef_log(M(1) + sleef_exp(d)) : std::log(M(1) + std::exp(d)));
  }
}

// torch's logit_backward: grad / (x (1 - x)) inside [lo, hi] (without eps: [0, 1], NaN outside),
// 0 outside the eps clamp; the scalar lambda's x = 0 or 1 gives grad * inf, the vector one divides.
template <typename T, bool vec, typename M>
M logit_grad(M dy, M x, bool has_eps, M lo, M hi) {
  const M quiet = std::numeric_limits<M>::quiet_NaN();
  const M div = round_to<T>(dy / round_to<T>(x * round_to<T>(M(1) - x)));
  if constexpr (vec) {
    if (!has_eps) return x >= M(0) && x <= M(1) ? div : quiet;
    return x >= lo && x <= hi ? div : M(0);
  } else {
    if (!has_eps && (x < M(0) || x > M(1))) return quiet;
    if (has_eps && (x < lo || x > hi)) return M(0);
    if (x == M(0) || x == M(1)) return round_to<T>(dy * std::numeric_limits<M>::infinity());
    return div;
  }
}

// c10::div_floor_floating's scalar form on c10::Half: fmod and the quotient in float (Half has no
// math of its own), only the floor and its correction stored as Half.
inline float div_floor_half_scalar(float a, float b) {
  if (b == 0) return a / b;
  const float mod = std::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0 && (b < 0) != (mod < 0)) div -= 1.0f;
  if (div == 0) return std::copysign(0.0f, a / b);
  float floordiv = round_to<Half>(std::floor(div));
  if (div - floordiv > 0.5f) floordiv = round_to<Half>(floordiv + 1.0f);
  return floordiv;
}

// c10::div_floor_floating (and its Vectorized twin, whose fmod is SLEEF's: NaN where the quotient
// passes the dtype's largest value, libm's fmod being exact there): exact but for the roundings of
// its operations (each a T operation for bf16/fp16, as torch computes it in scalar_t).
template <typename T, bool vec, typename M>
M div_floor_floating(M a, M b) {
  if constexpr (!vec && std::is_same_v<T, Half>) return div_floor_half_scalar(a, b);
  if (b == 0) return round_to<T>(a / b);
  const M mod = vec && !std::is_same_v<T, Half> ? sleef_fmod(a, b) : std::fmod(a, b);
  M div = round_to<T>(round_to<T>(a - mod) / b);
  if (mod != 0 && (b < 0) != (mod < 0)) div = round_to<T>(div - M(1));
  if (div == 0) return std::copysign(M(0), round_to<T>(a / b));
  M floordiv = std::floor(div);
  if (round_to<T>(div - floordiv) > M(0.5)) floordiv = round_to<T>(floordiv + M(1));
  return floordiv;
}

// Python's // on integers (b != 0, checked by the op); INT_MIN // -1 wraps.
template <typename T>
T div_floor_integer(T a, T b) {
  if constexpr (std::is_signed_v<T>) {
    if (b == T(-1)) return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(a));
    if ((a < 0) != (b < 0)) {
      const auto quot = a / b;
      const auto rem = a % b;
      return static_cast<T>(rem ? quot - 1 : quot);
    }
  }
  return static_cast<T>(a / b);
}

// c10's nextafter for bfloat16 (musl's algorithm on the 16 bits).
BFloat16 nextafter_bf16(BFloat16 from, BFloat16 to) {
  const float f = static_cast<float>(from), t = static_cast<float>(to);
  if (std::isnan(f) || std::isnan(t)) return BFloat16(f + t);
  if (from.x == to.x) return from;
  constexpr uint16_t kSign = 0x8000;
  const uint16_t abs_from = from.x & ~kSign, abs_to = to.x & ~kSign;
  if (abs_from == 0) {
    if (abs_to == 0) return to;
    return BFloat16::from_bits(static_cast<uint16_t>((to.x & kSign) | 1));
  }
  uint16_t bits = from.x;
  if (abs_from > abs_to || ((from.x ^ to.x) & kSign)) {
    --bits;
  } else {
    ++bits;
  }
  return BFloat16::from_bits(bits);
}

template <typename T>
void floating_typed(ExtraBinaryOp op, const StridedLoop& loop, const ExtraBinaryArgs& args) {
  using M = opmath_t<T>;
  switch (op) {
    case ExtraBinaryOp::hypot:
      return vec_or_scalar2<T>(
          loop, [](M a, M b) { return sleef_hypot(a, b); },
          [](M a, M b) { return std::hypot(a, b); });
    case ExtraBinaryOp::logaddexp:
      return vec_or_scalar2<T>(loop, log_add_exp<false, true, M>, log_add_exp<false, false, M>);
    case ExtraBinaryOp::logaddexp2:
      return vec_or_scalar2<T>(loop, log_add_exp<true, true, M>, log_add_exp<true, false, M>);
    case ExtraBinaryOp::xlogy:
      return map2<T>(loop, [](M x, M y) {
        if (std::isnan(y)) return std::numeric_limits<M>::quiet_NaN();
        if (x == 0) return M(0);
        return x * round_bf16<T>(std::log(y));
      });
    case ExtraBinaryOp::xlog1py:
      return map2<T>(loop, [](M x, M y) {
        if (std::isnan(y)) return std::numeric_limits<M>::quiet_NaN();
        if (x == 0) return M(0);
        return x * round_bf16<T>(std::log1p(y));
      });
    case ExtraBinaryOp::nextafter:
      if constexpr (std::is_same_v<T, BFloat16>) {
        for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
          for (int64_t i = 0; i < n; ++i)
            ew::store_elem<BFloat16>(p[0] + i * s[0],
                                     nextafter_bf16(ew::load_elem<BFloat16>(p[1] + i * s[1]),
                                                    ew::load_elem<BFloat16>(p[2] + i * s[2])));
        });
        return;
      } else {
        return map2<T>(loop, [](M a, M b) { return std::nextafter(a, b); });
      }
    case ExtraBinaryOp::copysign:
      return map2<T>(loop, [](M a, M b) { return std::copysign(a, b); });
    case ExtraBinaryOp::floor_divide:
      // (float16's Vectorized is torch's generic one: libm's fmod, a Half rounding per operation)
      return vec_or_scalar2<T>(loop, div_floor_floating<T, true, M>,
                               div_floor_floating<T, false, M>);
    case ExtraBinaryOp::heaviside:
      return map2<T>(loop, [](M a, M b) { return a == 0 ? b : static_cast<M>(a > 0); });
    case ExtraBinaryOp::fmax:
      return map2<T>(loop, fmax_value<T, M>);
    case ExtraBinaryOp::fmin:
      return map2<T>(loop, fmin_value<T, M>);
    case ExtraBinaryOp::clamp_min:
      return vec_or_scalar2<T>(loop, extremum<T, true, true, M>, extremum<T, false, true, M>);
    case ExtraBinaryOp::clamp_max:
      return vec_or_scalar2<T>(loop, extremum<T, true, false, M>, extremum<T, false, false, M>);
    case ExtraBinaryOp::logit_backward: {
      const bool has_eps = args.eps >= 0;
      const M lo = static_cast<M>(T(args.eps));
      const M hi = round_to<T>(M(1) - lo);
      return vec_or_scalar2<T>(
          loop, [&](M dy, M x) { return logit_grad<T, true>(dy, x, has_eps, lo, hi); },
          [&](M dy, M x) { return logit_grad<T, false>(dy, x, has_eps, lo, hi); });
    }
  }
}

template <typename T>
void integral_typed(ExtraBinaryOp op, const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i) {
      const T a = ew::load_elem<T>(p[1] + i * s[1]);
      const T b = ew::load_elem<T>(p[2] + i * s[2]);
      T r{};
      switch (op) {
        case ExtraBinaryOp::floor_divide:
          if constexpr (!std::is_same_v<T, bool>) r = div_floor_integer(a, b);
          break;
        case ExtraBinaryOp::fmax:
        case ExtraBinaryOp::clamp_min:
          r = a < b ? b : a;  // bool: a || b
          break;
        case ExtraBinaryOp::fmin:
        case ExtraBinaryOp::clamp_max:
          r = b < a ? b : a;  // bool: a && b
          break;
        default:  // heaviside
          r = a == 0 ? b : static_cast<T>(a > 0);
      }
      ew::store_elem<T>(p[0] + i * s[0], r);
    }
  });
}

void extra_binary_kernel(ExtraBinaryOp op, const StridedLoop& loop, const ExtraBinaryArgs& args) {
  const DType dt = loop.ops[0].dtype;
  const bool any_dtype_op = op == ExtraBinaryOp::heaviside || op == ExtraBinaryOp::fmax ||
                            op == ExtraBinaryOp::fmin || op == ExtraBinaryOp::clamp_min ||
                            op == ExtraBinaryOp::clamp_max;
  const bool integral_op = op == ExtraBinaryOp::floor_divide || any_dtype_op;
  switch (dt) {
    case DType::float64:
      return floating_typed<double>(op, loop, args);
    case DType::float32:
      return floating_typed<float>(op, loop, args);
    case DType::bfloat16:
      return floating_typed<BFloat16>(op, loop, args);
    case DType::float16:
      return floating_typed<Half>(op, loop, args);
    case DType::int64:
      if (integral_op) return integral_typed<int64_t>(op, loop);
      break;
    case DType::int32:
      if (integral_op) return integral_typed<int32_t>(op, loop);
      break;
    case DType::int8:
      if (integral_op) return integral_typed<int8_t>(op, loop);
      break;
    case DType::uint8:
      if (integral_op) return integral_typed<uint8_t>(op, loop);
      break;
    case DType::bool_:
      if (any_dtype_op) return integral_typed<bool>(op, loop);
      break;
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("extra binary kernel: op ", static_cast<int>(op),
                                         " has no CPU kernel for ", dtype_name(dt)));
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(extra_binary_stub, cpu, &cpu::extra_binary_kernel);
}  // namespace fabric
