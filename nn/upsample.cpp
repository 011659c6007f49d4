// nn::Upsample, with torch's repr.
#include "nn/upsample.h"

#include "nn/py_repr.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

// A 1-element list prints as torch's scalar (size=5), a longer one as a tuple ((3, 4)).
template <typename T, typename F>
std::string tuple_repr(const std::vector<T>& v, F&& item) {
  if (v.size() == 1) return item(v[0]);
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + item(v[i]);
  return s + ")";
}

}  // namespace

Upsample::Upsample(const UpsampleOptions& o) : options_(o) {}

Tensor Upsample::forward(const Tensor& x) {
  return interpolate(x, options_.size, options_.scale_factor, options_.mode,
                     options_.align_corners);
}

std::string Upsample::extra_repr() const {
  const std::string info =
      !options_.scale_factor.empty() ? "scale_factor=" + tuple_repr(options_.scale_factor, py_float)
      : options_.size.empty()
          ? "size=None"
          : "size=" + tuple_repr(options_.size, [](int64_t v) { return std::to_string(v); });
  return info + ", mode=" + options_.mode;
}

}  // namespace fabric::nn
