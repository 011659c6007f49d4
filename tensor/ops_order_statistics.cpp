// median, nanmedian, kthvalue, mode, quantile and nanquantile as torch 1.13's CPU (declared in
// tensor/order_statistics.h). Selection runs over a contiguous host copy with torch's own
// algorithms, so that indices among equal values are torch's: std::nth_element with torch's
// comparators (median), torch's quick-select (kthvalue), std::sort of (value, index) pairs by
// value (mode, and quantile's unstable sort). Values are then gathered at the indices (a
// recorded op: the gradient goes to the chosen element). quantile composes gather and
// masked_fill as torch's quantile_compute does; its lerp is computed on the host with torch's
// fused multiply-add and given torch's gradient.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/float_formats.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/order_statistics.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

using detail::cat;

// The type values compare in: 16-bit floats widen to float (exactly; torch compares c10::Half and
// BFloat16 as float too), bool as a byte (orders the same; std::vector<bool> packs bits), the rest
// compare as stored.
template <typename T>
using KeyOf = std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float,
                                 std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>>;

template <typename K>
bool is_nan(K v) {
  if constexpr (std::is_floating_point_v<K>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

// Calls f(T{}) with x's element type. bool only where torch's kernel takes it (mode); fp8 never.
template <typename F>
void visit_dtype(const char* op, DType t, bool allow_bool, F&& f) {
  switch (t) {
    case DType::float64:
      return f(double{});
    case DType::float32:
      return f(float{});
    case DType::float16:
      return f(Half{});
    case DType::bfloat16:
      return f(BFloat16{});
    case DType::int64:
      return f(int64_t{});
    case DType::int32:
      return f(int32_t{});
    case DType::int8:
      return f(int8_t{});
    case DType::uint8:
      return f(uint8_t{});
    case DType::bool_:
      if (allow_bool) return f(bool{});
      break;
    default:
      break;
  }
  throw DTypeError(cat(op, ": not implemented for dtype ", dtype_name(t),
                       allow_bool ? "" : " (as torch's CPU kernel; bool has no order here)"));
}

template <typename T>
std::vector<KeyOf<T>> load_row(const T* p, int64_t n) {
  std::vector<KeyOf<T>> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<KeyOf<T>>(p[i]);
  return v;
}

// ---- torch's selections over one row -------------------------------------------------------

// torch's median_with_indices_impl: the first NaN (median), else std::nth_element over the
// positions with values ordered by (value, position) (nanmedian: NaN after every number).
template <typename K>
int64_t median_index(const std::vector<K>& v, bool ignore_nan) {
  const int64_t n = static_cast<int64_t>(v.size());
  if (!ignore_nan) {
    const auto nan = std::find_if(v.begin(), v.end(), [](K a) { return is_nan(a); });
    if (nan != v.end()) return nan - v.begin();
  }
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  auto nth = idx.begin();
  if (!ignore_nan) {
    nth += (n - 1) / 2;
    std::nth_element(idx.begin(), nth, idx.end(),
                     [&v](int64_t i, int64_t j) { return v[i] < v[j] || (v[i] == v[j] && i < j); });
  } else {
    const int64_t num_nan = std::count_if(v.begin(), v.end(), [](K a) { return is_nan(a); });
    nth += (n - num_nan - 1) / 2;  // C++'s truncation: an all-NaN row selects position 0
    std::nth_element(idx.begin(), nth, idx.end(), [&v](int64_t i, int64_t j) {
      return v[i] < v[j] || (v[i] == v[j] && i < j) || (is_nan(v[j]) && !is_nan(v[i]));
    });
  }
  return *nth;
}

// torch's quick_select_template (ATen/native/SortingUtils.h) with kthvalue's "greater, NaN the
// largest" comparison: element k (0-based) of the row, and where it came from.
template <typename K>
int64_t kth_index(std::vector<K> a, int64_t k) {
  std::vector<int64_t> idx(a.size());
  std::iota(idx.begin(), idx.end(), int64_t{0});
  const auto gt = [](K x, K y) { return (is_nan(x) && !is_nan(y)) || x > y; };
  const auto swap = [&](int64_t i, int64_t j) {
    std::swap(a[i], a[j]);
    std::swap(idx[i], idx[j]);
  };
  int64_t lo = 0, hi = static_cast<int64_t>(a.size()) - 1;
  while (true) {
    if (hi <= lo) break;
    if (hi == lo + 1) {
      if (gt(a[lo], a[hi])) swap(lo, hi);
      break;
    }
    // The median of three as pivot, at lo.
    swap(lo + (hi - lo) / 2, lo + 1);
    if (gt(a[lo + 1], a[hi])) swap(lo + 1, hi);
    if (gt(a[lo], a[hi])) swap(lo, hi);
    if (gt(a[lo + 1], a[lo])) swap(lo + 1, lo);
    int64_t i = lo + 1, j = hi;
    const K piv = a[lo];
    while (true) {
      do ++i;
      while (gt(piv, a[i]));
      do --j;
      while (gt(a[j], piv));
      if (j < i) break;
      swap(i, j);
    }
    swap(lo, j);
    if (j <= k) lo = i;
    if (j >= k) hi = j - 1;
  }
  return idx[k];
}

// torch's mode_kernel_impl: std::sort of (value, position) by value, then the first longest run
// of equal values; its index is that of the run's last pair.
template <typename K>
int64_t mode_index(const std::vector<K>& v) {
  const int64_t n = static_cast<int64_t>(v.size());
  std::vector<std::pair<K, int64_t>> e(v.size());
  for (int64_t i = 0; i < n; ++i) e[i] = {v[i], i};
  std::sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  int64_t modei = 0, freq = 0, max_freq = 0;
  for (int64_t i = 0; i < n; ++i) {
    ++freq;
    if (i == n - 1 || e[i].first != e[i + 1].first) {
      if (freq > max_freq) {
        modei = e[i].second;
        max_freq = freq;
      }
      freq = 0;
    }
  }
  return modei;
}

// torch 1.13's CPU sort with stable = false (quantile's): std::sort of (value, position) pairs
// with NaN after every number. Equal values (0 and -0 among them) end in that algorithm's order,
// not in input order as a stable sort leaves them.
template <typename K>
void torch_sort_row(const std::vector<K>& v, int64_t* out) {
  std::vector<std::pair<K, int64_t>> e(v.size());
  for (size_t i = 0; i < v.size(); ++i) e[i] = {v[i], static_cast<int64_t>(i)};
  std::sort(e.begin(), e.end(), [](const auto& a, const auto& b) {
    return (!is_nan(a.first) && is_nan(b.first)) || a.first < b.first;
  });
  for (size_t i = 0; i < e.size(); ++i) out[i] = e[i].second;
}

// ---- the per-slice driver ------------------------------------------------------------------

enum class Select { median, nanmedian, kth, mode };

// (values, indices) of one selection per slice along dim; k is kthvalue's (0-based).
std::tuple<Tensor, Tensor> select_along(const char* op, const Tensor& x, int64_t dim, bool keepdim,
                                        Select how, int64_t k = 0) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  dim = wrap_dim(dim, x.dim(), op);
  if (x.dim() == 0) {  // one element, as a slice of one; the results stay 0-dim (torch)
    auto [values, indices] = select_along(op, x.reshape({1}), 0, false, how, k);
    return {values.reshape(Shape{}), indices.reshape(Shape{})};
  }
  const int64_t n = x.size(dim);
  FABRIC_CHECK(n > 0, IndexError, op, ": expected reduction dim ", dim,
               " to have non-zero size, got input of shape ", shape_str(x.sizes()));
  if (how == Select::kth)
    FABRIC_CHECK(k >= 0 && k < n, IndexError, op, ": k = ", k + 1, " is out of range for dim ", dim,
                 " of size ", n, " (input ", shape_str(x.sizes()), "; expected 1 <= k <= ", n, ")");
  const int64_t last = x.dim() - 1;
  const Tensor rows = x.detach().transpose(dim, last).contiguous().to(Device::cpu()).contiguous();
  Shape idx_shape = rows.sizes();
  idx_shape[last] = 1;
  Tensor idx = empty(idx_shape, {.dtype = DType::int64, .device = Device::cpu()});
  const int64_t slices = rows.numel() / n;
  visit_dtype(op, x.dtype(), how == Select::mode, [&](auto tag) {
    using T = decltype(tag);
    const T* p = slices > 0 ? rows.data<T>() : nullptr;
    int64_t* out = slices > 0 ? idx.data<int64_t>() : nullptr;
    for (int64_t s = 0; s < slices; ++s) {
      const auto v = load_row(p + s * n, n);
      switch (how) {
        case Select::median:
          out[s] = median_index(v, false);
          break;
        case Select::nanmedian:
          out[s] = median_index(v, true);
          break;
        case Select::kth:
          out[s] = kth_index(v, k);
          break;
        case Select::mode:
          out[s] = mode_index(v);
          break;
      }
    }
  });
  idx = idx.transpose(dim, last).contiguous().to(x.device());
  Tensor values = gather(x, dim, idx);  // recorded: the gradient goes to the chosen element
  if (!keepdim) {
    values = values.squeeze(dim);
    idx = idx.squeeze(dim);
  }
  return {values, idx};
}

// x (..., n) sorted along its last dim as torch's unstable CPU sort orders it; the values are
// gathered (recorded) at the sorted positions, as torch's sort backward scatters to them.
Tensor torch_sorted(const char* op, const Tensor& x) {
  const int64_t last = x.dim() - 1, n = x.size(last);
  const Tensor rows = x.detach().contiguous().to(Device::cpu()).contiguous();
  Tensor idx = empty(rows.sizes(), {.dtype = DType::int64, .device = Device::cpu()});
  const int64_t slices = n > 0 ? rows.numel() / n : 0;
  visit_dtype(op, x.dtype(), false, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t s = 0; s < slices; ++s)
      torch_sort_row(load_row(rows.data<T>() + s * n, n), idx.data<int64_t>() + s * n);
  });
  return gather(x, last, idx.to(x.device()));
}

