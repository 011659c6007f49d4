// torch's names for dtypes and int lists (tensor/torch_names.h).
#include "tensor/torch_names.h"

namespace fabric {

const char* torch_scalar_type_name(DType t) {
  switch (t) {
    case DType::float64:
      return "Double";
    case DType::float32:
      return "Float";
    case DType::float16:
      return "Half";
    case DType::bfloat16:
      return "BFloat16";
    case DType::float8_e4m3fn:
      return "Float8_e4m3fn";
    case DType::float8_e5m2:
      return "Float8_e5m2";
    case DType::int64:
      return "Long";
    case DType::int32:
      return "Int";
    case DType::int8:
      return "Char";
    case DType::uint8:
      return "Byte";
    case DType::bool_:
      return "Bool";
  }
  return "?";
}

std::string torch_int_list(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace fabric
