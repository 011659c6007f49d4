// as_strided (see as_strided.h): torch 1.13's argument checks, a view made by hand and one
// autograd node running torch's as_strided_backward over recorded ops.
#include "nn/as_strided.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/storage_view.h"
#include "tensor/torch_names.h"

namespace fabric {
namespace {

struct Geometry {
  Shape sizes;
  Strides strides;
  int64_t offset = 0;
};

// torch's _maybe_overlapping_memory: whether two indices of (sizes, strides) may share an element
// (strides in increasing order, each must pass the span of the dims before it).
bool maybe_overlapping(const Shape& sizes, const Strides& strides) {
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return strides[a] < strides[b]; });
  int64_t max_index_in_slice = 0;
  for (size_t d : order) {
    if (strides[d] <= max_index_in_slice) return true;
    max_index_in_slice += strides[d] * (sizes[d] - 1);
  }
  return false;
}

// torch's _min_storage_size: the elements a geometry needs from offset 0.
int64_t min_storage_size(const Shape& sizes, const Strides& strides, int64_t offset) {
  int64_t n = offset + 1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return offset;
    n += (sizes[d] - 1) * strides[d];
  }
  return n;
}

// The geometry's elements of a 1-D buffer, as a view (no autograd: index tensors only).
Tensor strided_of(const Tensor& buffer, const Shape& sizes, const Strides& strides,
                  int64_t offset) {
  return Tensor::from_storage(buffer.storage(), buffer.dtype(), sizes, strides,
                              buffer.storage_offset() + offset);
}

// torch's as_strided_backward(grad, input geometry, size, stride, storage_offset), op for op.
Tensor as_strided_backward(Tensor grad, const Geometry& in, const Geometry& out) {
  const TensorOptions opts{.dtype = grad.dtype(), .device = grad.device()};
  // The view's geometry without size-1 dims, its stride-0 dims summed away.
  Shape out_sizes;
  Strides out_strides;
  for (int64_t d = static_cast<int64_t>(out.sizes.size()) - 1; d >= 0; --d) {
    if (out.sizes[d] == 0) return zeros(in.sizes, opts);
    if (out.sizes[d] == 1) {
      grad = grad.squeeze(d);
    } else if (out.strides[d] == 0) {
      grad = sum(grad, {d});
    } else {
      out_sizes.insert(out_sizes.begin(), out.sizes[d]);
      out_strides.insert(out_strides.begin(), out.strides[d]);
    }
  }
  Shape in_sizes;
  Strides in_strides;
  for (int64_t d = static_cast<int64_t>(in.sizes.size()) - 1; d >= 0; --d) {
    if (in.sizes[d] == 0) return zeros(in.sizes, opts);
    if (in.sizes[d] != 1) {
      in_sizes.insert(in_sizes.begin(), in.sizes[d]);
      in_strides.insert(in_strides.begin(), in.strides[d]);
    }
  }
  const bool out_overlaps = maybe_overlapping(out_sizes, out_strides);
  const bool in_overlaps = maybe_overlapping(in_sizes, in_strides);
  // A buffer for the storage span both geometries cover, from the lower of their offsets.
  const int64_t shared = std::min(in.offset, out.offset);
  const int64_t in_off = in.offset - shared, out_off = out.offset - shared;
  const int64_t span = std::max(min_storage_size(in_sizes, in_strides, in_off),
                                min_storage_size(out_sizes, out_strides, out_off));
  Tensor storage = zeros({span}, opts);
  const Tensor positions = arange(span, DType::int64, grad.device());
  const Tensor out_index = strided_of(positions, out_sizes, out_strides, out_off).reshape({-1});
  // Shared storage elements sum their gradients (index_add); distinct ones take theirs as they are.
  storage = out_overlaps ? index_add(storage, 0, out_index, grad.reshape({-1}))
                         : index_copy(storage, 0, out_index, grad.reshape({-1}));
  if (in_overlaps) {
    // Each storage element is read back by every input element on it: share its gradient evenly.
    const Tensor in_index = strided_of(positions, in_sizes, in_strides, in_off).reshape({-1});
    const Tensor count =
        index_add(zeros({span}, opts), 0, in_index, ones({1}, opts).expand({in_index.numel()}));
    storage = div(storage, count);  // NaN outside the input's elements, which nothing reads
  }
  return as_strided(storage, in.sizes, in.strides, in_off);
}

}  // namespace

Tensor as_strided(const Tensor& x, const Shape& size, const Strides& stride,
                  std::optional<int64_t> storage_offset) {
  FABRIC_CHECK(x.defined(), ValueError, "as_strided: undefined input");
  FABRIC_CHECK(size.size() == stride.size(), ShapeError,
               "as_strided: mismatch in length of strides and shape (sizes ", torch_int_list(size),
               ", strides ", torch_int_list(stride), ")");
  for (int64_t s : stride) {
    FABRIC_CHECK(s >= 0, ValueError,
                 "as_strided: Negative strides are not supported at the moment, got strides: ",
                 torch_int_list(stride));
  }
  for (int64_t s : size) {
    FABRIC_CHECK(s >= 0, ValueError, "as_strided: negative size in sizes=", torch_int_list(size),
                 " and strides=", torch_int_list(stride));
  }
  const int64_t offset = storage_offset.value_or(x.storage_offset());
  FABRIC_CHECK(offset >= 0, ValueError, "as_strided: Tensor: invalid storage offset ", offset);
  // The bytes the view reaches (none when it is empty), checked against the storage as torch's
  // setStorage does, in bytes.
  const int64_t item = x.element_size();
  int64_t needed = 0;
  if (std::find(size.begin(), size.end(), 0) == size.end()) {
    needed = checked_size_add(offset, 1, "as_strided");
    for (size_t d = 0; d < size.size(); ++d)
      needed = checked_size_add(needed, checked_size_mul(size[d] - 1, stride[d], "as_strided"),
                                "as_strided");
    needed = checked_size_mul(needed, item, "as_strided");
  }
  const int64_t available = static_cast<int64_t>(x.storage()->nbytes());
  FABRIC_CHECK(needed <= available, ShapeError, "as_strided: setStorage: sizes ",
               torch_int_list(size), ", strides ", torch_int_list(stride), ", storage offset ",
               offset, ", and itemsize ", item, " requiring a storage size of ", needed,
               " are out of bounds for storage of size ", available);
  Tensor out = make_view(x, size, stride, offset);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Geometry in{x.sizes(), x.strides(), x.storage_offset()};
  const Geometry view{size, stride, offset};
  auto node = std::make_shared<FunctionNode>(
      "as_strided",
      [in, view](const std::vector<Tensor>& g) -> std::vector<Tensor> {
        if (g.empty() || !g[0].defined()) return {Tensor()};
        return {as_strided_backward(g[0], in, view)};
      },
      "AsStridedBackward0");
  node->set_saved_versions({});  // only geometry is kept: a second backward may run
  node->set_supports_double_backward(true);
  add_input_edges(*node, {x});
  set_grad_fn(out, node, 0);
  return out;
}

}  // namespace fabric
