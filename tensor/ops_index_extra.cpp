// take, repeat_interleave, diag_embed, searchsorted/bucketize, unique/unique_consecutive and
// nonzero_tuple (tensor/index_extra.h). The differentiable three are compositions of recorded
// ops (index_select and index_copy), so autograd gives torch's gradients (index_select's backward
// accumulates repeated indices, index_copy's hands the source its positions of grad_out). The
// searches and unique run host loops over contiguous host copies of the operands, keyed as
// double (every float dtype converts exactly, keeping -0 and NaN) or int64 (integers and bool).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/index_extra.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// torch's self.size(dim): unlike wrap_dim, a 0-dim tensor has no dim 0 to take.
int64_t dim_of(const char* op, const Tensor& t, int64_t dim) {
  FABRIC_CHECK(t.dim() > 0, IndexError, op, ": dim ", dim,
               " specified but the tensor has no dimensions (0-dim input)");
  return wrap_dim(dim, t.dim(), op);
}

// An int64 tensor of `v` with `shape` (empty shape: 0-dim) on `device`.
Tensor int64_tensor(const std::vector<int64_t>& v, const Shape& shape, Device device) {
  Tensor t = from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = DType::int64});
  return t.reshape(shape).to(device);
}

template <class K>
bool is_nan_key(K k) {
  return k != k;  // NaN is the only value unequal to itself; never true for int64 keys
}

// ---- repeat_interleave's index form ----------------------------------------------------------

Tensor repeat_index(const Tensor& repeats, std::optional<int64_t> output_size) {
  FABRIC_CHECK(repeats.defined(), ValueError, "repeat_interleave: undefined repeats");
  FABRIC_CHECK(repeats.dim() == 1, ShapeError,
               "repeat_interleave: only accept 1D vector as repeat, got repeats ",
               describe(repeats));
  FABRIC_CHECK(repeats.dtype() == DType::int64 || repeats.dtype() == DType::int32, DTypeError,
               "repeat_interleave: repeats has to be an int64 or int32 tensor, got ",
               describe(repeats));
  if (repeats.numel() == 0)
    return empty({0}, {.dtype = repeats.dtype(), .device = repeats.device()});
  const std::vector<int64_t> r = repeats.to_vector<int64_t>();
  int64_t total = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    FABRIC_CHECK(r[i] >= 0, ValueError, "repeat_interleave: repeats can not be negative, got ",
                 r[i], " at position ", i);
    total = checked_size_add(total, r[i], "repeat_interleave");
  }
  FABRIC_CHECK(!output_size || *output_size == total, ValueError, "repeat_interleave: output_size ",
               output_size.value_or(0), " does not match the sum of repeats ", total,
               " (torch: allocated size does not match required size)");
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(total));
  for (size_t i = 0; i < r.size(); ++i) out.insert(out.end(), r[i], static_cast<int64_t>(i));
  return int64_tensor(out, {total}, repeats.device()).to(repeats.dtype());
}

// ---- searchsorted -----------------------------------------------------------------------------

// torch's cus_lower_bound / cus_upper_bound over every value, bit for bit: the negated
// comparisons (!(mid >= v), !(mid > v)) are what send a NaN value past every element.
template <class K>
std::vector<int64_t> search_rows(const std::vector<K>& bd, const std::vector<K>& val,
                                 const std::vector<int64_t>* sort, int64_t row_bd, int64_t row_in,
                                 bool one_d, bool right) {
  std::vector<int64_t> out(val.size());
  for (size_t i = 0; i < val.size(); ++i) {
    const int64_t start = one_d ? 0 : static_cast<int64_t>(i) / row_in * row_bd;
    int64_t lo = start, hi = start + row_bd;
    const K v = val[i];
    while (lo < hi) {
      const int64_t mid = lo + ((hi - lo) >> 1);
      const K m = sort ? bd[(*sort)[mid] + start] : bd[mid];
      const bool go_right = right ? !(m > v) : !(m >= v);
      if (go_right)
        lo = mid + 1;
      else
        hi = mid;
    }
    out[i] = lo - start;
  }
  return out;
}

