// AVX-512 2x2/stride-2 pooling (see pool_2x2.h). Per output row, 16 windows at a time: the two
// input rows' 32 columns are loaded as two vectors each and split into even and odd columns,
// giving the window elements e00 e01 e10 e11 of 16 windows as four vectors; the last, shorter
// step of a row loads and stores under masks, so short rows (8 windows) vectorise too.
#include "kernels/cpu/pool_2x2.h"

#include <cstring>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace fabric::cpu {
namespace {

alignas(64) constexpr int32_t kEven[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
alignas(64) constexpr int32_t kOdd[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
// Interleaving even/odd back: lanes 0..15 and 16..31 of (e0 o0 e1 o1 ...).
alignas(64) constexpr int32_t kLo[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
alignas(64) constexpr int32_t kHi[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

// A step of n <= 16 windows: the output lanes, and the two input vectors' lanes (2n columns).
struct Step {
  __mmask16 out, in_lo, in_hi;
};
inline Step step_of(int64_t n) {
  auto lanes = [](int64_t k) {
    return static_cast<__mmask16>(k >= 16 ? 0xFFFF : k <= 0 ? 0 : (1u << k) - 1);
  };
  return {lanes(n), lanes(2 * n), lanes(2 * n - 16)};
}

// Runs f(ow, step) over one output row in steps of 16 windows, the last one shorter.
template <typename F>
inline void for_steps(int64_t OW, F&& f) {
  for (int64_t ow = 0; ow < OW; ow += 16) f(ow, step_of(std::min<int64_t>(16, OW - ow)));
}

struct Quad {
  __m512 e00, e01, e10, e11;
};

template <typename T>
inline Quad load_quad(const T* r0, const T* r1, const Step& s) {
  const __m512i even = _mm512_load_si512(kEven), odd = _mm512_load_si512(kOdd);
  const __m512 a0 = vec::load(r0, s.in_lo), a1 = vec::load(r0 + 16, s.in_hi);
  const __m512 b0 = vec::load(r1, s.in_lo), b1 = vec::load(r1 + 16, s.in_hi);
  return {_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1),
          _mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1)};
}

// Stores the window-element vectors g00 g01 (row 0) and g10 g11 (row 1) back interleaved.
template <typename T>
inline void store_quad(T* d0, T* d1, const Step& s, __m512 g00, __m512 g01, __m512 g10,
                       __m512 g11) {
  const __m512i lo = _mm512_load_si512(kLo), hi = _mm512_load_si512(kHi);
  vec::store(d0, _mm512_permutex2var_ps(g00, lo, g01), s.in_lo);
  vec::store(d0 + 16, _mm512_permutex2var_ps(g00, hi, g01), s.in_hi);
  vec::store(d1, _mm512_permutex2var_ps(g10, lo, g11), s.in_lo);
  vec::store(d1 + 16, _mm512_permutex2var_ps(g10, hi, g11), s.in_hi);
}

// Which of the four (0..3, row-major) is each window's first maximum, NaN winning (the last NaN).
inline __m512i argmax_quad(const Quad& q) {
  __m512 best = q.e00;
  __m512i at = _mm512_setzero_si512();
  const __m512 next[3] = {q.e01, q.e10, q.e11};
  for (int k = 0; k < 3; ++k) {
    const __m512 v = next[k];
    const __mmask16 take =
        _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    best = _mm512_mask_mov_ps(best, take, v);
    at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(k + 1));
  }
  return at;
}

// Rows and columns no window covers (odd H or W) get zero gradients (all-zero bits in each T).
template <typename T>
inline void zero_uncovered(const Pool2dDesc& d, T* dx) {
  if (2 * d.OH != d.H || 2 * d.OW != d.W) std::memset(dx, 0, sizeof(T) * d.H * d.W);
}

}  // namespace

template <typename T>
void max_pool_2x2_forward_plane(const Pool2dDesc& d, const T* x, T* y) {
  const __m512 nan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
  for (int64_t oh = 0; oh < d.OH; ++oh) {
    const T* r0 = x + 2 * oh * d.W;
    const T* r1 = r0 + d.W;
    for_steps(d.OW, [&](int64_t ow, const Step& s) {
      const Quad q = load_quad(r0 + 2 * ow, r1 + 2 * ow, s);
      // vmaxps returns its second operand when either is NaN: NaN is tracked on the side.
      const __m512 m = _mm512_max_ps(_mm512_max_ps(q.e00, q.e01), _mm512_max_ps(q.e10, q.e11));
      const __mmask16 any_nan = _mm512_cmp_ps_mask(q.e00, q.e01, _CMP_UNORD_Q) |
                                _mm512_cmp_ps_mask(q.e10, q.e11, _CMP_UNORD_Q);
      vec::store(y + oh * d.OW + ow, _mm512_mask_mov_ps(m, any_nan, nan), s.out);
    });
  }
}

template <typename T>
void max_pool_2x2_backward_plane(const Pool2dDesc& d, const T* dy, const T* x, T* dx) {
  zero_uncovered(d, dx);
  for (int64_t oh = 0; oh < d.OH; ++oh) {
    const T* r0 = x + 2 * oh * d.W;
    const T* r1 = r0 + d.W;
    T* d0 = dx + 2 * oh * d.W;
    for_steps(d.OW, [&](int64_t ow, const Step& s) {
      const __m512i at = argmax_quad(load_quad(r0 + 2 * ow, r1 + 2 * ow, s));
      const __m512 g = vec::load(dy + oh * d.OW + ow, s.out);
      auto pick = [&](int k) {
        return _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(k)), g);
      };
      store_quad(d0 + 2 * ow, d0 + d.W + 2 * ow, s, pick(0), pick(1), pick(2), pick(3));
    });
  }
}

