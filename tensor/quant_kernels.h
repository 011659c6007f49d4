// Dispatch stubs and constants of the bitsandbytes-style quantizers (spec §6, §7): the 4-bit
// NF4/FP4 blockwise quantize/dequantize loops and the int8 x int8 -> int32 GEMM of LLM.int8.
#pragma once
#include <array>
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

enum class Quant4Type : uint8_t { nf4, fp4 };

// NF4 values (index 0..15), exactly the fp32 constants of bitsandbytes.
inline constexpr std::array<float, 16> kNF4Code = {-1.0f,
                                                   -0.6961928009986877f,
                                                   -0.5250730514526367f,
                                                   -0.39491748809814453f,
                                                   -0.28444138169288635f,
                                                   -0.18477343022823334f,
                                                   -0.09105003625154495f,
                                                   0.0f,
                                                   0.07958029955625534f,
                                                   0.16093020141124725f,
                                                   0.24611230194568634f,
                                                   0.33791524171829224f,
                                                   0.44070982933044434f,
                                                   0.5626170039176941f,
                                                   0.7229568362236023f,
                                                   1.0f};

// FP4 (1 sign bit at 0b1000, 2 exponent, 1 mantissa bits) as the CUDA kernels decode it;
// index 8 is -0.
inline constexpr std::array<float, 16> kFP4Code = {
    0.0f,  1.0f / 192.0f,  2.0f / 3.0f,  1.0f,  1.0f / 3.0f,  0.5f,  1.0f / 6.0f,  0.25f,
    -0.0f, -1.0f / 192.0f, -2.0f / 3.0f, -1.0f, -1.0f / 3.0f, -0.5f, -1.0f / 6.0f, -0.25f};

// FP4 quantizes |x| with these thresholds (the literal fp32 constants of the CUDA decision
// tree); the i-th bucket (number of thresholds strictly below |x|) has code kFP4BucketCode[i].
inline constexpr std::array<float, 7> kFP4Thresholds = {
    0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
inline constexpr std::array<uint8_t, 8> kFP4BucketCode = {0, 1, 6, 7, 4, 5, 2, 3};

// NF4 midpoints f32((c[i] + c[i+1]) / 2): the sum of two fp32 values is exact in double, so
// this is one rounding of the exact midpoint.
inline constexpr std::array<float, 15> kNF4Midpoints = [] {
  std::array<float, 15> m{};
  for (int i = 0; i < 15; ++i) {
    m[i] = static_cast<float>((static_cast<double>(kNF4Code[i]) + kNF4Code[i + 1]) / 2.0);
  }
  return m;
}();

// The code of a scaled value 0 (what an all-zero block and odd-length padding store).
inline constexpr uint8_t quant4_zero_code(Quant4Type t) { return t == Quant4Type::nf4 ? 7 : 0; }

// Quantizes n contiguous elements of `dtype` (float32, float16 or bfloat16) in blocks of
// `blocksize` (a power of two >= 32): absmax[b] = max |x| over the block (NaN if the block holds
// a NaN); r = f32(1/absmax) (0 for an all-zero block); each x·r goes to the nearest code, ties to
// the lower index (a NaN to code 0). Codes are packed two per byte, first element in the high
// nibble; an odd n is padded with the zero code. packed holds (n+1)/2 bytes, absmax ceil(n/bs).
using Quantize4bitFn = void (*)(const void* x, DType dtype, int64_t n, int64_t blocksize,
                                Quant4Type type, uint8_t* packed, float* absmax);

// out[i] = code[nibble i] * absmax[i / blocksize] in fp32, rounded once to `dtype` (float32,
// float16 or bfloat16); n contiguous elements are written.
using Dequantize4bitFn = void (*)(const uint8_t* packed, const float* absmax, int64_t n,
                                  int64_t blocksize, Quant4Type type, DType dtype, void* out);

// C (M, N) = A (M, K) · B (N, K)ᵀ, all row-major contiguous, exact int32 accumulation.
using Int8GemmFn = void (*)(int64_t M, int64_t N, int64_t K, const int8_t* A, const int8_t* B,
                            int32_t* C);

// C (M, N) = scales[0] * scales[1] * A (M, K) · B (N, K)ᵀ on FP8 tensor cores with fp32
// accumulation, rounded once to c_dtype (float32, bfloat16 or float16). A and B are row-major
// contiguous float8_e4m3fn / float8_e5m2 (not both E5M2); `scales` is two floats in the device's
// memory. Returns false, having written nothing, when the device cannot take the problem (no FP8
// tensor cores, sizes or dtypes its kernels do not take): the op then runs its exact emulation.
using Fp8GemmFn = bool (*)(int64_t M, int64_t N, int64_t K, DType a_dtype, const void* A,
                           DType b_dtype, const void* B, const float* scales, DType c_dtype,
                           void* C);

FABRIC_DECLARE_STUB(quantize_4bit_stub, Quantize4bitFn);
FABRIC_DECLARE_STUB(dequantize_4bit_stub, Dequantize4bitFn);
FABRIC_DECLARE_STUB(int8_gemm_stub, Int8GemmFn);
FABRIC_DECLARE_STUB(fp8_gemm_stub, Fp8GemmFn);

}  // namespace fabric
