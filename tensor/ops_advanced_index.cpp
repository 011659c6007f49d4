// torch's advanced indexing and the mask ops built on it: index (a[i0, i1, ...]), index_put,
// nonzero, masked_select and masked_scatter, all compositions of existing ops (so they run on
// every device and differentiate through their parts). The indexed dims' linear offsets are
// computed once (IndexPlan), then index gathers along them with index_select and index_put
// writes along them with index_add (accumulate) or index_copy. nonzero, and masked_select when
// it records nothing, take direct kernels where the device has them (nonzero_kernels.h).
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/index_write_checks.h"
#include "tensor/nonzero_kernels.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

using detail::cat;
using namespace index_write;

// a's dims split into the indexed ones (first, in order) and the rest; the broadcast shape of the
// index tensors and, of that shape, each position's row-major offset into the indexed block.
struct IndexPlan {
  std::vector<int64_t> perm;  // a's dims, the indexed ones first
  Shape indexed_sizes, rest_sizes, index_shape;
  Tensor offsets;  // int64 (index_shape)
  // Where the index shape's dims go among the rest dims in the result: torch puts them in place
  // of the indexed dims when those are adjacent, else in front (0).
  int64_t insert_at = 0;
  int64_t num_indexed() const { return numel_of(indexed_sizes); }
  Shape result_shape() const {
    Shape s(rest_sizes.begin(), rest_sizes.begin() + insert_at);
    s.insert(s.end(), index_shape.begin(), index_shape.end());
    s.insert(s.end(), rest_sizes.begin() + insert_at, rest_sizes.end());
    return s;
  }
  // a's dims in plan order, flattened to (num_indexed, rest...).
  Tensor flatten(const Tensor& a) const {
    Shape s = rest_sizes;
    s.insert(s.begin(), num_indexed());
    return a.permute(perm).reshape(s);
  }
};

// Raises torch's IndexError for an index outside [-size, size) (negative ones count from the end).
// Returns whether any index is negative (only then does the plan wrap them).
bool check_signed_range(const char* op, const Tensor& index, int64_t dim, int64_t size) {
  if (index.numel() == 0) return false;
  const Tensor idx = index.contiguous();
  // The bound check reads the indices' extremes back, so on CUDA it waits for the device.
  auto [lo, hi] = index_minmax_stub(idx.device())(idx.data_ptr(), idx.dtype(), idx.numel());
  const int64_t bad = lo < -size ? lo : hi >= size ? hi : 0;
  FABRIC_CHECK(lo >= -size && hi < size, IndexError, op, ": index ", bad,
               " is out of bounds for dim ", dim, " with size ", size);
  return lo < 0;
}

// Whether `from` broadcasts to exactly `to` (dims aligned on the right, size-1 dims repeated).
bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  const size_t lead = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d)
    if (from[d] != 1 && from[d] != to[lead + d]) return false;
  return true;
}

