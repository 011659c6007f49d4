// Fused CUDA optimizer updates (Adam/AdamW, SGD with momentum/nesterov/weight decay): one pass
// per tensor reads parameter, gradient and state once and writes them once. The arithmetic is
// kernels/cpu/optim_fused.cpp's as g++ 12 -O3 compiles it, operation for operation, with explicit
// round-to-nearest intrinsics so that nvcc contracts nothing the CPU build does not: results
// match the CPU bit for bit. g++ contracts one pair there (exp_avg_sq * beta2 + ..., in both the
// float32 and float64 paths; checked on its assembly); a CPU build with -ffp-contract=off would
// round that step differently. Step scalars (bias corrections) are computed on the host in float64.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/stream.h"
#include "tensor/optim_kernels.h"

namespace fabric::cuda {
namespace {

void check_dtype(DType dt, const char* kernel) {
  FABRIC_CHECK(
      dt == DType::float64 || dt == DType::float32 || dt == DType::bfloat16 || dt == DType::float16,
      DTypeError, kernel, ": parameters of dtype ", dtype_name(dt),
      " are not supported (expected float64, float32, bfloat16 or float16)");
}

constexpr int kThreads = 256;

// The launch geometry of a grid-stride loop over n elements on `device`'s compute stream.
struct Launch {
  unsigned blocks;
  cudaStream_t stream;
};
Launch launch_for(int64_t n, int device) {
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65536);
  return {static_cast<unsigned>(blocks), compute_stream(device)};
}

// ---- Adam / AdamW ------------------------------------------------------------------------------

// The CPU's AdamScalars, in float64.
struct AdamScalars {
  double step_size, bc2_sqrt, lerp_coeff, decay;
  bool lerp_small;
};
AdamScalars adam_scalars(const AdamKernelArgs& a) {
  AdamScalars s{};
  const double bias_correction1 = 1 - std::pow(a.beta1, a.step);
  const double bias_correction2 = 1 - std::pow(a.beta2, a.step);
  s.step_size = a.lr / bias_correction1;
  s.bc2_sqrt = std::sqrt(bias_correction2);
  const double w = 1 - a.beta1;
  s.lerp_small = std::abs(w) < 0.5;
  s.lerp_coeff = s.lerp_small ? w : w - 1;
  s.decay = 1 - a.lr * a.weight_decay;
  return s;
}

// The per-step constants of the float32 family, rounded to float as the CPU's splats are.
struct AdamF32 {
  float coeff, wd, decay, beta2, c2, bc2s, eps, neg_step;
  bool small, has_wd, decoupled, maximize, amsgrad;
};

// vmaxps(a, b) then a where a is NaN: a when a is NaN, else (a > b ? a : b), which is b when b
// is NaN or both are zeros.
__device__ __forceinline__ float maximum_nan_f32(float a, float b) {
  return isnan(a) ? a : (a > b ? a : b);
}
// torch.maximum in float64 as the CPU writes it: NaN when either is, else std::max.
__device__ __forceinline__ double maximum_nan_f64(double a, double b) {
  return (isnan(a) || isnan(b)) ? __dadd_rn(a, b) : (a < b ? b : a);
}

template <typename T>
__global__ void adam_f32_kernel(int64_t n, T* __restrict__ p, const T* __restrict__ g,
                                T* __restrict__ m, T* __restrict__ v, T* __restrict__ mx,
                                AdamF32 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    float gi = static_cast<float>(g[i]);
    if (c.maximize) gi = -gi;
    float pi = static_cast<float>(p[i]);
    if (c.has_wd) {
      if (c.decoupled) {
        pi = __fmul_rn(pi, c.decay);
      } else {
        gi = __fmaf_rn(pi, c.wd, gi);
      }
    }
    float mi = static_cast<float>(m[i]);
    mi = __fmaf_rn(c.coeff, __fsub_rn(gi, mi), c.small ? mi : gi);
    // exp_avg_sq * beta2 + (1 - beta2) * g * g with the first product fused into the add: what
    // g++ -O3 makes of the CPU kernel's mul/add (it contracts them; see the file comment).
    float vi = __fmaf_rn(static_cast<float>(v[i]), c.beta2, __fmul_rn(__fmul_rn(c.c2, gi), gi));
    m[i] = T(mi);
    v[i] = T(vi);
    if (c.amsgrad) {
      vi = maximum_nan_f32(static_cast<float>(mx[i]), vi);
      mx[i] = T(vi);
    }
    // The fp32 values are used within the step; stored 16-bit state is rounded once (as the CPU).
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c.bc2s), c.eps);
    pi = __fadd_rn(pi, __fdiv_rn(__fmul_rn(c.neg_step, mi), denom));
    p[i] = T(pi);
  }
}

