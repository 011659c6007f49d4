// histc and bincount (host loops, torch's CPU kernels step for step) and isclose, allclose and
// equal (torch's compositions); see counting.h.
#include "tensor/counting.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/shape.h"
#include "tensor/torch_names.h"

namespace fabric {
namespace {

// One histc element's bin in T's arithmetic, or -1 when it lies outside [lo, hi].
// c10::BFloat16 rounds every operation's result (the bin count too, converted for the product).
// NaN passes torch 1.13's range test (elt < lo || elt > hi) and its bin, int64(NaN), is
// INT64_MIN on x86, whose byte offset wraps to the histogram's first element: NaN counts in bin 0.
template <typename T>
int64_t bin_of(T elt, T lo, T hi, int64_t bins) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    const float e = static_cast<float>(elt), l = static_cast<float>(lo), h = static_cast<float>(hi);
    if (std::isnan(e)) return 0;
    if (e < l || e > h) return -1;
    const auto round = [](float v) { return static_cast<float>(BFloat16(v)); };
    const float scaled = round(round(e - l) * round(static_cast<float>(bins)));
    return static_cast<int64_t>(round(scaled / round(h - l)));
  } else {
    if (std::isnan(elt)) return 0;
    if (elt < lo || elt > hi) return -1;
    return static_cast<int64_t>((elt - lo) * bins / (hi - lo));
  }
}

template <typename T>
Tensor histc_counts(const Tensor& x, int64_t bins, double left, double right) {
  // torch reads the outer edges back from linspace(left, right, bins + 1) in x's dtype: the last
  // one is not always right rounded to the dtype.
  const Tensor edges = linspace(left, right, bins + 1, {.dtype = x.dtype()});
  const T lo = edges.data<T>()[0], hi = edges.data<T>()[bins];
  const Tensor flat = x.to(Device::cpu()).contiguous();
  const T* v = flat.data<T>();
  std::vector<T> hist(static_cast<size_t>(bins), T(0.0f));
  for (int64_t i = 0; i < flat.numel(); ++i) {
    int64_t pos = bin_of(v[i], lo, hi, bins);
    if (pos < 0) continue;
    if (pos == bins) pos -= 1;  // the last bin holds its right edge
    // Rounding can take an element at hi past bins (bfloat16 steps of 2 above 256 bins): torch
    // then writes outside its histogram; here it stays in the last bin.
    if (pos > bins) pos = bins - 1;
    if constexpr (std::is_same_v<T, BFloat16>) {
      hist[pos] = BFloat16(static_cast<float>(hist[pos]) + 1.0f);
    } else {
      hist[pos] += 1;
    }
  }
  return from_vector(hist, {bins}, {.dtype = x.dtype()}).to(x.device());
}

template <typename W>
Tensor weighted_bincount(const std::vector<int64_t>& idx, const std::vector<W>& w, int64_t bins,
                         DType dtype) {
  std::vector<W> acc(static_cast<size_t>(bins), W(0));
  for (size_t i = 0; i < idx.size(); ++i) acc[idx[i]] += w[i];
  return from_vector(acc, {bins}, {.dtype = dtype});
}

}  // namespace

Tensor histc(const Tensor& x, int64_t bins, double min, double max) {
  FABRIC_CHECK(x.defined(), ValueError, "histc: undefined input");
  FABRIC_CHECK(bins > 0, ValueError, "histc: torch.histogram(): bins must be > 0, but got ", bins,
               " for dimension 0");
  const DType dt = x.dtype();
  FABRIC_CHECK(dt == DType::float32 || dt == DType::float64 || dt == DType::bfloat16, DTypeError,
               "histc: \"histogram_cpu\" not implemented for '", torch_scalar_type_name(dt),
               "' (torch's CPU histc takes float32, float64 and bfloat16)");
  double left = min, right = max;
  if (left == right && x.numel() > 0) {
    left = fabric::min(x).item<double>();
    right = fabric::max(x).item<double>();
  }
  if (left == right) {
    left -= 1;
    right += 1;
  }
  FABRIC_CHECK(std::isfinite(left) && std::isfinite(right), ValueError, "histc: range of [", left,
               ", ", right, "] is not finite");
  FABRIC_CHECK(left < right, ValueError, "histc: max must be larger than min (got min ", left,
               ", max ", right, ")");
  switch (dt) {
    case DType::float64:
      return histc_counts<double>(x, bins, left, right);
    case DType::bfloat16:
      return histc_counts<BFloat16>(x, bins, left, right);
    default:
      return histc_counts<float>(x, bins, left, right);
  }
}

