// Fused CUDA optimizer updates (Adam/AdamW, SGD with momentum/nesterov/weight decay, RMSprop,
// Adagrad): one pass per tensor reads parameter, gradient and state once and writes them once. The
// arithmetic is kernels/cpu/optim_fused.cpp's and optim_adaptive.cpp's, operation for operation:
// PyTorch 1.13's single-tensor steps, where add(alpha) and addcmul fuse their last multiply-add and
// every other op rounds once. Both CPU files are built with fp-contract=off and spell out each
// fusion; here explicit round-to-nearest intrinsics keep nvcc from contracting anything else, so
// results match the CPU (and torch 1.13's CPU) bit for bit. Step scalars (bias corrections,
// Adagrad's decayed lr) are computed on the host in float64.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/float_family.h"
#include "kernels/cuda/loop_grid.h"
#include "kernels/cuda/multi_tensor.cuh"
#include "kernels/cuda/speed_switches.h"
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
  return {static_cast<unsigned>(loop_blocks(device, n, kThreads)), compute_stream(device)};
}

// ---- Adam / AdamW ------------------------------------------------------------------------------

// The CPU's AdamScalars, in float64.
struct AdamScalars {
  double step_size, bc2_sqrt, decay;
};
AdamScalars adam_scalars(const AdamKernelArgs& a) {
  AdamScalars s{};
  const double bias_correction1 = 1 - std::pow(a.beta1, a.step);
  const double bias_correction2 = 1 - std::pow(a.beta2, a.step);
  s.step_size = a.lr / bias_correction1;
  s.bc2_sqrt = std::sqrt(bias_correction2);
  s.decay = 1 - a.lr * a.weight_decay;
  return s;
}

// The per-step constants of the float32 family, rounded to float as the CPU's splats are.
struct AdamF32 {
  float beta1, c1, wd, decay, beta2, c2, bc2s, eps, neg_step;
  bool has_wd, decoupled, maximize, amsgrad;
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

// One element's update: float32 math, each stored 16-bit state rounded once (as the CPU).
template <typename T>
__device__ __forceinline__ void adam_f32_element(int64_t i, T* __restrict__ p,
                                                 const T* __restrict__ g, T* __restrict__ m,
                                                 T* __restrict__ v, T* __restrict__ mx,
                                                 const AdamF32& c) {
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
  // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
  const float mi = __fmaf_rn(gi, c.c1, __fmul_rn(static_cast<float>(m[i]), c.beta1));
  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
  float vi = __fmaf_rn(__fmul_rn(c.c2, gi), gi, __fmul_rn(static_cast<float>(v[i]), c.beta2));
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

template <typename T>
__global__ void adam_f32_kernel(int64_t n, T* __restrict__ p, const T* __restrict__ g,
                                T* __restrict__ m, T* __restrict__ v, T* __restrict__ mx,
                                AdamF32 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    adam_f32_element(i, p, g, m, v, mx, c);
}

// The multi-tensor form (multi_tensor.cuh): pointers param, grad, exp_avg, exp_avg_sq,
// max_exp_avg_sq.
template <typename T>
__global__ void __launch_bounds__(kMultiThreads)
    adam_f32_multi_kernel(MultiTensorTable<5> t, AdamF32 c) {
  const BlockRange r = block_range(t);
  T* p = static_cast<T*>(t.ptr[0][r.slot]);
  const T* g = static_cast<const T*>(t.ptr[1][r.slot]);
  T* m = static_cast<T*>(t.ptr[2][r.slot]);
  T* v = static_cast<T*>(t.ptr[3][r.slot]);
  T* mx = static_cast<T*>(t.ptr[4][r.slot]);
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x)
    adam_f32_element(i, p, g, m, v, mx, c);
}

struct AdamF64 {
  double wd, decay, beta1, c1, beta2, c2, bc2_sqrt, eps, neg_step;
  bool decoupled, maximize, amsgrad;
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
    const double mi = __fma_rn(gi, c.c1, __dmul_rn(m[i], c.beta1));
    m[i] = mi;
    double vi = __fma_rn(__dmul_rn(c.c2, gi), gi, __dmul_rn(v[i], c.beta2));
    v[i] = vi;
    if (c.amsgrad) {
      mx[i] = maximum_nan_f64(mx[i], vi);
      vi = mx[i];
    }
    const double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(vi), c.bc2_sqrt), c.eps);
    p[i] = __dadd_rn(pi, __ddiv_rn(__dmul_rn(c.neg_step, mi), denom));
  }
}

