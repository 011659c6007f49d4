// Names of the dtypes, in PyTorch's spelling, and parsing with the common aliases.
#include "tensor/dtype.h"

#include <ostream>

#include "tensor/error.h"

namespace fabric {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::float64: return "float64";
    case DType::float32: return "float32";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::float8_e4m3fn: return "float8_e4m3fn";
    case DType::float8_e5m2: return "float8_e5m2";
    case DType::int64: return "int64";
    case DType::int32: return "int32";
    case DType::int8: return "int8";
    case DType::uint8: return "uint8";
    case DType::bool_: return "bool";
  }
  return "?";
}

DType dtype_from_name(std::string_view n) {
  struct Alias { std::string_view name; DType t; };
  static constexpr Alias aliases[] = {
      {"float64", DType::float64}, {"double", DType::float64}, {"f64", DType::float64},
      {"float32", DType::float32}, {"float", DType::float32}, {"f32", DType::float32},
      {"float16", DType::float16}, {"half", DType::float16}, {"f16", DType::float16}, {"fp16", DType::float16},
      {"bfloat16", DType::bfloat16}, {"bf16", DType::bfloat16},
      {"float8_e4m3fn", DType::float8_e4m3fn}, {"e4m3", DType::float8_e4m3fn}, {"F8_E4M3", DType::float8_e4m3fn},
      {"float8_e5m2", DType::float8_e5m2}, {"e5m2", DType::float8_e5m2}, {"F8_E5M2", DType::float8_e5m2},
      {"int64", DType::int64}, {"long", DType::int64}, {"int32", DType::int32}, {"int", DType::int32},
      {"int8", DType::int8}, {"uint8", DType::uint8}, {"bool", DType::bool_},
  };
  for (const auto& a : aliases)
    if (a.name == n) return a.t;
  throw DTypeError(detail::cat("unknown dtype '", n, "'; expected one of float64, float32, float16, bfloat16, "
                               "float8_e4m3fn, float8_e5m2, int64, int32, int8, uint8, bool"));
}

std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

}  // namespace fabric
