// CUDA random fills and dropout: one thread per Philox block, following the element -> (block,
// words) contract of tensor/random_kernels.h, so a draw on the GPU equals the CPU's for the same
// generator state. The float32 arithmetic is kernels/cpu/random.cpp's as g++ -O3 compiles it,
// operation for operation with explicit round-to-nearest intrinsics: g++ (-ffp-contract=fast, the
// C++ default) fuses each a*b+c whose product has no other use, and nvcc must fuse exactly those.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/stream.h"
#include "tensor/random_kernels.h"

namespace fabric::cuda {
namespace {

constexpr int kThreads = 256;

struct Words {
  uint32_t w[4];
};

// Block `counter` (counter hi = 0) under `seed`: the scalar reference itself (constexpr, so it
// runs on the device too), which keeps the two devices on one definition.
__device__ __forceinline__ Words philox_block(uint64_t seed, uint64_t counter) {
  const uint32_t ctr[4] = {static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u,
                           0u};
  Words out;
  philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), out.w);
  return out;
}

// ---- the CPU's float32 helpers, with its contractions made explicit ----------------------------

// ln(x) for normal floats in (0, 1]: the Cephes polynomial of random.cpp's log_unit.
__device__ __forceinline__ float log_unit(float x) {
  const uint32_t ix = __float_as_uint(x);
  float e = static_cast<float>(static_cast<int>(ix >> 23) - 127);
  float m = __uint_as_float((ix & 0x7FFFFFu) | 0x3F800000u);
  const bool big = m > 1.41421356f;
  m = big ? __fmul_rn(m, 0.5f) : m;
  e = big ? __fadd_rn(e, 1.0f) : e;
  const float f = __fsub_rn(m, 1.0f), z = __fmul_rn(f, f);
  float y = 7.0376836292e-2f;
  y = __fmaf_rn(y, f, -1.1514610310e-1f);
  y = __fmaf_rn(y, f, 1.1676998740e-1f);
  y = __fmaf_rn(y, f, -1.2420140846e-1f);
  y = __fmaf_rn(y, f, 1.4249322787e-1f);
  y = __fmaf_rn(y, f, -1.6668057665e-1f);
  y = __fmaf_rn(y, f, 2.0000714765e-1f);
  y = __fmaf_rn(y, f, -2.4999993993e-1f);
  y = __fmaf_rn(y, f, 3.3333331174e-1f);
  // y*f*z + c*e: (y*f)*z is the product fused into the add (it comes first); c*e is rounded.
  y = __fmaf_rn(__fmul_rn(y, f), z, __fmul_rn(-2.12194440e-4f, e));
  y = __fmaf_rn(-0.5f, z, y);
  return __fmaf_rn(0.693359375f, e, __fadd_rn(f, y));
}

// sqrt(t), t >= 0, by three Newton steps on 1/sqrt (random.cpp's sqrt_nonneg).
__device__ __forceinline__ float sqrt_nonneg(float t) {
  const float x = t < 1e-30f ? 1e-30f : t;  // std::max(t, 1e-30f)
  float y = __uint_as_float(0x5F375A86u - (__float_as_uint(x) >> 1));
  const float hx = __fmul_rn(0.5f, x);
  for (int i = 0; i < 3; ++i) y = __fmul_rn(y, __fmaf_rn(-__fmul_rn(hx, y), y, 1.5f));
  return __fmul_rn(t, y);
}

// sin and cos of 2*pi*u, u in [0, 1) (random.cpp's sincos_2pi).
__device__ __forceinline__ void sincos_2pi(float u, float& s_out, float& c_out) {
  const float q = static_cast<float>(static_cast<int>(__fmaf_rn(u, 4.0f, 0.5f)));
  const float a = __fmul_rn(__fsub_rn(u, __fmul_rn(q, 0.25f)), 2.0f * std::numbers::pi_v<float>);
  const float z = __fmul_rn(a, a);
  const float ps =
      __fmaf_rn(__fmaf_rn(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f);
  const float s = __fmaf_rn(__fmul_rn(a, z), ps, a);
  const float pc = __fmaf_rn(__fmaf_rn(2.443315711809948e-5f, z, -1.388731625493765e-3f), z,
                             4.166664568298827e-2f);
  const float c = __fmaf_rn(__fmul_rn(z, z), pc, __fmaf_rn(-0.5f, z, 1.0f));
  const int k = static_cast<int>(q) & 3;
  s_out = k == 0 ? s : k == 1 ? c : k == 2 ? -s : -c;
  c_out = k == 0 ? c : k == 1 ? -s : k == 2 ? -c : s;
}

__device__ __forceinline__ double u53(uint32_t lo, uint32_t hi) {
  return __dmul_rn(static_cast<double>(((static_cast<uint64_t>(hi) << 32) | lo) >> 11), 0x1p-53);
}

// ---- kernels: thread b of the grid-stride loop owns block b and its per_block elements ---------

// float32/float16/bfloat16 uniform: u on the dtype's grid (d significand bits), low + span*u.
template <typename T>
__global__ void uniform_f32_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, float lo,
                                   float span, int d, float scale) {
  const int64_t blocks = (n + 3) / 4, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks;
       b += step) {
    const Words w = philox_block(seed, offset + static_cast<uint64_t>(b));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i >= n) break;
      const float u =
          __fmul_rn(static_cast<float>(static_cast<int32_t>(w.w[k] >> (32 - d))), scale);
      out[i] = T(__fmaf_rn(span, u, lo));
    }
  }
}