struct AdamF64 {
  double wd, decay, lerp_coeff, beta2, c2, bc2_sqrt, eps, neg_step;
  bool lerp_small, decoupled, maximize, amsgrad;
};

__global__ void adam_f64_kernel(int64_t n, double* __restrict__ p, const double* __restrict__ g,
                                double* __restrict__ m, double* __restrict__ v,
                                double* __restrict__ mx, AdamF64 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    double gi = c.maximize ? -g[i] : g[i];
    double pi = p[i];
    if (c.wd != 0) {
      if (c.decoupled) {
        pi = __dmul_rn(pi, c.decay);
      } else {
        gi = __fma_rn(pi, c.wd, gi);
      }
    }
    const double mi = __fma_rn(c.lerp_coeff, __dsub_rn(gi, m[i]), c.lerp_small ? m[i] : gi);
    m[i] = mi;
    double vi =
        __fma_rn(v[i], c.beta2, __dmul_rn(__dmul_rn(c.c2, gi), gi));  // contracted, as on the CPU
    v[i] = vi;
    if (c.amsgrad) {
      mx[i] = maximum_nan_f64(mx[i], vi);
      vi = mx[i];
    }
    const double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(vi), c.bc2_sqrt), c.eps);
    p[i] = __dadd_rn(pi, __ddiv_rn(__dmul_rn(c.neg_step, mi), denom));
  }
}

void adam_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* exp_avg,
                      void* exp_avg_sq, void* max_exp_avg_sq, const AdamKernelArgs& a) {
  check_dtype(dt, "adam_step");
  FABRIC_CHECK(!a.amsgrad || max_exp_avg_sq != nullptr, ValueError,
               "adam_step: amsgrad needs a max_exp_avg_sq buffer");
  if (n <= 0) return;
  const AdamScalars s = adam_scalars(a);
  const int device = device_of_pointer(param);
  DeviceGuard guard(device);
  const Launch l = launch_for(n, device);
  if (dt == DType::float64) {
    const AdamF64 c{a.weight_decay, s.decay,  s.lerp_coeff, a.beta2,      1 - a.beta2,
                    s.bc2_sqrt,     a.eps,    -s.step_size, s.lerp_small, a.decoupled_weight_decay,
                    a.maximize,     a.amsgrad};
    adam_f64_kernel<<<l.blocks, kThreads, 0, l.stream>>>(
        n, static_cast<double*>(param), static_cast<const double*>(grad),
        static_cast<double*>(exp_avg), static_cast<double*>(exp_avg_sq),
        static_cast<double*>(max_exp_avg_sq), c);
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  // The CPU's adam_vec: float(1 - beta1) decides lerp's form in float, the rest are splats.
  const float wf = static_cast<float>(1 - a.beta1);
  const bool small = std::abs(wf) < 0.5f;
  const AdamF32 c{small ? wf : wf - 1.0f,
                  static_cast<float>(a.weight_decay),
                  static_cast<float>(s.decay),
                  static_cast<float>(a.beta2),
                  static_cast<float>(1 - a.beta2),
                  static_cast<float>(s.bc2_sqrt),
                  static_cast<float>(a.eps),
                  static_cast<float>(-s.step_size),
                  small,
                  a.weight_decay != 0,
                  a.decoupled_weight_decay,
                  a.maximize,
                  a.amsgrad};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    adam_f32_kernel<T><<<l.blocks, kThreads, 0, l.stream>>>(
        n, static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(exp_avg),
        static_cast<T*>(exp_avg_sq), static_cast<T*>(max_exp_avg_sq), c);
    FABRIC_CUDA_CHECK_LAUNCH();
  };
  if (dt == DType::float32) {
    run(float{});
  } else if (dt == DType::bfloat16) {
    run(BFloat16{});
  } else {
    run(Half{});
  }
}

