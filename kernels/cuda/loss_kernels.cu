// CUDA loss kernels with the semantics of kernels/cpu/cross_entropy.cpp: cross-entropy fused with
// log-softmax (one pass of running max and rescaled sum per row, then the pick and the
// label-smoothing term; the probabilities are never stored), its backward, nll_loss and
// mse_loss's squared difference. The target statistics (valid count, first bad target) are kept
// in device memory and read back at the end, since the stubs return them: each call waits for
// the device.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/loop_kernel.cuh"
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/reduce_kernels.h"

namespace fabric::cuda {
namespace {

struct ClassDev {
  const char* x;
  DType dt;
  int64_t isz;
  const char* target;
  DType tdt;
  int64_t outer, classes, inner, positions;
  int64_t ignore_index;
  double smoothing;
};

// Device counters: [0] targets that were not ignore_index and in range, [1] the lowest position of
// a target out of [0, classes) that is not ignore_index (ULLONG_MAX: none).
using Counter = unsigned long long;

__device__ __forceinline__ int64_t read_target(const ClassDev& g, int64_t pos) {
  return g.tdt == DType::int32 ? static_cast<int64_t>(load<int32_t>(g.target + pos * 4))
                               : load<int64_t>(g.target + pos * 8);
}

// 0: ignored, 1: a class, 2: out of range.
__device__ __forceinline__ int classify(const ClassDev& g, int64_t t) {
  if (t == g.ignore_index) return 0;
  return t >= 0 && t < g.classes ? 1 : 2;
}

__device__ __forceinline__ void count_target(Counter* stats, int kind, int64_t pos) {
  if (kind == 1) atomicAdd(&stats[0], Counter(1));
  if (kind == 2) atomicMin(&stats[1], static_cast<Counter>(pos));
}

// ---- cross-entropy forward --------------------------------------------------------------------
// loss = (1 - s) * (lse - x[t]) + s / C * sum_c (lse - x[c]), 0 where ignored or out of range.

template <typename A, typename Load>
__global__ void cross_entropy_rows_kernel(ClassDev g, Load load, A* loss, Counter* stats) {
  const int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = pos < g.positions;
  const int64_t t = live ? read_target(g, pos) : g.ignore_index;
  const int kind = live ? classify(g, t) : 0;
  const int64_t C = g.classes, bx = blockDim.x, base = pos * C;
  MaxSum<A> st = max_sum_init<A>();
  if (kind == 1) {
#pragma unroll 4
    for (int64_t c = threadIdx.x; c < C; c += bx) max_sum_add(st, load(g.x, base + c));
  }
  st = row_allreduce(st, MaxSumCombine<A>{});
  const A lse = nan_row(st) ? dev_nan<A>() : st.m + dev_log(st.s);
  const A s = static_cast<A>(g.smoothing);
  A smooth = 0;
  if (g.smoothing != 0) {
    if (kind == 1)
      for (int64_t c = threadIdx.x; c < C; c += bx) smooth += lse - load(g.x, base + c);
    smooth = row_allreduce(smooth, Plus<A>{});
  }
  if (threadIdx.x != 0 || !live) return;
  count_target(stats, kind, pos);
  if (kind != 1) {
    loss[pos] = A(0);
    return;
  }
  A l = lse - load(g.x, base + t);
  if (g.smoothing != 0) l = (A(1) - s) * l + s / static_cast<A>(C) * smooth;
  loss[pos] = l;
}

// (outer, classes, inner) with inner > 1: one thread per position, classes `inner` apart.
template <typename A>
__global__ void cross_entropy_cols_kernel(ClassDev g, AnyLoad<A> load, A* loss, Counter* stats) {
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = read_target(g, pos);
    const int kind = classify(g, t);
    count_target(stats, kind, pos);
    if (kind != 1) {
      loss[pos] = A(0);
      continue;
    }
    const int64_t n = pos / g.inner, i = pos - n * g.inner, base = n * g.classes * g.inner + i;
    MaxSum<A> st = max_sum_init<A>();
    for (int64_t c = 0; c < g.classes; ++c) max_sum_add(st, load(g.x, base + c * g.inner));
    const A lse = nan_row(st) ? dev_nan<A>() : st.m + dev_log(st.s);
    A l = lse - load(g.x, base + t * g.inner);
    if (g.smoothing != 0) {
      const A s = static_cast<A>(g.smoothing);
      A smooth = 0;
      for (int64_t c = 0; c < g.classes; ++c) smooth += lse - load(g.x, base + c * g.inner);
      l = (A(1) - s) * l + s / static_cast<A>(g.classes) * smooth;
    }
    loss[pos] = l;
  }
}

int64_t flat_blocks(int64_t n) { return std::min<int64_t>((n + 255) / 256, 65535); }

ClassDev make_class_dev(const ClassGeometry& g, const void* x, DType dt, const void* target,
                        DType tdt, int64_t ignore_index, double smoothing) {
  FABRIC_CHECK(is_floating(dt) && !is_fp8(dt), DTypeError,
               "cross_entropy/nll_loss: no CUDA kernel for ", dtype_name(dt),
               " input (expected float64/float32/float16/bfloat16)");
  FABRIC_CHECK(tdt == DType::int64 || tdt == DType::int32, DTypeError,
               "cross_entropy/nll_loss: expected int64 or int32 targets, got ", dtype_name(tdt));
  ClassDev d;
  d.x = static_cast<const char*>(x);
  d.dt = dt;
  d.isz = itemsize(dt);
  d.target = static_cast<const char*>(target);
  d.tdt = tdt;
  d.outer = g.outer;
  d.classes = g.classes;
  d.inner = g.inner;
  d.positions = g.outer * g.inner;
  d.ignore_index = ignore_index;
  d.smoothing = smoothing;
  return d;
}

// Zeroed valid count, "none" bad position.
void reset_stats(Counter* stats, cudaStream_t stream) {
  FABRIC_CUDA_CHECK(cudaMemsetAsync(stats, 0, sizeof(Counter), stream));
  FABRIC_CUDA_CHECK(cudaMemsetAsync(stats + 1, 0xff, sizeof(Counter), stream));
}

// Waits for the stream and reads the statistics back (and the offending target, if any).
TargetStats read_stats(const Counter* stats, const ClassDev& g, cudaStream_t stream) {
  Counter h[2] = {0, 0};
  FABRIC_CUDA_CHECK(cudaMemcpyAsync(h, stats, sizeof(h), cudaMemcpyDeviceToHost, stream));
  FABRIC_CUDA_CHECK(cudaStreamSynchronize(stream));
  TargetStats st;
  st.valid = static_cast<int64_t>(h[0]);
  if (h[1] != ~Counter(0)) {
    st.bad = true;
    const int64_t tsz = itemsize(g.tdt);
    int64_t v64 = 0;
    int32_t v32 = 0;
    void* dst = g.tdt == DType::int32 ? static_cast<void*>(&v32) : static_cast<void*>(&v64);
    FABRIC_CUDA_CHECK(cudaMemcpyAsync(dst, g.target + static_cast<int64_t>(h[1]) * tsz,
                                      static_cast<size_t>(tsz), cudaMemcpyDeviceToHost, stream));
    FABRIC_CUDA_CHECK(cudaStreamSynchronize(stream));
    st.bad_value = g.tdt == DType::int32 ? v32 : v64;
  }
  return st;
}

template <typename A>
TargetStats cross_entropy_acc(const ClassDev& g, A* loss) {
  LaunchContext ctx(loss);
  DeviceScratch stats(ctx.device, 2 * sizeof(Counter));
  reset_stats(stats.as<Counter>(), ctx.stream);
  if (g.inner == 1) {
    const dim3 block = row_block(g.classes);
    const int64_t blocks = (g.positions + block.y - 1) / block.y;
    visit_loader<A>(g.dt, [&](auto load) {
      cross_entropy_rows_kernel<A>
          <<<grid_dim(blocks), block, 0, ctx.stream>>>(g, load, loss, stats.as<Counter>());
    });
  } else {
    cross_entropy_cols_kernel<A><<<grid_dim(flat_blocks(g.positions)), 256, 0, ctx.stream>>>(
        g, AnyLoad<A>{g.dt, g.isz}, loss, stats.as<Counter>());
  }
  FABRIC_CUDA_CHECK_LAUNCH();
  return read_stats(stats.as<Counter>(), g, ctx.stream);
}

TargetStats cross_entropy_kernel_cuda(const ClassGeometry& geo, const void* logits, DType dt,
                                      const void* target, DType tdt, int64_t ignore_index,
                                      double smoothing, void* loss) {
  const ClassDev g = make_class_dev(geo, logits, dt, target, tdt, ignore_index, smoothing);
  if (g.positions == 0) return {};
  if (dt == DType::float64) return cross_entropy_acc<double>(g, static_cast<double*>(loss));
  return cross_entropy_acc<float>(g, static_cast<float*>(loss));
}

// ---- cross-entropy backward -------------------------------------------------------------------
// dlogits = g_pos * (softmax - (1 - s) onehot(t) - s / C), 0 on ignored and out-of-range rows.

__global__ void count_targets_kernel(ClassDev g, Counter* stats) {
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x)
    count_target(stats, classify(g, read_target(g, pos)), pos);
}