__global__ void uniform_f64_kernel(double* out, int64_t n, uint64_t seed, uint64_t offset,
                                   double low, double span) {
  const int64_t blocks = (n + 1) / 2, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks;
       b += step) {
    const Words w = philox_block(seed, offset + static_cast<uint64_t>(b));
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      const int64_t i = 2 * b + k;
      if (i >= n) break;
      out[i] = __fma_rn(span, u53(w.w[2 * k], w.w[2 * k + 1]), low);
    }
  }
}

// Box-Muller on the word pairs (w0, w1) and (w2, w3) with 24-bit uniforms.
template <typename T>
__global__ void normal_f32_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, float mu,
                                  float sigma) {
  const int64_t blocks = (n + 3) / 4, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks;
       b += step) {
    const Words w = philox_block(seed, offset + static_cast<uint64_t>(b));
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int64_t i = 4 * b + 2 * j;
      if (i >= n) break;
      // 1 - u1 lies in [2^-24, 1], so the log is finite.
      const float u1 = __fmul_rn(static_cast<float>(w.w[2 * j] >> 8), 0x1p-24f);
      const float u2 = __fmul_rn(static_cast<float>(w.w[2 * j + 1] >> 8), 0x1p-24f);
      const float r = sqrt_nonneg(__fmul_rn(-2.0f, log_unit(__fsub_rn(1.0f, u1))));
      float sn, cs;
      sincos_2pi(u2, sn, cs);
      out[i] = T(__fmaf_rn(sigma, __fmul_rn(r, cs), mu));
      if (i + 1 < n) out[i + 1] = T(__fmaf_rn(sigma, __fmul_rn(r, sn), mu));
    }
  }
}

// float64: u1 from words (0, 1), u2 from (2, 3). CUDA's log/sin/cos are within 1-2 ulp of
// glibc's, not bit-identical: float64 normals match the CPU to a few ulp (the contract's caveat).
__global__ void normal_f64_kernel(double* out, int64_t n, uint64_t seed, uint64_t offset,
                                  double mean, double std_) {
  constexpr double two_pi = 2.0 * std::numbers::pi;
  const int64_t blocks = (n + 1) / 2, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks;
       b += step) {
    const Words w = philox_block(seed, offset + static_cast<uint64_t>(b));
    const double u1 = u53(w.w[0], w.w[1]), u2 = u53(w.w[2], w.w[3]);
    const double r = sqrt(__dmul_rn(-2.0, log(__dsub_rn(1.0, u1))));
    const double theta = __dmul_rn(two_pi, u2);
    const int64_t i = 2 * b;
    out[i] = __fma_rn(std_, __dmul_rn(r, cos(theta)), mean);
    if (i + 1 < n) out[i + 1] = __fma_rn(std_, __dmul_rn(r, sin(theta)), mean);
  }
}

// low + floor(w * range / 2^32) (range <= 2^32, 4 per block) or the 64-bit form (2 per block).
template <typename T>
__global__ void randint_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, uint64_t ulow,
                               uint64_t range) {
  const bool small = range <= (uint64_t{1} << 32);
  const int per_block = small ? 4 : 2;
  const int64_t blocks = (n + per_block - 1) / per_block;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks;
       b += step) {
    const Words w = philox_block(seed, offset + static_cast<uint64_t>(b));
    for (int k = 0; k < per_block; ++k) {
      const int64_t i = per_block * b + k;
      if (i >= n) break;
      uint64_t v;
      if (small) {
        v = ulow + ((static_cast<uint64_t>(w.w[k]) * range) >> 32);
      } else {
        const uint64_t r = (static_cast<uint64_t>(w.w[2 * k + 1]) << 32) | w.w[2 * k];
        v = ulow + __umul64hi(r, range);
      }
      out[i] = cast_value<T>(static_cast<int64_t>(v));
    }
  }
}

// keep iff (w >> 8) < threshold. Scale is 1/(1-p) rounded to T (its bits for 16-bit T); the
// product runs in T for float/double and in float32 for 16-bit T, as on the CPU.
template <typename T>
__global__ void dropout_kernel(const T* in, T* out, T* mask, int64_t n, int32_t threshold, T scale,
                               uint64_t seed, uint64_t offset) {
  const int64_t blocks = (n + 3) / 4, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks;
       b += step) {
    const Words w = philox_block(seed, offset + static_cast<uint64_t>(b));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i >= n) break;
      const bool keep = static_cast<int32_t>(w.w[k] >> 8) < threshold;
      if constexpr (std::is_same_v<T, float>) {
        const float s = keep ? scale : 0.0f;
        mask[i] = s;
        out[i] = __fmul_rn(in[i], s);
      } else if constexpr (std::is_same_v<T, double>) {
        const double s = keep ? scale : 0.0;
        mask[i] = s;
        out[i] = __dmul_rn(in[i], s);
      } else {
        mask[i] = keep ? scale : T::from_bits(0);
        out[i] = T(__fmul_rn(static_cast<float>(in[i]), keep ? static_cast<float>(scale) : 0.0f));
      }
    }
  }
}

