// meshgrid, cartesian_prod, combinations, kron, block_diag and vander (see matrix_builders.h):
// torch 1.13's algorithms over fabric's recorded ops.
#include "tensor/matrix_builders.h"

#include <algorithm>
#include <string>
#include <utility>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"
#include "tensor/torch_names.h"
#include "tensor/warning.h"

namespace fabric {
namespace {

void check_vector(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": undefined input");
  FABRIC_CHECK(t.dim() == 1, ShapeError, op, ": Expect a 1D vector, but got shape ",
               torch_int_list(t.sizes()));
}

// torch.result_type over a list: dimensioned tensors first, 0-dim ones only across a category.
DType list_result_type(const std::vector<Tensor>& tensors) {
  bool has_dim = false, has_zero = false;
  DType dim_r = DType::bool_, zero_r = DType::bool_;
  for (const Tensor& t : tensors) {
    DType& r = t.dim() > 0 ? dim_r : zero_r;
    bool& has = t.dim() > 0 ? has_dim : has_zero;
    r = has ? promote_types(r, t.dtype()) : t.dtype();
    has = true;
  }
  // result_type's own rule between the two ranks, on stand-ins of their dtypes.
  const Tensor d = has_dim ? empty({0}, {.dtype = dim_r}) : Tensor();
  const Tensor z = has_zero ? empty({}, {.dtype = zero_r}) : Tensor();
  return result_type({&d, &z});
}

// meshgrid's grids without the warning; `op` names the caller in errors (cartesian_prod and
// combinations build "ij" grids).
std::vector<Tensor> grids(const char* op, const std::vector<Tensor>& tensors,
                          std::string_view indexing) {
  const size_t n = tensors.size();
  FABRIC_CHECK(n > 0, ValueError, op, ": meshgrid expects a non-empty TensorList");
  for (size_t i = 0; i < n; ++i) {
    FABRIC_CHECK(tensors[i].defined(), ValueError, op, ": tensor number ", i, " is undefined");
    if (i == 0) continue;
    FABRIC_CHECK(tensors[i].dtype() == tensors[0].dtype(), DTypeError, op,
                 ": meshgrid expects all tensors to have the same dtype (got ",
                 dtype_name(tensors[0].dtype()), " and ", dtype_name(tensors[i].dtype()), ")");
    FABRIC_CHECK(tensors[i].device() == tensors[0].device(), DeviceError, op,
                 ": meshgrid expects all tensors to have the same device (got ",
                 tensors[0].device(), " and ", tensors[i].device(), ")");
  }
  std::vector<Tensor> refs = tensors;
  const bool swap_first_two = indexing == "xy" && n >= 2;
  FABRIC_CHECK(
      indexing == "xy" || indexing == "ij", ValueError, op,
      ": torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: ", indexing);
  if (swap_first_two) std::swap(refs[0], refs[1]);
  Shape shape(n);
  for (size_t i = 0; i < n; ++i) {
    FABRIC_CHECK(refs[i].dim() <= 1, ShapeError, op,
                 ": torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got a tensor "
                 "of shape ",
                 shape_str(refs[i].sizes()));
    shape[i] = refs[i].numel();  // a 0-D tensor as a 1-D one of one element
  }
  std::vector<Tensor> out;
  Shape view_shape(n, 1);
  for (size_t i = 0; i < n; ++i) {
    view_shape[i] = shape[i];
    out.push_back(refs[i].view(view_shape).expand(shape));
    view_shape[i] = 1;
  }
  if (swap_first_two) std::swap(out[0], out[1]);
  return out;
}

}  // namespace

std::vector<Tensor> meshgrid(const std::vector<Tensor>& tensors,
                             std::optional<std::string_view> indexing) {
  if (!indexing) {
    warn(
        "torch.meshgrid: in an upcoming release, it will be required to pass the indexing "
        "argument.");
  }
  return grids("meshgrid", tensors, indexing.value_or("ij"));
}

Tensor cartesian_prod(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) check_vector("cartesian_prod", t);
  if (tensors.size() == 1) return tensors[0];
  std::vector<Tensor> columns = grids("cartesian_prod", tensors, "ij");
  for (Tensor& g : columns) g = g.flatten();
  return stack(columns, 1);
}

