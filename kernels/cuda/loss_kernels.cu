// CUDA loss kernels with the semantics of kernels/cpu/cross_entropy.cpp and nll_loss.cpp:
// cross-entropy fused with log-softmax (one pass of running max and rescaled sum per row, then the
// pick and the label-smoothing term; the probabilities are never stored), its backward, nll_loss
// and its backward, mse_loss's squared difference and binary_cross_entropy's input check. Nothing
// is read back: the valid count stays on the device (the op divides the mean by it there) and an
// out-of-range target or input goes to the device's deferred check record (deferred_check.cuh),
// which the next synchronisation reports, so no call waits.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/deferred_check.cuh"
#include "kernels/cuda/loop_kernel.cuh"
#include "kernels/cuda/reduce_util.cuh"
#include "kernels/cuda/speed_switches.h"
#include "tensor/reduce_kernels.h"
#include "tensor/unit_interval_check.h"

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
  DeviceRangeCheck check;  // over [0, classes); set at the launch
  // x (and the backward's dx) 16-byte aligned: the row kernels' pieces of 8 elements (rows of a
  // multiple of 8 classes) are read and written with wide loads and stores. Set at the launch.
  bool aligned = false;
  // Rows of a multiple of kRowPiece classes, taken in pieces (FABRIC_CUDA_WIDE, speed_switches.h).
  // Set at the launch.
  bool pieces = false;
};

// Rows of a multiple of this many classes go in pieces: each thread takes 8 elements in a row
// (GPT-2's 50304 classes), whatever the dtype, so every dtype sums a row in one order.
constexpr int64_t kRowPiece = 8;

bool row_pieces(int64_t classes) { return wide_paths_enabled() && classes % kRowPiece == 0; }

// The device count of targets that were not ignore_index and in range.
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

__device__ __forceinline__ void count_target(const ClassDev& g, Counter* valid, int kind,
                                             int64_t t, int64_t pos) {
  if (kind == 1) atomicAdd(valid, Counter(1));
  if (kind == 2) report_out_of_range(g.check, t, pos);
}

// The CPU's error names the bad target at the lowest position, which the atomics of the record do
// not pair with its value: once the reporting kernels are done, this names it.
__global__ void name_lowest_bad_target_kernel(ClassDev g) {
  DeferredCheckRecord* r = g.check.record;
  if (!r || r->site != g.check.site) return;
  const int64_t t = read_target(g, static_cast<int64_t>(r->position));
  r->lowest = t;
  r->highest = t;
}

// ---- cross-entropy forward --------------------------------------------------------------------

// Elements [c, c + kRowPiece) of a row: one wide load when the typed load offers it and x is
// aligned, else one element at a time.
template <typename A, typename Load>
__device__ __forceinline__ void load_piece(const ClassDev& g, Load load, int64_t i,
                                           A (&v)[kRowPiece]) {
  if constexpr (requires { Load::kChunk; }) {
    static_assert(Load::kChunk == kRowPiece);
    if (g.aligned) return load.chunk(g.x, i, v);
  }
#pragma unroll
  for (int j = 0; j < kRowPiece; ++j) v[j] = load(g.x, i + j);
}

// This thread's share of a row's running max and exp-sum: pieces of 8 elements for rows of a
// multiple of 8 (the loads of a piece issued together, where one two-byte load a step left an
// H200 at a sixth of its bandwidth on GPT-2's logits), else one element a step.
template <typename A, typename Load>
__device__ __forceinline__ void row_max_sum(const ClassDev& g, Load load, int64_t base,
                                            MaxSum<A>& st) {
  const int64_t C = g.classes, bx = blockDim.x;
  if (g.pieces) {
    for (int64_t c = threadIdx.x * kRowPiece; c < C; c += bx * kRowPiece) {
      A v[kRowPiece];
      load_piece(g, load, base + c, v);
#pragma unroll
      for (int j = 0; j < kRowPiece; ++j) max_sum_add(st, v[j]);
    }
    return;
  }
#pragma unroll 4
  for (int64_t c = threadIdx.x; c < C; c += bx) max_sum_add(st, load(g.x, base + c));
}
// loss = (1 - s) * nl(t) + s / C * sum_c nl(c), nl(c) = -log p_c = (max - x[c]) + log(sum) (the
// CPU's and torch's order: max + log(sum) first cancels against large logits), 0 where ignored or
// out of range.

