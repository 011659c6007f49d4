// Dispatch stubs and constants of the bitsandbytes-style quantizers (spec §6, §7): the 4-bit
// NF4/FP4 blockwise quantize/dequantize loops, the 8-bit blockwise quantizer of their double
// quantization, and LLM.int8's row- and column-wise quantizers, int8 x int8 -> int32 GEMM and
// forward epilogue. A kernel's pointers are in the memory of its own device (the device whose
// stub entry it is), flags and statistics included.
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

// 8-bit blockwise quantization of n contiguous float32 values against a sorted code: per block
// of `blocksize` (>= 1), absmax[b] = max |x| over the block (NaN if the block holds a NaN);
// r = f32(1/absmax) (0 for an all-zero block); codes[i] = the number of the 255 ascending
// `midpoints` strictly below x·r (ties and NaN go to the lower index), as a bucketize would.
using Quantize8bitBlockwiseFn = void (*)(const float* x, int64_t n, int64_t blocksize,
                                         const float* midpoints, uint8_t* codes, float* absmax);

// 8-bit blockwise dequantization of n codes against a 256-entry `code` table, blocks of
// `blocksize` (>= 1): out[i] = f32(code[codes[i]] · absmax[i / blocksize]).
using Dequantize8bitBlockwiseFn = void (*)(const uint8_t* codes, const float* absmax, int64_t n,
                                           int64_t blocksize, const float* code, float* out);

// LLM.int8 row-wise quantization of A (rows, K) row-major contiguous, `dtype` float32, float16
// or bfloat16, K >= 1. With threshold > 0, |a| >= threshold marks an outlier: it is left out of
// its row's absmax, quantized as 0, and colmask[k] is set to 1 for its column (colmask: K bytes,
// zeroed by the caller; untouched, and may be null, when threshold <= 0); when rows > 1 every
// outlier column is then zeroed in all rows of q. stats[r] = max |a| over the row's non-outliers
// (NaN ignored); q = RNE(clamp(a · f32(127 / stats[r]), ±127)), 0 where that is NaN or the row's
// stats is 0.
using Int8RowQuantFn = void (*)(const void* A, DType dtype, int64_t rows, int64_t K,
                                float threshold, int8_t* q, float* stats, uint8_t* colmask);

// LLM.int8 column-wise quantization (bitsandbytes' double_quant CAt/SCAt, as MatMul8bitLt keeps
// them for the weight gradient) of A (rows, K) row-major contiguous, `dtype` float32, float16 or
// bfloat16, rows >= 1, K >= 1, written transposed: qt (K, rows) holds column k of A as its row k
// (the (N, K) operand layout of Int8GemmFn). stats[k] = max |a| over column k's non-outliers (NaN
// ignored); qt[k, r] = RNE(clamp(a[r, k] · f32(127 / stats[k]), ±127)), 0 where that is NaN or
// stats[k] is 0. With threshold > 0, |a| >= threshold marks an outlier: it is left out of its
// column's stats, colmask[k] is set to 1 (K bytes zeroed by the caller; untouched, and may be
// null, when threshold <= 0), and the whole outlier column is written 0 whatever the number of rows
// (MatMul8bitLt zeroes CAt[:, idx]; that column's product is computed in 16-bit instead).
using Int8ColQuantFn = void (*)(const void* A, DType dtype, int64_t rows, int64_t K,
                                float threshold, int8_t* qt, float* stats, uint8_t* colmask);

// LLM.int8 row-wise dequantization of q (rows, K) row-major contiguous, K >= 1:
// out[r, k] = f32(f32(q[r, k]) · stats[r]) · scale, float32 (bitsandbytes' A * stats * 1/127, left
// to right).
using Int8RowDequantFn = void (*)(const int8_t* q, const float* stats, int64_t rows, int64_t K,
                                  float scale, float* out);

