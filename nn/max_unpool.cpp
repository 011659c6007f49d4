// MaxUnpool1d/2d/3d: the options resolved as torch's (stride unset: the kernel) and handed to the
// functional; reprs print every size as the tuple torch stores.
#include "nn/max_unpool.h"

#include "tensor/max_unpool.h"

namespace fabric::nn {
namespace {

using detail::cat;

// Python's repr of a tuple of ints: "(2,)", "(2, 3)", "(2, 3, 1)".
std::string py_tuple(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

}  // namespace

std::string MaxUnpool::extra_repr() const {
  return cat("kernel_size=", py_tuple(kernel_), ", stride=", py_tuple(stride_),
             ", padding=", py_tuple(padding_));
}

Tensor MaxUnpool1d::unpool(const Tensor& x, const Tensor& indices,
                           const UnpoolOutputSize& output_size) const {
  return max_unpool1d(x, indices, kernel_[0], stride_[0], padding_[0], output_size);
}

Tensor MaxUnpool2d::unpool(const Tensor& x, const Tensor& indices,
                           const UnpoolOutputSize& output_size) const {
  return max_unpool2d(x, indices, kernel_, stride_, padding_, output_size);
}

Tensor MaxUnpool3d::unpool(const Tensor& x, const Tensor& indices,
                           const UnpoolOutputSize& output_size) const {
  return max_unpool3d(x, indices, kernel_, stride_, padding_, output_size);
}

}  // namespace fabric::nn