// ---- median over every element -------------------------------------------------------------

// torch 1.13's empty median: NaN converted to the dtype (x86's conversion: the integer
// indefinite value for int32/int64, 0 for the 8-bit ones, which torch converts through int32
// and truncates).
Tensor empty_median(const Tensor& x) {
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  switch (x.dtype()) {
    case DType::int64:
      return full(Shape{}, std::numeric_limits<int64_t>::min(), opts);
    case DType::int32:
      return full(Shape{}, std::numeric_limits<int32_t>::min(), opts);
    case DType::int8:
    case DType::uint8:
      return zeros(Shape{}, opts);
    default:
      return full(Shape{}, std::numeric_limits<double>::quiet_NaN(), opts);
  }
}

uint64_t bits_of(const Tensor& t) { return std::bit_cast<uint64_t>(t.item<double>()); }

// The value `want` (a 0-dim tensor of torch's bits) with torch's gradient for it: shared evenly
// among x's elements equal to it (NaN: among the NaNs). max() over those elements has that
// gradient (MaxBackward1); its bits can differ from want's only in a zero's or a NaN's sign,
// which a sign-only rewrite with slope 1 restores.
Tensor evenly_shared(const Tensor& x, const Tensor& want) {
  const Tensor flat = x.reshape({-1});
  const bool nan = std::isnan(want.item<double>());
  const Tensor hit = nan ? isnan(flat.detach()) : eq(flat.detach(), want);
  Tensor m = max(masked_select(flat, hit));
  if (bits_of(m) == bits_of(want)) return m;
  const Tensor to_plus = add(m, 0.0);  // -0 + 0 = +0
  if (bits_of(to_plus) == bits_of(want)) return to_plus;
  const Tensor flipped = neg(sub(zeros_like(m), m));  // -(0 - m): +0 -> -0, -NaN -> +NaN
  if (bits_of(flipped) == bits_of(want)) return flipped;
  return m;
}

