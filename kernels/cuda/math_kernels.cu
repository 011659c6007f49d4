// CUDA kernels for the math family and prod/cumprod (tensor/math_kernels.h), mirroring
// kernels/cpu/elementwise_math.cpp and prod_cumprod.cpp: fp32/bf16/fp16 compute in float
// (CUDA's libdevice functions, erfinvf/erfinv included, as torch's CUDA kernels), float64 in
// double, fmod/remainder also exactly on integers.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/math_kernels.h"

namespace fabric::cuda {
namespace {

__device__ __forceinline__ float math_f32(MathUnaryOp op, float x) {
  switch (op) {
    case MathUnaryOp::tan:
      return tanf(x);
    case MathUnaryOp::asin:
      return asinf(x);
    case MathUnaryOp::acos:
      return acosf(x);
    case MathUnaryOp::atan:
      return atanf(x);
    case MathUnaryOp::sinh:
      return sinhf(x);
    case MathUnaryOp::cosh:
      return coshf(x);
    case MathUnaryOp::asinh:
      return asinhf(x);
    case MathUnaryOp::acosh:
      return acoshf(x);
    case MathUnaryOp::atanh:
      return atanhf(x);
    case MathUnaryOp::log2:
      return log2f(x);
    case MathUnaryOp::log10:
      return log10f(x);
    case MathUnaryOp::erfinv:
      return erfinvf(x);
  }
  return x;
}

__device__ __forceinline__ double math_f64(MathUnaryOp op, double x) {
  switch (op) {
    case MathUnaryOp::tan:
      return ::tan(x);
    case MathUnaryOp::asin:
      return ::asin(x);
    case MathUnaryOp::acos:
      return ::acos(x);
    case MathUnaryOp::atan:
      return ::atan(x);
    case MathUnaryOp::sinh:
      return ::sinh(x);
    case MathUnaryOp::cosh:
      return ::cosh(x);
    case MathUnaryOp::asinh:
      return ::asinh(x);
    case MathUnaryOp::acosh:
      return ::acosh(x);
    case MathUnaryOp::atanh:
      return ::atanh(x);
    case MathUnaryOp::log2:
      return ::log2(x);
    case MathUnaryOp::log10:
      return ::log10(x);
    case MathUnaryOp::erfinv:
      return ::erfinv(x);
  }
  return x;
}

template <typename T>  // float, Half, BFloat16
struct FloatMath {
  MathUnaryOp op;
  __device__ void operator()(char* (&p)[2]) const {
    store<T>(p[0], T(math_f32(op, static_cast<float>(load<T>(p[1])))));
  }
};
struct DoubleMath {
  MathUnaryOp op;
  __device__ void operator()(char* (&p)[2]) const {
    store<double>(p[0], math_f64(op, load<double>(p[1])));
  }
};

void math_unary_kernel(MathUnaryOp op, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  switch (dt) {
    case DType::float32:
      return launch_loop<2>(loop, FloatMath<float>{op});
    case DType::bfloat16:
      return launch_loop<2>(loop, FloatMath<BFloat16>{op});
    case DType::float16:
      return launch_loop<2>(loop, FloatMath<Half>{op});
    case DType::float64:
      return launch_loop<2>(loop, DoubleMath{op});
    default:
      break;
  }
  throw DTypeError(detail::cat("math unary kernel: op ", static_cast<int>(op),
                               " needs a floating dtype, got ", dtype_name(dt)));
}

// ---- binary -----------------------------------------------------------------------------------

template <typename M>
__device__ __forceinline__ M float_binary(MathBinaryOp op, M a, M b) {
  switch (op) {
    case MathBinaryOp::atan2:
      return ::atan2(a, b);
    case MathBinaryOp::fmod:
      return ::fmod(a, b);
    case MathBinaryOp::remainder: {  // torch's: fmod moved by b when the signs differ
      M r = ::fmod(a, b);
      if (r != M(0) && ((b < M(0)) != (r < M(0)))) r += b;
      return r;
    }
  }
  return a;
}

template <typename T>
struct FloatBinary {
  MathBinaryOp op;
  __device__ void operator()(char* (&p)[3]) const {
    using M = opmath_t<T>;
    const M a = static_cast<M>(load<T>(p[1])), b = static_cast<M>(load<T>(p[2]));
    store<T>(p[0], T(float_binary<M>(op, a, b)));
  }
};

// b != 0 (checked by the op); b == -1 gives 0 without INT_MIN % -1's overflow.
template <typename T>
struct IntBinary {
  MathBinaryOp op;
  __device__ void operator()(char* (&p)[3]) const {
    const T a = load<T>(p[1]), b = load<T>(p[2]);
    T r;
    if constexpr (std::is_signed_v<T>) {
      r = b == T(-1) ? T(0) : static_cast<T>(a % b);
      if (op == MathBinaryOp::remainder && r != T(0) && ((r < T(0)) != (b < T(0))))
        r = static_cast<T>(r + b);
    } else {
      r = static_cast<T>(a % b);
    }
    store<T>(p[0], r);
  }
};

void math_binary_kernel(MathBinaryOp op, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  FABRIC_CHECK(op != MathBinaryOp::atan2 || is_floating(dt), DTypeError,
               "atan2 kernel: needs a floating dtype, got ", dtype_name(dt));
  switch (dt) {
    case DType::float32:
      return launch_loop<3>(loop, FloatBinary<float>{op});
    case DType::bfloat16:
      return launch_loop<3>(loop, FloatBinary<BFloat16>{op});
    case DType::float16:
      return launch_loop<3>(loop, FloatBinary<Half>{op});
    case DType::float64:
      return launch_loop<3>(loop, FloatBinary<double>{op});
    case DType::int64:
      return launch_loop<3>(loop, IntBinary<int64_t>{op});
    case DType::int32:
      return launch_loop<3>(loop, IntBinary<int32_t>{op});
    case DType::int8:
      return launch_loop<3>(loop, IntBinary<int8_t>{op});
    case DType::uint8:
      return launch_loop<3>(loop, IntBinary<uint8_t>{op});
    default:
      break;
  }
  throw DTypeError(detail::cat("math binary kernel: no CUDA kernel for ", dtype_name(dt)));
}

// ---- prod / cumprod ---------------------------------------------------------------------------

// Accumulators: double for float32 and float64 (as the CPU kernel, so both devices agree to
// rounding), float for the half types, int64 (wrapping) for integers.
template <typename T>
using prod_acc_t =
    std::conditional_t<std::is_integral_v<T>, int64_t,
                       std::conditional_t<std::is_same_v<T, float>, double, opmath_t<T>>>;

template <typename A>
__device__ __forceinline__ A times(A x, A y) {
  if constexpr (std::is_integral_v<A>)
    return static_cast<A>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y));
  else
    return x * y;
}