// The gradient of position pos: grad[pos], or the scalar grad (divided by the valid count for
// a mean).
template <typename A>
__device__ __forceinline__ A position_grad(const A* grad, bool grad_is_scalar, bool mean,
                                           const Counter* stats, int64_t pos) {
  if (!grad_is_scalar) return grad[pos];
  A scale = grad[0];
  if (mean) scale /= static_cast<A>(static_cast<int64_t>(stats[0]));
  return scale;
}

template <typename A, typename T, typename Load>
__global__ void cross_entropy_backward_rows_kernel(ClassDev g, Load load, const A* grad,
                                                   bool grad_is_scalar, bool mean,
                                                   const Counter* stats, char* dx) {
  const int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = pos < g.positions;
  const int64_t t = live ? read_target(g, pos) : g.ignore_index;
  const int kind = live ? classify(g, t) : 0;
  const int64_t C = g.classes, bx = blockDim.x, base = pos * C;
  MaxSum<A> st = max_sum_init<A>();
  if (kind == 1) {
#pragma unroll 4
    for (int64_t c = threadIdx.x; c < C; c += bx) max_sum_add(st, load(g.x, base + c));
  }
  st = row_allreduce(st, MaxSumCombine<A>{});
  if (!live) return;
  T* out = reinterpret_cast<T*>(dx) + base;
  if (kind != 1) {
    for (int64_t c = threadIdx.x; c < C; c += bx) out[c] = cast_value<T>(A(0));
    return;
  }
  const A gp = position_grad(grad, grad_is_scalar, mean, stats, pos);
  const A s = static_cast<A>(g.smoothing), off = s / static_cast<A>(C);
  const A inv = nan_row(st) ? dev_nan<A>() : A(1) / st.s;
  for (int64_t c = threadIdx.x; c < C; c += bx) {
    A d = gp * (dev_exp(load(g.x, base + c) - st.m) * inv - off);
    if (c == t) d -= gp * (A(1) - s);
    out[c] = cast_value<T>(d);
  }
}

