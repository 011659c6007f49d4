// The one value conversion of the CUDA kernels, host and device: the same `.to(dtype)` rules as
// the CPU's scalar_cast (kernels/cpu/convert.h), which is the spec. Float -> integer follows x86
// (out of range and NaN give INT_MIN), not the GPU's saturating conversion, so both devices agree.
#pragma once
#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/host_device.h"

namespace fabric::cuda {

template <typename T>
inline constexpr bool is_low_float_v =
    std::is_same_v<T, Half> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Float8E4M3> ||
    std::is_same_v<T, Float8E5M2>;
template <typename T>
inline constexpr bool is_fp8_v = std::is_same_v<T, Float8E4M3> || std::is_same_v<T, Float8E5M2>;

// The type arithmetic on T runs in: float for fp16/bf16 (PyTorch's opmath), T otherwise.
template <typename T>
using opmath_t =
    std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

FABRIC_HD_INLINE int64_t float_to_int64(double v) {
  return (v >= -9223372036854775808.0 && v < 9223372036854775808.0) ? static_cast<int64_t>(v)
                                                                    : INT64_MIN;
}
FABRIC_HD_INLINE int32_t float_to_int32(double v) {
  return (v > -2147483649.0 && v < 2147483648.0) ? static_cast<int32_t>(v) : INT32_MIN;
}

template <typename D, typename S>
FABRIC_HD_INLINE D cast_value(S s) {
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (is_low_float_v<S>) {
    return cast_value<D>(static_cast<float>(s));
  } else if constexpr (std::is_same_v<D, bool>) {
    return s != S(0);
  } else if constexpr (std::is_same_v<S, bool>) {
    return cast_value<D>(static_cast<int32_t>(s ? 1 : 0));
  } else if constexpr (is_low_float_v<D>) {
    return D(static_cast<float>(s));
  } else if constexpr (std::is_floating_point_v<D>) {
    return static_cast<D>(s);
  } else if constexpr (std::is_floating_point_v<S>) {
    static_assert(std::is_integral_v<D>, "cast_value: unsupported destination type");
    if constexpr (sizeof(D) == 8 || std::is_unsigned_v<D>) {
      return static_cast<D>(float_to_int64(s));
    } else {
      return static_cast<D>(float_to_int32(s));
    }
  } else {
    return static_cast<D>(s);  // integer -> integer: modular
  }
}

// fp8 destinations of a saturating cast (Transformer Engine) clamp to the largest finite value.
template <typename D, typename S>
FABRIC_HD_INLINE D cast_value_saturating(S s) {
  if constexpr (is_fp8_v<D>) {
    return D::saturating(cast_value<float>(s));
  } else {
    return cast_value<D>(s);
  }
}

// A host-side Scalar read into M the way the CPU kernels read alpha, bounds and scalar operands:
// floating M take the double, integer M wrap (a floating value converts with cast_value).
template <typename M, typename ScalarT>
M scalar_as(const ScalarT& s) {
  if constexpr (std::is_floating_point_v<M>) {
    return static_cast<M>(s.to_double());
  } else if (s.is_floating()) {
    return cast_value<M>(s.to_double());
  } else {
    return cast_value<M>(s.to_int());
  }
}

// Calls f(T{}) for the C++ type of `t` among the dtypes kernels compute on (every dtype but fp8).
template <typename F>
void visit_compute_dtype(DType t, F&& f) {
  switch (t) {
    case DType::float64:
      return f(double{});
    case DType::float32:
      return f(float{});
    case DType::float16:
      return f(Half{});
    case DType::bfloat16:
      return f(BFloat16{});
    case DType::int64:
      return f(int64_t{});
    case DType::int32:
      return f(int32_t{});
    case DType::int8:
      return f(int8_t{});
    case DType::uint8:
      return f(uint8_t{});
    case DType::bool_:
      return f(bool{});
    case DType::float8_e4m3fn:
    case DType::float8_e5m2:
      break;
  }
  throw DTypeError(detail::cat("CUDA kernel: no kernel computes on ", dtype_name(t),
                               " (fp8 values are converted, not computed on)"));
}

}  // namespace fabric::cuda
