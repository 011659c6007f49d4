// CUDA kernels for unary elementwise ops and clamp, mirroring kernels/cpu/elementwise_unary.cpp:
// fp32/bf16/fp16 compute in fp32 (CUDA's accurate libdevice functions where the CPU uses its
// polynomials: a few ulp apart), float64 in double, neg/abs/relu also on integers, logical_not
// on bool. The NaN and signed-zero rules follow the CPU kernel exactly.
#include <cmath>
#include <limits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/elementwise_kernels.h"
#include "tensor/gelu_tanh_math.h"

namespace fabric::cuda {
namespace {

constexpr float kInvSqrt2f = 0.70710678118654752f;
constexpr double kInvSqrt2 = 0.70710678118654752440;

__device__ __forceinline__ float unary_f32(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::neg:
      return -x;
    case UnaryOp::abs:
      return fabsf(x);
    case UnaryOp::exp:
      return expf(x);
    case UnaryOp::log:
      return logf(x);
    case UnaryOp::sqrt:
      return sqrtf(x);
    case UnaryOp::rsqrt:
      return 1.0f / sqrtf(x);  // two roundings, as the CPU's 1/sqrt
    case UnaryOp::tanh:
      return tanhf(x);
    case UnaryOp::sigmoid:
      return 1.0f / (1.0f + expf(-x));
    // vmaxps(0, x) on the CPU: x when x is NaN or a zero of either sign, else max.
    case UnaryOp::relu:
      return x < 0.0f ? 0.0f : x;
    // The cancellation-free forms the CPU computes: x * (1 + erf(x/sqrt2))/2 through erfc, and
    // x/2 * (1 + tanh(u)) as x sigmoid(2u) from exp(-|2u|), the CPU's formulation itself
    // (tensor/gelu_tanh_math.h, in float).
    case UnaryOp::gelu_erf:
      return x * (0.5f * erfcf(-x * kInvSqrt2f));
    case UnaryOp::gelu_tanh:
      return gelu_tanh::forward(x);
    case UnaryOp::silu:
      return x / (1.0f + expf(-x));
    case UnaryOp::sin:
      return sinf(x);
    case UnaryOp::cos:
      return cosf(x);
    case UnaryOp::reciprocal:
      return 1.0f / x;
    case UnaryOp::log1p:
      return log1pf(x);
    case UnaryOp::expm1:
      return expm1f(x);
    case UnaryOp::erf:
      return erff(x);
    case UnaryOp::floor:
      return floorf(x);
    case UnaryOp::ceil:
      return ceilf(x);
    case UnaryOp::round:
      return rintf(x);  // half to even
    case UnaryOp::trunc:
      return truncf(x);
    case UnaryOp::sign:  // NaN and -0 give +0, as on the CPU
      return static_cast<float>((0.0f < x) - (x < 0.0f));
    case UnaryOp::logical_not:
      break;  // rejected on the host
  }
  return x;
}

__device__ __forceinline__ double unary_f64(UnaryOp op, double x) {
  switch (op) {
    case UnaryOp::neg:
      return -x;
    case UnaryOp::abs:
      return fabs(x);
    case UnaryOp::exp:
      return exp(x);
    case UnaryOp::log:
      return log(x);
    case UnaryOp::sqrt:
      return sqrt(x);
    case UnaryOp::rsqrt:
      return 1.0 / sqrt(x);
    case UnaryOp::tanh:
      return tanh(x);
    case UnaryOp::sigmoid:
      return 1.0 / (1.0 + exp(-x));
    case UnaryOp::relu:
      // torch's clamp_min(x, 0), as the CPU's float64 relu: NaN and -0.0 come back as they are.
      return x < 0.0 ? 0.0 : x;
    case UnaryOp::gelu_erf:
      return 0.5 * x * erfc(-x * kInvSqrt2);
    case UnaryOp::gelu_tanh:  // the CPU's float64 GELU, the same code
      return gelu_tanh::forward(x);
    case UnaryOp::silu:
      return x / (1.0 + exp(-x));
    case UnaryOp::sin:
      return sin(x);
    case UnaryOp::cos:
      return cos(x);
    case UnaryOp::reciprocal:
      return 1.0 / x;
    case UnaryOp::log1p:
      return log1p(x);
    case UnaryOp::expm1:
      return expm1(x);
    case UnaryOp::erf:
      return erf(x);
    case UnaryOp::floor:
      return floor(x);
    case UnaryOp::ceil:
      return ceil(x);
    case UnaryOp::round:
      return rint(x);
    case UnaryOp::trunc:
      return trunc(x);
    case UnaryOp::sign:
      return static_cast<double>((0.0 < x) - (x < 0.0));
    case UnaryOp::logical_not:
      break;
  }
  return x;
}

template <typename T>  // float, Half, BFloat16
struct FloatUnary {
  UnaryOp op;
  __device__ void operator()(char* (&p)[2]) const {
    store<T>(p[0], T(unary_f32(op, static_cast<float>(load<T>(p[1])))));
  }
};

struct DoubleUnary {
  UnaryOp op;
  __device__ void operator()(char* (&p)[2]) const {
    store<double>(p[0], unary_f64(op, load<double>(p[1])));
  }
};

// Two's complement wrap: -INT_MIN and abs(INT_MIN) stay INT_MIN, uint8 negates modulo 256.
template <typename T>
struct IntUnary {
  UnaryOp op;
  __device__ void operator()(char* (&p)[2]) const {
    using U = std::make_unsigned_t<T>;
    const T x = load<T>(p[1]);
    T r = x;
    switch (op) {
      case UnaryOp::neg:
        r = static_cast<T>(U(0) - static_cast<U>(x));
        break;
      case UnaryOp::abs:
        if constexpr (std::is_signed_v<T>)
          r = x < T(0) ? static_cast<T>(U(0) - static_cast<U>(x)) : x;
        break;
      case UnaryOp::relu:
        r = x > T(0) ? x : T(0);
        break;
      case UnaryOp::sign:
        r = static_cast<T>((T(0) < x) - (x < T(0)));
        break;
      default:  // floor/ceil/round/trunc: integers are whole already (others: refused on the host)
        break;
    }
    store<T>(p[0], r);
  }
};

struct LogicalNot {
  __device__ void operator()(char* (&p)[2]) const { store<bool>(p[0], load<uint8_t>(p[1]) == 0); }
};

void unary_kernel(UnaryOp op, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  FABRIC_CHECK(!is_fp8(dt), DTypeError, "unary kernel: no CUDA kernel for ", dtype_name(dt),
               " (fp8 values are converted, not computed on)");
  if (dt == DType::bool_) {
    FABRIC_CHECK(op == UnaryOp::logical_not, DTypeError,
                 "unary kernel: only logical_not runs on bool");
    return launch_loop<2>(loop, LogicalNot{});
  }
  FABRIC_CHECK(op != UnaryOp::logical_not, DTypeError,
               "unary kernel: logical_not runs on bool tensors only, got ", dtype_name(dt));
  if (is_integral(dt)) {
    FABRIC_CHECK(op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::relu ||
                     op == UnaryOp::floor || op == UnaryOp::ceil || op == UnaryOp::round ||
                     op == UnaryOp::trunc || op == UnaryOp::sign,
                 DTypeError,
                 "unary kernel: op ", static_cast<int>(op), " needs a floating dtype, got ",
                 dtype_name(dt));
  }
  switch (dt) {
    case DType::float32:
      if (launch_pieces<float, 2>(loop, dt, FloatUnary<float>{op})) return;
      return launch_loop<2>(loop, FloatUnary<float>{op});
    case DType::bfloat16:
      if (launch_pieces<BFloat16, 2>(loop, dt, FloatUnary<BFloat16>{op})) return;
      return launch_loop<2>(loop, FloatUnary<BFloat16>{op});
    case DType::float16:
      if (launch_pieces<Half, 2>(loop, dt, FloatUnary<Half>{op})) return;
      return launch_loop<2>(loop, FloatUnary<Half>{op});
    case DType::float64:
      return launch_loop<2>(loop, DoubleUnary{op});
    case DType::int64:
      return launch_loop<2>(loop, IntUnary<int64_t>{op});
    case DType::int32:
      return launch_loop<2>(loop, IntUnary<int32_t>{op});
    case DType::int8:
      return launch_loop<2>(loop, IntUnary<int8_t>{op});
    case DType::uint8:
      return launch_loop<2>(loop, IntUnary<uint8_t>{op});
    default:
      break;
  }
  throw DTypeError(detail::cat("unary kernel: no CUDA kernel for ", dtype_name(dt)));
}

// ---- clamp ------------------------------------------------------------------------------------
// A bound in T's compute type; integer bounds saturate to T's range, so clamp(uint8, min=-5) is
// the identity rather than a wrapped min of 251.
template <typename M>
M bound_as(const Scalar& s) {
  if constexpr (std::is_floating_point_v<M>) {
    return static_cast<M>(s.to_double());
  } else {
    const int64_t v = s.is_floating() ? cast_value<int64_t>(s.to_double()) : s.to_int();
    const int64_t lo = static_cast<int64_t>(std::numeric_limits<M>::min());
    const int64_t hi = static_cast<int64_t>(std::numeric_limits<M>::max());
    return static_cast<M>(v < lo ? lo : v > hi ? hi : v);
  }
}

template <typename T>
using clamp_math_t = std::conditional_t<std::is_same_v<T, bool>, int32_t, opmath_t<T>>;

// max then min, so min > max gives max everywhere (PyTorch); NaN in x or a bound propagates.
template <typename T>
struct ClampOp {
  using M = clamp_math_t<T>;
  bool has_lo, has_hi;
  M lo, hi;
  __device__ void operator()(char* (&p)[2]) const {
    M x;
    if constexpr (std::is_same_v<T, bool>) {
      x = load<uint8_t>(p[1]) != 0 ? 1 : 0;
    } else {
      x = static_cast<M>(load<T>(p[1]));
    }
    if constexpr (std::is_floating_point_v<M>) {
      if (has_lo) x = (isnan(x) || isnan(lo)) ? x + lo : (x < lo ? lo : x);
      if (has_hi) x = (isnan(x) || isnan(hi)) ? x + hi : (x > hi ? hi : x);
    } else {
      if (has_lo) x = x < lo ? lo : x;
      if (has_hi) x = x > hi ? hi : x;
    }
    if constexpr (std::is_same_v<T, bool>) {
      store<bool>(p[0], x != 0);
    } else {
      store<T>(p[0], static_cast<T>(x));
    }
  }
};

void clamp_kernel(const StridedLoop& loop, const Scalar* lo, const Scalar* hi) {
  const DType dt = loop.ops[0].dtype;
  FABRIC_CHECK(!is_fp8(dt), DTypeError, "clamp kernel: no CUDA kernel for ", dtype_name(dt),
               " (fp8 values are converted, not computed on)");
  visit_compute_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    using M = clamp_math_t<T>;
    ClampOp<T> f{lo != nullptr, hi != nullptr, lo ? bound_as<M>(*lo) : M{},
                 hi ? bound_as<M>(*hi) : M{}};
    launch_loop<2>(loop, f);
  });
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(unary_stub, cuda, &cuda::unary_kernel);
FABRIC_REGISTER_KERNEL(clamp_stub, cuda, &cuda::clamp_kernel);
}  // namespace fabric