// The LLM.int8 forward after its int8 GEMM, per element (m, n) of the (M, N) output:
//   v = f32(acc[m, n]) · f32(row_stats[m] · col_stats[n]) · scale  (+ bias[n] when bias),
// rounded to `dtype`; then, when ncols > 0, out = round(v' + Σ_j x[m, cols[j]] · w_cols[j, n])
// with v' the rounded v, one fused multiply-add per outlier column in the order of cols.
struct Int8LinearEpilogue {
  int64_t M = 0, N = 0;
  const int32_t* acc = nullptr;      // (M, N), the int32 GEMM result
  const float* row_stats = nullptr;  // (M)
  const float* col_stats = nullptr;  // (N)
  float scale = 0.0f;                // 1/127², as the caller defines it
  const float* bias = nullptr;       // (N) float32, or null
  DType dtype = DType::float32;      // x's and out's dtype: float32, float16 or bfloat16
  const void* x = nullptr;           // (M, K), read only at the outlier columns
  int64_t K = 0;
  const int64_t* cols = nullptr;  // ncols column indices into x
  int64_t ncols = 0;
  const float* w_cols = nullptr;  // (ncols, N) float32
  void* out = nullptr;            // (M, N)
};
using Int8LinearEpilogueFn = void (*)(const Int8LinearEpilogue& e);

// C (M, N) = A (M, K) · B (N, K)ᵀ, all row-major contiguous, exact int32 accumulation.
using Int8GemmFn = void (*)(int64_t M, int64_t N, int64_t K, const int8_t* A, const int8_t* B,
                            int32_t* C);

// C (M, N) = scales[0] * scales[kFp8GemmScaleStride] * A (M, K) · B (N, K)ᵀ on FP8 tensor cores
// with fp32 accumulation, rounded once to c_dtype (float32, bfloat16 or float16). A and B are
// row-major contiguous float8_e4m3fn / float8_e5m2 (not both E5M2). The two scales lie in the
// device's memory 16 bytes apart, since cuBLASLt's FP8 kernels take only 16-byte aligned pointers
// (a scale at scales + 1 is refused at the call: seen on an H200 as CUBLAS_STATUS_NOT_SUPPORTED).
// Returns false, having written nothing, when the device cannot take the problem (no FP8 tensor
// cores, sizes or dtypes its kernels do not take): the op then runs its exact emulation.
inline constexpr int kFp8GemmScaleStride = 4;
using Fp8GemmFn = bool (*)(int64_t M, int64_t N, int64_t K, DType a_dtype, const void* A,
                           DType b_dtype, const void* B, const float* scales, DType c_dtype,
                           void* C);

FABRIC_DECLARE_STUB(quantize_4bit_stub, Quantize4bitFn);
FABRIC_DECLARE_STUB(dequantize_4bit_stub, Dequantize4bitFn);
FABRIC_DECLARE_STUB(quantize_8bit_blockwise_stub, Quantize8bitBlockwiseFn);
FABRIC_DECLARE_STUB(dequantize_8bit_blockwise_stub, Dequantize8bitBlockwiseFn);
FABRIC_DECLARE_STUB(int8_row_quant_stub, Int8RowQuantFn);
FABRIC_DECLARE_STUB(int8_col_quant_stub, Int8ColQuantFn);
FABRIC_DECLARE_STUB(int8_row_dequant_stub, Int8RowDequantFn);
FABRIC_DECLARE_STUB(int8_linear_epilogue_stub, Int8LinearEpilogueFn);
FABRIC_DECLARE_STUB(int8_gemm_stub, Int8GemmFn);
FABRIC_DECLARE_STUB(fp8_gemm_stub, Fp8GemmFn);

// As Dequantize4bitFn, with each product rounded first to `via` and that value then to `dtype`
// (each float32, float16 or bfloat16): bit for bit a dequantization to `via` followed by a cast
// to `dtype`, in one pass (a 4-bit state of float16 read in a bfloat16 compute dtype).
using Dequantize4bitViaFn = void (*)(const uint8_t* packed, const float* absmax, int64_t n,
                                     int64_t blocksize, Quant4Type type, DType via, DType dtype,
                                     void* out);
FABRIC_DECLARE_STUB(dequantize_4bit_via_stub, Dequantize4bitViaFn);

}  // namespace fabric
