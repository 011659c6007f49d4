// Shared inner loops of the reduction, softmax, norm and loss kernels: exp-and-sum over rows
// (AVX-512, the exp of vec_math.h), blocked-pairwise sums that GCC vectorises, NaN-propagating row
// max, row staging between storage dtypes and the float/double compute type, and scratch buffers.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR105593 in the AVX-512 headers
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/convert.h"
#include "tensor/dtype.h"

// The vectorised paths run on AVX-512, or on its emulation over AVX2 halves (x86_simd.h) in builds
// for CPUs without it.
#include "kernels/cpu/vec_math.h"

namespace fabric::cpu {

// A per-thread buffer of n values of A; `slot` keeps simultaneously live buffers apart.
template <typename A>
A* scratch(int slot, int64_t n) {
  thread_local std::vector<A> bufs[6];
  std::vector<A>& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

// n values at src (dtype dt) as A: the pointer itself when dt is A's dtype, else converted into
// buf.
template <typename A>
const A* load_row(const void* src, DType dt, int64_t n, A* buf) {
  if (dt == dtype_v<A>) return static_cast<const A*>(src);
  convert(dt, src, dtype_v<A>, buf, n);
  return buf;
}
template <typename A>
void store_row(const A* src, void* dst, DType dt, int64_t n) {
  if (dt == dtype_v<A>) {
    if (static_cast<const void*>(src) != dst)
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(A));
  } else {
    convert(dtype_v<A>, src, dt, dst, n);
  }
}

template <typename T>
inline bool is_nan_value(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return v != v;
  else
    return false;
}

// Sum of f(i) for i in [b, e), as a cascade (PyTorch's cascade sum): 64-byte-wide lanes x4 add
// 16 consecutive groups, then carry into the next level, which carries after 16 of those, and so
// on; no value passes through more than ~16 additions per level, so the error grows with log(n)
// rather than n, at the speed of a plain vectorised loop. f must be cheap and inlinable.
template <typename A, typename F>
A sum_range(int64_t b, int64_t e, const F& f) {
  constexpr int L = std::is_same_v<A, float> ? 64 : 32;
  constexpr int kLevels = 6;
  constexpr int64_t kFan = 16;
  if (e - b <= kFan * L) {  // one level: skip the cascade's bookkeeping for short rows
    A a[L] = {};
    int64_t i = b;
    for (; i + L <= e; i += L)
      for (int j = 0; j < L; ++j) a[j] += f(i + j);
    A tail = 0;
    for (; i < e; ++i) tail += f(i);
    for (int w = L / 2; w > 0; w /= 2)
      for (int j = 0; j < w; ++j) a[j] += a[j + w];
    return a[0] + tail;
  }
  A acc[kLevels][L] = {};
  int count[kLevels] = {};
  int64_t i = b;
  while (i + L <= e) {
    const int64_t stop = std::min(e - L, i + (kFan - 1) * L);
    for (; i <= stop; i += L)
      for (int j = 0; j < L; ++j) acc[0][j] += f(i + j);
    for (int k = 0; k + 1 < kLevels; ++k) {
      for (int j = 0; j < L; ++j) acc[k + 1][j] += acc[k][j], acc[k][j] = 0;
      if (k + 1 == kLevels - 1 || ++count[k + 1] < kFan) break;
      count[k + 1] = 0;
    }
  }
  A tail = 0;
  for (; i < e; ++i) tail += f(i);
  for (int k = kLevels - 1; k > 0; --k)
    for (int j = 0; j < L; ++j) acc[k - 1][j] += acc[k][j];
  for (int w = L / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[0][j] += acc[0][j + w];
  return acc[0][0] + tail;
}

// sum_range<float>'s final fold of its 64 lanes held in four registers (lane j += lane j + w for
// w = 32, 16, ..., 1, lower lane first), plus its tail: the kernels that keep sum_range's lanes in
// registers end with it, so that they add the same values in the same order.
inline float fold_lanes64(__m512 a0, __m512 a1, __m512 a2, __m512 a3, float tail = 0) {
  a0 = _mm512_add_ps(a0, a2);
  a1 = _mm512_add_ps(a1, a3);
  a0 = _mm512_add_ps(a0, a1);
  const __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(a0), _mm512_extractf32x8_ps(a0, 1));
  const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
  const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
  const __m128 h1 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
  return _mm_cvtss_f32(h1) + tail;
}

template <typename A>
A row_sum(const A* x, int64_t n) {
  return sum_range<A>(0, n, [x](int64_t i) { return x[i]; });
}
template <typename A>
A row_dot(const A* x, const A* y, int64_t n) {
  return sum_range<A>(0, n, [x, y](int64_t i) { return x[i] * y[i]; });
}

// NaN-propagating max, or min with kMax = false (-inf / +inf for n == 0): a NaN in the row wins.
// The max itself ignores NaN (vmaxps) and a separate unordered-compare mask notes whether any was
// seen.
template <typename A, bool kMax = true>
A row_max(const A* x, int64_t n) {
  if constexpr (std::is_same_v<A, float>) {
    const auto mx = [](__m512 p, __m512 q) {
      return kMax ? _mm512_max_ps(p, q) : _mm512_min_ps(p, q);
    };
    const __m512 ninf = _mm512_set1_ps(kMax ? -std::numeric_limits<float>::infinity()
                                            : std::numeric_limits<float>::infinity());
    __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    __mmask16 nan = 0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
      const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
      const __m512 c = _mm512_loadu_ps(x + i + 32), d = _mm512_loadu_ps(x + i + 48);
      m0 = mx(m0, a);
      m1 = mx(m1, b);
      m2 = mx(m2, c);
      m3 = mx(m3, d);
      nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(c, d, _CMP_UNORD_Q);
    }
    for (; i < n; i += 16) {
      const __mmask16 k = static_cast<__mmask16>(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u);
      const __m512 a = _mm512_mask_loadu_ps(ninf, k, x + i);
      m0 = mx(m0, a);
      nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    }
    if (nan) return std::numeric_limits<float>::quiet_NaN();
    const __m512 m = mx(mx(m0, m1), mx(m2, m3));
    return kMax ? _mm512_reduce_max_ps(m) : _mm512_reduce_min_ps(m);
  }
  const auto better = [](A v, A a) { return (kMax ? v > a : v < a) || v != v; };
  constexpr int L = 32;
  A acc[L];
  for (int j = 0; j < L; ++j)
    acc[j] = kMax ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity();
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) {
      const A v = x[i + j];
      acc[j] = better(v, acc[j]) ? v : acc[j];
    }
  for (; i < n; ++i) acc[0] = better(x[i], acc[0]) ? x[i] : acc[0];
  A m = acc[0];
  for (int j = 1; j < L; ++j) m = better(acc[j], m) ? acc[j] : m;
  return m;
}

