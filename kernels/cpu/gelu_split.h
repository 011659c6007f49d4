// The lane-split driver of the erf GELU and its derivative (vec_math.h's gelu_erf_* halves): every
// lane takes the cheap polynomial; the lanes past its range (a fifth to a quarter of a unit
// normal's) are packed 16 to a vector with vcompressps for the exp-based half and expanded back, so
// the expensive half runs on that fraction of the vectors only. Every path gives gelu_erf_ps's (or
// gelu_erf_grad_ps's) bits.
#pragma once
#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace fabric::cpu::gelu {

inline constexpr int64_t kBlock = 256;

// Software prefetch this far ahead of the block being computed: at one thread the kernel is slow
// enough for the hardware prefetcher to fall behind on data from DRAM, and prefetchw takes the
// output lines' read-for-ownership off the store path (1.2-1.5x on cold 16 MiB tensors).
inline constexpr int64_t kPrefetchBytes = 2048;
template <typename T>
inline void prefetch_ahead(const T* in, int64_t m) {
  const char* p = reinterpret_cast<const char*>(in) + kPrefetchBytes;
  for (int64_t b = 0; b < m * static_cast<int64_t>(sizeof(T)); b += 64)
    _mm_prefetch(p + b, _MM_HINT_T0);
}
template <typename T>
inline void prefetchw_ahead(T* out, int64_t m) {
  char* p = reinterpret_cast<char*>(out) + kPrefetchBytes;
  for (int64_t b = 0; b < m * static_cast<int64_t>(sizeof(T)); b += 64) _m_prefetchw(p + b);
}

// m <= kBlock elements of in; emit(j, y, live) receives the fp32 result of elements j..j+15 (live:
// the valid lanes, all 16 but in the last vector). is_large: __mmask16(__m512), the lanes for
// large; small/large: __m512(__m512).
template <typename T, typename IsLarge, typename Small, typename Large, typename Emit>
FABRIC_VEC_INLINE void split_block(const T* in, int64_t m, const IsLarge& is_large_fn,
                                   const Small& small, const Large& large, const Emit& emit) {
  alignas(64) float packed_x[kBlock + 16];
  alignas(64) float packed_y[kBlock + 16];
  __mmask16 is_large[kBlock / 16];
  const int64_t full = m & ~int64_t{15};
  const __mmask16 tail = vec::tail_mask(m - full);
  int cnt = 0;
  auto pack = [&](int64_t j, __m512 x, __mmask16 live) {
    const __mmask16 lg = is_large_fn(x) & live;
    is_large[j / 16] = lg;
    _mm512_storeu_ps(packed_x + cnt, _mm512_maskz_compress_ps(lg, x));
    cnt += __builtin_popcount(lg);
  };
  for (int64_t j = 0; j < full; j += 16) pack(j, vec::load(in + j), 0xFFFF);
  if (full < m) pack(full, vec::load(in + full, tail), tail);
  _mm512_storeu_ps(packed_x + cnt, _mm512_setzero_ps());  // defined lanes past the last packed one
  for (int k = 0; k < cnt; k += 16)
    _mm512_store_ps(packed_y + k, large(_mm512_load_ps(packed_x + k)));
  int pos = 0;
  for (int64_t j = 0; j < full; j += 16) {
    const __mmask16 lg = is_large[j / 16];
    emit(j, _mm512_mask_expand_ps(small(vec::load(in + j)), lg, _mm512_loadu_ps(packed_y + pos)),
         static_cast<__mmask16>(0xFFFF));
    pos += __builtin_popcount(lg);
  }
  if (full < m)
    emit(full,
         _mm512_mask_expand_ps(small(vec::load(in + full, tail)), is_large[full / 16],
                               _mm512_loadu_ps(packed_y + pos)),
         tail);
}

}  // namespace fabric::cpu::gelu