// ---- SGD ---------------------------------------------------------------------------------------

struct SgdF32 {
  float wd, mom, keep, neg_lr;
  bool has_wd, has_mom, maximize, first, nesterov;
};

template <typename T>
__global__ void sgd_f32_kernel(int64_t n, T* __restrict__ p, const T* __restrict__ g,
                               T* __restrict__ buf, SgdF32 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    float gi = static_cast<float>(g[i]);
    if (c.maximize) gi = -gi;
    const float pi = static_cast<float>(p[i]);
    if (c.has_wd) gi = __fmaf_rn(pi, c.wd, gi);
    if (c.has_mom) {
      // Within the step the fp32 value is used; a 16-bit buffer is rounded once, on store.
      const float bi =
          c.first ? gi : __fmaf_rn(gi, c.keep, __fmul_rn(static_cast<float>(buf[i]), c.mom));
      buf[i] = T(bi);
      gi = c.nesterov ? __fmaf_rn(bi, c.mom, gi) : bi;
    }
    p[i] = T(__fmaf_rn(gi, c.neg_lr, pi));
  }
}

struct SgdF64 {
  double wd, mom, keep, neg_lr;
  bool maximize, first, nesterov;
};

__global__ void sgd_f64_kernel(int64_t n, double* __restrict__ p, const double* __restrict__ g,
                               double* __restrict__ buf, SgdF64 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    double gi = c.maximize ? -g[i] : g[i];
    if (c.wd != 0) gi = __fma_rn(p[i], c.wd, gi);
    if (c.mom != 0) {
      const double bi = c.first ? gi : __fma_rn(gi, c.keep, __dmul_rn(buf[i], c.mom));
      buf[i] = bi;
      gi = c.nesterov ? __fma_rn(bi, c.mom, gi) : bi;
    }
    p[i] = __fma_rn(gi, c.neg_lr, p[i]);
  }
}

void sgd_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* momentum_buffer,
                     const SgdKernelArgs& a) {
  check_dtype(dt, "sgd_step");
  FABRIC_CHECK(a.momentum == 0 || momentum_buffer != nullptr, ValueError, "sgd_step: momentum ",
               a.momentum, " needs a momentum buffer");
  if (n <= 0) return;
  const int device = device_of_pointer(param);
  DeviceGuard guard(device);
  const Launch l = launch_for(n, device);
  if (dt == DType::float64) {
    const SgdF64 c{a.weight_decay, a.momentum,   1 - a.dampening, -a.lr,
                   a.maximize,     a.first_step, a.nesterov};
    sgd_f64_kernel<<<l.blocks, kThreads, 0, l.stream>>>(n, static_cast<double*>(param),
                                                        static_cast<const double*>(grad),
                                                        static_cast<double*>(momentum_buffer), c);
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  const SgdF32 c{static_cast<float>(a.weight_decay),
                 static_cast<float>(a.momentum),
                 static_cast<float>(1 - a.dampening),
                 static_cast<float>(-a.lr),
                 a.weight_decay != 0,
                 a.momentum != 0,
                 a.maximize,
                 a.first_step,
                 a.nesterov};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    sgd_f32_kernel<T><<<l.blocks, kThreads, 0, l.stream>>>(n, static_cast<T*>(param),
                                                           static_cast<const T*>(grad),
                                                           static_cast<T*>(momentum_buffer), c);
    FABRIC_CUDA_CHECK_LAUNCH();
  };
  if (dt == DType::float32) {
    run(float{});
  } else if (dt == DType::bfloat16) {
    run(BFloat16{});
  } else {
    run(Half{});
  }
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(adam_step_stub, cuda, &cuda::adam_step_kernel);
FABRIC_REGISTER_KERNEL(sgd_step_stub, cuda, &cuda::sgd_step_kernel);
}  // namespace fabric
