// The float dtypes the normalisation kernels compute on, visited with their math type: float for
// fp32/fp16/bf16 (as PyTorch's opmath), double for fp64.
#pragma once
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/error.h"

namespace fabric::cuda {

// Calls f(T{}, A{}, loader) for `dt`: the storage type, the math type and its typed load;
// DTypeError naming `ops` for any other dtype.
template <typename F>
void visit_float_dtype(const char* ops, DType dt, F&& f) {
  switch (dt) {
    case DType::float32:
      return f(float{}, float{}, TypedLoad<float, float>{});
    case DType::float16:
      return f(Half{}, float{}, TypedLoad<Half, float>{});
    case DType::bfloat16:
      return f(BFloat16{}, float{}, TypedLoad<BFloat16, float>{});
    case DType::float64:
      return f(double{}, double{}, TypedLoad<double, double>{});
    default:
      break;
  }
  throw DTypeError(detail::cat(ops, ": no CUDA kernel for ", dtype_name(dt),
                               " input (expected float64/float32/float16/bfloat16)"));
}

}  // namespace fabric::cuda
