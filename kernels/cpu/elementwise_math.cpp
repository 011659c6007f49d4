// CPU kernels for the math family of math_kernels.h: the trigonometric, hyperbolic and logarithm
// ops and erfinv (float64 through libm, bf16/fp16 through float, as torch's CPU kernels), and
// atan2/fmod/remainder (integers exactly). float32, bfloat16 and float64 tan, asin, acos, atan,
// log2, log10, sinh and cosh compute as torch 1.13's do, with SLEEF's functions (vec_sleef_*.h,
// vec_sleef_f64_*.h): their bits.
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/elementwise_common.h"
#include "kernels/cpu/elementwise_f64_sleef.h"
#include "kernels/cpu/erfinv.h"
#include "kernels/cpu/vec_sleef_f64_hyp.h"
#include "kernels/cpu/vec_sleef_f64_inverse_trig.h"
#include "kernels/cpu/vec_sleef_f64_log.h"
#include "kernels/cpu/vec_sleef_f64_tan.h"
#include "kernels/cpu/vec_sleef_hyp.h"
#include "kernels/cpu/vec_sleef_log2.h"
#include "kernels/cpu/vec_sleef_trig.h"
#include "tensor/math_kernels.h"

namespace fabric::cpu {
namespace {

using namespace ew;

template <typename M>
M unary_value(MathUnaryOp op, M x) {
  switch (op) {
    case MathUnaryOp::tan:
      return std::tan(x);
    case MathUnaryOp::asin:
      return std::asin(x);
    case MathUnaryOp::acos:
      return std::acos(x);
    case MathUnaryOp::atan:
      return std::atan(x);
    case MathUnaryOp::sinh:
      return std::sinh(x);
    case MathUnaryOp::cosh:
      return std::cosh(x);
    case MathUnaryOp::asinh:
      return std::asinh(x);
    case MathUnaryOp::acosh:
      return std::acosh(x);
    case MathUnaryOp::atanh:
      return std::atanh(x);
    case MathUnaryOp::log2:
      return std::log2(x);
    case MathUnaryOp::log10:
      return std::log10(x);
    case MathUnaryOp::erfinv:
      return erfinv_value(x);
  }
  return x;
}

// One switch per row, not per element, so the element loop is a plain call the compiler can keep
// tight.
template <typename T, typename F>
void map_rows(const StridedLoop& loop, const F& f) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i)
      store_elem<T>(p[0] + i * s[0], T(f(static_cast<opmath_t<T>>(load_elem<T>(p[1] + i * s[1])))));
  });
}

template <typename T>
void unary_typed(MathUnaryOp op, const StridedLoop& loop) {
  using M = opmath_t<T>;
  switch (op) {
#define FABRIC_MATH_CASE(name) \
  case MathUnaryOp::name:      \
    return map_rows<T>(loop, [](M x) { return unary_value(MathUnaryOp::name, x); });
    FABRIC_MATH_CASE(tan)
    FABRIC_MATH_CASE(asin)
    FABRIC_MATH_CASE(acos)
    FABRIC_MATH_CASE(atan)
    FABRIC_MATH_CASE(sinh)
    FABRIC_MATH_CASE(cosh)
    FABRIC_MATH_CASE(asinh)
    FABRIC_MATH_CASE(acosh)
    FABRIC_MATH_CASE(atanh)
    FABRIC_MATH_CASE(log2)
    FABRIC_MATH_CASE(log10)
    FABRIC_MATH_CASE(erfinv)
#undef FABRIC_MATH_CASE
  }
}

