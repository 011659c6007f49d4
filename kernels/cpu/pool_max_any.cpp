// AVX-512 max pooling backward for any window (see pool_max_any.h). For an output row and a step of up to
// 16 windows, the window rows are those of the row (clipped to the input, the same for every
// lane); each (row, kernel column) is one gather of 16 input columns, lanes whose column falls in
// the padding or past the row's end (or past the step's last window) masked off.
#include "kernels/cpu/pool_max_any.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace fabric::cpu {
namespace {

// Each lane's first maximum (its plane offset; -1 where the window is empty) and its value.
struct Argmax {
  __m512i at;
  __m512 best;
};

// Windows ow0 .. ow0+n-1 of output row oh.
inline Argmax argmax_step(const Pool2dDesc& d, const float* x, int64_t oh, int64_t ow0, int64_t n) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __mmask16 live = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1);
  // First column of each lane's window.
  const __m512i ws = _mm512_sub_epi32(
      _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(ow0))),
                         _mm512_set1_epi32(static_cast<int32_t>(d.SW))),
      _mm512_set1_epi32(static_cast<int32_t>(d.PW)));
  const __m512i width = _mm512_set1_epi32(static_cast<int32_t>(d.W));
  const int64_t hs = oh * d.SH - d.PH;
  const int64_t h0 = std::max<int64_t>(hs, 0), h1 = std::min(hs + d.KH, d.H);
  Argmax r{_mm512_set1_epi32(-1), _mm512_set1_ps(-std::numeric_limits<float>::infinity())};
  for (int64_t h = h0; h < h1; ++h) {
    const __m512i row = _mm512_set1_epi32(static_cast<int32_t>(h * d.W));
    for (int64_t kw = 0; kw < d.KW; ++kw) {
      const __m512i col = _mm512_add_epi32(ws, _mm512_set1_epi32(static_cast<int32_t>(kw)));
      const __mmask16 in = live & _mm512_cmpge_epi32_mask(col, _mm512_setzero_si512()) &
                           _mm512_cmplt_epi32_mask(col, width);
      const __m512i at = _mm512_add_epi32(row, col);
      const __m512 v = _mm512_mask_i32gather_ps(r.best, in, at, x, 4);
      // Taken: the window's first element, a larger one, or a NaN (the last NaN stays).
      const __mmask16 take = in & (_mm512_cmplt_epi32_mask(r.at, _mm512_setzero_si512()) |
                                   _mm512_cmp_ps_mask(v, r.best, _CMP_GT_OQ) |
                                   _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
      r.best = _mm512_mask_mov_ps(r.best, take, v);
      r.at = _mm512_mask_mov_epi32(r.at, take, at);
    }
  }
  return r;
}

}  // namespace

void max_pool_any_backward_plane(const Pool2dDesc& d, const float* dy, const float* x, float* dx) {
  std::memset(dx, 0, sizeof(float) * d.H * d.W);
  alignas(64) int32_t at[16];
  for (int64_t oh = 0; oh < d.OH; ++oh) {
    const float* g = dy + oh * d.OW;
    for (int64_t ow = 0; ow < d.OW; ow += 16) {
      const int64_t n = std::min<int64_t>(16, d.OW - ow);
      _mm512_store_si512(at, argmax_step(d, x, oh, ow, n).at);
      // In output order, one add at a time: overlapping windows may pick the same input.
      for (int64_t k = 0; k < n; ++k)
        if (at[k] >= 0) dx[at[k]] += g[ow + k];
    }
  }
}

}  // namespace fabric::cpu
