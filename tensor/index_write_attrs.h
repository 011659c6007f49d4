// The attribute struct scatter_reduce records for autograd (scatter records op_attrs.h's
// IndexAttrs). A new header so that adding it rebuilds only the index-write files.
#pragma once
#include <cstdint>
#include <string_view>

namespace fabric {

enum class ScatterReduction : uint8_t { sum, prod, mean, amax, amin };

struct ScatterReduceAttrs {
  int64_t dim;
  ScatterReduction reduce;
  bool include_self;
};

}  // namespace fabric