// torch's index rules: int64 tensors index one dim each (broadcast together), a k-dim bool mask
// indexes k dims (its nonzero coordinates), an undefined tensor keeps its dim whole.
IndexPlan plan_index(const char* op, const Tensor& a, const std::vector<Tensor>& indices) {
  std::vector<Tensor> per_dim;  // one entry per leading dim of a (undefined: ":")
  for (size_t i = 0; i < indices.size(); ++i) {
    const Tensor& t = indices[i];
    const int64_t p = static_cast<int64_t>(per_dim.size());
    if (!t.defined()) {
      per_dim.push_back(t);
      continue;
    }
    FABRIC_CHECK(t.dtype() == DType::int64 || t.dtype() == DType::bool_, DTypeError, op,
                 ": tensors used as indices must be int64 or bool, got ", describe(t),
                 " at position ", i);
    if (t.dtype() == DType::int64) {
      per_dim.push_back(t.detach().to(a.device()));
      continue;
    }
    FABRIC_CHECK(t.dim() > 0, ValueError, op, ": a 0-dim bool index (position ", i,
                 ") is not supported; use a 1-element mask");
    const bool fits = p + t.dim() <= a.dim() &&
                      Shape(a.sizes().begin() + p, a.sizes().begin() + p + t.dim()) == t.sizes();
    FABRIC_CHECK(fits, IndexError, op, ": the mask ", shape_str(t.sizes()), " at position ", i,
                 " does not match the dims ", p, "..", p + t.dim() - 1, " of the indexed tensor ",
                 shape_str(a.sizes()));
    const Tensor coords = nonzero(t.detach().to(a.device()));  // (count, k)
    for (int64_t k = 0; k < t.dim(); ++k) per_dim.push_back(coords.select(1, k));
  }
  FABRIC_CHECK(static_cast<int64_t>(per_dim.size()) <= a.dim(), IndexError, op,
               ": too many indices for a tensor of ", a.dim(), " dims (", per_dim.size(),
               " given, for ", shape_str(a.sizes()), ")");
  IndexPlan plan;
  std::vector<int64_t> pos;
  for (size_t d = 0; d < per_dim.size(); ++d)
    if (per_dim[d].defined()) pos.push_back(static_cast<int64_t>(d));
  FABRIC_CHECK(!pos.empty(), ValueError, op, ": expected at least one index tensor");
  Shape bshape = per_dim[pos[0]].sizes();
  for (int64_t d : pos) bshape = broadcast_shapes(bshape, per_dim[d].sizes(), "index");
  plan.index_shape = bshape;
  const bool adjacent = pos.back() - pos.front() + 1 == static_cast<int64_t>(pos.size());
  plan.insert_at = adjacent ? pos.front() : 0;
  plan.perm = pos;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (std::find(pos.begin(), pos.end(), d) != pos.end()) {
      plan.indexed_sizes.push_back(a.size(d));
    } else {
      plan.perm.push_back(d);
      plan.rest_sizes.push_back(a.size(d));
    }
  }
  // Row-major offsets into the indexed block, the last indexed dim fastest. One non-negative
  // index (the common a[i]) is its own offset: no arithmetic passes over it.
  Tensor off;
  int64_t step = 1;
  for (size_t j = pos.size(); j-- > 0;) {
    const int64_t size = a.size(pos[j]);
    const Tensor& idx = per_dim[pos[j]];
    const bool negative = check_signed_range(op, idx, pos[j], size);
    Tensor term = negative ? where(lt(idx, Scalar(0)), add(idx, Scalar(size)), idx) : idx;
    if (step != 1) term = mul(term, Scalar(step));
    off = off.defined() ? add(off, term) : term;
    step *= size;
  }
  plan.offsets = off.sizes() == bshape ? off : off.expand(bshape);
  return plan;
}

}  // namespace

Tensor nonzero(const Tensor& a) {
  FABRIC_CHECK(a.defined(), ValueError, "nonzero: undefined input");
  // The direct kernel where the device has one (two passes, no temporaries of a's size); the
  // composition below elsewhere (CUDA) and for the dtypes the kernel does not take.
  if (Tensor direct = nonzero_direct(a); direct.defined()) return direct;
  const Tensor flag = (a.dtype() == DType::bool_ ? a.detach() : ne(a.detach(), Scalar(0)))
                          .contiguous()
                          .reshape({-1});
  const int64_t n = flag.numel();
  // The count sizes the result, so on CUDA this reads it back (one device synchronisation).
  const int64_t count = n == 0 ? 0 : sum(flag).item<int64_t>();
  Tensor out = empty({count, a.dim()}, {.dtype = DType::int64, .device = a.device()});
  if (count == 0 || a.dim() == 0) return out;
  // Each nonzero element's row in the result is its rank among them; the others all go to a
  // spare row (count) that is cut off.
  const Tensor rank = sub(cumsum(flag, 0, DType::int64), Scalar(1));
  const Tensor slot = where(flag, rank, Scalar(count));
  const Tensor linear =
      scatter(zeros({count + 1}, {.dtype = DType::int64, .device = a.device()}), 0, slot,
              arange(Scalar(0), Scalar(n), Scalar(1), DType::int64, a.device()))
          .narrow(0, 0, count);
  // Coordinate k of each element, read at the nonzero elements' flat positions.
  for (int64_t k = 0; k < a.dim(); ++k) {
    Shape view(a.dim(), 1);
    view[k] = a.size(k);
    const Tensor coord = arange(Scalar(0), Scalar(a.size(k)), Scalar(1), DType::int64, a.device())
                             .reshape(view)
                             .expand(a.sizes())
                             .contiguous()
                             .reshape({-1});
    out.select(1, k).copy_(index_select(coord, 0, linear));
  }
  return out;
}

