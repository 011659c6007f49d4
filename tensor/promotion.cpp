// PyTorch's promotion lattice and result_type (dimensioned tensors > 0-dim tensors > scalars,
// each only winning across a category boundary).
#include "tensor/promotion.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <utility>

#include "tensor/error.h"

namespace fabric {
namespace {
thread_local DType g_default_float = DType::float32;

int category(DType t) { return t == DType::bool_ ? 0 : is_integral(t) ? 1 : 2; }

int int_rank(DType t) {
  switch (t) {
    case DType::uint8: return 1;
    case DType::int8: return 1;
    case DType::int32: return 3;
    case DType::int64: return 4;
    default: return 0;
  }
}

int float_rank(DType t) {
  switch (t) {
    case DType::float16: case DType::bfloat16: return 1;
    case DType::float32: return 2;
    case DType::float64: return 3;
    default: return 0;
  }
}

struct Undef {};
}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (is_fp8(a) || is_fp8(b)) {
    throw DTypeError(detail::cat("promote_types: ", dtype_name(a), " and ", dtype_name(b),
                                 " cannot be promoted (float8 types do not promote; cast explicitly)"));
  }
  if (a == DType::bool_) return b;
  if (b == DType::bool_) return a;
  const int ca = category(a), cb = category(b);
  if (ca != cb) return ca > cb ? a : b;
  if (ca == 1) {
    // int8 with uint8 is int16 in PyTorch; int32 is the narrowest type here that holds both.
    if ((a == DType::int8 && b == DType::uint8) || (a == DType::uint8 && b == DType::int8)) return DType::int32;
    return int_rank(a) >= int_rank(b) ? a : b;
  }
  // float16 with bfloat16 goes to float32, as in PyTorch.
  if (float_rank(a) == 1 && float_rank(b) == 1) return DType::float32;
  return float_rank(a) >= float_rank(b) ? a : b;
}

DType default_float_dtype() { return g_default_float; }
void set_default_float_dtype(DType t) {
  FABRIC_CHECK(t == DType::float32 || t == DType::float64 || t == DType::float16 || t == DType::bfloat16, DTypeError,
               "set_default_float_dtype: expected float32, float64, float16 or bfloat16, got ", dtype_name(t));
  g_default_float = t;
}

DType result_type(std::initializer_list<const Tensor*> tensors, std::initializer_list<const Scalar*> scalars) {
  // Each slot is "undefined" until something lands in it.
  bool has_dim = false, has_zero = false, has_wrapped = false;
  DType dim_r = DType::bool_, zero_r = DType::bool_, wrapped_r = DType::bool_;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (t->dim() > 0) {
      dim_r = has_dim ? promote_types(dim_r, t->dtype()) : t->dtype();
      has_dim = true;
    } else {
      zero_r = has_zero ? promote_types(zero_r, t->dtype()) : t->dtype();
      has_zero = true;
    }
  }
  for (const Scalar* s : scalars) {
    DType cur = s->is_floating() ? g_default_float : s->is_integral() ? DType::int64 : DType::bool_;
    wrapped_r = has_wrapped ? promote_types(wrapped_r, cur) : cur;
    has_wrapped = true;
  }
  // combine_categories(higher, lower) as in ATen, with "undefined" tracked by flags.
  auto combine = [](bool has_hi, DType hi, bool has_lo, DType lo, bool& has_out) -> DType {
    has_out = has_hi || has_lo;
    if (!has_hi) return lo;
    if (!has_lo) return hi;
    if (is_floating(hi)) return hi;
    if (hi == DType::bool_ || is_floating(lo)) return promote_types(hi, lo);
    return hi;
  };
  bool has_zw = false, has_all = false;
  DType zw = combine(has_zero, zero_r, has_wrapped, wrapped_r, has_zw);
  DType r = combine(has_dim, dim_r, has_zw, zw, has_all);
  FABRIC_CHECK(has_all, ValueError, "result_type: no operands");
  return r;
}

DType float_result_dtype(DType t) { return is_floating(t) ? t : g_default_float; }

double max_finite(DType t) {
  switch (t) {
    case DType::float64: return DBL_MAX;
    case DType::float32: return FLT_MAX;
    case DType::float16: return 65504.0;
    case DType::bfloat16: return 3.3895313892515355e38;
    case DType::float8_e4m3fn: return 448.0;
    case DType::float8_e5m2: return 57344.0;
    default: return 0.0;
  }
}

namespace {
// Whether a float dtype holds infinities.
bool has_infinity(DType t) { return is_floating(t) && t != DType::float8_e4m3fn; }

// [lowest, max] of an integer dtype.
std::pair<int64_t, int64_t> int_range(DType t) {
  switch (t) {
    case DType::int32: return {INT32_MIN, INT32_MAX};
    case DType::int8: return {INT8_MIN, INT8_MAX};
    case DType::uint8: return {0, UINT8_MAX};
    default: return {INT64_MIN, INT64_MAX};
  }
}

bool overflows(const Scalar& v, DType t) {
  if (v.is_bool() || t == DType::bool_) return false;
  if (is_floating(t)) {
    const double d = v.to_double();
    if (std::isinf(d)) return !has_infinity(t);
    return std::abs(d) > max_finite(t);  // false for NaN: every float dtype holds it
  }
  const auto [lo, hi] = int_range(t);
  if (v.is_floating()) {
    const double d = v.to_double();
    return std::isnan(d) || std::isinf(d) || d < static_cast<double>(lo) ||
           d > static_cast<double>(hi);
  }
  const int64_t i = v.to_int();
  if (lo == 0) return i > hi || (i < 0 && i < -hi);  // unsigned: negatives wrap (two's complement)
  return i < lo || i > hi;
}
}  // namespace

void check_scalar_fits(const char* op, const Scalar& value, DType dtype) {
  if (!overflows(value, dtype)) return;
  std::ostringstream v;
  if (value.is_floating()) {
    v.precision(17);
    v << value.to_double();
  } else {
    v << value.to_int();
  }
  throw ValueError(detail::cat(op, ": value ", v.str(), " cannot be converted to type ",
                               dtype_name(dtype), " without overflow"));
}

}  // namespace fabric
