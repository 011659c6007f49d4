// What the fused CPU optimizer kernels share: the OpenMP chunking of one tensor's elements, the
// dtype check of their entry points and the dispatch on that dtype, with the buffers typed.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/float_formats.h"

namespace fabric::cpu::optim_loop {

// Work items are multiples of 16 lanes so only the last one has a partial vector.
constexpr int64_t kChunk = int64_t{1} << 14;
constexpr int64_t kParallelMin = int64_t{1} << 15;

template <class F>
void parallel_chunks(int64_t n, const F& f) {
  if (n < kParallelMin || omp_get_max_threads() == 1) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) f(c * kChunk, std::min(n, (c + 1) * kChunk));
}

inline void check_dtype(DType dt, const char* kernel) {
  FABRIC_CHECK(
      dt == DType::float64 || dt == DType::float32 || dt == DType::bfloat16 || dt == DType::float16,
      DTypeError, kernel, ": parameters of dtype ", dtype_name(dt),
      " are not supported (expected float64, float32, bfloat16 or float16)");
}

// Calls run(static_cast<T*>(nullptr)), T the element type of `dt`, one of the four check_dtype
// lets through.
template <class F>
void for_param_dtype(DType dt, const F& run) {
  switch (dt) {
    case DType::float64: run(static_cast<double*>(nullptr)); break;
    case DType::float32: run(static_cast<float*>(nullptr)); break;
    case DType::bfloat16: run(static_cast<BFloat16*>(nullptr)); break;
    default: run(static_cast<Half*>(nullptr)); break;
  }
}

// A kernel's untyped buffer as a pointer to T (to const T for a const one).
template <class T>
T* typed(void* buffer) {
  return static_cast<T*>(buffer);
}
template <class T>
const T* typed(const void* buffer) {
  return static_cast<const T*>(buffer);
}

// The update of n elements of dtype `dt` over parallel chunks: for each chunk [b, e),
// f64(b, e, buffers as double*...) on float64, else vec(b, e, buffers as T*...), T the element type
// (float, BFloat16 or Half).
template <class F64, class Vec, class... Buffers>
void for_chunks_typed(DType dt, int64_t n, const F64& f64, const Vec& vec, Buffers... buffers) {
  for_param_dtype(dt, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    parallel_chunks(n, [&](int64_t b, int64_t e) {
      if constexpr (std::is_same_v<T, double>) {
        f64(b, e, typed<T>(buffers)...);
      } else {
        vec(b, e, typed<T>(buffers)...);
      }
    });
  });
}

}  // namespace fabric::cpu::optim_loop