// aten's searchsorted_pre_check, in its order.
void check_search(const Tensor& seq, const Tensor& values, bool out_int32, bool right,
                  std::optional<std::string_view> side, const Tensor& sorter) {
  constexpr const char* op = "torch.searchsorted()";
  FABRIC_CHECK(seq.defined() && values.defined(), ValueError, op,
               ": undefined sorted_sequence or values");
  if (side) {
    FABRIC_CHECK(*side == "left" || *side == "right", ValueError, op,
                 ": side can only be 'left' or 'right' but got ", *side);
    FABRIC_CHECK(!right || *side == "right", ValueError, op,
                 ": side and right can't be set to opposites, got side of ", *side,
                 " while right was True");
  }
  FABRIC_CHECK(seq.device() == values.device(), DeviceError, op,
               ": boundaries and input value tensors should have same device type, but got "
               "boundaries tensor device type ",
               seq.device(), " and input value tensor device type ", values.device());
  if (sorter.defined()) {
    FABRIC_CHECK(sorter.device() == seq.device(), DeviceError, op,
                 ": sorter and boundary tensors should have same device type, but got sorter "
                 "tensor device type ",
                 sorter.device(), " and boundary tensor device type ", seq.device());
    FABRIC_CHECK(sorter.sizes() == seq.sizes(), ShapeError, op,
                 ": boundary and sorter must have the same size, but got boundary tensor ",
                 shape_str(seq.sizes()), " and got sorter tensor ", shape_str(sorter.sizes()));
    FABRIC_CHECK(sorter.dtype() == DType::int64, DTypeError, op,
                 ": sorter must be a tensor of long dtype but got dtype ",
                 dtype_name(sorter.dtype()));
  }
  FABRIC_CHECK(seq.dim() != 0, ShapeError, op,
               ": boundaries tensor should have positive dimension, but got 0 dimension");
  FABRIC_CHECK(values.dim() > 0 || seq.dim() == 1, ShapeError, op,
               ": input value can be a scalar only when boundaries tensor dimension is 1, but we "
               "got boundaries tensor dim(",
               seq.dim(), ") and input value's dim(", values.dim(), ") numel(", values.numel(),
               ")");
  bool leading_match = seq.dim() == values.dim();
  for (int64_t d = 0; leading_match && d + 1 < seq.dim(); ++d)
    leading_match = seq.size(d) == values.size(d);
  FABRIC_CHECK(seq.dim() == 1 || leading_match, ShapeError, op,
               ": boundaries tensor should be 1 dimension or the first N-1 dimensions of "
               "boundaries tensor and input value tensor must match, but we got boundaries tensor ",
               shape_str(seq.sizes()), " and input value tensor ", shape_str(values.sizes()));
  FABRIC_CHECK(!out_int32 || seq.sizes().back() < std::numeric_limits<int32_t>::max(), ValueError,
               op, ": the size of boundaries' last dimension should be less than ",
               std::numeric_limits<int32_t>::max(), ", but we got ", seq.sizes().back());
}

// The search once the operands are checked: both compared in `common`.
Tensor search(const Tensor& seq, const Tensor& values, bool out_int32, bool right,
              std::optional<std::string_view> side, const Tensor& sorter, DType common) {
  const DType out_dtype = out_int32 ? DType::int32 : DType::int64;
  if (values.numel() == 0)
    return empty(values.sizes(), {.dtype = out_dtype, .device = values.device()});
  FABRIC_CHECK(common != DType::bool_, DTypeError,
               "torch.searchsorted(): bool operands are not supported (torch 1.13 has no "
               "searchsorted kernel for Bool), got sorted_sequence ",
               describe(seq), " and values ", describe(values));
  const bool is_right = right || (side && *side == "right");
  const int64_t row_bd = seq.sizes().back();
  const int64_t row_in = values.dim() == 0 ? 1 : values.sizes().back();
  std::vector<int64_t> sort;
  if (sorter.defined()) {
    sort = sorter.to_vector<int64_t>();
    for (size_t i = 0; i < sort.size(); ++i)
      FABRIC_CHECK(sort[i] >= 0 && sort[i] < row_bd, IndexError,
                   "torch.searchsorted(): sorter value ", sort[i], " at position ", i,
                   " is out of range for a boundaries row of ", row_bd, " elements");
  }
  const std::vector<int64_t>* sp = sorter.defined() ? &sort : nullptr;
  const Tensor s = seq.to(common), v = values.to(common);
  std::vector<int64_t> pos;
  if (is_floating(common)) {
    pos = search_rows(s.to_vector<double>(), v.to_vector<double>(), sp, row_bd, row_in,
                      seq.dim() == 1, is_right);
  } else {
    pos = search_rows(s.to_vector<int64_t>(), v.to_vector<int64_t>(), sp, row_bd, row_in,
                      seq.dim() == 1, is_right);
  }
  return int64_tensor(pos, values.sizes(), values.device()).to(out_dtype);
}