// torch's median_impl: std::nth_element over the values with NaN after every number; median
// returns NaN outright when there is one.
Tensor median_all(const char* op, const Tensor& x, bool ignore_nan) {
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  FABRIC_CHECK(x.dtype() != DType::bool_, DTypeError, op,
               ": not implemented for dtype bool (as torch's median_cpu)");
  if (x.numel() == 0) return empty_median(x);
  const Tensor flat = x.detach().reshape({-1}).contiguous().to(Device::cpu()).contiguous();
  const int64_t n = flat.numel();
  int64_t pos = -1;  // the chosen element, or -1 for median's NaN
  visit_dtype(op, x.dtype(), false, [&](auto tag) {
    using T = decltype(tag);
    using K = KeyOf<T>;
    const auto v = load_row(flat.data<T>(), n);
    const int64_t num_nan = std::count_if(v.begin(), v.end(), [](K a) { return is_nan(a); });
    if (!ignore_nan && num_nan > 0) return;
    // The pairs move as torch's values do: nth_element looks only at the comparisons.
    std::vector<std::pair<K, int64_t>> e(v.size());
    for (int64_t i = 0; i < n; ++i) e[i] = {v[i], i};
    auto nth = e.begin() + (n - num_nan - 1) / 2;
    std::nth_element(e.begin(), nth, e.end(), [](const auto& a, const auto& b) {
      return a.first < b.first || (is_nan(b.first) && !is_nan(a.first));
    });
    pos = nth->second;
  });
  const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
  const Tensor value = pos >= 0 ? flat.select(0, pos).clone().to(x.device())
                                : full(Shape{}, std::numeric_limits<double>::quiet_NaN(), opts);
  if (!needs_record({&x})) return value;
  return evenly_shared(x, value);
}

