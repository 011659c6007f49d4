// The float32 row sum of sum() and mean() over a contiguous run: sum_range<float>'s cascade
// (reduce_math.h) written out in AVX-512, so that the per-row set-up, the carries and the final
// lane fold stay in registers (rows that sit in L2 sum ~1.4x faster; a 16 MiB tensor is bound by
// the L3 read rate either way). Same additions in the same order, so the same bits as
// sum_range<float>(0, n, x[i]) (tests/kernels/test_reduce_sum_f32.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/reduce_math.h"

namespace fabric::cpu {

// Sum of x[0, n) in sum_range<float>'s order: 64 lanes (4 zmm) take 16 consecutive groups of 64,
// then carry into level 1; level k carries into k + 1 after 16 carries, up to level 5; the scalar
// tail after the last whole group; levels folded top-down into level 0, lanes folded in halves
// (j += j + 32, j += j + 16, ... j += j + 1), then + tail.
// `load16(i)` gives elements i .. i + 15 as float32, `load1(i)` element i: the float32 row itself,
// or a bfloat16 row widened as it is read (one pass instead of a conversion into scratch first).
template <typename Load16, typename Load1>
inline float row_sum_widened(int64_t n, Load16 load16, Load1 load1) {
  constexpr int64_t kLanes = 64, kFan = 16;
  constexpr int kUpper = 5;  // levels above the one the loads add into
  // No software prefetch: 4 KiB ahead took ~2% off a 16 MiB sum but made the backward that
  // follows (16 MiB of gradient written) ~25% slower, and the L2 streamer keeps up without it.
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const auto group = [&](int64_t i) {
    a0 = _mm512_add_ps(a0, load16(i));
    a1 = _mm512_add_ps(a1, load16(i + 16));
    a2 = _mm512_add_ps(a2, load16(i + 32));
    a3 = _mm512_add_ps(a3, load16(i + 48));
  };
  int64_t i = 0;
  if (n <= kFan * kLanes) {  // sum_range's one-level path
    for (; i + kLanes <= n; i += kLanes) group(i);
  } else {
    __m512 up[kUpper][4];  // up[k] is sum_range's level k + 1
    for (auto& level : up)
      for (auto& v : level) v = _mm512_setzero_ps();
    int count[kUpper] = {};  // count[k]: carries into level k since it last carried up
    while (i + kLanes <= n) {
      const int64_t stop = std::min(n - kLanes, i + (kFan - 1) * kLanes);
      for (; i <= stop; i += kLanes) group(i);
      up[0][0] = _mm512_add_ps(up[0][0], a0);
      up[0][1] = _mm512_add_ps(up[0][1], a1);
      up[0][2] = _mm512_add_ps(up[0][2], a2);
      up[0][3] = _mm512_add_ps(up[0][3], a3);
      a0 = a1 = a2 = a3 = _mm512_setzero_ps();
      for (int k = 1; k < kUpper; ++k) {
        if (++count[k] < kFan) break;
        count[k] = 0;
        for (int q = 0; q < 4; ++q) {
          up[k][q] = _mm512_add_ps(up[k][q], up[k - 1][q]);
          up[k - 1][q] = _mm512_setzero_ps();
        }
      }
    }
    for (int k = kUpper - 1; k > 0; --k)
      for (int q = 0; q < 4; ++q) up[k - 1][q] = _mm512_add_ps(up[k - 1][q], up[k][q]);
    a0 = _mm512_add_ps(a0, up[0][0]);
    a1 = _mm512_add_ps(a1, up[0][1]);
    a2 = _mm512_add_ps(a2, up[0][2]);
    a3 = _mm512_add_ps(a3, up[0][3]);
  }
  float tail = 0;
  for (; i < n; ++i) tail += load1(i);
  return fold_lanes64(a0, a1, a2, a3, tail);
}

inline float row_sum_f32(const float* x, int64_t n) {
  return row_sum_widened(
      n, [x](int64_t i) { return _mm512_loadu_ps(x + i); }, [x](int64_t i) { return x[i]; });
}

// bfloat16 bits widened to float32 exactly (the high half of the float's bits).
inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// row_sum_f32 of the float32 values of a bfloat16 row: the same bits as converting it first.
inline float row_sum_bf16(const uint16_t* x, int64_t n) {
  if (n < 32) {  // fold_run's short-row order
    float r = 0;
    for (int64_t i = 0; i < n; ++i) r += bf16_bits_to_float(x[i]);
    return r;
  }
  return row_sum_widened(
      n,
      [x](int64_t i) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      },
      [x](int64_t i) { return bf16_bits_to_float(x[i]); });
}

}  // namespace fabric::cpu