// ---- unique -----------------------------------------------------------------------------------

// The groups a unique pass found: each group's representative (a flat element or a slice index
// of the input), each input position's group, each group's size.
struct Groups {
  std::vector<int64_t> reps, inverse, counts;
  void open(int64_t rep) {
    reps.push_back(rep);
    counts.push_back(0);
  }
  void add(int64_t pos) {
    inverse[pos] = static_cast<int64_t>(reps.size()) - 1;
    ++counts.back();
  }
};

// Flattened unique: non-NaN keys sorted stably (so -0/+0 keep their first occurrence), equal
// keys merged; then each NaN as a value of its own, in input order.
template <class K>
Groups unique_flat(const std::vector<K>& k) {
  Groups g;
  g.inverse.resize(k.size());
  std::vector<int64_t> order;
  for (size_t i = 0; i < k.size(); ++i)
    if (!is_nan_key(k[i])) order.push_back(static_cast<int64_t>(i));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return k[a] < k[b]; });
  for (const int64_t pos : order) {
    if (g.reps.empty() || !(k[pos] == k[g.reps.back()])) g.open(pos);
    g.add(pos);
  }
  for (size_t i = 0; i < k.size(); ++i) {
    if (!is_nan_key(k[i])) continue;
    g.open(static_cast<int64_t>(i));
    g.add(static_cast<int64_t>(i));
  }
  return g;
}

// torch's unique_consecutive loop: a new value wherever an element != the current one.
template <class K>
Groups unique_runs(const std::vector<K>& k) {
  Groups g;
  g.inverse.resize(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    if (g.reps.empty() || !(k[i] == k[g.reps.back()])) g.open(static_cast<int64_t>(i));
    g.add(static_cast<int64_t>(i));
  }
  return g;
}

// torch's _unique_dim_cpu_template over `rows` slices of `width` keys: std::sort of the slice
// indices with torch's comparator (first element where < or > decides; NaN, failing both,
// ties), unless consecutive, then at::equal (elementwise ==) between each slice and its group's
// first. The same std::sort on the same comparator gives torch's order, ties included.
template <class K>
Groups unique_slices(const std::vector<K>& k, int64_t rows, int64_t width, bool consecutive) {
  std::vector<int64_t> idx(static_cast<size_t>(rows));
  std::iota(idx.begin(), idx.end(), 0);
  if (!consecutive) {
    std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
      for (int64_t i = 0; i < width; ++i) {
        const K lhs = k[a * width + i], rhs = k[b * width + i];
        if (lhs < rhs) return true;
        if (lhs > rhs) return false;
      }
      return false;
    });
  }
  auto equal = [&](int64_t a, int64_t b) {
    for (int64_t i = 0; i < width; ++i)
      if (!(k[a * width + i] == k[b * width + i])) return false;
    return true;
  };
  Groups g;
  g.inverse.resize(static_cast<size_t>(rows));
  for (const int64_t r : idx) {
    if (g.reps.empty() || !equal(r, g.reps.back())) g.open(r);
    g.add(r);
  }
  return g;
}

void check_unique_dtype(const char* op, const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  FABRIC_CHECK(x.dtype() != DType::float16, DTypeError, op,
               ": float16 is not supported (torch 1.13 has no CPU unique kernel for Half), got ",
               describe(x));
}

