// The element types a tensor can hold, their sizes and names, and the scalar types that store
// the reduced-precision floats (defined with their exact conversions in float_formats.h).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "tensor/float_formats.h"

namespace fabric {

enum class DType : uint8_t {
  float64,
  float32,
  float16,
  bfloat16,
  float8_e4m3fn,
  float8_e5m2,
  int64,
  int32,
  int8,
  uint8,
  bool_,
};
inline constexpr int kNumDTypes = 11;

inline constexpr int64_t itemsize(DType t) {
  switch (t) {
    case DType::float64: case DType::int64: return 8;
    case DType::float32: case DType::int32: return 4;
    case DType::float16: case DType::bfloat16: return 2;
    default: return 1;
  }
}
inline constexpr bool is_floating(DType t) { return t <= DType::float8_e5m2; }
inline constexpr bool is_fp8(DType t) { return t == DType::float8_e4m3fn || t == DType::float8_e5m2; }
inline constexpr bool is_integral(DType t, bool include_bool = false) {
  return (t >= DType::int64 && t <= DType::uint8) || (include_bool && t == DType::bool_);
}

// "float32", "bfloat16", ... as PyTorch spells them (without the "torch." prefix).
std::string_view dtype_name(DType t);
// Parses PyTorch-style names and common aliases ("float", "half", "bf16", "f32", ...);
// throws DTypeError listing the accepted names.
DType dtype_from_name(std::string_view name);

std::ostream& operator<<(std::ostream& os, DType t);

// Maps a C++ scalar type to its DType.
template <typename T> struct dtype_of;
template <> struct dtype_of<double> { static constexpr DType value = DType::float64; };
template <> struct dtype_of<float> { static constexpr DType value = DType::float32; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::float16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::bfloat16; };
template <> struct dtype_of<Float8E4M3> { static constexpr DType value = DType::float8_e4m3fn; };
template <> struct dtype_of<Float8E5M2> { static constexpr DType value = DType::float8_e5m2; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::int64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::int32; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::int8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::uint8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::bool_; };
template <typename T> inline constexpr DType dtype_v = dtype_of<T>::value;

// Calls f(T{}) with T the C++ scalar type of `t`: FABRIC_DISPATCH-style switch in one place.
template <typename F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::float64: return f(double{});
    case DType::float32: return f(float{});
    case DType::float16: return f(Half{});
    case DType::bfloat16: return f(BFloat16{});
    case DType::float8_e4m3fn: return f(Float8E4M3{});
    case DType::float8_e5m2: return f(Float8E5M2{});
    case DType::int64: return f(int64_t{});
    case DType::int32: return f(int32_t{});
    case DType::int8: return f(int8_t{});
    case DType::uint8: return f(uint8_t{});
    case DType::bool_: return f(bool{});
  }
  return f(float{});
}

// The default floating dtype (torch.get_default_dtype), per thread, float32 unless changed: what
// factories create when no dtype is given (TensorOptions), and what integer inputs of true
// division, exp, mean, ... become. Precision plugins switch it inside their init/forward
// contexts with DefaultDTypeGuard (precision/).
DType default_float_dtype();
void set_default_float_dtype(DType t);  // float32, float64, float16 or bfloat16

}  // namespace fabric
