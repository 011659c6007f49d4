// Dtype conversion on the CPU: the scalar cast every kernel agrees on (PyTorch's `.to(dtype)`
// semantics) and a vectorised, multi-threaded bulk conversion of contiguous buffers.
#pragma once
#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"

namespace fabric::cpu {

namespace detail {

template <typename T>
inline constexpr bool is_low_float_v =
    std::is_same_v<T, Half> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Float8E4M3> ||
    std::is_same_v<T, Float8E5M2>;

// x86's "integer indefinite" for NaN and out-of-range values (what cvttss2si gives and hence
// what PyTorch on x86 yields), reached without the UB of an out-of-range static_cast.
inline constexpr int64_t float_to_int64(double v) {
  return (v >= -9223372036854775808.0 && v < 9223372036854775808.0) ? static_cast<int64_t>(v)
                                                                    : INT64_MIN;
}
inline constexpr int32_t float_to_int32(double v) {
  return (v > -2147483649.0 && v < 2147483648.0) ? static_cast<int32_t>(v) : INT32_MIN;
}

}  // namespace detail

// Converts one value with `.to(dtype)` semantics:
// - float -> float rounds to nearest even; double -> half/bf16/fp8 goes through float, as do
//   integers -> half/bf16/fp8; fp8 destinations use the non-saturating (PyTorch) cast.
// - float -> integer truncates toward zero. NaN and values outside the destination's range give
//   what x86 gives: int64 and int32 take INT_MIN; int8 wraps the int32 result and uint8 wraps the
//   int64 result (PyTorch casts to uint8 through int64).
// - anything -> bool is `!= 0` (NaN is true); bool -> number is 0 or 1; integer -> integer wraps.
template <typename D, typename S>
constexpr D scalar_cast(S s) {
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (detail::is_low_float_v<S>) {
    return scalar_cast<D>(static_cast<float>(s));
  } else if constexpr (std::is_same_v<D, bool>) {
    return s != S(0);
  } else if constexpr (std::is_same_v<S, bool>) {
    return scalar_cast<D>(static_cast<int32_t>(s ? 1 : 0));
  } else if constexpr (detail::is_low_float_v<D>) {
    return D(static_cast<float>(s));
  } else if constexpr (std::is_floating_point_v<D>) {
    return static_cast<D>(s);
  } else if constexpr (std::is_floating_point_v<S>) {
    static_assert(std::is_integral_v<D>, "scalar_cast: unsupported destination type");
    if constexpr (sizeof(D) == 8 || std::is_unsigned_v<D>) {
      return static_cast<D>(detail::float_to_int64(s));
    } else {
      return static_cast<D>(detail::float_to_int32(s));
    }
  } else {
    return static_cast<D>(s);  // integer -> integer: modular since C++20
  }
}

// Converts n contiguous elements from src (dtype s) to dst (dtype d); src and dst must not
// overlap unless they are the same pointer with the same dtype. fp8 destinations use the
// saturating cast iff saturate_fp8. Bool sources accept any non-zero byte as true. Large n runs
// on the OpenMP pool in chunks of at least 64K elements; a destination of 4 MiB or more is
// written with non-temporal stores (it bypasses the caches: the result is not cache-hot after).
void convert(DType s, const void* src, DType d, void* dst, int64_t n, bool saturate_fp8 = false);

}  // namespace fabric::cpu