// ---- host side
// ------------------------------------------------------------------------------------

struct Launch {
  unsigned grid;
  cudaStream_t stream;
};
Launch launch_for(uint64_t philox_blocks, int device) {
  const uint64_t grid = std::min<uint64_t>((philox_blocks + kThreads - 1) / kThreads, 65536);
  return {static_cast<unsigned>(std::max<uint64_t>(grid, 1)), compute_stream(device)};
}

template <typename T>
constexpr int significand_bits() {
  if constexpr (std::is_same_v<T, Half>) return 11;
  if constexpr (std::is_same_v<T, BFloat16>) return 8;
  return 24;
}

template <typename T>
void fill_small_float(T* out, int64_t n, uint64_t seed, uint64_t offset, const RandomParams& p,
                      const Launch& l) {
  if (p.dist == RandomDist::uniform) {
    constexpr int d = significand_bits<T>();
    uniform_f32_kernel<T>
        <<<l.grid, kThreads, 0, l.stream>>>(out, n, seed, offset, static_cast<float>(p.a),
                                            static_cast<float>(p.b - p.a), d, std::ldexp(1.0f, -d));
  } else {
    normal_f32_kernel<T><<<l.grid, kThreads, 0, l.stream>>>(
        out, n, seed, offset, static_cast<float>(p.a), static_cast<float>(p.b));
  }
}

void random_fill_kernel(void* out, DType dtype, int64_t n, uint64_t seed, uint64_t offset,
                        const RandomParams& p) {
  if (n <= 0) return;
  const int device = device_of_pointer(out);
  DeviceGuard guard(device);
  const Launch l = launch_for(random_blocks_for(n, random_values_per_block(p, dtype)), device);
  if (p.dist == RandomDist::randint) {
    visit_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      randint_kernel<T><<<l.grid, kThreads, 0, l.stream>>>(static_cast<T*>(out), n, seed, offset,
                                                           static_cast<uint64_t>(p.low), p.range);
    });
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  switch (dtype) {
    case DType::float64:
      if (p.dist == RandomDist::uniform) {
        uniform_f64_kernel<<<l.grid, kThreads, 0, l.stream>>>(static_cast<double*>(out), n, seed,
                                                              offset, p.a, p.b - p.a);
      } else {
        normal_f64_kernel<<<l.grid, kThreads, 0, l.stream>>>(static_cast<double*>(out), n, seed,
                                                             offset, p.a, p.b);
      }
      break;
    case DType::float32:
      fill_small_float(static_cast<float*>(out), n, seed, offset, p, l);
      break;
    case DType::float16:
      fill_small_float(static_cast<Half*>(out), n, seed, offset, p, l);
      break;
    case DType::bfloat16:
      fill_small_float(static_cast<BFloat16*>(out), n, seed, offset, p, l);
      break;
    default:
      throw DTypeError(detail::cat("random fill (CUDA): no kernel for ", dtype_name(dtype),
                                   " (expected float64, float32, float16 or bfloat16)"));
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

template <typename T>
void dropout_typed(const void* in, void* out, void* mask, int64_t n, double p, uint64_t seed,
                   uint64_t offset, const Launch& l) {
  const int32_t threshold = dropout_keep_threshold(p);
  const T scale = static_cast<T>(dropout_scale(p, dtype_v<T>));
  dropout_kernel<T><<<l.grid, kThreads, 0, l.stream>>>(static_cast<const T*>(in),
                                                       static_cast<T*>(out), static_cast<T*>(mask),
                                                       n, threshold, scale, seed, offset);
}

void dropout_kernel_host(const void* in, void* out, void* mask, DType dtype, int64_t n, double p,
                         uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  const int device = device_of_pointer(out);
  DeviceGuard guard(device);
  const Launch l = launch_for(random_blocks_for(n, kDropoutValuesPerBlock), device);
  switch (dtype) {
    case DType::float64:
      dropout_typed<double>(in, out, mask, n, p, seed, offset, l);
      break;
    case DType::float32:
      dropout_typed<float>(in, out, mask, n, p, seed, offset, l);
      break;
    case DType::float16:
      dropout_typed<Half>(in, out, mask, n, p, seed, offset, l);
      break;
    case DType::bfloat16:
      dropout_typed<BFloat16>(in, out, mask, n, p, seed, offset, l);
      break;
    default:
      throw DTypeError(detail::cat("dropout (CUDA): no kernel for ", dtype_name(dtype),
                                   " (expected float64, float32, float16 or bfloat16)"));
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(random_fill_stub, cuda, &cuda::random_fill_kernel);
FABRIC_REGISTER_KERNEL(dropout_stub, cuda, &cuda::dropout_kernel_host);
}  // namespace fabric
