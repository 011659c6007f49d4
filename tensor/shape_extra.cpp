// movedim, swapaxes, tensor_split and its h/v/d forms, the stacks, atleast_nd and rot90 (see
// shape_extra.h): torch 1.13's algorithms over fabric's view ops and cat, check for check.
#include "tensor/shape_extra.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

#include "tensor/ops.h"
#include "tensor/shape.h"
#include "tensor/torch_names.h"

namespace fabric {
namespace {

void check_defined(const char* op, const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
}

// cat under another function's name: its shape and device errors name that function too.
Tensor cat_as(const char* op, const std::vector<Tensor>& tensors, int64_t dim) {
  try {
    return cat(tensors, dim);
  } catch (const ShapeError& e) {
    throw ShapeError(detail::cat(op, ": ", e.what()));
  } catch (const DeviceError& e) {
    throw DeviceError(detail::cat(op, ": ", e.what()));
  }
}

void check_nonempty(const char* op, const std::vector<Tensor>& tensors) {
  FABRIC_CHECK(!tensors.empty(), ValueError, op, ": ", op, " expects a non-empty TensorList");
  for (size_t i = 0; i < tensors.size(); ++i)
    FABRIC_CHECK(tensors[i].defined(), ValueError, op, ": tensor number ", i, " is undefined");
}

// hsplit / vsplit / dsplit need at least 1, 2 and 3 dims, as torch words it.
void check_rank(const char* op, const Tensor& x, int64_t min_dims) {
  check_defined(op, x);
  FABRIC_CHECK(x.dim() >= min_dims, ShapeError, op, ": torch.", op,
               " requires a tensor with at least ", min_dims, " dimension, but got a tensor with ",
               x.dim(), " dimensions!");
}

// hsplit's dim: 1, or 0 for a 1-D tensor.
int64_t hsplit_dim(const Tensor& x) { return x.dim() == 1 ? 0 : 1; }

// The h/v/dsplit forms with a section count, which must divide the dim (x's rank checked).
std::vector<Tensor> split_sections(const char* op, const Tensor& x, int64_t dim, int64_t sections) {
  FABRIC_CHECK(sections != 0 && x.size(dim) % sections == 0, ValueError, op, ": torch.", op,
               " attempted to split along dimension ", dim, ", but the size of the dimension ",
               x.size(dim), " is not divisible by the split_size ", sections, "!");
  return tensor_split(x, sections, dim);
}

}  // namespace

Tensor movedim(const Tensor& x, const std::vector<int64_t>& source,
               const std::vector<int64_t>& destination) {
  check_defined("movedim", x);
  FABRIC_CHECK(source.size() == destination.size(), ValueError,
               "movedim: Invalid source or destination dims: source (", torch_int_list(source),
               " dims) should contain the same number of dims as destination (",
               torch_int_list(destination), " dims)");
  const int64_t n = x.dim();
  std::vector<int64_t> src(source.size()), dst(destination.size());
  for (size_t i = 0; i < source.size(); ++i) src[i] = wrap_dim(source[i], n, "movedim");
  for (size_t i = 0; i < destination.size(); ++i) dst[i] = wrap_dim(destination[i], n, "movedim");
  auto unique = [](std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) == v.end();
  };
  FABRIC_CHECK(unique(src), ValueError, "movedim: repeated dim in `source` (",
               torch_int_list(source), ")");
  FABRIC_CHECK(unique(dst), ValueError, "movedim: repeated dim in `destination` (",
               torch_int_list(destination), ")");
  if (n == 0) return x.permute({});  // dims 0 and -1 of a 0-dim tensor: an alias, as torch's
  // Each destination takes its source; the remaining positions take the remaining dims in order.
  std::vector<int64_t> order(static_cast<size_t>(n), -1);
  std::vector<bool> moved(static_cast<size_t>(n), false);
  for (size_t i = 0; i < src.size(); ++i) {
    order[dst[i]] = src[i];
    moved[src[i]] = true;
  }
  int64_t next = 0;
  for (int64_t& o : order) {
    if (o >= 0) continue;
    while (moved[next]) ++next;
    o = next++;
  }
  return x.permute(order);
}

Tensor movedim(const Tensor& x, int64_t source, int64_t destination) {
  return movedim(x, std::vector<int64_t>{source}, std::vector<int64_t>{destination});
}