Tensor combinations(const Tensor& x, int64_t r, bool with_replacement) {
  check_vector("combinations", x);
  FABRIC_CHECK(r >= 0, ValueError, "combinations: Expect a non-negative number, but got ", r);
  if (r == 0) return empty({0}, {.dtype = x.dtype(), .device = x.device()});
  const int64_t n = x.numel();
  // torch's _triu_mask: positions i < j < k ... (or <= with replacement) on an n^r grid.
  const Tensor range = arange(n, DType::int64, x.device());
  const std::vector<Tensor> index_grids =
      grids("combinations", std::vector<Tensor>(r, range), "ij");
  Tensor mask = full(index_grids[0].sizes(), true, {.dtype = DType::bool_, .device = x.device()});
  for (int64_t i = 0; i + 1 < r; ++i) {
    const Tensor ordered = with_replacement ? le(index_grids[i], index_grids[i + 1])
                                            : lt(index_grids[i], index_grids[i + 1]);
    mask = logical_and(mask, ordered);
  }
  std::vector<Tensor> columns = grids("combinations", std::vector<Tensor>(r, x), "ij");
  for (Tensor& g : columns) g = masked_select(g, mask);
  return stack(columns, 1);
}

Tensor kron(const Tensor& a, const Tensor& b) {
  FABRIC_CHECK(a.defined() && b.defined(), ValueError, "kron: undefined input");
  // a's dim d goes to 2d and b's to 2d + 1 (after padding the smaller rank with leading 1s): their
  // broadcast product, merged pairwise, is the Kronecker product.
  const int64_t nd = std::max(a.dim(), b.dim()), pad_a = nd - a.dim(), pad_b = nd - b.dim();
  Shape a_shape(2 * nd, 1), b_shape(2 * nd, 1), out_shape(nd);
  for (int64_t i = 0; i < nd; ++i) {
    a_shape[2 * i] = i >= pad_a ? a.size(i - pad_a) : 1;
    b_shape[2 * i + 1] = i >= pad_b ? b.size(i - pad_b) : 1;
    out_shape[i] = checked_size_mul(a_shape[2 * i], b_shape[2 * i + 1], "kron");
  }
  return mul(a.reshape(a_shape), b.reshape(b_shape)).reshape(out_shape);
}

Tensor block_diag(const std::vector<Tensor>& tensors) {
  if (tensors.empty()) return empty({1, 0});
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    FABRIC_CHECK(t.defined(), ValueError, "block_diag: tensor number ", i, " is undefined");
    FABRIC_CHECK(t.device() == tensors[0].device(), DeviceError,
                 "block_diag: torch.block_diag: input tensors must all be on the same device. "
                 "Input 0 is on device ",
                 tensors[0].device(), " and input ", i, " is on device ", t.device());
    FABRIC_CHECK(t.dim() <= 2, ShapeError,
                 "block_diag: torch.block_diag: Input tensors must have 2 or fewer dimensions. "
                 "Input ",
                 i, " has ", t.dim(), " dimensions");
  }
  const DType dtype = list_result_type(tensors);
  const TensorOptions opts{.dtype = dtype, .device = tensors[0].device()};
  // Every block as a matrix: 0-D (1, 1), 1-D (n) a row (1, n).
  std::vector<Tensor> blocks;
  int64_t cols = 0;
  for (const Tensor& t : tensors) {
    blocks.push_back(t.dim() == 2 ? t : t.reshape({1, t.numel()}));
    cols += blocks.back().size(1);
  }
  // Each block's rows: zeros left of it, the block, zeros right of it; then the rows stacked.
  // (cat copies values as they are, -0.0 included, and carries the gradient back to each block.)
  std::vector<Tensor> row_blocks;
  int64_t left = 0;
  for (const Tensor& b : blocks) {
    const int64_t rows = b.size(0), w = b.size(1);
    row_blocks.push_back(
        cat({zeros({rows, left}, opts), b.to(dtype), zeros({rows, cols - left - w}, opts)}, 1));
    left += w;
  }
  return cat(row_blocks, 0);
}

Tensor vander(const Tensor& x, std::optional<int64_t> N, bool increasing) {
  FABRIC_CHECK(x.defined(), ValueError, "vander: undefined input");
  FABRIC_CHECK(x.dim() == 1, ShapeError, "vander: x must be a one-dimensional tensor.");
  const int64_t m = x.size(0);
  const int64_t n = N.value_or(m);
  FABRIC_CHECK(n >= 0, ValueError, "vander: N must be non-negative.");
  // cumprod promotes integers (and bool) to int64, as torch notes.
  const DType dtype = promote_types(x.dtype(), DType::int64);
  const TensorOptions opts{.dtype = dtype, .device = x.device()};
  Tensor result;
  if (n <= 1) {
    result = n == 0 ? empty({m, 0}, opts) : ones({m, 1}, opts);
  } else {
    // Column j >= 1 is x^j as the running product x * x * ... (torch's cumprod, same bits).
    const Tensor powers = cumprod(x.to(dtype).unsqueeze(1).expand({m, n - 1}), 1);
    result = cat({ones({m, 1}, opts), powers}, 1);
  }
  return increasing ? result : flip(result, {1});
}

}  // namespace fabric
