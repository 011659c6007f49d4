// Pieces the normalisation kernels (layer_norm/rms_norm, batch_norm/group_norm) share: the visit
// of the float dtypes they compute on, and a pair of sums folded together.
#pragma once
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/error.h"

namespace fabric::cuda {

// Two sums carried through one warp/block fold.
template <typename A>
struct Sum2 {
  A a, b;
};
template <typename A>
__device__ __forceinline__ Sum2<A> shfl_xor(Sum2<A> s, int lane) {
  return {cuda::shfl_xor(s.a, lane), cuda::shfl_xor(s.b, lane)};
}
template <typename A>
struct Sum2Combine {
  __device__ __forceinline__ Sum2<A> operator()(Sum2<A> x, Sum2<A> y) const {
    return {x.a + y.a, x.b + y.b};
  }
};

// The float dtypes, visited with their math type: float for fp32/fp16/bf16 (as PyTorch's
// opmath), double for fp64.

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
