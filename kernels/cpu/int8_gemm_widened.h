// An exact int8 x int8 -> int32 GEMM for CPUs without VNNI (AVX512-VNNI or AVX-VNNI), where
// oneDNN's s8s8s32 GEMM adds pairs of u8 x s8 products in saturating int16 (vpmaddubsw; oneDNN's
// documented "int8 computation nuance"): full-range operands such as LLM.int8's come out wrong.
// Here both operands are widened to int16 and vpmaddwd adds pairs of exact products into int32.
#pragma once
#include <cstdint>

namespace fabric::cpu {

// Whether oneDNN's s8s8s32 GEMM is exact on the CPU this library was built for (it has VNNI).
constexpr bool kOneDnnInt8GemmExact =
#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
    true;
#else
    false;
#endif

// C (M, N) = A (M, K) times B (N, K) transposed, row-major, int32 accumulation (wrapping as
// oneDNN's past 2^31).
void int8_gemm_widened(int64_t M, int64_t N, int64_t K, const int8_t* A, const int8_t* B,
                       int32_t* C);

}  // namespace fabric::cpu
