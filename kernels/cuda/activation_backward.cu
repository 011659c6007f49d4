// CUDA fused activation backward: grad_input = grad_output * f'(saved) in one pass, with the
// formulas of kernels/cpu/activation_backward.cpp (its fp32 vector forms for fp32/bf16/fp16, its
// double reference forms for float64; GELU (tanh) from the CPU's own tensor/gelu_tanh_math.h).
#include <cmath>
#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/activation_backward.h"
#include "tensor/gelu_tanh_math.h"

namespace fabric::cuda {
namespace {

__device__ __forceinline__ float derivative_f32(ActGrad k, float s) {
  switch (k) {
    case ActGrad::gelu_erf: {
      const float cdf = fmaf(0.5f, erff(s * 0.70710678f), 0.5f);
      const float pdf = expf(-0.5f * (s * s)) * 0.39894228f;
      return fmaf(s, pdf, cdf);
    }
    case ActGrad::gelu_tanh:  // the CPU's formulation, in float (no 1 + tanh cancellation)
      return gelu_tanh::derivative(s);
    case ActGrad::silu: {
      const float sg = 1.0f / (1.0f + expf(-s));
      return sg * fmaf(s, 1.0f - sg, 1.0f);
    }
    case ActGrad::sigmoid:
      return s * (1.0f - s);
    case ActGrad::tanh:
      return fmaf(-s, s, 1.0f);
    default:
      break;  // the parameterised kinds: grad_of
  }
  return s;
}

__device__ __forceinline__ double derivative_f64(ActGrad k, double s) {
  constexpr double kInvSqrt2 = 0.7071067811865476;
  constexpr double kInvSqrt2Pi = 0.3989422804014327;
  switch (k) {
    case ActGrad::gelu_erf:
      return 0.5 * (1.0 + erf(s * kInvSqrt2)) + s * exp(-0.5 * s * s) * kInvSqrt2Pi;
    case ActGrad::gelu_tanh:  // the CPU's float64 derivative, the same code
      return gelu_tanh::derivative(s);
    case ActGrad::silu: {
      const double sg = 1.0 / (1.0 + exp(-s));
      return sg * (1.0 + s * (1.0 - sg));
    }
    case ActGrad::sigmoid:
      return s * (1.0 - s);
    case ActGrad::tanh:
      return 1.0 - s * s;
    default:
      break;  // the parameterised kinds: grad_of
  }
  return 0;
}

// The parameterised activations (saved: input x), the formulas of the CPU kernel; regions where
// torch's gradient is 0 are selected, not multiplied. M: float (fp32/bf16/fp16) or double.
__device__ __forceinline__ float exp_m(float v) { return expf(v); }
__device__ __forceinline__ double exp_m(double v) { return exp(v); }
__device__ __forceinline__ float log1p_m(float v) { return log1pf(v); }
__device__ __forceinline__ double log1p_m(double v) { return log1p(v); }
__device__ __forceinline__ float tanh_m(float v) { return tanhf(v); }
__device__ __forceinline__ double tanh_m(double v) { return tanh(v); }

template <typename M>
__device__ __forceinline__ M sigmoid_m(M t) {  // overflow-free for either sign
  if (t >= M(0)) return M(1) / (M(1) + exp_m(-t));
  const M e = exp_m(t);
  return e / (M(1) + e);
}

template <typename M>
__device__ __forceinline__ M grad_of(ActGrad k, const ActivationParams& p, M g, M x) {
  switch (k) {
    case ActGrad::relu:  // selected, as the CPU's: an inf/NaN gradient gives 0, not NaN (g * 0)
      return x <= M(0) ? M(0) : g;
    case ActGrad::leaky_relu:
      return x > M(0) ? g : g * M(p.negative_slope);
    case ActGrad::elu:
      return x <= M(0) ? g * M(p.input_scale * p.alpha * p.scale) * exp_m(x * M(p.input_scale))
                       : g * M(p.scale);
    case ActGrad::softplus: {
      const M t = x * M(p.beta);
      return t > M(p.threshold) ? g : g * sigmoid_m(t);
    }
    case ActGrad::hardtanh:
      return x <= M(p.min_val) || x >= M(p.max_val) ? M(0) : g;
    case ActGrad::mish: {
      const M ax = x < M(0) ? -x : x;
      const M tsp = tanh_m((x > M(0) ? x : M(0)) + log1p_m(exp_m(-ax)));
      return g * (tsp + x * sigmoid_m(x) * (M(1) - tsp * tsp));
    }
    case ActGrad::hardswish:
      return x < M(-3) ? M(0) : x <= M(3) ? g * (x / M(3) + M(0.5)) : g;
    case ActGrad::hardsigmoid:
      return x > M(-3) && x < M(3) ? g * M(1.0f / 6.0f) : M(0);
    default:
      break;
  }
  if constexpr (std::is_same_v<M, float>)
    return g * derivative_f32(k, x);
  else
    return g * derivative_f64(k, x);
}

// GELU (tanh)'s gradient rounded to T takes PyTorch's zeros, as the CPU's
// (gelu_tanh::with_torch_zero).
template <typename T>  // float, Half, BFloat16
struct FloatActGrad {
  ActGrad kind;
  ActivationParams params;
  __device__ void operator()(char* (&p)[3]) const {
    const float g = static_cast<float>(load<T>(p[1]));
    const float s = static_cast<float>(load<T>(p[2]));
    T r = T(grad_of<float>(kind, params, g, s));
    if (kind == ActGrad::gelu_tanh) r = T(gelu_tanh::with_torch_zero(g, static_cast<float>(r)));
    store<T>(p[0], r);
  }
};

struct DoubleActGrad {
  ActGrad kind;
  ActivationParams params;
  __device__ void operator()(char* (&p)[3]) const {
    const double g = load<double>(p[1]), s = load<double>(p[2]);
    double r = grad_of<double>(kind, params, g, s);
    if (kind == ActGrad::gelu_tanh) r = gelu_tanh::with_torch_zero(g, r);
    store<double>(p[0], r);
  }
};

void activation_backward_kernel_cuda(ActGrad kind, const ActivationParams& params,
                                     const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  FABRIC_CHECK(loop.num_operands == 3 && loop.ops[1].dtype == dt && loop.ops[2].dtype == dt,
               DTypeError,
               "activation_backward: expected grad_input, grad_output and saved of one "
               "dtype (",
               dtype_name(dt), ")");
  switch (dt) {
    case DType::float32:
      if (launch_pieces<float, 3>(loop, dt, FloatActGrad<float>{kind, params})) return;
      return launch_loop<3>(loop, FloatActGrad<float>{kind, params});
    case DType::bfloat16:
      if (launch_pieces<BFloat16, 3>(loop, dt, FloatActGrad<BFloat16>{kind, params})) return;
      return launch_loop<3>(loop, FloatActGrad<BFloat16>{kind, params});
    case DType::float16:
      if (launch_pieces<Half, 3>(loop, dt, FloatActGrad<Half>{kind, params})) return;
      return launch_loop<3>(loop, FloatActGrad<Half>{kind, params});
    case DType::float64:
      return launch_loop<3>(loop, DoubleActGrad{kind, params});
    default:
      break;
  }
  throw DTypeError(detail::cat("activation_backward: no CUDA kernel for ", dtype_name(dt),
                               " (expected float64/float32/float16/bfloat16)"));
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(activation_backward_stub, cuda, &cuda::activation_backward_kernel_cuda);
}  // namespace fabric