template <typename T>
void avg_pool_2x2_forward_plane(const Pool2dDesc& d, const T* x, T* y) {
  const __m512 quarter = _mm512_set1_ps(0.25f), zero = _mm512_setzero_ps();
  for (int64_t oh = 0; oh < d.OH; ++oh) {
    const T* r0 = x + 2 * oh * d.W;
    const T* r1 = r0 + d.W;
    for_steps(d.OW, [&](int64_t ow, const Step& s) {
      const Quad q = load_quad(r0 + 2 * ow, r1 + 2 * ow, s);
      // The generic loop's order, from 0 (so that four -0 sum to +0 as there).
      const __m512 sum = _mm512_add_ps(
          _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(zero, q.e00), q.e01), q.e10), q.e11);
      vec::store(y + oh * d.OW + ow, _mm512_mul_ps(sum, quarter), s.out);
    });
  }
}

template <typename T>
void avg_pool_2x2_backward_plane(const Pool2dDesc& d, const T* dy, T* dx) {
  zero_uncovered(d, dx);
  const __m512 quarter = _mm512_set1_ps(0.25f), zero = _mm512_setzero_ps();
  for (int64_t oh = 0; oh < d.OH; ++oh) {
    T* d0 = dx + 2 * oh * d.W;
    for_steps(d.OW, [&](int64_t ow, const Step& s) {
      // g / 4 added to a zero accumulator, as the generic loop does.
      const __m512 g = _mm512_add_ps(
          zero, _mm512_mul_ps(vec::load(dy + oh * d.OW + ow, s.out), quarter));
      store_quad(d0 + 2 * ow, d0 + d.W + 2 * ow, s, g, g, g, g);
    });
  }
}

#define FABRIC_POOL_2X2_INSTANTIATE(T)                                                        \
  template void max_pool_2x2_forward_plane(const Pool2dDesc&, const T*, T*);                 \
  template void max_pool_2x2_backward_plane(const Pool2dDesc&, const T*, const T*, T*);      \
  template void avg_pool_2x2_forward_plane(const Pool2dDesc&, const T*, T*);                 \
  template void avg_pool_2x2_backward_plane(const Pool2dDesc&, const T*, T*);
FABRIC_POOL_2X2_INSTANTIATE(float)
FABRIC_POOL_2X2_INSTANTIATE(BFloat16)
FABRIC_POOL_2X2_INSTANTIATE(Half)
#undef FABRIC_POOL_2X2_INSTANTIATE

}  // namespace fabric::cpu
