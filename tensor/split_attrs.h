// The attributes split/chunk record for autograd (kept out of op_attrs.h, which every op includes):
// the input's shape, the dim and each piece's length along it.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/shape.h"

namespace fabric {

struct SplitAttrs {
  Shape input_shape;
  int64_t dim;
  std::vector<int64_t> sizes;
};

}  // namespace fabric