UniqueResult unique_impl(const char* op, const Tensor& x_in, bool consecutive, bool inverse,
                         bool counts, std::optional<int64_t> dim) {
  check_unique_dtype(op, x_in);
  const Tensor x = x_in.detach();  // torch has no derivative for unique
  const Device dev = x.device();
  const TensorOptions long_opts{.dtype = DType::int64, .device = dev};
  UniqueResult res;
  if (!dim) {
    const bool fl = is_floating(x.dtype());
    const Groups g =
        fl ? (consecutive ? unique_runs(x.to_vector<double>()) : unique_flat(x.to_vector<double>()))
           : (consecutive ? unique_runs(x.to_vector<int64_t>())
                          : unique_flat(x.to_vector<int64_t>()));
    const int64_t n = static_cast<int64_t>(g.reps.size());
    res.values = index_select(x.reshape({-1}), 0, int64_tensor(g.reps, {n}, dev));
    if (inverse) res.inverse = int64_tensor(g.inverse, x.sizes(), dev);
    if (counts) res.counts = int64_tensor(g.counts, {n}, dev);
    return res;
  }
  const int64_t d = dim_of(op, x, *dim);
  const int64_t zero_dims = std::count(x.sizes().begin(), x.sizes().end(), int64_t{0});
  if (x.size(d) == 0) {
    FABRIC_CHECK(zero_dims == 1, ValueError, op, ": input ", describe(x),
                 " has more than one zero-sized dimension, so unique cannot be applied");
    res.values = empty(x.sizes(), {.dtype = x.dtype(), .device = dev});
    if (inverse) res.inverse = empty({0}, long_opts);
    if (counts) res.counts = empty({0}, long_opts);
    return res;
  }
  FABRIC_CHECK(zero_dims == 0, ValueError, op, ": input ", describe(x),
               " has zero-sized dimensions other than dim ", d,
               ", and they aren't selected, so unique cannot be applied");
  // torch's moveaxis(dim, 0): slice i of dim d is row i, its elements in x's order.
  std::vector<int64_t> order{d};
  for (int64_t k = 0; k < x.dim(); ++k)
    if (k != d) order.push_back(k);
  const Tensor rows = x.permute(order).contiguous();
  const int64_t n = x.size(d), width = x.numel() / n;
  const Groups g = is_floating(x.dtype())
                       ? unique_slices(rows.to_vector<double>(), n, width, consecutive)
                       : unique_slices(rows.to_vector<int64_t>(), n, width, consecutive);
  const int64_t m = static_cast<int64_t>(g.reps.size());
  res.values = index_select(x, d, int64_tensor(g.reps, {m}, dev));
  if (inverse) res.inverse = int64_tensor(g.inverse, {n}, dev);
  if (counts) res.counts = int64_tensor(g.counts, {m}, dev);
  return res;
}

}  // namespace

Tensor take(const Tensor& x, const Tensor& index) {
  FABRIC_CHECK(x.defined() && index.defined(), ValueError, "take(): undefined input or index");
  FABRIC_CHECK(index.dtype() == DType::int64, DTypeError,
               "take(): Expected a long (int64) tensor for index, but got ", describe(index));
  FABRIC_CHECK(x.device() == index.device(), DeviceError, "take(): input on ", x.device(),
               ", index on ", index.device());
  const int64_t n = x.numel();
  std::vector<int64_t> idx = index.to_vector<int64_t>();
  FABRIC_CHECK(n > 0 || idx.empty(), IndexError, "take(): tried to take from an empty tensor (",
               describe(x), ") with ", idx.size(), " indices");
  for (int64_t& i : idx) {
    FABRIC_CHECK(i >= -n && i < n, IndexError, "take(): out of range: tried to access index ", i,
                 " on a tensor of ", n, " elements.");
    if (i < 0) i += n;
  }
  const Tensor flat = int64_tensor(idx, {static_cast<int64_t>(idx.size())}, x.device());
  return index_select(x.reshape({-1}), 0, flat).reshape(index.sizes());
}

Tensor repeat_interleave(const Tensor& x, const Tensor& repeats, std::optional<int64_t> dim,
                         std::optional<int64_t> output_size) {
  FABRIC_CHECK(x.defined() && repeats.defined(), ValueError,
               "repeat_interleave: undefined input or repeats");
  const Tensor input = dim ? x : x.reshape({-1});
  const int64_t d = dim ? dim_of("repeat_interleave", input, *dim) : 0;
  const int64_t len = input.size(d);
  Tensor reps = repeats;
  if (repeats.dim() == 0 || (repeats.dim() == 1 && repeats.size(0) == 1)) {
    reps = repeats.reshape({1}).expand({len});
  } else {
    FABRIC_CHECK(repeats.dim() == 1, ShapeError,
                 "repeat_interleave: repeats must be 0-dim or 1-dim tensor, got ",
                 describe(repeats));
    FABRIC_CHECK(repeats.size(0) == len, ShapeError,
                 "repeat_interleave: repeats must have the same size as input along dim, got ",
                 repeats.size(0), " repeats for size ", len, " of input ", describe(input),
                 " at dim ", d);
  }
  const Tensor index = repeat_index(reps, output_size).to(DType::int64).to(x.device());
  return index_select(input, d, index);
}

Tensor repeat_interleave(const Tensor& x, int64_t repeats, std::optional<int64_t> dim,
                         std::optional<int64_t> output_size) {
  return repeat_interleave(x, int64_tensor({repeats}, {}, Device::cpu()), dim, output_size);
}