// ---- quantile ------------------------------------------------------------------------------

enum class Interp { linear, lower, higher, midpoint, nearest };

Interp parse_interpolation(const char* op, std::string_view s) {
  if (s == "linear") return Interp::linear;
  if (s == "lower") return Interp::lower;
  if (s == "higher") return Interp::higher;
  if (s == "midpoint") return Interp::midpoint;
  if (s == "nearest") return Interp::nearest;
  throw ValueError(cat(op,
                       ": interpolation must be one of linear, lower, higher, midpoint or "
                       "nearest, but got \"",
                       s, "\""));
}

// torch's lerp (ATen/native/Lerp.h) as its CPU kernel is compiled, with contracted multiply-adds:
// |w| < 0.5 ? fma(w, hi - lo, lo) : fma(-(hi - lo), 1 - w, hi).
template <typename T>
T torch_lerp(T lo, T hi, T w) {
  const T d = hi - lo;
  return std::abs(w) < T(0.5) ? std::fma(w, d, lo) : std::fma(-d, T(1) - w, hi);
}

// lerp(lo, hi, w) with torch's bits and torch's gradient (grad * (1 - w) to lo, grad * w to hi,
// whatever the values). The bits f come from the host; the gradient from s = lo * (1 - w) +
// hi * w, through ops whose output is f: where s is finite, f + (s - s) (s - s is exactly +0),
// with -(0 - that) where f is -0 (which + 0 would make +0); where s is not finite, c + s with
// c = f where f is NaN (then c's NaN comes out, as x86 adds do), else 0 (f is then s itself:
// infinities take no rounding). Each element takes one branch; the others get zero gradients.
Tensor lerp_like(const Tensor& lo, const Tensor& hi, const Tensor& w) {
  const Tensor lo_h = lo.detach().contiguous().to(Device::cpu()).contiguous();
  const Tensor hi_h = hi.detach().contiguous().to(Device::cpu()).contiguous();
  const Tensor w_h = w.detach().contiguous().to(Device::cpu()).contiguous();
  Tensor f = empty(lo_h.sizes(), {.dtype = lo.dtype(), .device = Device::cpu()});
  const int64_t n = f.numel();
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    const T *a = lo_h.data<T>(), *b = hi_h.data<T>(), *c = w_h.data<T>();
    T* o = f.data<T>();
    for (int64_t i = 0; i < n; ++i) o[i] = torch_lerp(a[i], b[i], c[i]);
  };
  if (n > 0) {
    if (lo.dtype() == DType::float64)
      run(double{});
    else
      run(float{});
  }
  const Tensor value = f.to(lo.device());
  if (!needs_record({&lo, &hi})) return value;
  const Tensor s = add(mul(lo, add(neg(w), 1.0)), mul(hi, w));
  const Tensor s_h = s.detach().to(DType::float64).contiguous().to(Device::cpu()).contiguous();
  const Tensor f64 = f.to(DType::float64).contiguous();
  const TensorOptions host_bool{.dtype = DType::bool_, .device = Device::cpu()};
  Tensor finite = empty(f.sizes(), host_bool), minus_zero = empty(f.sizes(), host_bool);
  Tensor c = zeros(f.sizes(), {.dtype = lo.dtype(), .device = Device::cpu()});
  if (n > 0) {
    const double* sp = s_h.data<double>();
    const double* fp = f64.data<double>();
    bool* fin = finite.data<bool>();
    bool* mz = minus_zero.data<bool>();
    for (int64_t i = 0; i < n; ++i) {
      fin[i] = std::isfinite(sp[i]);
      mz[i] = fp[i] == 0.0 && std::signbit(fp[i]);
    }
    c = where(isnan(f), f, c);
  }
  const Tensor on_finite = add(value, sub(s, s.detach()));
  const Tensor on_minus_zero = neg(sub(zeros_like(on_finite), on_finite));
  const Tensor on_other = add(c.to(lo.device()), s);
  return where(finite.to(lo.device()), where(minus_zero.to(lo.device()), on_minus_zero, on_finite),
               on_other);
}

