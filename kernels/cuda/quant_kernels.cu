// CUDA kernels of the quantizers (spec §6, §7): NF4/FP4 blockwise quantize (one warp per block:
// absmax by warp reduction, then the code search of kernels/cpu/quant_kernels.cpp, bit for bit)
// and dequantize, and the LLM.int8 int8 x int8 -> int32 GEMM as a shared-memory tiled kernel on
// dp4a (exact int32 accumulation, like oneDNN's s8s8s32 on the CPU).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/stream.h"
#include "tensor/quant_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxGrid = 65536;

// The search and decode tables, passed by value (kernel parameter space is constant memory).
struct Tables {
  float nf4_mid[15];
  float fp4_thr[7];
  uint8_t fp4_map[8];
  float code[16];  // of the type being decoded
};

Tables tables_for(Quant4Type type) {
  Tables t{};
  for (int i = 0; i < 15; ++i) t.nf4_mid[i] = kNF4Midpoints[i];
  for (int i = 0; i < 7; ++i) t.fp4_thr[i] = kFP4Thresholds[i];
  for (int i = 0; i < 8; ++i) t.fp4_map[i] = kFP4BucketCode[i];
  const auto& code = type == Quant4Type::nf4 ? kNF4Code : kFP4Code;
  for (int i = 0; i < 16; ++i) t.code[i] = code[i];
  return t;
}

// The number of table entries strictly below s (NaN compares false: bucket 0), as the CPU's
// branchless binary search counts them.
__device__ __forceinline__ int code_of(float s, bool nf4, const Tables& t) {
  if (nf4) {
    int c = 0;
#pragma unroll
    for (int i = 0; i < 15; ++i) c += s > t.nf4_mid[i] ? 1 : 0;
    return c;
  }
  const float a = fabsf(s);
  int bucket = 0;
#pragma unroll
  for (int i = 0; i < 7; ++i) bucket += a > t.fp4_thr[i] ? 1 : 0;
  return t.fp4_map[bucket] | (s < 0.0f ? 8 : 0);
}

// Warp w of the grid-stride loop owns quantization block b: absmax (NaN if the block holds one),
// r = 1/absmax (0 for an all-zero block), then one packed byte per lane step.
template <typename T>
__global__ void quantize_4bit_kernel(const T* x, int64_t n, int64_t bs, bool nf4, Tables tb,
                                     uint8_t* packed, float* absmax_out) {
  const int lane = threadIdx.x % 32;
  const int64_t nblocks = (n + bs - 1) / bs;
  const int64_t warp_step = static_cast<int64_t>(gridDim.x) * kWarps;
  const bool partial = n % bs != 0;
  const uint8_t zero_code = nf4 ? 7 : 0;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; b < nblocks;
       b += warp_step) {
    const int64_t start = b * bs, len = n - start < bs ? n - start : bs;
    const T* xb = x + start;
    float mx = 0.0f;
    bool nan = false;
    for (int64_t i = lane; i < len; i += 32) {
      const float v = static_cast<float>(xb[i]);
      nan = nan || isnan(v);
      mx = fmaxf(mx, fabsf(v));
    }
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    nan = __any_sync(0xffffffffu, nan) != 0;
    float absmax = nan ? __int_as_float(0x7FC00000) : mx;
    const float r = absmax == 0.0f ? 0.0f : __fdiv_rn(1.0f, absmax);
    if (absmax == 0.0f && partial && b == nblocks - 1) absmax = 1e-38f;
    if (lane == 0) absmax_out[b] = absmax;
    uint8_t* pb = packed + start / 2;
    const int64_t bytes = (len + 1) / 2;
    for (int64_t j = lane; j < bytes; j += 32) {
      const int c0 = code_of(__fmul_rn(static_cast<float>(xb[2 * j]), r), nf4, tb);
      // Past the end is padding: the code of a 0 input, whatever r is.
      const int c1 = 2 * j + 1 < len
                         ? code_of(__fmul_rn(static_cast<float>(xb[2 * j + 1]), r), nf4, tb)
                         : zero_code;
      pb[j] = static_cast<uint8_t>((c0 << 4) | c1);
    }
  }
}

