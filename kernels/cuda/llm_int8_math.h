// LLM.int8's per-element arithmetic on CUDA (kernels/cuda/llm_int8_kernels.cu), host and device,
// so that the CPU tests hold it to the AVX-512 kernels of kernels/cpu/llm_int8_kernels.cpp, the
// spec: which values are outliers, the quantization factor and code, the row dequantization and
// the forward epilogue's rounding sequence (tensor/quant_kernels.h states each).
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/float_formats.h"  // Half, BFloat16
#include "tensor/host_device.h"
#include "tensor/rounded_arith.h"

namespace fabric::cuda::llm_int8 {

// |a| >= threshold marks an outlier, only with a positive threshold (a NaN never is one).
FABRIC_HD_INLINE bool is_outlier(float abs_a, float threshold) {
  return threshold > 0.0f && abs_a >= threshold;
}

// What |a| adds to its row's (column's) absmax: nothing for an outlier. The caller folds with
// fmaxf, which drops a NaN as the CPU's vmaxps does (its running maximum is the second operand).
FABRIC_HD_INLINE float absmax_term(float a, float threshold) {
  const float m = fabsf(a);
  return is_outlier(m, threshold) ? 0.0f : m;
}

// The factor a row (column) with absmax `stat` quantizes by: 127/stat, and 0 for an all-zero one,
// whose codes are then all 0 as the CPU's memset gives (0·a is 0, or NaN for a NaN or an infinity,
// which is emitted as 0). An infinite stat gives 0 by itself, as on the CPU.
FABRIC_HD_INLINE float quant_factor(float stat) { return stat == 0.0f ? 0.0f : 127.0f / stat; }

// RNE(clamp(a · factor, ±127)); 0 where the product is NaN (it has no int8 value).
FABRIC_HD_INLINE int8_t quant_code(float a, float factor) {
  const float x = rounded::mul(a, factor);
  if (x != x) return 0;
  const float c = fmaxf(fminf(x, 127.0f), -127.0f);
#if defined(__CUDA_ARCH__)
  return static_cast<int8_t>(__float2int_rn(c));
#else
  return static_cast<int8_t>(std::nearbyint(c));  // the default rounding mode: to nearest even
#endif
}

// Row dequantization: f32(f32(q) · stat) · scale, as bitsandbytes' `A * stats.view(-1, 1) *
// 7.874015718698502e-3` evaluates, left to right.
FABRIC_HD_INLINE float dequant_row_value(int8_t q, float stat, float scale) {
  return rounded::mul(rounded::mul(static_cast<float>(q), stat), scale);
}

// a + b with a (a product) rounded on its own: __fadd_rn, which nvcc's -fmad=true cannot fuse
// with the product before it; on the host (the tests) a volatile keeps GCC's -ffp-contract=fast
// from fusing them.
FABRIC_HD_INLINE float add_rounded(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  volatile float product = a;
  return product + b;
#endif
}

// The epilogue's int8 part: f32(acc) · f32(row · col) · scale, each product rounded, plus the
// bias in its own rounding when there is one.
FABRIC_HD_INLINE float epilogue_int8_part(int32_t acc, float row, float col, float scale,
                                          const float* bias_n) {
  const float v =
      rounded::mul(rounded::mul(static_cast<float>(acc), rounded::mul(row, col)), scale);
  return bias_n != nullptr ? add_rounded(v, *bias_n) : v;
}

// v rounded to T and read back as float (exact for float).
template <typename T>
FABRIC_HD_INLINE float round_through(float v) {
  return static_cast<float>(T(v));
}

}  // namespace fabric::cuda::llm_int8