template <typename A, typename Load>
__global__ void __launch_bounds__(kRowBlockMaxThreads)
    cross_entropy_rows_kernel(ClassDev g, Load load, A* loss, Counter* valid) {
  const int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = pos < g.positions;
  const int64_t t = live ? read_target(g, pos) : g.ignore_index;
  const int kind = live ? classify(g, t) : 0;
  const int64_t C = g.classes, bx = blockDim.x, base = pos * C;
  MaxSum<A> st = max_sum_init<A>();
  if (kind == 1) row_max_sum(g, load, base, st);
  st = row_allreduce(st, MaxSumCombine<A>{});
  const A ls = nan_row(st) ? dev_nan<A>() : dev_log(st.s);
  const A s = static_cast<A>(g.smoothing);
  A smooth = 0;
  if (g.smoothing != 0) {
    if (kind == 1)
      for (int64_t c = threadIdx.x; c < C; c += bx) smooth += (st.m - load(g.x, base + c)) + ls;
    smooth = row_allreduce(smooth, Plus<A>{});
  }
  if (threadIdx.x != 0 || !live) return;
  count_target(g, valid, kind, t, pos);
  if (kind != 1) {
    loss[pos] = A(0);
    return;
  }
  A l = (st.m - load(g.x, base + t)) + ls;
  if (g.smoothing != 0) l = (A(1) - s) * l + s / static_cast<A>(C) * smooth;
  loss[pos] = l;
}

