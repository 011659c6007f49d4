// The part of a GEMM that cuBLASLt cannot do for us: C = beta * C + bias for an empty reduction
// (K == 0), and the bias added after the product where no cuBLASLt algorithm takes the bias
// dtype in its epilogue (float32 bias with a 16-bit C, float64 C).
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_cublaslt.h"
#include "kernels/cuda/stream.h"

namespace fabric::cuda::detail {
namespace {

// Separate roundings, as the CPU's Eigen passes (C *= beta, then C += bias): no contraction.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

// (batch, M, N) elements, N fastest; C row-major with leading dim ldc and batch stride stride_c.
template <typename CT, typename BT>
__global__ void scale_add_bias_kernel(int64_t total, int64_t M, int64_t N, CT* c, int64_t ldc,
                                      int64_t stride_c, opmath_t<CT> beta, const BT* bias) {
  using Op = opmath_t<CT>;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += step) {
    const int64_t j = e % N, row = e / N;
    const int64_t i = row % M, b = row / M;
    CT* p = c + b * stride_c + i * ldc + j;
    // beta == 0 never reads C (NaN there must not propagate), as in BLAS and the CPU kernel.
    Op v = beta == Op(0) ? Op(0) : mul_rn(beta, static_cast<Op>(*p));
    if (bias) v = add_rn(v, static_cast<Op>(cast_value<opmath_t<BT>>(bias[j])));
    *p = static_cast<CT>(v);
  }
}

template <typename F>
void visit_gemm_float(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::float32:
      return f(float{});
    case DType::float64:
      return f(double{});
    case DType::float16:
      return f(Half{});
    case DType::bfloat16:
      return f(BFloat16{});
    default:
      break;
  }
  throw DTypeError(fabric::detail::cat("gemm (CUDA): ", what, " dtype ", dtype_name(t),
                                       " is not one of float32, float64, float16, bfloat16"));
}

}  // namespace

void gemm_scale_add_bias(int device, const GemmDesc& d) {
  const int64_t total = d.batch * d.M * d.N;
  if (total == 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, 65536);
  const int64_t stride_c = d.batch > 1 ? d.stride_c : 0;
  visit_gemm_float(d.c_dtype, "C", [&](auto ctag) {
    using CT = decltype(ctag);
    using Op = opmath_t<CT>;
    auto launch = [&](auto btag) {
      using BT = decltype(btag);
      scale_add_bias_kernel<CT, BT><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          total, d.M, d.N, static_cast<CT*>(d.C), d.ldc, stride_c, static_cast<Op>(d.beta),
          static_cast<const BT*>(d.bias));
      FABRIC_CUDA_CHECK_LAUNCH();
    };
    if (d.bias) {
      visit_gemm_float(d.bias_dtype, "bias", launch);
    } else {
      launch(CT{});
    }
  });
}

}  // namespace fabric::cuda::detail