// exp of 16 floats (~1 ulp; NaN passes through, exp(-inf) == 0): the elementwise family's.
inline __m512 exp512(__m512 x) { return vec::exp_ps(x); }

// y[i] = exp(x[i] - shift) (y may be null or alias x); returns the sum of those values,
// accumulated in float vectors per 2048-element block and in double across blocks.
inline float exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
  double total = 0;
  const __m512 s = _mm512_set1_ps(shift);
  for (int64_t b = 0; b < n; b += 2048) {
    const int64_t e = std::min<int64_t>(n, b + 2048);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = b;
    for (; i + 32 <= e; i += 32) {
      const __m512 v0 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
      const __m512 v1 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), s));
      if (y) {
        _mm512_storeu_ps(y + i, v0);
        _mm512_storeu_ps(y + i + 16, v1);
      }
      a0 = _mm512_add_ps(a0, v0);
      a1 = _mm512_add_ps(a1, v1);
    }
    for (; i < e; i += 16) {
      const __mmask16 m = static_cast<__mmask16>(e - i >= 16 ? 0xFFFF : (1u << (e - i)) - 1u);
      const __m512 v =
          _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
      if (y) _mm512_mask_storeu_ps(y + i, m, v);
      a0 = _mm512_add_ps(a0, v);
    }
    total += static_cast<double>(_mm512_reduce_add_ps(_mm512_add_ps(a0, a1)));
  }
  return static_cast<float>(total);
}

inline double exp_shift_sum(const double* x, double* y, int64_t n, double shift) {
  return sum_range<double>(0, n, [x, y, shift](int64_t i) {
    const double v = std::exp(x[i] - shift);
    if (y) y[i] = v;
    return v;
  });
}

// y[i] = exp(x[i]) in place, vectorised for float.
inline void exp_inplace(float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512(_mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m, exp512(_mm512_maskz_loadu_ps(m, y + i)));
  }
}
inline void exp_inplace(double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(y[i]);
}

// log-sum-exp's shift: the max, or 0 when the max is infinite (an all -inf row gives log(0) = -inf
// and a +inf entry gives +inf, as torch.logsumexp).
template <typename A>
A lse_shift(A max) {
  return std::isinf(max) ? A(0) : max;
}

// Rows per parallel task so each task touches at least ~32K elements.
inline int64_t rows_per_task(int64_t row_len) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(row_len, 1));
}

}  // namespace fabric::cpu