template <typename A>
__global__ void cross_entropy_backward_cols_kernel(ClassDev g, AnyLoad<A> load, const A* grad,
                                                   bool grad_is_scalar, bool mean,
                                                   const Counter* stats, char* dx) {
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = read_target(g, pos);
    const int64_t n = pos / g.inner, i = pos - n * g.inner, base = n * g.classes * g.inner + i;
    if (classify(g, t) != 1) {
      for (int64_t c = 0; c < g.classes; ++c)
        store_as<A>(dx + (base + c * g.inner) * g.isz, g.dt, A(0));
      continue;
    }
    MaxSum<A> st = max_sum_init<A>();
    for (int64_t c = 0; c < g.classes; ++c) max_sum_add(st, load(g.x, base + c * g.inner));
    const A gp = position_grad(grad, grad_is_scalar, mean, stats, pos);
    const A s = static_cast<A>(g.smoothing), off = s / static_cast<A>(g.classes);
    const A inv = nan_row(st) ? dev_nan<A>() : A(1) / st.s;
    for (int64_t c = 0; c < g.classes; ++c) {
      const int64_t o = base + c * g.inner;
      A d = gp * (dev_exp(load(g.x, o) - st.m) * inv - off);
      if (c == t) d -= gp * (A(1) - s);
      store_as<A>(dx + o * g.isz, g.dt, d);
    }
  }
}

template <typename A>
TargetStats cross_entropy_backward_acc(const ClassDev& g, const A* grad, bool grad_is_scalar,
                                       bool mean, char* dx) {
  LaunchContext ctx(dx);
  DeviceScratch stats(ctx.device, 2 * sizeof(Counter));
  Counter* st = stats.as<Counter>();
  reset_stats(st, ctx.stream);
  count_targets_kernel<<<grid_dim(flat_blocks(g.positions)), 256, 0, ctx.stream>>>(g, st);
  FABRIC_CUDA_CHECK_LAUNCH();
  if (g.inner == 1) {
    const dim3 block = row_block(g.classes);
    const int64_t blocks = (g.positions + block.y - 1) / block.y;
    auto launch = [&](auto t, auto load) {
      using T = decltype(t);
      cross_entropy_backward_rows_kernel<A, T>
          <<<grid_dim(blocks), block, 0, ctx.stream>>>(g, load, grad, grad_is_scalar, mean, st, dx);
    };
    if constexpr (std::is_same_v<A, double>) {
      launch(double{}, TypedLoad<double, double>{});
    } else if (g.dt == DType::float16) {
      launch(Half{}, TypedLoad<Half, float>{});
    } else if (g.dt == DType::bfloat16) {
      launch(BFloat16{}, TypedLoad<BFloat16, float>{});
    } else {
      launch(float{}, TypedLoad<float, float>{});
    }
  } else {
    cross_entropy_backward_cols_kernel<A>
        <<<grid_dim(flat_blocks(g.positions)), 256, 0, ctx.stream>>>(
            g, AnyLoad<A>{g.dt, g.isz}, grad, grad_is_scalar, mean, st, dx);
  }
  FABRIC_CUDA_CHECK_LAUNCH();
  return read_stats(st, g, ctx.stream);
}

