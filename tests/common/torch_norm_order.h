// A plain scalar transcription of PyTorch 1.13's CPU p = 2 last-dim norm kernel
// (ReduceOpsKernel.cpp, Debian's AVX2 build), the order kernels/cpu/reduce_row_norm.h claims:
// 8 float lanes of fmas over the whole vectors (16 bfloat16 values a vector, 0-7 then 8-15 into
// the same lanes), the lanes added in order, then the tail: of a float32 tail of 4 or more, the
// first 4 squares rounded and added in turn, the rest fmas. The result is the sum of squares,
// before torch's float sqrt.
#pragma once
#include <cmath>
#include <cstdint>

namespace fabric {

inline float torch_norm2_sumsq_reference(const float* x, int64_t n) {
  float lanes[8] = {};
  const int64_t whole = n - n % 8;
  for (int64_t d = 0; d < whole; d += 8)
    for (int j = 0; j < 8; ++j) lanes[j] = std::fma(x[d + j], x[d + j], lanes[j]);
  float s = lanes[0];
  for (int j = 1; j < 8; ++j) s = s + lanes[j];
  int64_t i = whole;
  if (n - whole >= 4)
    for (; i < whole + 4; ++i) {
      volatile float sq = x[i] * x[i];  // rounded on its own, as torch's vector multiply
      s = s + sq;
    }
  for (; i < n; ++i) s = std::fma(x[i], x[i], s);
  return s;
}

// A bfloat16 row given as its float values (squares exact in float: fused or not is the same).
inline float torch_norm2_bf16_sumsq_reference(const float* x, int64_t n) {
  float lanes[8] = {};
  const int64_t whole = n - n % 16;
  for (int64_t d = 0; d < whole; d += 16)
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 8; ++j) lanes[j] = std::fma(x[d + 8 * h + j], x[d + 8 * h + j], lanes[j]);
  float s = lanes[0];
  for (int j = 1; j < 8; ++j) s = s + lanes[j];
  for (int64_t i = whole; i < n; ++i) s = std::fma(x[i], x[i], s);
  return s;
}

}  // namespace fabric
