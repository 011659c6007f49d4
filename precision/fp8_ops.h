// Transformer Engine-style FP8 tensor ops (spec §1, §8): the scaled saturating cast, its inverse,
// and the FP8 GEMM as an exact emulation (fp8 -> fp32 exactly, fp32 GEMM, times both scale_inv).
#pragma once
#include <cstdint>

#include "precision/fp8_meta.h"
#include "precision/fp8_recipe.h"
#include "tensor/tensor.h"

namespace fabric::precision {

struct Fp8Quantized {
  Tensor q;         // float8_e4m3fn or float8_e5m2, same shape as the input
  float scale_inv;  // f32(1 / scale): what dequantization and the GEMM multiply by
};

// f32(1 / scale), as the reference's reciprocal kernel.
inline float fp8_scale_inv(float scale) { return 1.0f / scale; }

// The saturating (CUDA __NV_SATFINITE) cast of a floating tensor: values past the format's max,
// ±inf included, become ±max; NaN stays NaN; RNE with subnormals kept. No autograd.
Tensor fp8_saturating_cast(const Tensor& x, Fp8Format element_format);

// q = sat_cast(f32(x) * scale): x is taken to float32 exactly, multiplied in fp32. The format is
// E4M3 or E5M2 (ValueError for HYBRID, or for a scale that is not finite and > 0; DTypeError for
// a non-floating x). No autograd.
Fp8Quantized fp8_quantize(const Tensor& x, float scale, Fp8Format element_format);

// Steps 1-3 of spec §8 for one slot: records the amax of x in the meta, then quantizes it with the
// slot's current scale into the direction's format.
Fp8Quantized fp8_quantize(FP8Meta& meta, Fp8Direction d, int64_t slot, const Tensor& x);

// f32(q) * scale_inv, rounded once to out_dtype (a floating dtype). DTypeError unless q is fp8.
Tensor fp8_dequantize(const Tensor& q, float scale_inv, DType out_dtype = DType::float32);

// (a_q @ b_q) with fp32 accumulation, then * scale_inv_a, then * scale_inv_b (two fp32
// multiplies), rounded once to out_dtype. a_q and b_q are fp8 (either format, so E4M3 x E5M2
// works as in the backward); matmul's broadcasting rules apply. Autocast is off inside (the
// emulated tensor cores accumulate in fp32 whatever region the caller is in). No autograd.
// On a device with an FP8 GEMM kernel (cuBLASLt on sm_89+) a 2-D b_q whose sizes it takes runs
// there: the same product with both scales applied in the kernel's epilogue (summation order and
// that one rounding may differ from the emulation).
Tensor fp8_gemm(const Tensor& a_q, float scale_inv_a, const Tensor& b_q, float scale_inv_b,
                DType out_dtype = DType::float32);

// Transformer Engine's Linear in FP8: y = x W^T + b, (..., in) x (out, in) -> (..., out), in
// x's dtype. Forward: x and W are quantized with the forward scales of GEMM `gemm` (slots input,
// weight; E4M3) and multiplied by fp8_gemm; b is added in x's dtype. Backward (recorded when
// grad mode is on and x, W or b requires grad): the incoming gradient is quantized with the
// backward grad_output scale (E5M2 under HYBRID), dgrad = fp8_gemm(dY_q, W_q) and
// wgrad = fp8_gemm(dY_q^T, x_q) reuse the saved forward casts, and db = sum(dY) in fp32. Amaxes
// are recorded as tensors are cast; the caller runs meta.update() where spec §8 says (forward:
// leaving the outermost fp8 region, backward: after backward). `meta` must outlive the graph.
// ShapeError for mismatched shapes, DTypeError for non-floating or fp8 operands.
Tensor fp8_linear(FP8Meta& meta, int64_t gemm, const Tensor& x, const Tensor& weight,
                  const Tensor& bias = Tensor());

}  // namespace fabric::precision