// torch's quantile_checks and argument order: interpolation, non-empty input, q's rank, the
// dtypes, the device, dim, then q's values (0 <= q <= 1, NaN refused).
Tensor quantile_impl(const char* op, const Tensor& x, const Tensor& q_in,
                     std::optional<int64_t> dim_in, bool keepdim, std::string_view interpolation,
                     bool ignore_nan) {
  FABRIC_CHECK(x.defined() && q_in.defined(), ValueError, op, ": undefined input or q");
  const Interp interp = parse_interpolation(op, interpolation);
  FABRIC_CHECK(x.numel() > 0, ShapeError, op, ": input tensor must be non-empty, got shape ",
               shape_str(x.sizes()));
  FABRIC_CHECK(q_in.dim() <= 1, ShapeError, op, ": q must be a scalar or 1D tensor, got shape ",
               shape_str(q_in.sizes()));
  FABRIC_CHECK(x.dtype() == DType::float32 || x.dtype() == DType::float64, DTypeError, op,
               ": input tensor must be either float or double dtype, got ", dtype_name(x.dtype()));
  FABRIC_CHECK(q_in.dtype() == x.dtype(), DTypeError, op,
               ": q tensor must be same dtype as the input tensor (", dtype_name(x.dtype()),
               "), got ", dtype_name(q_in.dtype()));
  FABRIC_CHECK(q_in.device() == x.device(), DeviceError, op, ": q on ", q_in.device(),
               ", input on ", x.device(), "; expected the same device");
  std::optional<int64_t> dim;
  if (dim_in) dim = wrap_dim(*dim_in, x.dim(), op);
  // torch checks the values on the CPU only (no synchronisation); here on every device.
  const Tensor q = q_in.detach();  // q gets no gradient here (see the header)
  FABRIC_CHECK(all(logical_and(ge(q, 0), le(q, 1))).item<bool>(), ValueError, op,
               ": q values must be in the range [0, 1]");

  // The reduced dim last (at its place a size-1 dim, as torch's unsqueeze/transpose), sorted.
  Tensor sorted;
  Shape reduced;  // the output's shape without q's dim
  if (!dim) {
    sorted = torch_sorted(op, x.reshape({-1}));
    if (keepdim) reduced.assign(static_cast<size_t>(x.dim()), 1);
  } else {
    sorted = torch_sorted(op, x.unsqueeze(x.dim()).transpose(*dim, x.dim()));
    for (int64_t d = 0; d < x.dim(); ++d)
      if (d != *dim)
        reduced.push_back(x.size(d));
      else if (keepdim)
        reduced.push_back(1);
  }
  const int64_t n = sorted.size(sorted.dim() - 1);
  Shape in_shape = reduced;
  in_shape.push_back(n);
  sorted = sorted.reshape(in_shape);
  const int64_t last = sorted.dim() - 1;

  // Ranks in x's dtype, (..., Q): q * (n - 1), NaN slices sent to the last (NaN) element; for
  // nanquantile q * (non-NaN count - 1), clamped at 0 (an all-NaN slice reads its first NaN).
  const Tensor q1 = q.dim() == 0 ? q.reshape({1}) : q;
  Tensor ranks;
  if (ignore_nan) {
    const Tensor count = sum(logical_not(isnan(sorted.detach())), {-1}, true);
    ranks = mul(q1, sub(count, 1));
    ranks = masked_fill(ranks, lt(ranks, 0), 0);
  } else {
    ranks = masked_fill(mul(q1, Scalar(n - 1)), any(isnan(sorted.detach()), {-1}, true), n - 1);
  }
  if (interp == Interp::lower) ranks = floor(ranks);
  if (interp == Interp::higher) ranks = ceil(ranks);
  if (interp == Interp::nearest) ranks = round(ranks);  // half to even, as torch's round_
  const Tensor below = ranks.to(DType::int64);
  Tensor result = gather(sorted, last, below);
  if (interp == Interp::linear || interp == Interp::midpoint) {
    const Tensor w = interp == Interp::midpoint ? full_like(ranks, 0.5) : sub(ranks, below);
    const Tensor above = ceil(ranks).to(DType::int64);
    result = lerp_like(result, gather(sorted, last, above), w);
  }
  if (q.dim() == 0) return result.squeeze(last);
  // (..., Q) -> (Q, ...).
  std::vector<int64_t> perm{last};
  for (int64_t d = 0; d < last; ++d) perm.push_back(d);
  return result.permute(perm).contiguous();
}