template <typename T>
__device__ __forceinline__ prod_acc_t<T> as_acc(T v) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<int64_t>(v);
  else
    return static_cast<prod_acc_t<T>>(static_cast<opmath_t<T>>(v));
}

constexpr int kProdThreads = 256;

// inner == 1: one block per row, a strided product per thread, then a tree in shared memory.
template <typename T>
__global__ void prod_rows_kernel(const T* in, T* out, int64_t outer, int64_t len) {
  using A = prod_acc_t<T>;
  __shared__ A part[kProdThreads];
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    A acc = A(1);
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x)
      acc = times(acc, as_acc(in[row * len + i]));
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = kProdThreads / 2; s > 0; s /= 2) {
      if (threadIdx.x < s) part[threadIdx.x] = times(part[threadIdx.x], part[threadIdx.x + s]);
      __syncthreads();
    }
    if (threadIdx.x == 0) out[row] = static_cast<T>(part[0]);
    __syncthreads();
  }
}

// inner > 1: one thread per (outer, inner) column, down len (coalesced across inner).
template <typename T, bool kScan>
__global__ void prod_cols_kernel(const T* in, T* out, int64_t outer, int64_t len, int64_t inner) {
  using A = prod_acc_t<T>;
  const int64_t cols = outer * inner;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < cols;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    A acc = A(1);
    for (int64_t l = 0; l < len; ++l) {
      const int64_t off = (o * len + l) * inner + i;
      acc = times(acc, as_acc(in[off]));
      if constexpr (kScan) out[off] = static_cast<T>(acc);
    }
    if constexpr (!kScan) out[t] = static_cast<T>(acc);
  }
}

template <typename T>
void prod_typed(const ScanGeometry& g, bool scan) {
  LaunchContext ctx(g.out);
  const T* in = static_cast<const T*>(g.in);
  T* out = static_cast<T*>(g.out);
  if (!scan && g.inner == 1 && g.len > 32) {
    prod_rows_kernel<T>
        <<<grid_dim(std::min<int64_t>(g.outer, 65535)), kProdThreads, 0, ctx.stream>>>(
            in, out, g.outer, g.len);
  } else {
    const int64_t blocks = std::min<int64_t>((g.outer * g.inner + 255) / 256, 65535);
    if (scan)
      prod_cols_kernel<T, true>
          <<<grid_dim(blocks), 256, 0, ctx.stream>>>(in, out, g.outer, g.len, g.inner);
    else
      prod_cols_kernel<T, false>
          <<<grid_dim(blocks), 256, 0, ctx.stream>>>(in, out, g.outer, g.len, g.inner);
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

void run_prod(const char* name, const ScanGeometry& g, bool scan) {
  FABRIC_CHECK(g.in_dtype == g.out_dtype, DTypeError, name, " kernel: input ",
               dtype_name(g.in_dtype), " and output ", dtype_name(g.out_dtype), " differ");
  if (g.outer * g.inner == 0 || (scan && g.len == 0)) return;
  switch (g.out_dtype) {
    case DType::float32:
      return prod_typed<float>(g, scan);
    case DType::float64:
      return prod_typed<double>(g, scan);
    case DType::bfloat16:
      return prod_typed<BFloat16>(g, scan);
    case DType::float16:
      return prod_typed<Half>(g, scan);
    case DType::int64:
      return prod_typed<int64_t>(g, scan);
    case DType::int32:
      return prod_typed<int32_t>(g, scan);
    case DType::int8:
      return prod_typed<int8_t>(g, scan);
    case DType::uint8:
      return prod_typed<uint8_t>(g, scan);
    default:
      break;
  }
  throw DTypeError(detail::cat(name, " kernel: no CUDA kernel for ", dtype_name(g.out_dtype)));
}

void prod_kernel_cuda(const ScanGeometry& g) { run_prod("prod", g, false); }
void cumprod_kernel_cuda(const ScanGeometry& g) { run_prod("cumprod", g, true); }

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(math_unary_stub, cuda, &cuda::math_unary_kernel);
FABRIC_REGISTER_KERNEL(math_binary_stub, cuda, &cuda::math_binary_kernel);
FABRIC_REGISTER_KERNEL(prod_stub, cuda, &cuda::prod_kernel_cuda);
FABRIC_REGISTER_KERNEL(cumprod_stub, cuda, &cuda::cumprod_kernel_cuda);
}  // namespace fabric