Tensor moveaxis(const Tensor& x, int64_t source, int64_t destination) {
  return movedim(x, source, destination);
}

Tensor moveaxis(const Tensor& x, const std::vector<int64_t>& source,
                const std::vector<int64_t>& destination) {
  return movedim(x, source, destination);
}

Tensor swapaxes(const Tensor& x, int64_t axis0, int64_t axis1) {
  check_defined("swapaxes", x);
  return x.transpose(wrap_dim(axis0, x.dim(), "swapaxes"), wrap_dim(axis1, x.dim(), "swapaxes"));
}

Tensor swapdims(const Tensor& x, int64_t dim0, int64_t dim1) {
  check_defined("swapdims", x);
  return x.transpose(wrap_dim(dim0, x.dim(), "swapdims"), wrap_dim(dim1, x.dim(), "swapdims"));
}

std::vector<Tensor> tensor_split(const Tensor& x, int64_t sections, int64_t dim) {
  check_defined("tensor_split", x);
  FABRIC_CHECK(x.dim() > 0, ShapeError,
               "tensor_split: tensor_split expected at least a 1-dimensional tensor, but got a "
               "tensor with ",
               x.dim(), " dims");
  dim = wrap_dim(dim, x.dim(), "tensor_split");
  FABRIC_CHECK(sections > 0, ValueError,
               "tensor_split: number of sections must be larger than 0, got ", sections);
  const int64_t size = x.size(dim), base = size / sections, extra = size % sections;
  std::vector<int64_t> lengths(static_cast<size_t>(sections), base);
  for (int64_t i = 0; i < extra; ++i) ++lengths[i];
  return split(x, lengths, dim);
}

std::vector<Tensor> tensor_split(const Tensor& x, const std::vector<int64_t>& indices,
                                 int64_t dim) {
  check_defined("tensor_split", x);
  FABRIC_CHECK(x.dim() > 0, ShapeError,
               "tensor_split: tensor_split expected at least a 1-dimensional tensor, but got a "
               "tensor with ",
               x.dim(), " dims");
  dim = wrap_dim(dim, x.dim(), "tensor_split");
  const int64_t size = x.size(dim);
  // Each piece's bounds as slice() clamps them: [start, end) with 0 <= start <= end <= size.
  std::vector<std::pair<int64_t, int64_t>> bounds;
  int64_t start = 0;
  auto clamped = [size](int64_t s, int64_t e) {
    if (s < 0) s += size;
    if (e < 0) e += size;
    s = std::clamp<int64_t>(s, 0, size);
    return std::pair<int64_t, int64_t>{s, std::clamp<int64_t>(e, s, size)};
  };
  for (int64_t end : indices) {
    bounds.push_back(clamped(start, end));
    start = end;
  }
  bounds.push_back(clamped(start, size));
  // Pieces that tile the dim in order are split()'s: one autograd node for them all.
  bool tiles = bounds.front().first == 0 && bounds.back().second == size;
  for (size_t i = 1; i < bounds.size() && tiles; ++i)
    tiles = bounds[i].first == bounds[i - 1].second;
  if (tiles) {
    std::vector<int64_t> lengths;
    for (const auto& [s, e] : bounds) lengths.push_back(e - s);
    return split(x, lengths, dim);
  }
  std::vector<Tensor> pieces;
  for (const auto& [s, e] : bounds) pieces.push_back(x.slice(dim, s, e));
  return pieces;
}

std::vector<Tensor> hsplit(const Tensor& x, int64_t sections) {
  check_rank("hsplit", x, 1);
  return split_sections("hsplit", x, hsplit_dim(x), sections);
}
std::vector<Tensor> hsplit(const Tensor& x, const std::vector<int64_t>& indices) {
  check_rank("hsplit", x, 1);
  return tensor_split(x, indices, hsplit_dim(x));
}
std::vector<Tensor> vsplit(const Tensor& x, int64_t sections) {
  check_rank("vsplit", x, 2);
  return split_sections("vsplit", x, 0, sections);
}
std::vector<Tensor> vsplit(const Tensor& x, const std::vector<int64_t>& indices) {
  check_rank("vsplit", x, 2);
  return tensor_split(x, indices, 0);
}
std::vector<Tensor> dsplit(const Tensor& x, int64_t sections) {
  check_rank("dsplit", x, 3);
  return split_sections("dsplit", x, 2, sections);
}
std::vector<Tensor> dsplit(const Tensor& x, const std::vector<int64_t>& indices) {
  check_rank("dsplit", x, 3);
  return tensor_split(x, indices, 2);
}