// (outer, classes, inner) with inner > 1: one thread per position, classes `inner` apart.
template <typename A>
__global__ void cross_entropy_cols_kernel(ClassDev g, AnyLoad<A> load, A* loss, Counter* valid) {
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = read_target(g, pos);
    const int kind = classify(g, t);
    count_target(g, valid, kind, t, pos);
    if (kind != 1) {
      loss[pos] = A(0);
      continue;
    }
    const int64_t n = pos / g.inner, i = pos - n * g.inner, base = n * g.classes * g.inner + i;
    MaxSum<A> st = max_sum_init<A>();
    for (int64_t c = 0; c < g.classes; ++c) max_sum_add(st, load(g.x, base + c * g.inner));
    const A ls = nan_row(st) ? dev_nan<A>() : dev_log(st.s);
    A l = (st.m - load(g.x, base + t * g.inner)) + ls;
    if (g.smoothing != 0) {
      const A s = static_cast<A>(g.smoothing);
      A smooth = 0;
      for (int64_t c = 0; c < g.classes; ++c) smooth += (st.m - load(g.x, base + c * g.inner)) + ls;
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

// The check of a launch on `device` (the op armed check.id), and a zeroed valid count.
ClassDev armed(ClassDev g, int device, const TargetCheck& check, Counter* valid,
               cudaStream_t stream) {
  g.check = device_range_check(device, check.id, g.classes);
  FABRIC_CUDA_CHECK(cudaMemsetAsync(valid, 0, sizeof(Counter), stream));
  return g;
}

// After the kernels that reported: the record names the lowest position's target.
void name_lowest_bad_target(const ClassDev& g, cudaStream_t stream) {
  if (!g.check.record) return;
  name_lowest_bad_target_kernel<<<1, 1, 0, stream>>>(g);
  FABRIC_CUDA_CHECK_LAUNCH();
}

// The forward kernels leave the valid count where the op asked (it divides the mean by it).
Counter* valid_count_of(const TargetCheck& check, const char* op) {
  FABRIC_CHECK(check.valid_count, ValueError, op,
               " (CUDA): no device valid count given (TargetCheck::valid_count); the CUDA kernels "
               "do not return target statistics");
  return reinterpret_cast<Counter*>(check.valid_count);
}

template <typename A>
TargetStats cross_entropy_acc(const ClassDev& g0, A* loss, const TargetCheck& check) {
  LaunchContext ctx(loss);
  Counter* valid = valid_count_of(check, "cross_entropy");
  ClassDev g = armed(g0, ctx.device, check, valid, ctx.stream);
  g.aligned = aligned16(g.x);
  g.pieces = row_pieces(g.classes);
  if (g.inner == 1) {
    const dim3 block = row_block(g.classes);
    const int64_t blocks = (g.positions + block.y - 1) / block.y;
    visit_loader<A>(g.dt, [&](auto load) {
      cross_entropy_rows_kernel<A>
          <<<grid_dim(blocks), block, 0, ctx.stream>>>(g, load, loss, valid);
    });
  } else {
    cross_entropy_cols_kernel<A><<<grid_dim(flat_blocks(g.positions)), 256, 0, ctx.stream>>>(
        g, AnyLoad<A>{g.dt, g.isz}, loss, valid);
  }
  FABRIC_CUDA_CHECK_LAUNCH();
  name_lowest_bad_target(g, ctx.stream);
  return {};
}

TargetStats cross_entropy_kernel_cuda(const ClassGeometry& geo, const void* logits, DType dt,
                                      const void* target, DType tdt, int64_t ignore_index,
                                      double smoothing, void* loss, const TargetCheck& check) {
  const ClassDev g = make_class_dev(geo, logits, dt, target, tdt, ignore_index, smoothing);
  if (g.positions == 0) return {};
  if (dt == DType::float64) return cross_entropy_acc<double>(g, static_cast<double*>(loss), check);
  return cross_entropy_acc<float>(g, static_cast<float*>(loss), check);
}

// ---- cross-entropy backward -------------------------------------------------------------------
// dlogits = g_pos * (softmax - (1 - s) onehot(t) - s / C), 0 on ignored and out-of-range rows.

__global__ void count_targets_kernel(ClassDev g, Counter* valid) {
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = read_target(g, pos);
    count_target(g, valid, classify(g, t), t, pos);
  }
}

// The gradient of position pos: grad[pos], or the scalar grad (divided by the valid count for
// a mean).
template <typename A>
__device__ __forceinline__ A position_grad(const A* grad, bool grad_is_scalar, bool mean,
                                           const Counter* valid, int64_t pos) {
  if (!grad_is_scalar) return grad[pos];
  A scale = grad[0];
  if (mean) scale /= static_cast<A>(static_cast<int64_t>(*valid));
  return scale;
}

// The bound's second argument (blocks per SM) as ptxas needs it here: with the thread count
// alone it squeezed the float64 kernel to 32 registers on sm_80 and spilled; 1 lets it keep its
// 37. float keeps 2 blocks of 1024 threads per SM (32 registers, what it used before the bound).
template <typename A, typename T, typename Load>
__global__ void __launch_bounds__(kRowBlockMaxThreads, std::is_same_v<A, double> ? 1 : 2)
    cross_entropy_backward_rows_kernel(ClassDev g, Load load, const A* grad, bool grad_is_scalar,
                                       bool mean, const Counter* valid, char* dx) {
  const int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = pos < g.positions;
  const int64_t t = live ? read_target(g, pos) : g.ignore_index;
  const int kind = live ? classify(g, t) : 0;
  const int64_t C = g.classes, bx = blockDim.x, base = pos * C;
  MaxSum<A> st = max_sum_init<A>();
  if (kind == 1) row_max_sum(g, load, base, st);
  st = row_allreduce(st, MaxSumCombine<A>{});
  if (!live) return;
  T* out = reinterpret_cast<T*>(dx) + base;
  if (kind != 1) {
    for (int64_t c = threadIdx.x; c < C; c += bx) out[c] = cast_value<T>(A(0));
    return;
  }
  const A gp = position_grad(grad, grad_is_scalar, mean, valid, pos);
  const A s = static_cast<A>(g.smoothing), off = s / static_cast<A>(C);
  const A inv = nan_row(st) ? dev_nan<A>() : A(1) / st.s;
  if (g.pieces) {  // as row_max_sum; each piece stored at once when aligned
    struct alignas(16) Piece {
      T v[kRowPiece];
    };
    for (int64_t c = threadIdx.x * kRowPiece; c < C; c += bx * kRowPiece) {
      A v[kRowPiece];
      load_piece(g, load, base + c, v);
      Piece o;
#pragma unroll
      for (int j = 0; j < kRowPiece; ++j) {
        A d = gp * (dev_exp(v[j] - st.m) * inv - off);
        if (c + j == t) d -= gp * (A(1) - s);
        o.v[j] = cast_value<T>(d);
      }
      if (g.aligned) {
        *reinterpret_cast<Piece*>(out + c) = o;
      } else {
#pragma unroll
        for (int j = 0; j < kRowPiece; ++j) out[c + j] = o.v[j];
      }
    }
    return;
  }
  for (int64_t c = threadIdx.x; c < C; c += bx) {
    A d = gp * (dev_exp(load(g.x, base + c) - st.m) * inv - off);
    if (c == t) d -= gp * (A(1) - s);
    out[c] = cast_value<T>(d);
  }
}

template <typename A>
__global__ void cross_entropy_backward_cols_kernel(ClassDev g, AnyLoad<A> load, const A* grad,
                                                   bool grad_is_scalar, bool mean,
                                                   const Counter* valid, char* dx) {
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
    const A gp = position_grad(grad, grad_is_scalar, mean, valid, pos);
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
TargetStats cross_entropy_backward_acc(const ClassDev& g0, const A* grad, bool grad_is_scalar,
                                       bool mean, char* dx, const TargetCheck& check) {
  LaunchContext ctx(dx);
  DeviceScratch count(ctx.device, sizeof(Counter));
  Counter* st = count.as<Counter>();
  ClassDev g = armed(g0, ctx.device, check, st, ctx.stream);
  g.aligned = aligned16(g.x) && aligned16(dx);
  g.pieces = row_pieces(g.classes);
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
  name_lowest_bad_target(g, ctx.stream);
  return {};
}

TargetStats cross_entropy_backward_kernel_cuda(const ClassGeometry& geo, const void* logits,
                                               DType dt, const void* target, DType tdt,
                                               int64_t ignore_index, double smoothing,
                                               const void* grad, bool grad_is_scalar, bool mean,
                                               void* dlogits, const TargetCheck& check) {
  const ClassDev g = make_class_dev(geo, logits, dt, target, tdt, ignore_index, smoothing);
  if (g.positions == 0 || g.classes == 0) return {};
  char* d = static_cast<char*>(dlogits);
  if (dt == DType::float64)
    return cross_entropy_backward_acc<double>(g, static_cast<const double*>(grad), grad_is_scalar,
                                              mean, d, check);
  return cross_entropy_backward_acc<float>(g, static_cast<const float*>(grad), grad_is_scalar, mean,
                                           d, check);
}

// ---- nll_loss ---------------------------------------------------------------------------------

template <typename A>
__global__ void nll_loss_kernel(ClassDev g, A* loss, Counter* valid) {
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = read_target(g, pos);
    const int kind = classify(g, t);
    count_target(g, valid, kind, t, pos);
    if (kind != 1) {
      loss[pos] = A(0);
      continue;
    }
    const int64_t n = pos / g.inner, i = pos - n * g.inner;
    loss[pos] = -load_as<A>(g.x + ((n * g.classes + t) * g.inner + i) * g.isz, g.dt);
  }
}

TargetStats nll_loss_kernel_cuda(const ClassGeometry& geo, const void* log_probs, DType dt,
                                 const void* target, DType tdt, int64_t ignore_index, void* loss,
                                 const TargetCheck& check) {
  const ClassDev g0 = make_class_dev(geo, log_probs, dt, target, tdt, ignore_index, 0.0);
  if (g0.positions == 0) return {};
  LaunchContext ctx(loss);
  Counter* valid = valid_count_of(check, "nll_loss");
  const ClassDev g = armed(g0, ctx.device, check, valid, ctx.stream);
  const unsigned blocks = grid_dim(flat_blocks(g.positions));
  if (dt == DType::float64) {
    nll_loss_kernel<double><<<blocks, 256, 0, ctx.stream>>>(g, static_cast<double*>(loss), valid);
  } else {
    nll_loss_kernel<float><<<blocks, 256, 0, ctx.stream>>>(g, static_cast<float*>(loss), valid);
  }
  FABRIC_CUDA_CHECK_LAUNCH();
  name_lowest_bad_target(g, ctx.stream);
  return {};
}

// ---- nll_loss backward ------------------------------------------------------------------------
// dlog_probs = -grad at each class target, 0 elsewhere (zeroed first), computed in the input's
// dtype T as torch does: a mean's count and quotient are rounded to T (kernels/cpu/nll_loss.cpp).

template <typename T>
__global__ void nll_loss_backward_kernel(ClassDev g, const T* grad, bool grad_is_scalar, bool mean,
                                         const Counter* valid, T* dx) {
  using A = opmath_t<T>;
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < g.positions;
       pos += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = read_target(g, pos);
    if (classify(g, t) != 1) continue;
    A v = cast_value<A>(grad[grad_is_scalar ? 0 : pos]);
    if (grad_is_scalar && mean)
      v /= cast_value<A>(cast_value<T>(static_cast<A>(static_cast<int64_t>(*valid))));
    const int64_t n = pos / g.inner, i = pos - n * g.inner;
    dx[(n * g.classes + t) * g.inner + i] = cast_value<T>(-v);
  }
}

