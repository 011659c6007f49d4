// f16 (and fallback bf16) GEMM through float32. oneDNN 2.6 creates no f16 matmul here (probed:
// f16 x f16 -> f32/f16 has no primitive, even on a CPU with AVX512-FP16), so the operands are widened
// exactly to f32 scratch (f16 -> f32 is lossless), the f32 path runs with f32 accumulation, and an
// f16/bf16 output is rounded once (RNE). The widening is O(n^2) next to the O(n^3) product.
// GCC 12 flags its own AVX-512 intrinsics (_mm512_undefined_*) as uninitialised once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <bit>
#include <cstring>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_f16_scratch.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/error.h"

namespace fabric::cpu::detail {
namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in f32
    const float v = float(man) * 0x1p-24f;
    return std::bit_cast<float>(std::bit_cast<uint32_t>(v) | sign);
  }
  if (exp == 31)
    return std::bit_cast<float>(sign | 0x7f800000u | (man ? 0x400000u : 0u) | (man << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t float_to_half(float f) {  // round to nearest even, overflow to inf, NaN stays NaN
  uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00u | uint16_t((x >> 13) & 0x3ffu);
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  if (x < 0x38800000u) {                        // below 2^-14: the f16 subnormal range
    // Adding 0.5 puts the f16 subnormal ulp (2^-24) at the f32 ulp of 0.5, so the FPU rounds.
    const float v = std::bit_cast<float>(x) + 0.5f;
    return sign | uint16_t(std::bit_cast<uint32_t>(v) - 0x3f000000u);
  }
  const uint32_t odd = (x >> 13) & 1u;
  x += 0xc8000fffu + odd;  // rebias the exponent (-112 << 23) and round half to even
  return sign | uint16_t(x >> 13);
}

float bf16_to_float(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

uint16_t float_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return uint16_t(x >> 16);
}

// Rows of a (rows x cols) matrix with leading dim `ld` <-> a dense f32 (rows x cols) buffer.
void widen_row(DType t, const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t j = 0;
  if (t == DType::float16) {
#if defined(__AVX512F__)
    for (; j + 16 <= n; j += 16)
      _mm512_storeu_ps(
          dst + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + j))));
#endif
    for (; j < n; ++j) dst[j] = half_to_float(s[j]);
  } else if (t == DType::bfloat16) {
#if defined(__AVX512F__)
    for (; j + 16 <= n; j += 16) {
      __m512i w =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + j)));
      _mm512_storeu_ps(dst + j, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
#endif
    for (; j < n; ++j) dst[j] = bf16_to_float(s[j]);
  } else {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
  }
}

void narrow_row(const float* src, DType t, void* dst, int64_t n) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  int64_t j = 0;
  if (t == DType::float16) {
#if defined(__AVX512F__)
    for (; j + 16 <= n; j += 16)
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(d + j),
          _mm512_cvtps_ph(_mm512_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; j < n; ++j) d[j] = float_to_half(src[j]);
  } else {
    for (; j < n; ++j) d[j] = float_to_bf16(src[j]);
  }
}

// Below this many elements a conversion runs on the calling thread: waking the pool costs more.
constexpr int64_t kParallelElements = int64_t(1) << 16;

// `batches` matrices (rows x cols, leading dim `ld`, `stride` elements apart) <-> one dense f32
// buffer. All batches' rows share one parallel loop: attention's products are many small matrices,
// each under the threshold alone, which left one thread converting while the other waited.
void widen(DType t, const void* src, int64_t batches, int64_t stride, int64_t rows, int64_t cols,
           int64_t ld, float* dst) {
  const char* s = static_cast<const char*>(src);
  const int64_t es = itemsize(t), total = batches * rows;
  run_tasks(total, total * cols > kParallelElements && !omp_in_parallel(), [&](int64_t r) {
    const int64_t b = r / rows, i = r % rows;
    widen_row(t, s + (b * stride + i * ld) * es, dst + r * cols, cols);
  });
}

void narrow(const float* src, int64_t batches, int64_t rows, int64_t cols, DType t, void* dst,
            int64_t stride, int64_t ld) {
  char* d = static_cast<char*>(dst);
  const int64_t es = itemsize(t), total = batches * rows;
  run_tasks(total, total * cols > kParallelElements && !omp_in_parallel(), [&](int64_t r) {
    const int64_t b = r / rows, i = r % rows;
    narrow_row(src + r * cols, t, d + (b * stride + i * ld) * es, cols);
  });
}

// One operand, all batches, widened densely; a broadcast operand (stride 0) is widened once.
const float* widen_operand(DType t, const void* p, int64_t batch, int64_t rows, int64_t cols,
                           int64_t ld, int64_t stride, ScratchBuffer<float>& buf,
                           int64_t& dense_stride) {
  const int64_t nb = stride == 0 ? 1 : batch;
  float* out = buf.get(nb * rows * cols);
  widen(t, p, nb, stride, rows, cols, ld, out);
  dense_stride = nb == 1 ? 0 : rows * cols;
  return out;
}

}  // namespace

bool run_with_f32_output(const GemmArgs& g, GemmArgs f) {
  thread_local ScratchBuffer<float> buf_c, buf_bias;
  if (g.bias && g.bias_dtype != DType::float32) {
    float* bias = buf_bias.get(g.N);
    widen_row(g.bias_dtype, g.bias, bias, g.N);
    f.bias = bias;
    f.bias_dtype = DType::float32;
  }
  const bool narrow_c = g.c_dtype != DType::float32;
  if (narrow_c) {
    f.c_dtype = DType::float32;
    float* c = buf_c.get(g.batch * g.M * g.N);
    if (g.beta != 0.f) widen(g.c_dtype, g.C, g.batch, g.stride_c, g.M, g.N, g.ldc, c);
    f.C = c;
    f.ldc = g.N;
    f.stride_c = g.M * g.N;
  }
  if (f.K == 0 || !gemm_onednn(f)) {
    if (f.a_dtype != DType::float32) return false;
    gemm_eigen(f);
  }
  if (narrow_c)
    narrow(static_cast<const float*>(f.C), g.batch, g.M, g.N, g.c_dtype, g.C, g.stride_c, g.ldc);
  return true;
}

void gemm_via_f32(const GemmArgs& g) {
  thread_local ScratchBuffer<float> buf_a, buf_b;
  GemmArgs f = g;
  f.a_dtype = f.b_dtype = DType::float32;
  const int64_t ra = g.trans_a ? g.K : g.M, ca = g.trans_a ? g.M : g.K;
  const int64_t rb = g.trans_b ? g.N : g.K, cb = g.trans_b ? g.K : g.N;
  f.A = widen_operand(g.a_dtype, g.A, g.batch, ra, ca, g.lda, g.stride_a, buf_a, f.stride_a);
  f.lda = ca;
  f.B = widen_operand(g.b_dtype, g.B, g.batch, rb, cb, g.ldb, g.stride_b, buf_b, f.stride_b);
  f.ldb = cb;
  run_with_f32_output(g, f);
}

}  // namespace fabric::cpu::detail
