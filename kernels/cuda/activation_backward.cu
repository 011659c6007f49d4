// CUDA fused activation backward: grad_input = grad_output * f'(saved) in one pass, with the
// formulas of kernels/cpu/activation_backward.cpp (its fp32 vector forms for fp32/bf16/fp16, its
// double reference forms for float64).
#include <cmath>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/activation_backward.h"

namespace fabric::cuda {
namespace {

__device__ __forceinline__ float derivative_f32(ActGrad k, float s) {
  switch (k) {
    case ActGrad::gelu_erf: {
      const float cdf = fmaf(0.5f, erff(s * 0.70710678f), 0.5f);
      const float pdf = expf(-0.5f * (s * s)) * 0.39894228f;
      return fmaf(s, pdf, cdf);
    }
    case ActGrad::gelu_tanh: {
      const float s2 = s * s;
      const float u = 0.7978845608f * fmaf(0.044715f * s2, s, s);
      const float t = tanhf(u);
      const float du = 0.7978845608f * fmaf(3.0f * 0.044715f, s2, 1.0f);
      const float sech2 = fmaf(-t, t, 1.0f);
      const float left = fmaf(0.5f, t, 0.5f);
      return fmaf((0.5f * s) * sech2, du, left);
    }
    case ActGrad::silu: {
      const float sg = 1.0f / (1.0f + expf(-s));
      return sg * fmaf(s, 1.0f - sg, 1.0f);
    }
    case ActGrad::sigmoid:
      return s * (1.0f - s);
    case ActGrad::tanh:
      return fmaf(-s, s, 1.0f);
    case ActGrad::relu:
      return s <= 0.0f ? 0.0f : 1.0f;  // NaN passes the gradient, as torch's threshold_backward
  }
  return s;
}

__device__ __forceinline__ double derivative_f64(ActGrad k, double s) {
  constexpr double kSqrt2OverPi = 0.7978845608028654;
  constexpr double kInvSqrt2 = 0.7071067811865476;
  constexpr double kInvSqrt2Pi = 0.3989422804014327;
  switch (k) {
    case ActGrad::gelu_erf:
      return 0.5 * (1.0 + erf(s * kInvSqrt2)) + s * exp(-0.5 * s * s) * kInvSqrt2Pi;
    case ActGrad::gelu_tanh: {
      const double u = kSqrt2OverPi * (s + 0.044715 * s * s * s);
      const double t = tanh(u);
      return 0.5 * (1.0 + t) +
             0.5 * s * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * 0.044715 * s * s);
    }
    case ActGrad::silu: {
      const double sg = 1.0 / (1.0 + exp(-s));
      return sg * (1.0 + s * (1.0 - sg));
    }
    case ActGrad::sigmoid:
      return s * (1.0 - s);
    case ActGrad::tanh:
      return 1.0 - s * s;
    case ActGrad::relu:
      return s <= 0 ? 0.0 : 1.0;
  }
  return 0;
}

template <typename T>  // float, Half, BFloat16
struct FloatActGrad {
  ActGrad kind;
  __device__ void operator()(char* (&p)[3]) const {
    const float g = static_cast<float>(load<T>(p[1]));
    const float s = static_cast<float>(load<T>(p[2]));
    store<T>(p[0], T(g * derivative_f32(kind, s)));
  }
};

struct DoubleActGrad {
  ActGrad kind;
  __device__ void operator()(char* (&p)[3]) const {
    store<double>(p[0], load<double>(p[1]) * derivative_f64(kind, load<double>(p[2])));
  }
};

void activation_backward_kernel_cuda(ActGrad kind, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  FABRIC_CHECK(loop.num_operands == 3 && loop.ops[1].dtype == dt && loop.ops[2].dtype == dt,
               DTypeError,
               "activation_backward: expected grad_input, grad_output and saved of one "
               "dtype (",
               dtype_name(dt), ")");
  switch (dt) {
    case DType::float32:
      return launch_loop<3>(loop, FloatActGrad<float>{kind});
    case DType::bfloat16:
      return launch_loop<3>(loop, FloatActGrad<BFloat16>{kind});
    case DType::float16:
      return launch_loop<3>(loop, FloatActGrad<Half>{kind});
    case DType::float64:
      return launch_loop<3>(loop, DoubleActGrad{kind});
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