// The CPU's adam_vec splats: each scalar computed in float64, then rounded to float.
AdamF32 adam_f32_constants(const AdamKernelArgs& a, const AdamScalars& s) {
  return {static_cast<float>(a.beta1),
          static_cast<float>(1 - a.beta1),
          static_cast<float>(a.weight_decay),
          static_cast<float>(s.decay),
          static_cast<float>(a.beta2),
          static_cast<float>(1 - a.beta2),
          static_cast<float>(s.bc2_sqrt),
          static_cast<float>(a.eps),
          static_cast<float>(-s.step_size),
          a.weight_decay != 0,
          a.decoupled_weight_decay,
          a.maximize,
          a.amsgrad};
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
    const AdamF64 c{a.weight_decay, s.decay,    a.beta1, 1 - a.beta1,  a.beta2,
                    1 - a.beta2,    s.bc2_sqrt, a.eps,   -s.step_size, a.decoupled_weight_decay,
                    a.maximize,     a.amsgrad};
    adam_f64_kernel<<<l.blocks, kThreads, 0, l.stream>>>(
        n, static_cast<double*>(param), static_cast<const double*>(grad),
        static_cast<double*>(exp_avg), static_cast<double*>(exp_avg_sq),
        static_cast<double*>(max_exp_avg_sq), c);
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  const AdamF32 c = adam_f32_constants(a, s);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    adam_f32_kernel<T><<<l.blocks, kThreads, 0, l.stream>>>(
        n, static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(exp_avg),
        static_cast<T*>(exp_avg_sq), static_cast<T*>(max_exp_avg_sq), c);
    FABRIC_CUDA_CHECK_LAUNCH();
  };
  visit_f32_family("optimizer step", dt, run);
}

// Many tensors in the launches of plan_multi_tensor; float64 (and FABRIC_CUDA_MULTI_TENSOR=0)
// one launch per tensor.
void adam_multi_step_kernel(DType dt, const std::vector<AdamTensorPtrs>& tensors,
                            const AdamKernelArgs& a) {
  check_dtype(dt, "adam_multi_step");
  if (dt == DType::float64 || !multi_tensor_enabled()) {
    for (const AdamTensorPtrs& t : tensors)
      adam_step_kernel(dt, t.n, t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.max_exp_avg_sq, a);
    return;
  }
  std::vector<int64_t> sizes;
  sizes.reserve(tensors.size());
  const void* anchor = nullptr;
  for (const AdamTensorPtrs& t : tensors) {
    FABRIC_CHECK(!a.amsgrad || t.n == 0 || t.max_exp_avg_sq != nullptr, ValueError,
                 "adam_multi_step: amsgrad needs a max_exp_avg_sq buffer for every tensor");
    sizes.push_back(t.n);
    if (anchor == nullptr && t.n > 0) anchor = t.param;
  }
  if (anchor == nullptr) return;
  const int device = device_of_pointer(anchor);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const AdamF32 c = adam_f32_constants(a, adam_scalars(a));
  const auto pointer = [&](int i, int d) -> void* {
    const AdamTensorPtrs& x = tensors[static_cast<size_t>(i)];
    void* const all[5] = {x.param, const_cast<void*>(x.grad), x.exp_avg, x.exp_avg_sq,
                          x.max_exp_avg_sq};
    return all[d];
  };
  visit_f32_family("optimizer step", dt, [&](auto tag) {
    using T = decltype(tag);
    for_each_multi_tensor_launch<5>(
        sizes, pointer, [&](const MultiTensorTable<5>& t, unsigned blocks) {
          adam_f32_multi_kernel<T><<<blocks, kMultiThreads, 0, stream>>>(t, c);
          FABRIC_CUDA_CHECK_LAUNCH();
        });
  });
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
  visit_f32_family("optimizer step", dt, run);
}


// ---- RMSprop -----------------------------------------------------------------------------------
// kernels/cpu/optim_adaptive.cpp's ops (PyTorch 1.13's, with its CPU kernels' fused multiply-adds)
// in the same order, every rounding explicit: bit for bit the CPU's, and so torch's.

struct RmspropF32 {
  float alpha, c1, wd, eps, mom, neg_lr;
  bool has_wd, centered, has_mom, maximize;
};