template <typename T>
TargetStats nll_loss_backward_typed(const ClassDev& g0, const T* grad, bool grad_is_scalar,
                                    bool mean, T* dx, const TargetCheck& check) {
  LaunchContext ctx(dx);
  DeviceScratch count(ctx.device, sizeof(Counter));
  Counter* valid = count.as<Counter>();
  const ClassDev g = armed(g0, ctx.device, check, valid, ctx.stream);
  const size_t bytes = static_cast<size_t>(g.outer * g.classes * g.inner) * sizeof(T);
  FABRIC_CUDA_CHECK(cudaMemsetAsync(dx, 0, bytes, ctx.stream));  // all-zero bits: +0.0
  const unsigned blocks = grid_dim(flat_blocks(g.positions));
  count_targets_kernel<<<blocks, 256, 0, ctx.stream>>>(g, valid);
  FABRIC_CUDA_CHECK_LAUNCH();
  nll_loss_backward_kernel<T>
      <<<blocks, 256, 0, ctx.stream>>>(g, grad, grad_is_scalar, mean, valid, dx);
  FABRIC_CUDA_CHECK_LAUNCH();
  name_lowest_bad_target(g, ctx.stream);
  return {};
}

TargetStats nll_loss_backward_kernel_cuda(const ClassGeometry& geo, DType dt, const void* target,
                                          DType tdt, int64_t ignore_index, const void* grad,
                                          bool grad_is_scalar, bool mean, void* dlog_probs,
                                          const TargetCheck& check) {
  const ClassDev g = make_class_dev(geo, nullptr, dt, target, tdt, ignore_index, 0.0);
  if (g.positions == 0 || g.classes == 0) return {};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    return nll_loss_backward_typed<T>(g, static_cast<const T*>(grad), grad_is_scalar, mean,
                                      static_cast<T*>(dlog_probs), check);
  };
  if (dt == DType::float64) return run(double{});
  if (dt == DType::float16) return run(Half{});
  if (dt == DType::bfloat16) return run(BFloat16{});
  return run(float{});
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

