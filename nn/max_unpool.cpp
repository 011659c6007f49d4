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

std::string unpool_repr(const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                        const std::vector<int64_t>& padding) {
  return cat("kernel_size=", py_tuple(kernel), ", stride=", py_tuple(stride),
             ", padding=", py_tuple(padding));
}

}  // namespace

Tensor MaxUnpool1d::forward(const Tensor& x, const Tensor& indices,
                            const UnpoolOutputSize& output_size) {
  return max_unpool1d(x, indices, options_.kernel_size, options_.stride, options_.padding,
                      output_size);
}

std::string MaxUnpool1d::extra_repr() const {
  const int64_t k = options_.kernel_size;
  return unpool_repr({k}, {options_.stride.value_or(k)}, {options_.padding});
}

Tensor MaxUnpool2d::forward(const Tensor& x, const Tensor& indices,
                            const UnpoolOutputSize& output_size) {
  const Int2& k = options_.kernel_size;
  return max_unpool2d(x, indices, k.vec(), options_.stride.value_or(k).vec(),
                      options_.padding.vec(), output_size);
}

std::string MaxUnpool2d::extra_repr() const {
  const Int2& k = options_.kernel_size;
  return unpool_repr(k.vec(), options_.stride.value_or(k).vec(), options_.padding.vec());
}

Tensor MaxUnpool3d::forward(const Tensor& x, const Tensor& indices,
                            const UnpoolOutputSize& output_size) {
  const Int3& k = options_.kernel_size;
  return max_unpool3d(x, indices, k.vec(), options_.stride.value_or(k).vec(),
                      options_.padding.vec(), output_size);
}

std::string MaxUnpool3d::extra_repr() const {
  const Int3& k = options_.kernel_size;
  return unpool_repr(k.vec(), options_.stride.value_or(k).vec(), options_.padding.vec());
}

}  // namespace fabric::nn