Tensor scalar_q(const char* op, const Tensor& x, double q) {
  FABRIC_CHECK(q >= 0 && q <= 1, ValueError, op, ": q must be in the range [0, 1] but got ", q);
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  // torch's scalar_tensor(q, self.options()): q rounded to x's dtype.
  return full(Shape{}, q, {.dtype = x.dtype(), .device = x.device()});
}

}  // namespace

Tensor median(const Tensor& x) { return median_all("median", x, false); }
Tensor nanmedian(const Tensor& x) { return median_all("nanmedian", x, true); }

std::tuple<Tensor, Tensor> median(const Tensor& x, int64_t dim, bool keepdim) {
  return select_along("median", x, dim, keepdim, Select::median);
}
std::tuple<Tensor, Tensor> nanmedian(const Tensor& x, int64_t dim, bool keepdim) {
  return select_along("nanmedian", x, dim, keepdim, Select::nanmedian);
}
std::tuple<Tensor, Tensor> kthvalue(const Tensor& x, int64_t k, int64_t dim, bool keepdim) {
  return select_along("kthvalue", x, dim, keepdim, Select::kth, k - 1);
}
std::tuple<Tensor, Tensor> mode(const Tensor& x, int64_t dim, bool keepdim) {
  return select_along("mode", x, dim, keepdim, Select::mode);
}

Tensor quantile(const Tensor& x, double q, std::optional<int64_t> dim, bool keepdim,
                std::string_view interpolation) {
  return quantile_impl("quantile", x, scalar_q("quantile", x, q), dim, keepdim, interpolation,
                       false);
}
Tensor quantile(const Tensor& x, const Tensor& q, std::optional<int64_t> dim, bool keepdim,
                std::string_view interpolation) {
  return quantile_impl("quantile", x, q, dim, keepdim, interpolation, false);
}
Tensor nanquantile(const Tensor& x, double q, std::optional<int64_t> dim, bool keepdim,
                   std::string_view interpolation) {
  return quantile_impl("nanquantile", x, scalar_q("nanquantile", x, q), dim, keepdim, interpolation,
                       true);
}
Tensor nanquantile(const Tensor& x, const Tensor& q, std::optional<int64_t> dim, bool keepdim,
                   std::string_view interpolation) {
  return quantile_impl("nanquantile", x, q, dim, keepdim, interpolation, true);
}

}  // namespace fabric