Tensor index(const Tensor& a, const std::vector<Tensor>& indices) {
  FABRIC_CHECK(a.defined(), ValueError, "index: undefined input");
  const IndexPlan plan = plan_index("index", a, indices);
  const Tensor rows = index_select(plan.flatten(a), 0, plan.offsets.reshape({-1}));
  Shape gathered = plan.index_shape;  // (index_shape..., rest...)
  gathered.insert(gathered.end(), plan.rest_sizes.begin(), plan.rest_sizes.end());
  Tensor out = rows.reshape(gathered);
  if (plan.insert_at == 0) return out;
  // Move the index dims behind the first insert_at rest dims.
  const int64_t nb = static_cast<int64_t>(plan.index_shape.size());
  const int64_t nr = static_cast<int64_t>(plan.rest_sizes.size());
  std::vector<int64_t> order;
  for (int64_t r = 0; r < plan.insert_at; ++r) order.push_back(nb + r);
  for (int64_t b = 0; b < nb; ++b) order.push_back(b);
  for (int64_t r = plan.insert_at; r < nr; ++r) order.push_back(nb + r);
  return out.permute(order).contiguous();
}

Tensor index_put(const Tensor& a_in, const std::vector<Tensor>& indices, const Tensor& values_in,
                 bool accumulate) {
  FABRIC_CHECK(a_in.defined() && values_in.defined(), ValueError,
               "index_put: undefined self or values");
  // Spec §3: PROMOTE on CUDA (self and values to the widest float type).
  Tensor a = a_in, values = values_in;
  apply_autocast(OpId::index_put, {&a, &values});
  FABRIC_CHECK(a.dtype() == values.dtype(), DTypeError,
               "index_put: values must have self's dtype, got self ", describe(a), " and values ",
               describe(values));
  FABRIC_CHECK(a.device() == values.device(), DeviceError, "index_put: self on ", a.device(),
               ", values on ", values.device());
  const IndexPlan plan = plan_index("index_put", a, indices);
  const Shape result = plan.result_shape();
  FABRIC_CHECK(broadcasts_to(values.sizes(), result), ShapeError, "index_put: values ",
               shape_str(values.sizes()), " cannot be broadcast to the indexed shape ",
               shape_str(result));
  // values in plan order: (index_shape..., rest...) flattened to (n, rest...).
  const int64_t nb = static_cast<int64_t>(plan.index_shape.size());
  const int64_t nr = static_cast<int64_t>(plan.rest_sizes.size());
  std::vector<int64_t> order;
  for (int64_t b = 0; b < nb; ++b) order.push_back(plan.insert_at + b);
  for (int64_t r = 0; r < plan.insert_at; ++r) order.push_back(r);
  for (int64_t r = plan.insert_at; r < nr; ++r) order.push_back(nb + r);
  Shape rows_shape = plan.rest_sizes;
  rows_shape.insert(rows_shape.begin(), numel_of(plan.index_shape));
  const Tensor at = plan.offsets.reshape({-1});
  if (plan.indexed_sizes.size() == 1) {
    // One indexed dim (a[..., i, ...]): the result has the index dims in its place, so values
    // reshape to a's shape with the index's length there, and the write runs along that dim of
    // a itself, with no permuted copies of a or of the result.
    const int64_t d = plan.perm[0];
    Shape along = a.sizes();
    along[d] = at.numel();
    const Tensor v = values.expand(result).reshape(along);
    return accumulate ? index_add(a, d, at, v) : index_copy(a, d, at, v);
  }
  const Tensor rows = values.expand(result).permute(order).reshape(rows_shape);
  const Tensor flat = plan.flatten(a);
  const Tensor written = accumulate ? index_add(flat, 0, at, rows) : index_copy(flat, 0, at, rows);
  // Back to a's dim order.
  Shape planned = plan.indexed_sizes;
  planned.insert(planned.end(), plan.rest_sizes.begin(), plan.rest_sizes.end());
  std::vector<int64_t> inverse(plan.perm.size());
  for (size_t i = 0; i < plan.perm.size(); ++i) inverse[plan.perm[i]] = static_cast<int64_t>(i);
  return written.reshape(planned).permute(inverse).contiguous();
}

