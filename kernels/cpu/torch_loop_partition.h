// Which elements torch 1.13's CPU loops hand to a kernel's vectorized function and which to its
// scalar one, so that an op whose two differ (SLEEF in Vectorized<T>, libm in the scalar lambda)
// gives each element torch's value. cpu_kernel_vec runs whole blocks of two vectors (64 bytes: 16
// floats, 8 doubles, 32 bfloat16) of a row whose operands are all contiguous, or contiguous but
// for one broadcast input, through the vector function, and everything else (the rest of such a
// row, every element of any other row) through the scalar one; vml ops (torch.erfc, lgamma) map
// every element through the vector function and cpu_kernel ops through the scalar one. Matches
// torch run with one thread (more threads move torch's own block boundaries).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/elementwise_common.h"
#include "tensor/strided_loop.h"

namespace fabric::cpu::torch_loop {

using ew::load_elem;
using ew::opmath_t;
using ew::store_elem;

// Elements per torch vector block of T (two AVX2 vectors).
template <typename T>
inline constexpr int64_t kBlock = 64 / static_cast<int64_t>(sizeof(T));

// x rounded to T and back: what a Vectorized<BFloat16> / c10::BFloat16 operation returns, as
// opmath; identity for float and double. Kernels whose torch counterpart rounds after every
// reduced-precision operation call it after each of them.
template <typename T, typename M>
inline M round_to(M x) {
  if constexpr (std::is_same_v<T, M>) {
    return x;
  } else {
    return static_cast<M>(T(x));
  }
}

// for_each_row, but a 1-D loop's parallel chunks start at multiples of 64 elements, so that a
// chunk boundary never splits one of torch's one-thread blocks.
template <typename RowFn>
void for_each_row_aligned(const StridedLoop& loop, RowFn&& row) {
  constexpr int64_t kAlign = 64;
  if (loop.ndim != 1 || loop.numel() < 2 * ::fabric::detail::kLoopGrain) {
    for_each_row(loop, row);
    return;
  }
  const int64_t n = loop.numel();
  const int64_t per = (::fabric::detail::kLoopGrain + kAlign - 1) / kAlign * kAlign;
  const int64_t chunks = (n + per - 1) / per;
  const int nops = loop.num_operands;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * per, end = std::min(n, begin + per);
    char* ptrs[kMaxLoopOperands];
    int64_t strides[kMaxLoopOperands];
    for (int k = 0; k < nops; ++k) {
      strides[k] = loop.ops[k].strides[0];
      ptrs[k] = loop.ops[k].data + begin * strides[k];
    }
    row(ptrs, end - begin, strides);
  }
}

// Whether torch vectorizes a row with these byte strides (output first): every operand
// contiguous, or all but one input, which is broadcast (stride 0).
inline bool vectorized_row(const int64_t* s, int nops, int64_t itemsize) {
  if (s[0] != itemsize) return false;
  int broadcast = 0;
  for (int k = 1; k < nops; ++k) {
    if (s[k] == 0) {
      ++broadcast;
    } else if (s[k] != itemsize) {
      return false;
    }
  }
  return broadcast <= 1;
}

// out = f(a) over every element (a vml op, or a cpu_kernel one), f taking and returning opmath.
template <typename T, typename F>
void map1(const StridedLoop& loop, const F& f) {
  using M = opmath_t<T>;
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i)
      store_elem<T>(p[0] + i * s[0], T(f(static_cast<M>(load_elem<T>(p[1] + i * s[1])))));
  });
}
template <typename T, typename F>
void map2(const StridedLoop& loop, const F& f) {
  using M = opmath_t<T>;
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i)
      store_elem<T>(p[0] + i * s[0], T(f(static_cast<M>(load_elem<T>(p[1] + i * s[1])),
                                         static_cast<M>(load_elem<T>(p[2] + i * s[2])))));
  });
}

// cpu_kernel_vec: vf for the whole blocks of a vectorized row, sf for every other element.
template <typename T, typename VF, typename SF>
void vec_or_scalar1(const StridedLoop& loop, const VF& vf, const SF& sf) {
  using M = opmath_t<T>;
  for_each_row_aligned(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    const int64_t whole = vectorized_row(s, 2, sizeof(T)) ? n - n % kBlock<T> : 0;
    for (int64_t i = 0; i < n; ++i) {
      const M a = static_cast<M>(load_elem<T>(p[1] + i * s[1]));
      store_elem<T>(p[0] + i * s[0], T(i < whole ? vf(a) : sf(a)));
    }
  });
}
template <typename T, typename VF, typename SF>
void vec_or_scalar2(const StridedLoop& loop, const VF& vf, const SF& sf) {
  using M = opmath_t<T>;
  for_each_row_aligned(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    const int64_t whole = vectorized_row(s, 3, sizeof(T)) ? n - n % kBlock<T> : 0;
    for (int64_t i = 0; i < n; ++i) {
      const M a = static_cast<M>(load_elem<T>(p[1] + i * s[1]));
      const M b = static_cast<M>(load_elem<T>(p[2] + i * s[2]));
      store_elem<T>(p[0] + i * s[0], T(i < whole ? vf(a, b) : sf(a, b)));
    }
  });
}

}  // namespace fabric::cpu::torch_loop