Tensor repeat_interleave(const Tensor& repeats) { return repeat_index(repeats, std::nullopt); }

Tensor repeat_interleave_sized(const Tensor& repeats, int64_t output_size) {
  return repeat_index(repeats, output_size);
}

Tensor diag_embed(const Tensor& x, int64_t offset, int64_t dim1_in, int64_t dim2_in) {
  FABRIC_CHECK(x.defined(), ValueError, "diag_embed: undefined input");
  const int64_t nd = x.dim() + 1;
  const int64_t dim1 = wrap_dim(dim1_in, nd, "diag_embed");
  const int64_t dim2 = wrap_dim(dim2_in, nd, "diag_embed");
  FABRIC_CHECK(dim1 != dim2, ValueError, "diag_embed: diagonal dimensions cannot be identical ",
               dim1_in, ", ", dim2_in);
  const int64_t n = x.size(-1);
  const int64_t m = checked_size_add(n, offset < 0 ? -offset : offset, "diag_embed");
  // Row-major (m, m) plane offsets of the diagonal: (i, i + offset) or (i - offset, i).
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[i] = offset >= 0 ? i * m + i + offset : (i - offset) * m + i;
  Shape planes(x.sizes().begin(), x.sizes().end() - 1);
  const int64_t batch_dims = static_cast<int64_t>(planes.size());
  planes.push_back(checked_size_mul(m, m, "diag_embed"));
  const Tensor zero = zeros(planes, {.dtype = x.dtype(), .device = x.device()});
  Tensor out = index_copy(zero, batch_dims, int64_tensor(pos, {n}, x.device()), x);
  planes.back() = m;
  planes.push_back(m);
  out = out.reshape(planes);
  // The (dim1, dim2) plane is last: move its two dims to dim1 and dim2, the batch dims in order.
  std::vector<int64_t> order(static_cast<size_t>(nd));
  int64_t b = 0;
  for (int64_t k = 0; k < nd; ++k) order[k] = k == dim1 ? nd - 2 : k == dim2 ? nd - 1 : b++;
  return out.permute(order).contiguous();
}

Tensor searchsorted(const Tensor& sorted_sequence, const Tensor& values, bool out_int32, bool right,
                    std::optional<std::string_view> side, const Tensor& sorter) {
  check_search(sorted_sequence, values, out_int32, right, side, sorter);
  const DType common = promote_types(sorted_sequence.dtype(), values.dtype());
  return search(sorted_sequence, values, out_int32, right, side, sorter, common);
}

Tensor searchsorted(const Tensor& sorted_sequence, const Scalar& value, bool out_int32, bool right,
                    std::optional<std::string_view> side, const Tensor& sorter) {
  FABRIC_CHECK(sorted_sequence.defined(), ValueError,
               "torch.searchsorted(): undefined sorted_sequence");
  const DType common = result_type({&sorted_sequence}, {&value});
  const Tensor v = scalar_tensor(value, {.dtype = common, .device = sorted_sequence.device()});
  check_search(sorted_sequence, v, out_int32, right, side, sorter);
  return search(sorted_sequence, v, out_int32, right, side, sorter, common);
}

Tensor bucketize(const Tensor& x, const Tensor& boundaries, bool out_int32, bool right) {
  FABRIC_CHECK(x.defined() && boundaries.defined(), ValueError,
               "bucketize: undefined input or boundaries");
  FABRIC_CHECK(boundaries.dim() == 1, ShapeError,
               "bucketize: boundaries tensor must be 1 dimension, but got dim(", boundaries.dim(),
               ")");
  return searchsorted(boundaries, x, out_int32, right);
}

UniqueResult unique(const Tensor& x, bool sorted, bool return_inverse, bool return_counts,
                    std::optional<int64_t> dim) {
  (void)sorted;  // torch's unsorted order is its hash set's (unspecified); the sorted one serves
  return unique_impl("unique", x, false, return_inverse, return_counts, dim);
}

UniqueResult unique_consecutive(const Tensor& x, bool return_inverse, bool return_counts,
                                std::optional<int64_t> dim) {
  return unique_impl("unique_consecutive", x, true, return_inverse, return_counts, dim);
}

std::vector<Tensor> nonzero_tuple(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "nonzero_tuple: undefined input");
  return unbind(nonzero(x.dim() == 0 ? x.reshape({1}) : x), 1);
}

}  // namespace fabric
