// How torch's messages print a dtype and a list of ints, for error texts that quote torch's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace fabric {

// torch's ScalarType name: "Float", "BFloat16", "Long", ... ("not implemented for 'Half'").
const char* torch_scalar_type_name(DType t);

// An int list as torch prints one: "[0, 1]".
std::string torch_int_list(const std::vector<int64_t>& v);

}  // namespace fabric