// ---- binary_cross_entropy's input check: every element in [0, 1] -----------------------------

template <typename A>
__global__ void check_unit_interval_kernel(const char* x, DType dt, int64_t isz, int64_t n,
                                           DeviceRangeCheck c) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const A v = load_as<A>(x + i * isz, dt);
    if (!(v >= A(0) && v <= A(1))) report_failed_value(c, i);  // NaN fails too
  }
}

void check_unit_interval_cuda(const void* x, DType dt, int64_t n, uint64_t check_id) {
  FABRIC_CHECK(is_floating(dt) && !is_fp8(dt), DTypeError,
               "binary_cross_entropy: no CUDA input check for ", dtype_name(dt),
               " (expected float64/float32/float16/bfloat16)");
  FABRIC_CHECK(check_id != 0, ValueError,
               "binary_cross_entropy (CUDA): the input check needs an armed deferred check");
  if (n == 0) return;
  LaunchContext ctx(x);
  const DeviceRangeCheck c = device_range_check(ctx.device, check_id, 0);
  const char* p = static_cast<const char*>(x);
  const unsigned blocks = grid_dim(flat_blocks(n));
  // float16/bfloat16 widen to float exactly, so the test is the one on the stored value.
  if (dt == DType::float64) {
    check_unit_interval_kernel<double><<<blocks, 256, 0, ctx.stream>>>(p, dt, itemsize(dt), n, c);
  } else {
    check_unit_interval_kernel<float><<<blocks, 256, 0, ctx.stream>>>(p, dt, itemsize(dt), n, c);
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(check_unit_interval_stub, cuda, &cuda::check_unit_interval_cuda);
FABRIC_REGISTER_KERNEL(cross_entropy_stub, cuda, &cuda::cross_entropy_kernel_cuda);
FABRIC_REGISTER_KERNEL(cross_entropy_backward_stub, cuda,
                       &cuda::cross_entropy_backward_kernel_cuda);
FABRIC_REGISTER_KERNEL(nll_loss_stub, cuda, &cuda::nll_loss_kernel_cuda);
FABRIC_REGISTER_KERNEL(nll_loss_backward_stub, cuda, &cuda::nll_loss_backward_kernel_cuda);
FABRIC_REGISTER_KERNEL(squared_diff_stub, cuda, &cuda::squared_diff_kernel_cuda);
}  // namespace fabric