// torch's sinh / cosh (cpu_kernel_vec): a contiguous row (or one broadcast input) runs whole
// blocks of two vectors (16 floats, 32 bfloat16) through SLEEF, the rest through libm's float
// function, and any other layout all through libm.
template <typename T, typename V, typename S>
void sleef_blocks_then_libm(const StridedLoop& loop, const V& vf, const S& sf) {
  constexpr int64_t sz = sizeof(T), block = 2 * (32 / sz);
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    int64_t i = 0;
    if (s[0] == sz && (s[1] == sz || s[1] == 0)) {
      T* out = reinterpret_cast<T*>(p[0]);
      const T* in = reinterpret_cast<const T*>(p[1]);
      const int64_t m = n - n % block;
      if (s[1] == sz) {
        for (; i < m; i += 16) vec::store(out + i, vf(vec::load(in + i)));
      } else if (m > 0) {
        const __m512 v = vf(vec::splat(static_cast<float>(in[0])));
        for (; i < m; i += 16) vec::store(out + i, v);
      }
    }
    for (; i < n; ++i)
      store_elem<T>(p[0] + i * s[0], T(sf(static_cast<float>(load_elem<T>(p[1] + i * s[1])))));
  });
}

// float32 / bfloat16 ops with torch's SLEEF bits; false: not one of them.
template <typename T>
bool sleef_unary(MathUnaryOp op, const StridedLoop& loop) {
  // vml ops: every element, tail and strided ones too, through the vector function
  const auto vml = [&](const auto& f) { unary_f32_loop<T>(loop, f, true); };
  switch (op) {
    case MathUnaryOp::tan:
      vml([](__m512 x) { return vec::tanf_u10_ps(x); });
      return true;
    case MathUnaryOp::asin:
      vml([](__m512 x) { return vec::asinf_u10_ps(x); });
      return true;
    case MathUnaryOp::acos:
      vml([](__m512 x) { return vec::acosf_u10_ps(x); });
      return true;
    case MathUnaryOp::atan:
      vml([](__m512 x) { return vec::atanf_u10_ps(x); });
      return true;
    case MathUnaryOp::log2:
      vml([](__m512 x) { return vec::log2f_u10_ps(x); });
      return true;
    case MathUnaryOp::log10:
      vml([](__m512 x) { return vec::log10f_u10_ps(x); });
      return true;
    case MathUnaryOp::sinh:
      sleef_blocks_then_libm<T>(
          loop, [](__m512 x) { return vec::sinhf_u10_ps(x); },
          [](float x) { return std::sinh(x); });
      return true;
    case MathUnaryOp::cosh:
      sleef_blocks_then_libm<T>(
          loop, [](__m512 x) { return vec::coshf_u10_ps(x); },
          [](float x) { return std::cosh(x); });
      return true;
    default:
      return false;
  }
}

// float64 ops with torch's SLEEF bits (Sleef_<op>d4_u10 in its Vectorized<double>); false: not one
// of them. tan ... log10 are vml ops (every element through SLEEF); sinh / cosh cpu_kernel_vec
// ones (whole blocks of 8 of a contiguous row through SLEEF, the rest through libm).
bool sleef_f64_unary(MathUnaryOp op, const StridedLoop& loop) {
  using vec::sleef64::VD;
  switch (op) {
    case MathUnaryOp::tan:
      f64_map_all(loop, [](VD x) { return vec::tan_u10_pd(x); });
      return true;
    case MathUnaryOp::asin:
      f64_map_all(loop, [](VD x) { return vec::asin_u10_pd(x); });
      return true;
    case MathUnaryOp::acos:
      f64_map_all(loop, [](VD x) { return vec::acos_u10_pd(x); });
      return true;
    case MathUnaryOp::atan:
      f64_map_all(loop, [](VD x) { return vec::atan_u10_pd(x); });
      return true;
    case MathUnaryOp::log2:
      f64_map_all(loop, [](VD x) { return vec::log2_u10_pd(x); });
      return true;
    case MathUnaryOp::log10:
      f64_map_all(loop, [](VD x) { return vec::log10_u10_pd(x); });
      return true;
    case MathUnaryOp::sinh:
      f64_blocks_then_scalar(
          loop, [](VD x) { return vec::sinh_u10_pd(x); }, [](double x) { return std::sinh(x); });
      return true;
    case MathUnaryOp::cosh:
      f64_blocks_then_scalar(
          loop, [](VD x) { return vec::cosh_u10_pd(x); }, [](double x) { return std::cosh(x); });
      return true;
    default:
      return false;
  }
}

