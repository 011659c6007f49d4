// The padding layers: the padding expanded and checked at construction, F.pad at forward, and
// torch's reprs ("ReflectionPad2d((1, 1, 2, 0))", "ConstantPad1d(padding=(3, 3), value=-1.0)").
#include "nn/padding.h"

#include <string>
#include <utility>
#include <vector>

#include "nn/py_repr.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

std::string tuple_repr(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

}  // namespace

PadModule::PadModule(std::string type, int64_t dims, std::string mode, const PadOptions& o)
    : type_(std::move(type)), mode_(std::move(mode)), padding_(o.padding), value_(o.value) {
  const size_t want = static_cast<size_t>(2 * dims);
  FABRIC_CHECK(padding_.size() == 1 || padding_.size() == want, ValueError, type_,
               ": padding must be one value (every side) or ", want, " values (left, right",
               dims > 1 ? ", top, bottom" : "", dims > 2 ? ", front, back" : "", "), got ",
               padding_.size(), " values ", tuple_repr(padding_));
  if (padding_.size() == 1) padding_.assign(want, padding_[0]);
  FABRIC_CHECK(mode_ == "constant" || value_ == 0, ValueError, type_,
               ": only the ConstantPad layers take a value, got value ", value_);
}

Tensor PadModule::forward(const Tensor& x) {
  return pad(x, padding_, mode_ == "zero" ? "constant" : mode_, value_);
}

std::string PadModule::extra_repr() const {
  if (mode_ == "constant") return "padding=" + tuple_repr(padding_) + ", value=" + py_float(value_);
  return tuple_repr(padding_);
}

}  // namespace fabric::nn
