// Inline walking of a StridedLoop (included by strided_loop.h; kept apart so the value type
// reads on its own). OpenMP is the one thread pool, shared with oneDNN.
#pragma once
#include <algorithm>
#include <cstdint>

// Included on its own, this pulls in the declarations it walks (strided_loop.h includes this file
// at its end; #pragma once stops the cycle either way round).
#include "tensor/strided_loop.h"

// The omp pragmas sit under _OPENMP too: an app compiling these templates without -fopenmp (OpenMP
// is the library's private dependency) runs them serially either way, and g++ -Wall would warn that
// it ignores them.
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fabric {

namespace detail {
inline constexpr int64_t kLoopGrain = 32768;  // elements per parallel task, below which we stay serial

template <typename RowFn>
inline void run_rows(const StridedLoop& loop, int64_t row_begin, int64_t row_end, RowFn& row) {
  const int nd = loop.ndim;
  const int nops = loop.num_operands;
  const int64_t inner = loop.sizes[nd - 1];
  char* ptrs[kMaxLoopOperands];
  int64_t inner_strides[kMaxLoopOperands];
  for (int k = 0; k < nops; ++k) inner_strides[k] = loop.ops[k].strides[nd - 1];
  // Decompose the first row index once, then advance like an odometer.
  int64_t idx[kMaxLoopDims] = {};
  int64_t r = row_begin;
  for (int d = nd - 2; d >= 0; --d) {
    idx[d] = r % loop.sizes[d];
    r /= loop.sizes[d];
  }
  for (int64_t rr = row_begin; rr < row_end; ++rr) {
    for (int k = 0; k < nops; ++k) {
      char* p = loop.ops[k].data;
      for (int d = 0; d < nd - 1; ++d) p += idx[d] * loop.ops[k].strides[d];
      ptrs[k] = p;
    }
    row(ptrs, inner, inner_strides);
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[d] < loop.sizes[d]) break;
      idx[d] = 0;
    }
  }
}
}  // namespace detail

template <typename RowFn>
void for_each_row(const StridedLoop& loop, RowFn&& row) {
  const int nops = loop.num_operands;
  if (loop.ndim == 0) {
    char* ptrs[kMaxLoopOperands];
    int64_t zero[kMaxLoopOperands] = {};
    for (int k = 0; k < nops; ++k) ptrs[k] = loop.ops[k].data;
    row(ptrs, 1, zero);
    return;
  }
  const int64_t n = loop.numel();
  if (n == 0) return;
  if (loop.ndim == 1) {
    const int64_t chunks = std::max<int64_t>(1, n / detail::kLoopGrain);
    auto run_chunk = [&](int64_t c) {
      const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      char* ptrs[kMaxLoopOperands];
      int64_t strides[kMaxLoopOperands];
      for (int k = 0; k < nops; ++k) {
        strides[k] = loop.ops[k].strides[0];
        ptrs[k] = loop.ops[k].data + begin * strides[k];
      }
      row(ptrs, end - begin, strides);
    };
    if (chunks == 1) {
      run_chunk(0);
    } else {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
      for (int64_t c = 0; c < chunks; ++c) run_chunk(c);
    }
    return;
  }
  const int64_t inner = loop.sizes[loop.ndim - 1];
  const int64_t rows = n / inner;
  const int64_t rows_per_task = std::max<int64_t>(1, detail::kLoopGrain / std::max<int64_t>(inner, 1));
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  if (tasks <= 1) {
    detail::run_rows(loop, 0, rows, row);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t t = 0; t < tasks; ++t) {
    detail::run_rows(loop, t * rows_per_task, std::min(rows, (t + 1) * rows_per_task), row);
  }
}

}  // namespace fabric
