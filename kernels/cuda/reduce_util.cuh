// Building blocks of the CUDA reduction-style kernels (reductions, softmax, norms, losses): loads
// and stores through a runtime dtype, float/double math overloads, all-reduces over the x threads
// of a 2-D block, column folds over its y threads, block scans, device scratch from the caching
// allocator and the launch context (device, stream) of a kernel.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_scratch.h"
#include "kernels/cuda/loop_args.cuh"
#include "kernels/cuda/stream.h"

namespace fabric::cuda {

// ---- math in the accumulation type ------------------------------------------------------------
__device__ __forceinline__ float dev_exp(float x) { return expf(x); }
__device__ __forceinline__ double dev_exp(double x) { return exp(x); }
__device__ __forceinline__ float dev_log(float x) { return logf(x); }
__device__ __forceinline__ double dev_log(double x) { return log(x); }
__device__ __forceinline__ float dev_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double dev_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float dev_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double dev_pow(double x, double y) { return pow(x, y); }
template <typename A>
__device__ __forceinline__ bool dev_isnan(A x) {
  if constexpr (std::is_floating_point_v<A>) {
    return x != x;
  } else {
    return false;
  }
}
template <typename A>
__device__ __forceinline__ A dev_inf() {
  return static_cast<A>(INFINITY);
}
template <typename A>
__device__ __forceinline__ A dev_nan() {
  return static_cast<A>(NAN);
}

// ---- typed access through a runtime dtype ------------------------------------------------------

// One element of dtype `dt` at p, as A (the CPU's conversion rules). fp8 is rejected on the host.
template <typename A>
__device__ __forceinline__ A load_as(const char* p, DType dt) {
  switch (dt) {
    case DType::float32:
      return cast_value<A>(load<float>(p));
    case DType::float64:
      return cast_value<A>(load<double>(p));
    case DType::float16:
      return cast_value<A>(load<Half>(p));
    case DType::bfloat16:
      return cast_value<A>(load<BFloat16>(p));
    case DType::int64:
      return cast_value<A>(load<int64_t>(p));
    case DType::int32:
      return cast_value<A>(load<int32_t>(p));
    case DType::int8:
      return cast_value<A>(load<int8_t>(p));
    case DType::uint8:
      return cast_value<A>(load<uint8_t>(p));
    case DType::bool_:
      return cast_value<A>(load<uint8_t>(p) != 0);
    default:
      break;
  }
  return A(0);
}

template <typename A>
__device__ __forceinline__ void store_as(char* p, DType dt, A v) {
  switch (dt) {
    case DType::float32:
      return store(p, cast_value<float>(v));
    case DType::float64:
      return store(p, cast_value<double>(v));
    case DType::float16:
      return store(p, cast_value<Half>(v));
    case DType::bfloat16:
      return store(p, cast_value<BFloat16>(v));
    case DType::int64:
      return store(p, cast_value<int64_t>(v));
    case DType::int32:
      return store(p, cast_value<int32_t>(v));
    case DType::int8:
      return store(p, cast_value<int8_t>(v));
    case DType::uint8:
      return store(p, cast_value<uint8_t>(v));
    case DType::bool_:
      return store(p, cast_value<bool>(v));
    default:
      break;
  }
}

// A load whose source type is fixed at compile time (the hot paths), and one that switches on
// the dtype per element (the rare mixed-dtype paths). Both read element i of a base pointer.
template <typename T, typename A>
struct TypedLoad {
  // Elements chunk() reads at once (a row kernel's wide path): 8, whatever T, so that a row's
  // elements fall to the same threads in the same order for every dtype.
  static constexpr int kChunk = 8;
  using Stored = T;
  __device__ __forceinline__ A operator()(const char* base, int64_t i) const {
    return cast_value<A>(load<T>(base + i * static_cast<int64_t>(sizeof(T))));
  }
  // Elements [i, i + kChunk) at a 16-byte aligned address (16 to 64 bytes: one to four loads).
  __device__ __forceinline__ void chunk(const char* base, int64_t i, A (&out)[kChunk]) const {
    struct alignas(16) Piece {
      T v[kChunk];
    };
    const Piece p = *reinterpret_cast<const Piece*>(base + i * static_cast<int64_t>(sizeof(T)));
#pragma unroll
    for (int j = 0; j < kChunk; ++j) out[j] = cast_value<A>(p.v[j]);
  }
};
template <typename A>
struct AnyLoad {
  DType dt;
  int64_t isz;
  __device__ __forceinline__ A operator()(const char* base, int64_t i) const {
    return load_as<A>(base + i * isz, dt);
  }
};

// Calls f(loader) with a TypedLoad for the float dtypes kernels compute on in A (float: fp32,
// fp16, bf16; double: fp64), and an AnyLoad for every other dtype.
template <typename A, typename F>
void visit_loader(DType dt, F&& f) {
  if constexpr (std::is_same_v<A, float>) {
    switch (dt) {
      case DType::float32:
        return f(TypedLoad<float, float>{});
      case DType::float16:
        return f(TypedLoad<Half, float>{});
      case DType::bfloat16:
        return f(TypedLoad<BFloat16, float>{});
      default:
        break;
    }
  } else if constexpr (std::is_same_v<A, double>) {
    if (dt == DType::float64) return f(TypedLoad<double, double>{});
  } else if constexpr (std::is_same_v<A, int64_t>) {
    if (dt == DType::int64) return f(TypedLoad<int64_t, int64_t>{});
  }
  f(AnyLoad<A>{dt, itemsize(dt)});
}

// ---- warp and block folds -------------------------------------------------------------------

inline constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float shfl_xor(float v, int m) {
  return __shfl_xor_sync(kFullMask, v, m);
}
__device__ __forceinline__ double shfl_xor(double v, int m) {
  return __shfl_xor_sync(kFullMask, v, m);
}
__device__ __forceinline__ int shfl_xor(int v, int m) { return __shfl_xor_sync(kFullMask, v, m); }
__device__ __forceinline__ int64_t shfl_xor(int64_t v, int m) {
  return static_cast<int64_t>(__shfl_xor_sync(kFullMask, static_cast<long long>(v), m));
}

// Raw shared memory for `n` values of T (shared variables may not have constructors).
struct alignas(16) SharedChunk {
  unsigned char bytes[16];
};
template <typename T, int n>
__device__ __forceinline__ T* shared_slots() {
  __shared__ SharedChunk raw[(n * sizeof(T) + 15) / 16];
  return reinterpret_cast<T*>(raw);
}

// Folds v over the blockDim.x threads of each row (threadIdx.y) of the block and gives every
// thread of the row the result. blockDim.x is a power of two; when it exceeds a warp it is a
// multiple of 32 and the block has at most 1024 threads. Every thread of the block must call it
// (it synchronises the block when a row spans several warps). The fold order is fixed, so the
// result does not depend on timing.
template <typename T, typename Combine>
__device__ T row_allreduce(T v, const Combine& comb) {
  const int bx = static_cast<int>(blockDim.x);
  const int width = bx < 32 ? bx : 32;
  for (int m = width / 2; m > 0; m /= 2) v = comb(v, shfl_xor(v, m));
  if (bx <= 32) return v;
  T* slots = shared_slots<T, 32>();
  const int tid = static_cast<int>(threadIdx.y) * bx + static_cast<int>(threadIdx.x);
  const int per_row = bx / 32;
  if ((tid & 31) == 0) slots[tid >> 5] = v;
  __syncthreads();
  const int first = static_cast<int>(threadIdx.y) * per_row;
  T r = slots[first];
  for (int w = 1; w < per_row; ++w) r = comb(r, slots[first + w]);
  __syncthreads();  // the slots may be reused by the next call
  return r;
}

// Folds v over the blockDim.y threads of each column (threadIdx.x), in y order; the result is
// valid in the threads with threadIdx.y == 0. At most 1024 threads; every thread must call it.
template <typename T, typename Combine>
__device__ T col_reduce(T v, const Combine& comb) {
  const int by = static_cast<int>(blockDim.y);
  if (by == 1) return v;
  T* slots = shared_slots<T, 1024>();
  const int bx = static_cast<int>(blockDim.x), tx = static_cast<int>(threadIdx.x);
  slots[threadIdx.y * bx + tx] = v;
  __syncthreads();
  if (threadIdx.y == 0)
    for (int y = 1; y < by; ++y) v = comb(v, slots[y * bx + tx]);
  __syncthreads();
  return v;
}

// Inclusive prefix sum over a 1-D block (blockDim.x a multiple of 32); `total` receives the sum
// of the whole block. Every thread must call it.
template <typename A>
__device__ A block_inclusive_scan(A v, A& total) {
  A* slots = shared_slots<A, 32>();
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  for (int off = 1; off < 32; off *= 2) {
    const A n = __shfl_up_sync(kFullMask, v, off);
    if (lane >= off) v += n;
  }
  if (lane == 31) slots[warp] = v;
  __syncthreads();
  A prefix = 0;
  total = 0;
  const int warps = static_cast<int>(blockDim.x) / 32;
  for (int w = 0; w < warps; ++w) {
    const A t = slots[w];
    if (w < warp) prefix += t;
    total += t;
  }
  __syncthreads();
  return v + prefix;
}

// ---- launching ----------------------------------------------------------------------------

// The device owning `anchor` (a kernel's output), made current, and its compute stream.
struct LaunchContext {
  int device;
  DeviceGuard guard;
  cudaStream_t stream;
  explicit LaunchContext(const void* anchor)
      : device(device_of_pointer(anchor)), guard(device), stream(compute_stream(device)) {}
};

inline int pow2_ceil(int64_t n) {
  int p = 1;
  while (p < n && p < (1 << 30)) p *= 2;
  return p;
}

inline unsigned grid_dim(int64_t blocks) { return static_cast<unsigned>(blocks < 1 ? 1 : blocks); }

// ---- online softmax statistics ------------------------------------------------------------------

// Running max of the finite values, the sum of exp(x - m) over them, and whether a NaN or +inf
// was seen: the CPU's two-pass max is then non-finite and its row NaN, as it is when every value
// is -inf (nan_row).
template <typename A>
struct MaxSum {
  A m;
  A s;
  int bad;
};
template <typename A>
__device__ __forceinline__ MaxSum<A> shfl_xor(MaxSum<A> a, int lane) {
  return {shfl_xor(a.m, lane), shfl_xor(a.s, lane), shfl_xor(a.bad, lane)};
}
template <typename A>
__device__ __forceinline__ MaxSum<A> max_sum_init() {
  return {-dev_inf<A>(), A(0), 0};
}
template <typename A>
__device__ __forceinline__ void max_sum_add(MaxSum<A>& st, A x) {
  if (dev_isnan(x) || x == dev_inf<A>()) {
    st.bad = 1;
  } else if (x > st.m) {
    st.s = (st.s > A(0) ? st.s * dev_exp(st.m - x) : A(0)) + A(1);
    st.m = x;
  } else if (x != -dev_inf<A>()) {
    st.s += dev_exp(x - st.m);
  }
}
template <typename A>
struct MaxSumCombine {
  __device__ __forceinline__ MaxSum<A> operator()(MaxSum<A> a, MaxSum<A> b) const {
    const A m = a.m > b.m ? a.m : b.m;
    const A sa = a.s > A(0) ? a.s * dev_exp(a.m - m) : A(0);
    const A sb = b.s > A(0) ? b.s * dev_exp(b.m - m) : A(0);
    return {m, sa + sb, a.bad | b.bad};
  }
};
template <typename A>
__device__ __forceinline__ bool nan_row(const MaxSum<A>& st) {
  return st.bad || st.m == -dev_inf<A>();
}

template <typename A>
struct Plus {
  __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};

// The most threads row_block gives a block. Every kernel launched with row_block declares it in
// __launch_bounds__, so ptxas keeps its registers within 64K / 1024 = 64 a thread: without it a
// kernel that grew past that would compile and then fail to launch on long rows (GPT-2's 50304
// classes), on a GPU only. (`nvcc --resource-usage`, sm_80 and sm_90: 25 to 44, no spills.)
inline constexpr int kRowBlockMaxThreads = 1024;

// Threads per row of n elements: a power of two, about 8 elements each, between a warp and
// kRowBlockMaxThreads (fewer than a warp for rows shorter than one); rows per block fill 256
// threads.
inline dim3 row_block(int64_t n) {
  int bx = n < 32 ? pow2_ceil(n < 1 ? 1 : n) : pow2_ceil((n + 7) / 8);
  if (n >= 32) bx = bx < 32 ? 32 : bx > kRowBlockMaxThreads ? kRowBlockMaxThreads : bx;
  return dim3(static_cast<unsigned>(bx), static_cast<unsigned>(256 / bx > 1 ? 256 / bx : 1));
}

}  // namespace fabric::cuda
