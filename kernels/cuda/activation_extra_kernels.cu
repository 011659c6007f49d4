// CUDA kernels for log_sigmoid, hardshrink, softshrink and threshold, forward and backward
// (tensor/activation_extra_kernels.h), with the formulas of kernels/cpu/activation_extra.cpp:
// fp32/bf16/fp16 compute in float, float64 in double; masked regions select 0, never multiply.
#include <cmath>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "tensor/activation_extra_kernels.h"

namespace fabric::cuda {
namespace {

__device__ __forceinline__ float exp_m(float v) { return expf(v); }
__device__ __forceinline__ double exp_m(double v) { return exp(v); }
__device__ __forceinline__ float log1p_m(float v) { return log1pf(v); }
__device__ __forceinline__ double log1p_m(double v) { return log1p(v); }

// The parameters in the compute type M (float for the half types, as torch's opmath).
template <typename M>
struct Params {
  M lambd, threshold, value;
  explicit Params(const ExtraActivationParams& p)
      : lambd(M(p.lambd)), threshold(M(p.threshold)), value(M(p.value)) {}
};

template <typename M>
__device__ __forceinline__ M forward_value(ExtraActivation op, const Params<M>& p, M x) {
  switch (op) {
    case ExtraActivation::log_sigmoid: {
      if (isnan(x)) return x;
      const M ax = x < M(0) ? -x : x;
      return (x < M(0) ? x : M(0)) - log1p_m(exp_m(-ax));
    }
    case ExtraActivation::hardshrink:
      return x >= -p.lambd && x <= p.lambd ? M(0) : x;
    case ExtraActivation::softshrink:
      return x > p.lambd ? x - p.lambd : x < -p.lambd ? x + p.lambd : M(0);
    case ExtraActivation::threshold:
      return x <= p.threshold ? p.value : x;
  }
  return x;
}

template <typename M>
__device__ __forceinline__ M backward_value(ExtraActivation op, const Params<M>& p, M g, M x) {
  switch (op) {
    case ExtraActivation::log_sigmoid: {
      // z stays in M for bf16/fp16 too, unlike the CPU kernel's: torch's CUDA forward saves no
      // buffer and its backward recomputes z in opmath; the CPU one reads z saved in the dtype.
      const M ax = x < M(0) ? -x : x;
      const M z = exp_m(-ax), s = z / (M(1) + z);
      return g * (x < M(0) ? M(1) - s : s);
    }
    case ExtraActivation::hardshrink:
    case ExtraActivation::softshrink:
      return x >= -p.lambd && x <= p.lambd ? M(0) : g;
    case ExtraActivation::threshold:
      return x <= p.threshold ? M(0) : g;
  }
  return g;
}

template <typename T, typename M>  // (float|Half|BFloat16, float) or (double, double)
struct ForwardFunctor {
  ExtraActivation op;
  Params<M> params;
  __device__ void operator()(char* (&p)[2]) const {
    store<T>(p[0], T(forward_value<M>(op, params, static_cast<M>(load<T>(p[1])))));
  }
};

template <typename T, typename M>
struct BackwardFunctor {
  ExtraActivation op;
  Params<M> params;
  __device__ void operator()(char* (&p)[3]) const {
    const M g = static_cast<M>(load<T>(p[1])), x = static_cast<M>(load<T>(p[2]));
    store<T>(p[0], T(backward_value<M>(op, params, g, x)));
  }
};

[[noreturn]] void no_kernel(const char* what, DType dt) {
  throw DTypeError(detail::cat(what, ": no CUDA kernel for ", dtype_name(dt),
                               " (expected float64, float32, float16 or bfloat16)"));
}

void forward_kernel(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      return launch_loop<2>(loop, ForwardFunctor<float, float>{op, Params<float>(p)});
    case DType::bfloat16:
      return launch_loop<2>(loop, ForwardFunctor<BFloat16, float>{op, Params<float>(p)});
    case DType::float16:
      return launch_loop<2>(loop, ForwardFunctor<Half, float>{op, Params<float>(p)});
    case DType::float64:
      return launch_loop<2>(loop, ForwardFunctor<double, double>{op, Params<double>(p)});
    default:
      no_kernel("activation kernel", dt);
  }
}

void backward_kernel(ExtraActivation op, const ExtraActivationParams& p, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  FABRIC_CHECK(loop.num_operands == 3 && loop.ops[1].dtype == dt && loop.ops[2].dtype == dt,
               DTypeError,
               "activation_backward: expected grad_input, grad_output and input of one dtype (",
               dtype_name(dt), ")");
  switch (dt) {
    case DType::float32:
      return launch_loop<3>(loop, BackwardFunctor<float, float>{op, Params<float>(p)});
    case DType::bfloat16:
      return launch_loop<3>(loop, BackwardFunctor<BFloat16, float>{op, Params<float>(p)});
    case DType::float16:
      return launch_loop<3>(loop, BackwardFunctor<Half, float>{op, Params<float>(p)});
    case DType::float64:
      return launch_loop<3>(loop, BackwardFunctor<double, double>{op, Params<double>(p)});
    default:
      no_kernel("activation_backward", dt);
  }
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(extra_activation_stub, cuda, &cuda::forward_kernel);
FABRIC_REGISTER_KERNEL(extra_activation_backward_stub, cuda, &cuda::backward_kernel);
}  // namespace fabric
