// The `reduction` argument of the class-index losses ("mean" | "sum" | "none"), parsed one way for
// the fused losses (ops_loss.cpp) and their composed weighted paths (ops_loss_weighted.cpp).
#pragma once
#include <string_view>

#include "tensor/error.h"

namespace fabric::detail {

enum class LossReduction { none, mean, sum };

// ValueError naming `op` and the allowed values for anything else.
inline LossReduction parse_loss_reduction(const char* op, std::string_view r) {
  if (r == "mean") return LossReduction::mean;
  if (r == "sum") return LossReduction::sum;
  if (r == "none") return LossReduction::none;
  throw ValueError(cat(op, ": reduction must be \"mean\", \"sum\" or \"none\", got \"", r, "\""));
}

}  // namespace fabric::detail
