// torch's max_pool2d/3d(..., return_indices=True): the pooled values, recorded as max_pool2d/3d
// (so their gradient and double backward are the pool's), and the int64 offset of each window's
// maximum in its flattened plane, from the same kernels the backward uses (so the indices and the
// routed gradient agree, NaN and ties included). The indices feed max_unpool1d/2d/3d.
#include <tuple>

#include "tensor/op_attrs.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/ops_pooling3d.h"

namespace fabric {

std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                   std::vector<int64_t> stride,
                                                   std::vector<int64_t> padding) {
  Tensor values = max_pool2d(x, kernel, stride, padding);
  return {values, max_pool2d_indices(x.detach(), {kernel, stride, padding})};
}

std::tuple<Tensor, Tensor> max_pool3d_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                   std::vector<int64_t> stride,
                                                   std::vector<int64_t> padding) {
  Tensor values = max_pool3d(x, kernel, stride, padding);
  return {values, max_pool3d_indices(x.detach(), {kernel, stride, padding})};
}

}  // namespace fabric