Tensor bincount(const Tensor& x, const Tensor& weights, int64_t minlength) {
  FABRIC_CHECK(x.defined(), ValueError, "bincount: undefined input");
  FABRIC_CHECK(
      is_integral(x.dtype()), DTypeError, "bincount: \"bincount_cpu\" not implemented for '",
      torch_scalar_type_name(x.dtype()), "' (bincount counts uint8, int8, int32 or int64 values)");
  FABRIC_CHECK(minlength >= 0, ValueError, "bincount: minlength should be >= 0, got ", minlength);
  if (x.dim() == 1 && x.numel() == 0)
    return zeros({minlength}, {.dtype = DType::int64, .device = x.device()});
  const std::vector<int64_t> idx = x.dim() == 1 ? x.to_vector<int64_t>() : std::vector<int64_t>{};
  FABRIC_CHECK(x.dim() == 1 && *std::min_element(idx.begin(), idx.end()) >= 0, ValueError,
               "bincount: bincount only supports 1-d non-negative integral inputs. (got shape ",
               shape_str(x.sizes()), ")");
  FABRIC_CHECK(!weights.defined() || (weights.dim() == 1 && weights.size(0) == x.size(0)),
               ShapeError,
               "bincount: weights should be 1-d and have the same length as input (got weights ",
               shape_str(weights.sizes()), " for input ", shape_str(x.sizes()), ")");
  FABRIC_CHECK(!weights.defined() || !weights.requires_grad() || !grad_mode_enabled(),
               NotImplementedError,
               "bincount: the derivative for 'weights' is not implemented (torch's backward "
               "raises); detach() the weights or call bincount under no-grad");
  const int64_t bins = std::max(*std::max_element(idx.begin(), idx.end()) + 1, minlength);
  Tensor out;
  if (!weights.defined()) {
    std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
    for (int64_t i : idx) ++counts[i];
    out = from_vector(counts, {bins}, {.dtype = DType::int64});
  } else if (weights.dtype() == DType::float32) {
    out = weighted_bincount(idx, weights.to_vector<float>(), bins, DType::float32);
  } else {
    out = weighted_bincount(idx, weights.to_vector<double>(), bins, DType::float64);
  }
  return out.to(x.device());
}

namespace {

// isclose, with `op` (isclose or allclose) naming the caller in errors.
Tensor isclose_as(const char* op, const Tensor& a, const Tensor& b, double rtol, double atol,
                  bool equal_nan) {
  FABRIC_CHECK(a.defined() && b.defined(), ValueError, op, ": undefined input");
  FABRIC_CHECK(a.dtype() == b.dtype(), DTypeError, op, ": ", torch_scalar_type_name(a.dtype()),
               " did not match ", torch_scalar_type_name(b.dtype()), " (a and b need one dtype)");
  FABRIC_CHECK(rtol >= 0, ValueError, op, ": rtol must be greater than or equal to zero, but got ",
               rtol);
  FABRIC_CHECK(atol >= 0, ValueError, op, ": atol must be greater than or equal to zero, but got ",
               atol);
  const int64_t na = a.dim(), nb = b.dim(), n = std::max(na, nb);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t da = i < n - na ? 1 : a.size(i - (n - na));
    const int64_t db = i < n - nb ? 1 : b.size(i - (n - nb));
    FABRIC_CHECK(da == db || da == 1 || db == 1, ShapeError, op, ": The size of tensor a (", da,
                 ") must match the size of tensor b (", db, ") at non-singleton dimension ", i);
  }
  Tensor close = eq(a, b);
  if (equal_nan && a.is_floating_point())
    close = logical_or(close, logical_and(ne(a, a), ne(b, b)));
  // Zero tolerances: equality alone, as torch short-circuits.
  if (rtol == 0 && atol == 0) return close;
  // Integers and bool compute in the default float dtype (no wrap-around, and bool cannot be
  // subtracted).
  const bool integral = is_integral(a.dtype(), /*include_bool=*/true);
  const Tensor self = integral ? a.to(default_float_dtype()) : a;
  const Tensor other = integral ? b.to(default_float_dtype()) : b;
  const Tensor allowed = add(abs(mul(other, rtol)), atol);
  const Tensor actual = abs(sub(self, other));
  return logical_or(close, logical_and(isfinite(actual), le(actual, allowed)));
}

}  // namespace

Tensor isclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  return isclose_as("isclose", a, b, rtol, atol, equal_nan);
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  return all(isclose_as("allclose", a, b, rtol, atol, equal_nan)).item<bool>();
}

bool equal(const Tensor& a, const Tensor& b) {
  FABRIC_CHECK(a.defined() && b.defined(), ValueError, "equal: undefined input");
  FABRIC_CHECK(a.device() == b.device(), DeviceError,
               "equal: Cannot compare two tensors on different devices. Got: ", a.device(), " and ",
               b.device());
  if (a.sizes() != b.sizes()) return false;
  return all(eq(a, b)).item<bool>();
}

}  // namespace fabric
