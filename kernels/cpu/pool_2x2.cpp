// AVX-512 2x2/stride-2 max pooling (see pool_2x2.h). Per output row, 16 windows at a time: the
// two input rows' 32 columns are loaded as two vectors each and split into even and odd columns,
// giving the window elements e00 e01 e10 e11 of 16 windows as four vectors. Columns past the last
// full block of 16 windows go through the same rule one window at a time.
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

struct Quad {
  __m512 e00, e01, e10, e11;
};

template <typename T>
inline Quad load_quad(const T* r0, const T* r1) {
  const __m512i even = _mm512_load_si512(kEven), odd = _mm512_load_si512(kOdd);
  const __m512 a0 = vec::load(r0), a1 = vec::load(r0 + 16);
  const __m512 b0 = vec::load(r1), b1 = vec::load(r1 + 16);
  return {_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1),
          _mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1)};
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

// The scalar rule for one window (the tail columns).
template <typename T>
inline int argmax_window(const T* r0, const T* r1, int64_t c) {
  const float v[4] = {static_cast<float>(r0[c]), static_cast<float>(r0[c + 1]),
                      static_cast<float>(r1[c]), static_cast<float>(r1[c + 1])};
  int at = 0;
  for (int k = 1; k < 4; ++k)
    if (v[k] > v[at] || v[k] != v[k]) at = k;
  return at;
}

}  // namespace

template <typename T>
void max_pool_2x2_forward_plane(const Pool2dDesc& d, const T* x, T* y) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t oh = 0; oh < d.OH; ++oh) {
    const T* r0 = x + 2 * oh * d.W;
    const T* r1 = r0 + d.W;
    T* yr = y + oh * d.OW;
    int64_t ow = 0;
    for (; ow + 16 <= d.OW; ow += 16) {
      const Quad q = load_quad(r0 + 2 * ow, r1 + 2 * ow);
      // vmaxps returns its second operand when either is NaN: track NaN on the side.
      const __m512 m = _mm512_max_ps(_mm512_max_ps(q.e00, q.e01), _mm512_max_ps(q.e10, q.e11));
      const __mmask16 any_nan = _mm512_cmp_ps_mask(q.e00, q.e01, _CMP_UNORD_Q) |
                                _mm512_cmp_ps_mask(q.e10, q.e11, _CMP_UNORD_Q);
      vec::store(yr + ow, _mm512_mask_mov_ps(m, any_nan, _mm512_set1_ps(nan)));
    }
    for (; ow < d.OW; ++ow) {
      const int at = argmax_window(r0, r1, 2 * ow);
      const T* r = at < 2 ? r0 : r1;
      yr[ow] = r[2 * ow + (at & 1)];
    }
  }
}

template <typename T>
void max_pool_2x2_backward_plane(const Pool2dDesc& d, const T* dy, const T* x, T* dx) {
  // Rows and columns no window covers (odd H or W) get zero gradients (all-zero bits in each T).
  if (2 * d.OH != d.H || 2 * d.OW != d.W) std::memset(dx, 0, sizeof(T) * d.H * d.W);
  const __m512i lo = _mm512_load_si512(kLo), hi = _mm512_load_si512(kHi);
  for (int64_t oh = 0; oh < d.OH; ++oh) {
    const T* r0 = x + 2 * oh * d.W;
    const T* r1 = r0 + d.W;
    T* d0 = dx + 2 * oh * d.W;
    T* d1 = d0 + d.W;
    const T* g = dy + oh * d.OW;
    int64_t ow = 0;
    for (; ow + 16 <= d.OW; ow += 16) {
      const __m512i at = argmax_quad(load_quad(r0 + 2 * ow, r1 + 2 * ow));
      const __m512 gv = vec::load(g + ow);
      auto pick = [&](int k) {
        return _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(k)), gv);
      };
      const __m512 g00 = pick(0), g01 = pick(1), g10 = pick(2), g11 = pick(3);
      vec::store(d0 + 2 * ow, _mm512_permutex2var_ps(g00, lo, g01));
      vec::store(d0 + 2 * ow + 16, _mm512_permutex2var_ps(g00, hi, g01));
      vec::store(d1 + 2 * ow, _mm512_permutex2var_ps(g10, lo, g11));
      vec::store(d1 + 2 * ow + 16, _mm512_permutex2var_ps(g10, hi, g11));
    }
    for (; ow < d.OW; ++ow) {
      const int at = argmax_window(r0, r1, 2 * ow);
      T* out[4] = {d0 + 2 * ow, d0 + 2 * ow + 1, d1 + 2 * ow, d1 + 2 * ow + 1};
      for (int k = 0; k < 4; ++k) *out[k] = k == at ? g[ow] : T(0.f);
    }
  }
}

template void max_pool_2x2_forward_plane(const Pool2dDesc&, const float*, float*);
template void max_pool_2x2_forward_plane(const Pool2dDesc&, const BFloat16*, BFloat16*);
template void max_pool_2x2_forward_plane(const Pool2dDesc&, const Half*, Half*);
template void max_pool_2x2_backward_plane(const Pool2dDesc&, const float*, const float*, float*);
template void max_pool_2x2_backward_plane(const Pool2dDesc&, const BFloat16*, const BFloat16*,
                                          BFloat16*);
template void max_pool_2x2_backward_plane(const Pool2dDesc&, const Half*, const Half*, Half*);

}  // namespace fabric::cpu
