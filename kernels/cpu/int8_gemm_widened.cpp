// The widened int8 GEMM (int8_gemm_widened.h): B widened to int16 once, each row of A once per
// thread, then four dot products at a time, 16 products per vpmaddwd.
#include "kernels/cpu/int8_gemm_widened.h"

#include <omp.h>

#include <vector>

#include "kernels/cpu/x86_simd.h"

namespace fabric::cpu {
namespace {

void widen(const int8_t* src, int64_t n, int16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

inline int32_t horizontal_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i load16(const int16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

}  // namespace

void int8_gemm_widened(int64_t M, int64_t N, int64_t K, const int8_t* A, const int8_t* B,
                       int32_t* C) {
  std::vector<int16_t> b16(static_cast<size_t>(N * K));
  widen(B, N * K, b16.data());
  const int64_t K16 = K / 16 * 16;
#pragma omp parallel if (M * N * K >= (1 << 20))
  {
    std::vector<int16_t> a16(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      widen(A + m * K, K, a16.data());
      const int16_t* a = a16.data();
      int64_t n = 0;
      for (; n + 4 <= N; n += 4) {
        const int16_t* b0 = b16.data() + n * K;
        const int16_t *b1 = b0 + K, *b2 = b1 + K, *b3 = b2 + K;
        __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
        for (int64_t k = 0; k < K16; k += 16) {
          const __m256i x = load16(a + k);
          c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(x, load16(b0 + k)));
          c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(x, load16(b1 + k)));
          c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(x, load16(b2 + k)));
          c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(x, load16(b3 + k)));
        }
        int32_t s[4] = {horizontal_sum(c0), horizontal_sum(c1), horizontal_sum(c2), horizontal_sum(c3)};
        const int16_t* bs[4] = {b0, b1, b2, b3};
        for (int j = 0; j < 4; ++j) {
          // Wrapping adds in uint32, as the vector lanes (and oneDNN) wrap.
          uint32_t t = static_cast<uint32_t>(s[j]);
          for (int64_t k = K16; k < K; ++k) t += static_cast<uint32_t>(int32_t(a[k]) * int32_t(bs[j][k]));
          C[m * N + n + j] = static_cast<int32_t>(t);
        }
      }
      for (; n < N; ++n) {
        const int16_t* b = b16.data() + n * K;
        __m256i c = _mm256_setzero_si256();
        for (int64_t k = 0; k < K16; k += 16) c = _mm256_add_epi32(c, _mm256_madd_epi16(load16(a + k), load16(b + k)));
        uint32_t t = static_cast<uint32_t>(horizontal_sum(c));
        for (int64_t k = K16; k < K; ++k) t += static_cast<uint32_t>(int32_t(a[k]) * int32_t(b[k]));
        C[m * N + n] = static_cast<int32_t>(t);
      }
    }
  }
}

}  // namespace fabric::cpu
