// A StridedLoop as a kernel argument: its sizes and byte strides by value, and the pointers of
// element i of each operand (64-bit flat index, 32-bit division when the loop is small enough).
// Pure arithmetic, no CUDA calls: loop_kernel.cuh launches the kernels that use it.
#pragma once
#include <cstdint>

#include "tensor/strided_loop.h"

namespace fabric::cuda {

template <int N>
struct LoopArgs {
  char* data[N];
  int ndim;                          // 0: a single element
  bool index32;                      // numel <= INT32_MAX: so is every size and index
  int64_t sizes[kMaxLoopDims];       // innermost last
  int64_t strides[N][kMaxLoopDims];  // bytes; 0 along broadcast dims

  // Pointers to element `i` (row-major over sizes) of every operand.
  __device__ __forceinline__ void pointers(int64_t i, char* (&p)[N]) const {
    if (ndim <= 1) {  // flat: no division
#pragma unroll
      for (int k = 0; k < N; ++k) p[k] = data[k] + (ndim == 1 ? i * strides[k][0] : 0);
      return;
    }
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    // Peel indices from the innermost dim outwards.
    if (index32) {
      uint32_t r = static_cast<uint32_t>(i);
      for (int d = ndim - 1; d >= 0; --d) {
        const uint32_t sz = static_cast<uint32_t>(sizes[d]);
        const uint32_t q = r / sz, idx = r - q * sz;
        r = q;
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(idx) * strides[k][d];
      }
    } else {
      int64_t r = i;
      for (int d = ndim - 1; d >= 0; --d) {
        const int64_t q = r / sizes[d], idx = r - q * sizes[d];
        r = q;
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += idx * strides[k][d];
      }
    }
#pragma unroll
    for (int k = 0; k < N; ++k) p[k] = data[k] + off[k];
  }
};

// Operands [0, N) of the loop. Missing operands (k >= loop.num_operands) get a null pointer and
// zero strides: a functor that takes a scalar in their place never reads them.
template <int N>
LoopArgs<N> make_loop_args(const StridedLoop& loop) {
  LoopArgs<N> a{};
  a.ndim = loop.ndim;
  a.index32 = loop.numel() <= INT32_MAX;
  for (int d = 0; d < loop.ndim; ++d) a.sizes[d] = loop.sizes[d];
  for (int k = 0; k < N; ++k) {
    const bool present = k < loop.num_operands;
    a.data[k] = present ? loop.ops[k].data : nullptr;
    for (int d = 0; d < loop.ndim; ++d) a.strides[k][d] = present ? loop.ops[k].strides[d] : 0;
  }
  return a;
}

// Typed element access through a byte pointer (operands are aligned to their itemsize).
template <typename T>
__device__ __forceinline__ T load(const char* p) {
  return *reinterpret_cast<const T*>(p);
}
template <typename T>
__device__ __forceinline__ void store(char* p, T v) {
  *reinterpret_cast<T*>(p) = v;
}

}  // namespace fabric::cuda