template <typename T>
__global__ void rmsprop_f32_kernel(int64_t n, T* __restrict__ p, const T* __restrict__ g,
                                   T* __restrict__ sq, T* __restrict__ ga, T* __restrict__ buf,
                                   RmspropF32 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    float gi = static_cast<float>(g[i]);
    if (c.maximize) gi = -gi;
    float pi = static_cast<float>(p[i]);
    if (c.has_wd) gi = __fmaf_rn(pi, c.wd, gi);
    const float si =
        __fmaf_rn(__fmul_rn(c.c1, gi), gi, __fmul_rn(static_cast<float>(sq[i]), c.alpha));
    sq[i] = T(si);
    float avg;
    if (c.centered) {
      const float gai = __fmaf_rn(gi, c.c1, __fmul_rn(static_cast<float>(ga[i]), c.alpha));
      ga[i] = T(gai);
      avg = __fsqrt_rn(__fmaf_rn(-gai, gai, si));
    } else {
      avg = __fsqrt_rn(si);
    }
    avg = __fadd_rn(avg, c.eps);
    if (c.has_mom) {
      const float bi = __fadd_rn(__fmul_rn(static_cast<float>(buf[i]), c.mom), __fdiv_rn(gi, avg));
      buf[i] = T(bi);
      pi = __fmaf_rn(bi, c.neg_lr, pi);
    } else {
      pi = __fadd_rn(pi, __fdiv_rn(__fmul_rn(c.neg_lr, gi), avg));
    }
    p[i] = T(pi);
  }
}

struct RmspropF64 {
  double alpha, c1, wd, eps, mom, neg_lr;
  bool has_wd, centered, has_mom, maximize;
};

__global__ void rmsprop_f64_kernel(int64_t n, double* __restrict__ p, const double* __restrict__ g,
                                   double* __restrict__ sq, double* __restrict__ ga,
                                   double* __restrict__ buf, RmspropF64 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    double gi = c.maximize ? -g[i] : g[i];
    if (c.has_wd) gi = __fma_rn(p[i], c.wd, gi);
    const double si = __fma_rn(__dmul_rn(c.c1, gi), gi, __dmul_rn(sq[i], c.alpha));
    sq[i] = si;
    double avg;
    if (c.centered) {
      const double gai = __fma_rn(gi, c.c1, __dmul_rn(ga[i], c.alpha));
      ga[i] = gai;
      avg = __dsqrt_rn(__fma_rn(-gai, gai, si));
    } else {
      avg = __dsqrt_rn(si);
    }
    avg = __dadd_rn(avg, c.eps);
    if (c.has_mom) {
      const double bi = __dadd_rn(__dmul_rn(buf[i], c.mom), __ddiv_rn(gi, avg));
      buf[i] = bi;
      p[i] = __fma_rn(bi, c.neg_lr, p[i]);
    } else {
      p[i] = __dadd_rn(p[i], __ddiv_rn(__dmul_rn(c.neg_lr, gi), avg));
    }
  }
}

void rmsprop_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* square_avg,
                         void* grad_avg, void* momentum_buffer, const RmspropKernelArgs& a) {
  check_dtype(dt, "rmsprop_step");
  FABRIC_CHECK(!a.centered || grad_avg != nullptr, ValueError,
               "rmsprop_step: centered needs a grad_avg buffer");
  FABRIC_CHECK(!(a.momentum > 0) || momentum_buffer != nullptr, ValueError,
               "rmsprop_step: momentum ", a.momentum, " needs a momentum buffer");
  if (n <= 0) return;
  const int device = device_of_pointer(param);
  DeviceGuard guard(device);
  const Launch l = launch_for(n, device);
  if (dt == DType::float64) {
    const RmspropF64 c{a.alpha,  1 - a.alpha,        a.weight_decay, a.eps,
                       a.momentum, -a.lr,            a.weight_decay != 0, a.centered,
                       a.momentum > 0, a.maximize};
    rmsprop_f64_kernel<<<l.blocks, kThreads, 0, l.stream>>>(
        n, static_cast<double*>(param), static_cast<const double*>(grad),
        static_cast<double*>(square_avg), static_cast<double*>(grad_avg),
        static_cast<double*>(momentum_buffer), c);
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  const RmspropF32 c{static_cast<float>(a.alpha),
                     static_cast<float>(1 - a.alpha),
                     static_cast<float>(a.weight_decay),
                     static_cast<float>(a.eps),
                     static_cast<float>(a.momentum),
                     static_cast<float>(-a.lr),
                     a.weight_decay != 0,
                     a.centered,
                     a.momentum > 0,
                     a.maximize};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    rmsprop_f32_kernel<T><<<l.blocks, kThreads, 0, l.stream>>>(
        n, static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(square_avg),
        static_cast<T*>(grad_avg), static_cast<T*>(momentum_buffer), c);
    FABRIC_CUDA_CHECK_LAUNCH();
  };
  visit_f32_family("optimizer step", dt, run);
}

