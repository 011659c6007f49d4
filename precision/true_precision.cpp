// DoublePrecision and HalfPrecision.
#include "precision/true_precision.h"

namespace fabric::precision {

Tensor cast_floating(const Tensor& t, DType dtype) {
  if (!t.defined() || !is_floating(t.dtype()) || t.dtype() == dtype) return t;
  return t.to(dtype);
}

TruePrecision::TruePrecision(DType dtype) : dtype_(dtype) {}

std::string TruePrecision::name() const {
  switch (dtype_) {
    case DType::float64: return "64-true";
    case DType::float16: return "16-true";
    case DType::bfloat16: return "bf16-true";
    default: return "32-true";
  }
}

void TruePrecision::convert_module(nn::Module& module) { module.to(dtype_); }

Tensor TruePrecision::convert_input(const Tensor& input) const { return cast_floating(input, dtype_); }

Tensor TruePrecision::convert_output(const Tensor& output) const {
  return cast_floating(output, default_float_dtype());
}

ContextGuard TruePrecision::forward_context() { return default_dtype_context(dtype_); }

ContextGuard TruePrecision::tensor_init_context() { return default_dtype_context(dtype_); }

HalfPrecision::HalfPrecision(const std::string& precision)
    : TruePrecision(precision == "bf16-true" ? DType::bfloat16 : DType::float16) {
  FABRIC_CHECK(precision == "16-true" || precision == "bf16-true", ValueError,
               "HalfPrecision: precision must be '16-true' or 'bf16-true', got '", precision, "'");
}

}  // namespace fabric::precision