void math_unary_kernel(MathUnaryOp op, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      if (sleef_unary<float>(op, loop)) return;
      return unary_typed<float>(op, loop);
    case DType::float64:
      if (sleef_f64_unary(op, loop)) return;
      return unary_typed<double>(op, loop);
    case DType::bfloat16:
      if (sleef_unary<BFloat16>(op, loop)) return;
      return unary_typed<BFloat16>(op, loop);
    case DType::float16:
      return unary_typed<Half>(op, loop);
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("math unary kernel: op ", static_cast<int>(op),
                                         " needs a floating dtype, got ", dtype_name(dt)));
}

// ---- binary -----------------------------------------------------------------------------------

// torch's remainder for floats: fmod, moved by one divisor when its sign differs from the
// divisor's (so -0.0 stays -0.0 and a zero divisor gives NaN).
template <typename M>
M float_remainder(M a, M b) {
  M r = std::fmod(a, b);
  if (r != 0 && ((b < 0) != (r < 0))) r += b;
  return r;
}

// Integer fmod/remainder; b != 0 (checked by the op). b == -1 is special-cased: INT_MIN % -1
// overflows in C++ though its value is 0.
template <typename T>
T int_fmod(T a, T b) {
  if constexpr (std::is_signed_v<T>)
    if (b == T(-1)) return T(0);
  return static_cast<T>(a % b);
}
template <typename T>
T int_remainder(T a, T b) {
  const T r = int_fmod(a, b);
  if constexpr (std::is_signed_v<T>)
    if (r != 0 && ((r < 0) != (b < 0))) return static_cast<T>(r + b);
  return r;
}

template <typename T, typename F>
void map2_rows(const StridedLoop& loop, const F& f) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i) {
      using M = opmath_t<T>;
      const M a = static_cast<M>(load_elem<T>(p[1] + i * s[1]));
      const M b = static_cast<M>(load_elem<T>(p[2] + i * s[2]));
      store_elem<T>(p[0] + i * s[0], T(f(a, b)));
    }
  });
}

template <typename T>
void binary_typed(MathBinaryOp op, const StridedLoop& loop) {
  using M = opmath_t<T>;
  if constexpr (std::is_floating_point_v<M>) {
    switch (op) {
      case MathBinaryOp::atan2:
        return map2_rows<T>(loop, [](M a, M b) { return std::atan2(a, b); });
      case MathBinaryOp::fmod:
        return map2_rows<T>(loop, [](M a, M b) { return std::fmod(a, b); });
      case MathBinaryOp::remainder:
        return map2_rows<T>(loop, [](M a, M b) { return float_remainder(a, b); });
    }
  } else {
    switch (op) {
      case MathBinaryOp::atan2:
        break;
      case MathBinaryOp::fmod:
        return map2_rows<T>(loop, [](T a, T b) { return int_fmod(a, b); });
      case MathBinaryOp::remainder:
        return map2_rows<T>(loop, [](T a, T b) { return int_remainder(a, b); });
    }
    throw DTypeError(::fabric::detail::cat("atan2 kernel: needs a floating dtype, got ",
                                           dtype_name(dtype_v<T>)));
  }
}

void math_binary_kernel(MathBinaryOp op, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      return binary_typed<float>(op, loop);
    case DType::float64:
      return binary_typed<double>(op, loop);
    case DType::bfloat16:
      return binary_typed<BFloat16>(op, loop);
    case DType::float16:
      return binary_typed<Half>(op, loop);
    case DType::int64:
      return binary_typed<int64_t>(op, loop);
    case DType::int32:
      return binary_typed<int32_t>(op, loop);
    case DType::int8:
      return binary_typed<int8_t>(op, loop);
    case DType::uint8:
      return binary_typed<uint8_t>(op, loop);
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("math binary kernel: op ", static_cast<int>(op),
                                         " has no CPU kernel for ", dtype_name(dt)));
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(math_unary_stub, cpu, &cpu::math_unary_kernel);
FABRIC_REGISTER_KERNEL(math_binary_stub, cpu, &cpu::math_binary_kernel);
}  // namespace fabric
