// Names of the reduce operations, as Fabric's all_reduce takes them.
#include "distributed/process_group.h"

#include <algorithm>
#include <cctype>

#include "tensor/error.h"

namespace fabric::distributed {

ReduceOp parse_reduce_op(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "sum") return ReduceOp::sum;
  if (s == "mean" || s == "avg") return ReduceOp::avg;
  if (s == "max") return ReduceOp::max;
  if (s == "min") return ReduceOp::min;
  if (s == "product" || s == "prod") return ReduceOp::product;
  throw ValueError("unknown reduce op '" + name + "'; expected one of sum, mean, avg, max, min, product");
}

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
    case ReduceOp::product: return "product";
  }
  return "?";
}

}  // namespace fabric::distributed