// One thread per packed byte: its two elements share a block (blocksize is even).
template <typename T>
__global__ void dequantize_4bit_kernel(const uint8_t* packed, const float* absmax, int64_t n,
                                       int64_t bs, Tables tb, T* out) {
  const int64_t bytes = (n + 1) / 2, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < bytes;
       j += step) {
    const uint8_t byte = packed[j];
    const float a = absmax[(2 * j) / bs];
    out[2 * j] = T(__fmul_rn(tb.code[byte >> 4], a));
    if (2 * j + 1 < n) out[2 * j + 1] = T(__fmul_rn(tb.code[byte & 0xF], a));
  }
}

unsigned grid_for(int64_t work, int64_t per_block) {
  return static_cast<unsigned>(
      std::clamp<int64_t>((work + per_block - 1) / per_block, 1, kMaxGrid));
}

void check_blocksize(int64_t bs, const char* kernel) {
  FABRIC_CHECK(bs >= 32 && (bs & (bs - 1)) == 0, ValueError, kernel, " (CUDA): blocksize ", bs,
               " is not a power of two >= 32");
}

void quantize_4bit(const void* x, DType dtype, int64_t n, int64_t bs, Quant4Type type,
                   uint8_t* packed, float* absmax) {
  check_blocksize(bs, "quantize_4bit kernel");
  if (n <= 0) return;
  const int device = device_of_pointer(packed);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const Tables tb = tables_for(type);
  const bool nf4 = type == Quant4Type::nf4;
  const unsigned grid = grid_for((n + bs - 1) / bs, kWarps);
  switch (dtype) {
    case DType::float32:
      quantize_4bit_kernel<float><<<grid, kThreads, 0, stream>>>(static_cast<const float*>(x), n,
                                                                 bs, nf4, tb, packed, absmax);
      break;
    case DType::float16:
      quantize_4bit_kernel<Half><<<grid, kThreads, 0, stream>>>(static_cast<const Half*>(x), n, bs,
                                                                nf4, tb, packed, absmax);
      break;
    case DType::bfloat16:
      quantize_4bit_kernel<BFloat16><<<grid, kThreads, 0, stream>>>(static_cast<const BFloat16*>(x),
                                                                    n, bs, nf4, tb, packed, absmax);
      break;
    default:
      throw DTypeError(cat("quantize_4bit kernel (CUDA): ", dtype_name(dtype),
                           " input (expected float32, float16 or bfloat16)"));
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

void dequantize_4bit(const uint8_t* packed, const float* absmax, int64_t n, int64_t bs,
                     Quant4Type type, DType dtype, void* out) {
  check_blocksize(bs, "dequantize_4bit kernel");
  if (n <= 0) return;
  const int device = device_of_pointer(out);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const Tables tb = tables_for(type);
  const unsigned grid = grid_for((n + 1) / 2, kThreads);
  switch (dtype) {
    case DType::float32:
      dequantize_4bit_kernel<float>
          <<<grid, kThreads, 0, stream>>>(packed, absmax, n, bs, tb, static_cast<float*>(out));
      break;
    case DType::float16:
      dequantize_4bit_kernel<Half>
          <<<grid, kThreads, 0, stream>>>(packed, absmax, n, bs, tb, static_cast<Half*>(out));
      break;
    case DType::bfloat16:
      dequantize_4bit_kernel<BFloat16>
          <<<grid, kThreads, 0, stream>>>(packed, absmax, n, bs, tb, static_cast<BFloat16*>(out));
      break;
    default:
      throw DTypeError(cat("dequantize_4bit kernel (CUDA): ", dtype_name(dtype),
                           " output (expected float32, float16 or bfloat16)"));
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- int8 GEMM: C (M, N) = A (M, K) · B (N, K)ᵀ ----------------------------------------------
// 64 x 64 tiles of C per 256-thread block, K in steps of 32 bytes (8 words of 4 int8). Thread
// (ty, tx) owns rows ty + 16i and columns tx + 16j, so a warp reads distinct shared rows.
constexpr int kTile = 64, kKWords = 8, kKBytes = 4 * kKWords;

// The word of 4 int8 at row `row`, bytes k .. k+3 (zeros past the edges).
__device__ __forceinline__ int load_word(const int8_t* m, int64_t rows, int64_t K, int64_t row,
                                         int64_t k, bool aligned) {
  if (row >= rows || k >= K) return 0;
  const int8_t* p = m + row * K + k;
  if (aligned) return *reinterpret_cast<const int*>(p);  // K % 4 == 0: k + 3 < K too
  uint32_t w = 0;
  for (int b = 0; b < 4 && k + b < K; ++b)
    w |= static_cast<uint32_t>(static_cast<uint8_t>(p[b])) << (8 * b);
  return static_cast<int>(w);
}

__global__ void int8_gemm_kernel(int64_t M, int64_t N, int64_t K, const int8_t* A, const int8_t* B,
                                 int32_t* C, bool aligned) {
  __shared__ int As[kTile][kKWords + 1];
  __shared__ int Bs[kTile][kKWords + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t mtiles = (M + kTile - 1) / kTile;
  for (int64_t mt = blockIdx.y; mt < mtiles; mt += gridDim.y) {
    const int64_t m0 = mt * kTile;
    int acc[4][4] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kKBytes) {
      // 512 words per operand tile: two per thread.
      for (int e = threadIdx.x; e < kTile * kKWords; e += kThreads) {
        const int r = e / kKWords, w = e % kKWords;
        As[r][w] = load_word(A, M, K, m0 + r, k0 + 4 * w, aligned);
        Bs[r][w] = load_word(B, N, K, n0 + r, k0 + 4 * w, aligned);
      }
      __syncthreads();
#pragma unroll
      for (int w = 0; w < kKWords; ++w) {
        int a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          a[i] = As[ty + 16 * i][w];
          b[i] = Bs[tx + 16 * i][w];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = m0 + ty + 16 * i;
      if (row >= M) continue;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t col = n0 + tx + 16 * j;
        if (col < N) C[row * N + col] = acc[i][j];
      }
    }
  }
}

void int8_gemm(int64_t M, int64_t N, int64_t K, const int8_t* A, const int8_t* B, int32_t* C) {
  FABRIC_CHECK(M >= 0 && N >= 0 && K >= 0, ValueError, "int8_gemm (CUDA): negative size M=", M,
               " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  const int device = device_of_pointer(C);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  if (K == 0) {
    FABRIC_CUDA_CHECK(cudaMemsetAsync(C, 0, static_cast<size_t>(M * N) * sizeof(int32_t), stream));
    return;
  }
  const int64_t ntiles = (N + kTile - 1) / kTile, mtiles = (M + kTile - 1) / kTile;
  FABRIC_CHECK(ntiles <= 0x7FFFFFFF, ValueError, "int8_gemm (CUDA): N=", N,
               " needs more than 2^31-1 column tiles");
  const bool aligned = K % 4 == 0 && reinterpret_cast<uintptr_t>(A) % 4 == 0 &&
                       reinterpret_cast<uintptr_t>(B) % 4 == 0;
  const dim3 grid(static_cast<unsigned>(ntiles),
                  static_cast<unsigned>(std::min<int64_t>(mtiles, 65535)));
  int8_gemm_kernel<<<grid, kThreads, 0, stream>>>(M, N, K, A, B, C, aligned);
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(quantize_4bit_stub, cuda, &cuda::quantize_4bit);
FABRIC_REGISTER_KERNEL(dequantize_4bit_stub, cuda, &cuda::dequantize_4bit);
FABRIC_REGISTER_KERNEL(int8_gemm_stub, cuda, &cuda::int8_gemm);
}  // namespace fabric
