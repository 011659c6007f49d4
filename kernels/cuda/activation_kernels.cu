// CUDA kernels for the parameterised activations (tensor/activation_kernels.h), with the formulas
// of kernels/cpu/elementwise_activation.cpp: fp32/bf16/fp16 compute in float, float64 in double;
// log1p(exp(t)) as max(t, 0) + log1p(exp(-|t|)); NaN propagates.
#include <cmath>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/activation_kernels.h"

namespace fabric::cuda {
namespace {

__device__ __forceinline__ float exp_m(float v) { return expf(v); }
__device__ __forceinline__ double exp_m(double v) { return exp(v); }
__device__ __forceinline__ float expm1_m(float v) { return expm1f(v); }
__device__ __forceinline__ double expm1_m(double v) { return expm1(v); }
__device__ __forceinline__ float log1p_m(float v) { return log1pf(v); }
__device__ __forceinline__ double log1p_m(double v) { return log1p(v); }
__device__ __forceinline__ float tanh_m(float v) { return tanhf(v); }
__device__ __forceinline__ double tanh_m(double v) { return tanh(v); }

template <typename M>
__device__ __forceinline__ M softplus_unit(M t) {
  const M at = t < M(0) ? -t : t;
  return (t > M(0) ? t : M(0)) + log1p_m(exp_m(-at));
}

// min(max(x, lo), hi) with NaN propagating (clamp's order: lo > hi gives hi).
template <typename M>
__device__ __forceinline__ M clamp_nan(M x, M lo, M hi) {
  if (isnan(x)) return x;
  x = x < lo ? lo : x;
  return x > hi ? hi : x;
}

// M: float or double; the parameters arrive in M (float for the half types, as torch's opmath).
template <typename M>
struct Params {
  M slope, neg_coef, pos_coef, in_scale, beta, threshold, lo, hi;
  explicit Params(const ActivationParams& p)
      : slope(M(p.negative_slope)),
        neg_coef(M(p.alpha * p.scale)),
        pos_coef(M(p.scale)),
        in_scale(M(p.input_scale)),
        beta(M(p.beta)),
        threshold(M(p.threshold)),
        lo(M(p.min_val)),
        hi(M(p.max_val)) {}
};

template <typename M>
__device__ __forceinline__ M activation_value(ActivationOp op, const Params<M>& p, M x) {
  switch (op) {
    case ActivationOp::leaky_relu:
      return x > M(0) ? x : x * p.slope;
    case ActivationOp::elu:
      return x <= M(0) ? expm1_m(x * p.in_scale) * p.neg_coef : x * p.pos_coef;
    case ActivationOp::softplus: {
      const M t = x * p.beta;
      if (isnan(t)) return t;
      return t > p.threshold ? x : softplus_unit(t) / p.beta;
    }
    case ActivationOp::hardtanh:
      return clamp_nan(x, p.lo, p.hi);
    case ActivationOp::mish:
      return isnan(x) ? x : x * tanh_m(softplus_unit(x));
    case ActivationOp::hardswish:
      return x * clamp_nan(x + M(3), M(0), M(6)) / M(6);
    case ActivationOp::hardsigmoid:
      return clamp_nan(x + M(3), M(0), M(6)) / M(6);
  }
  return x;
}

template <typename T, typename M>  // (float|Half|BFloat16, float) or (double, double)
struct ActivationFunctor {
  ActivationOp op;
  Params<M> params;
  __device__ void operator()(char* (&p)[2]) const {
    store<T>(p[0], T(activation_value<M>(op, params, static_cast<M>(load<T>(p[1])))));
  }
};

void activation_kernel(ActivationOp op, const ActivationParams& p, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      return launch_loop<2>(loop, ActivationFunctor<float, float>{op, Params<float>(p)});
    case DType::bfloat16:
      return launch_loop<2>(loop, ActivationFunctor<BFloat16, float>{op, Params<float>(p)});
    case DType::float16:
      return launch_loop<2>(loop, ActivationFunctor<Half, float>{op, Params<float>(p)});
    case DType::float64:
      return launch_loop<2>(loop, ActivationFunctor<double, double>{op, Params<double>(p)});
    default:
      break;
  }
  throw DTypeError(detail::cat("activation kernel: no CUDA kernel for ", dtype_name(dt),
                               " (expected float64, float32, float16 or bfloat16)"));
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(activation_stub, cuda, &cuda::activation_kernel);
}  // namespace fabric