// ---- Adagrad -----------------------------------------------------------------------------------

struct AdagradF32 {
  float wd, eps, neg_clr;
  bool has_wd, maximize;
};

template <typename T>
__global__ void adagrad_f32_kernel(int64_t n, T* __restrict__ p, const T* __restrict__ g,
                                   T* __restrict__ sum, AdagradF32 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    float gi = static_cast<float>(g[i]);
    if (c.maximize) gi = -gi;
    const float pi = static_cast<float>(p[i]);
    if (c.has_wd) gi = __fmaf_rn(pi, c.wd, gi);
    const float si = __fmaf_rn(gi, gi, static_cast<float>(sum[i]));
    sum[i] = T(si);
    const float std_i = __fadd_rn(__fsqrt_rn(si), c.eps);
    p[i] = T(__fadd_rn(pi, __fdiv_rn(__fmul_rn(c.neg_clr, gi), std_i)));
  }
}

struct AdagradF64 {
  double wd, eps, neg_clr;
  bool has_wd, maximize;
};

__global__ void adagrad_f64_kernel(int64_t n, double* __restrict__ p, const double* __restrict__ g,
                                   double* __restrict__ sum, AdagradF64 c) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    double gi = c.maximize ? -g[i] : g[i];
    if (c.has_wd) gi = __fma_rn(p[i], c.wd, gi);
    const double si = __fma_rn(gi, gi, sum[i]);
    sum[i] = si;
    const double std_i = __dadd_rn(__dsqrt_rn(si), c.eps);
    p[i] = __dadd_rn(p[i], __ddiv_rn(__dmul_rn(c.neg_clr, gi), std_i));
  }
}

void adagrad_step_kernel(DType dt, int64_t n, void* param, const void* grad, void* sum,
                         const AdagradKernelArgs& a) {
  check_dtype(dt, "adagrad_step");
  FABRIC_CHECK(sum != nullptr, ValueError, "adagrad_step: needs a sum buffer");
  if (n <= 0) return;
  // PyTorch's clr, in float64 on the host as Python computes it.
  const double neg_clr = -(a.lr / (1 + (a.step - 1) * a.lr_decay));
  const int device = device_of_pointer(param);
  DeviceGuard guard(device);
  const Launch l = launch_for(n, device);
  if (dt == DType::float64) {
    const AdagradF64 c{a.weight_decay, a.eps, neg_clr, a.weight_decay != 0, a.maximize};
    adagrad_f64_kernel<<<l.blocks, kThreads, 0, l.stream>>>(n, static_cast<double*>(param),
                                                            static_cast<const double*>(grad),
                                                            static_cast<double*>(sum), c);
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  const AdagradF32 c{static_cast<float>(a.weight_decay), static_cast<float>(a.eps),
                     static_cast<float>(neg_clr), a.weight_decay != 0, a.maximize};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    adagrad_f32_kernel<T><<<l.blocks, kThreads, 0, l.stream>>>(
        n, static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(sum), c);
    FABRIC_CUDA_CHECK_LAUNCH();
  };
  visit_f32_family("optimizer step", dt, run);
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(adam_step_stub, cuda, &cuda::adam_step_kernel);
FABRIC_REGISTER_KERNEL(adam_multi_step_stub, cuda, &cuda::adam_multi_step_kernel);
FABRIC_REGISTER_KERNEL(sgd_step_stub, cuda, &cuda::sgd_step_kernel);
FABRIC_REGISTER_KERNEL(rmsprop_step_stub, cuda, &cuda::rmsprop_step_kernel);
FABRIC_REGISTER_KERNEL(adagrad_step_stub, cuda, &cuda::adagrad_step_kernel);
}  // namespace fabric