TargetStats cross_entropy_backward_kernel_cuda(const ClassGeometry& geo, const void* logits,
                                               DType dt, const void* target, DType tdt,
                                               int64_t ignore_index, double smoothing,
                                               const void* grad, bool grad_is_scalar, bool mean,
                                               void* dlogits) {
  const ClassDev g = make_class_dev(geo, logits, dt, target, tdt, ignore_index, smoothing);
  if (g.positions == 0 || g.classes == 0) return {};
  char* d = static_cast<char*>(dlogits);
  if (dt == DType::float64)
    return cross_entropy_backward_acc<double>(g, static_cast<const double*>(grad), grad_is_scalar,
                                              mean, d);
  return cross_entropy_backward_acc<float>(g, static_cast<const float*>(grad), grad_is_scalar, mean,
                                           d);
}

// ---- nll_loss ---------------------------------------------------------------------------------

template <typename A>
__global__ void nll_loss_kernel(ClassDev g, A* loss, Counter* stats) {
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = read_target(g, pos);
    const int kind = classify(g, t);
    count_target(stats, kind, pos);
    if (kind != 1) {
      loss[pos] = A(0);
      continue;
    }
    const int64_t n = pos / g.inner, i = pos - n * g.inner;
    loss[pos] = -load_as<A>(g.x + ((n * g.classes + t) * g.inner + i) * g.isz, g.dt);
  }
}

TargetStats nll_loss_kernel_cuda(const ClassGeometry& geo, const void* log_probs, DType dt,
                                 const void* target, DType tdt, int64_t ignore_index, void* loss) {
  const ClassDev g = make_class_dev(geo, log_probs, dt, target, tdt, ignore_index, 0.0);
  if (g.positions == 0) return {};
  LaunchContext ctx(loss);
  DeviceScratch stats(ctx.device, 2 * sizeof(Counter));
  reset_stats(stats.as<Counter>(), ctx.stream);
  const unsigned blocks = grid_dim(flat_blocks(g.positions));
  if (dt == DType::float64) {
    nll_loss_kernel<double>
        <<<blocks, 256, 0, ctx.stream>>>(g, static_cast<double*>(loss), stats.as<Counter>());
  } else {
    nll_loss_kernel<float>
        <<<blocks, 256, 0, ctx.stream>>>(g, static_cast<float*>(loss), stats.as<Counter>());
  }
  FABRIC_CUDA_CHECK_LAUNCH();
  return read_stats(stats.as<Counter>(), g, ctx.stream);
}

// ---- mse_loss: out = (a - b)^2 ------------------------------------------------------------------

template <typename A>
struct SquaredDiff {
  DType ot, it;
  __device__ void operator()(char* (&p)[3]) const {
    const A d = load_as<A>(p[1], it) - load_as<A>(p[2], it);
    store_as<A>(p[0], ot, d * d);
  }
};

void squared_diff_kernel_cuda(const StridedLoop& loop) {
  const DType ot = loop.ops[0].dtype, it = loop.ops[1].dtype;
  FABRIC_CHECK(loop.num_operands == 3 && loop.ops[2].dtype == it, ValueError,
               "mse_loss: expected (out, a, b) with a and b of one dtype");
  for (DType t : {ot, it})
    FABRIC_CHECK(is_floating(t) && !is_fp8(t), DTypeError, "mse_loss: no CUDA kernel for ",
                 dtype_name(t), " (expected float64/float32/float16/bfloat16)");
  if (ot == DType::float64 || it == DType::float64)
    return launch_loop<3>(loop, SquaredDiff<double>{ot, it});
  launch_loop<3>(loop, SquaredDiff<float>{ot, it});
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(cross_entropy_stub, cuda, &cuda::cross_entropy_kernel_cuda);
FABRIC_REGISTER_KERNEL(cross_entropy_backward_stub, cuda,
                       &cuda::cross_entropy_backward_kernel_cuda);
FABRIC_REGISTER_KERNEL(nll_loss_stub, cuda, &cuda::nll_loss_kernel_cuda);
FABRIC_REGISTER_KERNEL(squared_diff_stub, cuda, &cuda::squared_diff_kernel_cuda);
}  // namespace fabric