Tensor atleast_1d(const Tensor& x) {
  check_defined("atleast_1d", x);
  return x.dim() == 0 ? x.reshape({1}) : x;
}

Tensor atleast_2d(const Tensor& x) {
  check_defined("atleast_2d", x);
  if (x.dim() == 0) return x.reshape({1, 1});
  return x.dim() == 1 ? x.unsqueeze(0) : x;
}

Tensor atleast_3d(const Tensor& x) {
  check_defined("atleast_3d", x);
  switch (x.dim()) {
    case 0:
      return x.reshape({1, 1, 1});
    case 1:
      return x.unsqueeze(0).unsqueeze(-1);
    case 2:
      return x.unsqueeze(-1);
    default:
      return x;
  }
}

std::vector<Tensor> atleast_1d(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> out;
  for (const Tensor& t : tensors) out.push_back(atleast_1d(t));
  return out;
}
std::vector<Tensor> atleast_2d(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> out;
  for (const Tensor& t : tensors) out.push_back(atleast_2d(t));
  return out;
}
std::vector<Tensor> atleast_3d(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> out;
  for (const Tensor& t : tensors) out.push_back(atleast_3d(t));
  return out;
}

Tensor hstack(const std::vector<Tensor>& tensors) {
  check_nonempty("hstack", tensors);
  const std::vector<Tensor> ts = atleast_1d(tensors);
  return cat_as("hstack", ts, ts[0].dim() == 1 ? 0 : 1);
}

Tensor vstack(const std::vector<Tensor>& tensors) {
  check_nonempty("vstack", tensors);
  return cat_as("vstack", atleast_2d(tensors), 0);
}

Tensor row_stack(const std::vector<Tensor>& tensors) {
  check_nonempty("row_stack", tensors);
  return cat_as("row_stack", atleast_2d(tensors), 0);
}

Tensor dstack(const std::vector<Tensor>& tensors) {
  check_nonempty("dstack", tensors);
  return cat_as("dstack", atleast_3d(tensors), 2);
}

Tensor column_stack(const std::vector<Tensor>& tensors) {
  check_nonempty("column_stack", tensors);
  std::vector<Tensor> columns;
  for (const Tensor& t : tensors) columns.push_back(t.dim() <= 1 ? t.reshape({t.numel(), 1}) : t);
  return cat_as("column_stack", columns, 1);
}

Tensor rot90(const Tensor& x, int64_t k, const std::vector<int64_t>& dims) {
  check_defined("rot90", x);
  const int64_t n = x.dim(), rot_dims = static_cast<int64_t>(dims.size());
  FABRIC_CHECK(rot_dims == 2, ValueError,
               "rot90: expected total rotation dims == 2, but got dims = ", rot_dims);
  FABRIC_CHECK(n >= 2, ShapeError, "rot90: expected total dims >= 2, but got total dims = ", n);
  FABRIC_CHECK(dims[0] != dims[1] && std::abs(dims[0] - dims[1]) != n, ValueError,
               "rot90: expected rotation dims to be different, but got dim0 = ", dims[0],
               " and dim1 = ", dims[1]);
  FABRIC_CHECK(dims[0] < n && dims[0] >= -n, IndexError,
               "rot90: Rotation dim0 out of range, dim0 = ", dims[0]);
  FABRIC_CHECK(dims[1] < n && dims[1] >= -n, IndexError,
               "rot90: Rotation dim1 out of range, dim1 = ", dims[1]);
  switch ((4 + k % 4) % 4) {
    case 1:
      return flip(x, {dims[1]}).transpose(dims[0], dims[1]);
    case 2:
      return flip(x, dims);
    case 3:
      return flip(x, {dims[0]}).transpose(dims[0], dims[1]);
    default:
      // torch's clone(contiguous): a row-major copy whatever x's layout.
      return x.is_contiguous() ? x.clone() : x.contiguous();
  }
}

}  // namespace fabric
