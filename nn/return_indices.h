// The max pools' return_indices option: torch's layer then returns (values, indices), which is
// forward_with_indices() here; forward() refuses, so a model written for the tuple does not
// silently get the values alone.
#pragma once
#include <string>

#include "tensor/error.h"

namespace fabric::nn {

inline void check_values_only_forward(const std::string& layer, bool return_indices) {
  FABRIC_CHECK(!return_indices, ValueError, layer,
               ": return_indices=true returns (values, indices): call forward_with_indices");
}

}  // namespace fabric::nn
