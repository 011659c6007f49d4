// The float32 family: float32, bfloat16 and float16, the storage dtypes that the wide, mixed and
// multi-tensor kernels read and write with float32 arithmetic. Free of CUDA headers.
#pragma once
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/float_formats.h"

namespace fabric::cuda {

inline bool is_f32_family(DType dt) {
  return dt == DType::float32 || dt == DType::bfloat16 || dt == DType::float16;
}

// Calls f(T{}) with T float, BFloat16 or Half for `dt`; DTypeError naming `what` for another.
template <typename F>
void visit_f32_family(const char* what, DType dt, F&& f) {
  switch (dt) {
    case DType::float32:
      return f(float{});
    case DType::bfloat16:
      return f(BFloat16{});
    case DType::float16:
      return f(Half{});
    default:
      throw DTypeError(
          detail::cat(what, ": no float32/bfloat16/float16 kernel for ", dtype_name(dt)));
  }
}

}  // namespace fabric::cuda
