// PyTorch's promotion lattice and result_type (dimensioned tensors > 0-dim tensors > scalars,
// each only winning across a category boundary).
#include "tensor/promotion.h"

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

}  // namespace fabric