Tensor masked_select(const Tensor& a, const Tensor& mask) {
  FABRIC_CHECK(a.defined() && mask.defined(), ValueError, "masked_select: undefined input or mask");
  FABRIC_CHECK(mask.dtype() == DType::bool_, DTypeError,
               "masked_select: expected a bool mask, got ", describe(mask));
  FABRIC_CHECK(a.device() == mask.device(), DeviceError, "masked_select: input on ", a.device(),
               ", mask on ", mask.device());
  const Shape s = broadcast_shapes(a.sizes(), mask.sizes(), "masked_select");
  // The values are compacted straight from the mask (one counting pass and one copying pass)
  // where a kernel does that (the CPU); elsewhere index() builds the (count) int64 offsets and
  // gathers them. Either way the result is one node, MaskedSelectBackward0 as torch's, whose
  // recorded input is the broadcast mask (autograd/derivatives_index.cpp).
  const Tensor values = a.detach().expand(s), m = mask.expand(s);
  Tensor out = masked_select_direct(values, m);
  if (!out.defined()) out = index(values.reshape({-1}), {m.reshape({-1})});
  record_op(OpId::masked_select, {a, m}, {&out});
  return out;
}

Tensor masked_scatter(const Tensor& a, const Tensor& mask, const Tensor& source) {
  FABRIC_CHECK(a.defined() && mask.defined() && source.defined(), ValueError,
               "masked_scatter: undefined input, mask or source");
  FABRIC_CHECK(mask.dtype() == DType::bool_, DTypeError,
               "masked_scatter: expected a bool mask, got ", describe(mask));
  FABRIC_CHECK(source.dtype() == a.dtype(), DTypeError,
               "masked_scatter: source must have self's dtype, got self ", describe(a),
               " and source ", describe(source));
  FABRIC_CHECK(a.device() == mask.device() && a.device() == source.device(), DeviceError,
               "masked_scatter: self, mask and source must be on one device");
  const Shape s = broadcast_shapes(a.sizes(), mask.sizes(), "masked_scatter");
  const Tensor m = mask.expand(s).reshape({-1});
  // The count decides how much of source is read, so on CUDA this waits for the device.
  const int64_t count = m.numel() == 0 ? 0 : sum(m).item<int64_t>();
  FABRIC_CHECK(source.numel() >= count, ShapeError, "masked_scatter: the mask ",
               shape_str(mask.sizes()), " selects ", count, " elements but source ",
               shape_str(source.sizes()), " has only ", source.numel());
  const Tensor values = source.reshape({-1}).narrow(0, 0, count);
  return index_put(a.expand(s).reshape({-1}), {m}, values, false).reshape(s);
}

}  // namespace fabric
