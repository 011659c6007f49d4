// The wide layer_norm / rms_norm kernels of norm_rows_wide.h: the per-thread arithmetic is the
// header's, these kernels add the loads, the row folds (row_allreduce) and the block folds.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/device_scratch.h"
#include "kernels/cuda/norm_rows_wide.h"
#include "kernels/cuda/reduce_util.cuh"

namespace fabric::cuda {
namespace {

// E elements of T at an address aligned to their size (16 bytes for x's dtype, 8 for a bf16/f16
// output or gradient beside float32 rows), as floats; and back, rounded as cast_value.
template <typename T, int E>
struct alignas(sizeof(T) * E) Piece {
  T v[E];
};
struct WideLoad {
  template <typename T, int E>
  __device__ __forceinline__ void operator()(const T* p, float (&v)[E]) const {
    const Piece<T, E> x = *reinterpret_cast<const Piece<T, E>*>(p);
#pragma unroll
    for (int j = 0; j < E; ++j) v[j] = static_cast<float>(x.v[j]);
  }
};
struct WideStore {
  template <typename T, int E>
  __device__ __forceinline__ void operator()(T* p, const float (&v)[E]) const {
    Piece<T, E> x;
#pragma unroll
    for (int j = 0; j < E; ++j) x.v[j] = cast_value<T>(v[j]);
    *reinterpret_cast<Piece<T, E>*>(p) = x;
  }
};

// T: x's dtype (and the weight's, bias's and dx's); Y: the output's (forward) or dy's (backward).
template <typename T, typename Y>
struct WideArgs {
  NormRowsWide s;
  const T* x;
  const Y* dy;  // backward
  const T* weight;
  const T* bias;
  Y* y;   // forward
  T* dx;  // backward
  float* mean;
  float* rstd;
  float* partial;  // backward: a row of dweight | dbias (2 cols) per block
  float inv_n, eps;
  bool rms;
};

// ---- forward: a row per thread row ------------------------------------------------------------

template <bool kW, bool kB, int K, typename T, typename Y>
__global__ void __launch_bounds__(kNormRowsBlockThreads)
    norm_rows_forward_kernel(WideArgs<T, Y> a) {
  constexpr int E = kNormRowsPieceBytes / sizeof(T);
  const int lane = static_cast<int>(threadIdx.x);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const int live = row < a.s.rows ? a.s.live(lane) : 0;
  float v[K][E];
  norm_rows_load(a.x, a.s, row, lane, live, WideLoad{}, v);
  float mean = 0.0f;
  if (!a.rms) {
    const float sum = row_allreduce(norm_rows_thread_sum<true>(v, live, 0.0f), Plus<float>{});
    mean = rounded::mul(sum, a.inv_n);
  }
  const float sq = row_allreduce(norm_rows_thread_sum<false>(v, live, mean), Plus<float>{});
  const float rstd = norm::norm_rstd(sq, a.inv_n, a.eps);
  if (row >= a.s.rows) return;
  if (lane == 0) {
    if (a.mean) a.mean[row] = mean;
    a.rstd[row] = rstd;
  }
  norm_rows_write<kW, kB>(a.y, a.weight, a.bias, a.s, row, lane, live, v, mean, rstd,
                          WideLoad{}, WideStore{});
}

// ---- backward: dx per row, dweight/dbias per block, folded by a second kernel ------------------

template <bool kW, int K, typename T, typename Y>
__global__ void __launch_bounds__(kNormRowsBlockThreads)
    norm_rows_backward_kernel(WideArgs<T, Y> a) {
  constexpr int E = kNormRowsPieceBytes / sizeof(T);
  const int lane = static_cast<int>(threadIdx.x), y = static_cast<int>(threadIdx.y);
  const int live = a.s.live(lane);
  float dw[K][E], db[K][E];
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int j = 0; j < E; ++j) dw[k][j] = db[k][j] = 0.0f;
  const int64_t steps = norm_rows_backward_steps(a.s, blockIdx.x);
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t row = norm_rows_backward_row(a.s, blockIdx.x, y, step);
    const bool here = row < a.s.rows;
    const int n = here ? live : 0;
    float xhat[K][E], g[K][E];
    norm_rows_load(a.x, a.s, row, lane, n, WideLoad{}, xhat);
    norm_rows_load(a.dy, a.s, row, lane, n, WideLoad{}, g);
    const float mean = here && !a.rms ? a.mean[row] : 0.0f;
    const float rstd = here ? a.rstd[row] : 0.0f;
    float sum_g, sum_gx;
    norm_rows_backward_sums<kW>(xhat, g, a.weight, a.s, lane, n, mean, rstd, WideLoad{}, sum_g,
                                sum_gx);
    sum_g = row_allreduce(sum_g, Plus<float>{});
    sum_gx = row_allreduce(sum_gx, Plus<float>{});
    if (!here) continue;
    const float mean_g = a.rms ? 0.0f : rounded::mul(sum_g, a.inv_n);
    norm_rows_backward_dx<kW>(a.dx, xhat, g, a.weight, a.s, row, lane, n, rstd, mean_g,
                              rounded::mul(sum_gx, a.inv_n), WideLoad{}, WideStore{}, dw, db);
  }
  if (a.partial == nullptr) return;
  // The thread rows' column sums, folded in thread-row order through shared memory (one of the
  // two sums at a time: lanes * K * E floats, at most 16 KiB), into the block's partial row.
  __shared__ float fold[kNormRowsBlockThreads * kNormRowsMaxElems / 2];
  static_assert(kNormRowsBlockThreads * kNormRowsMaxElems / 2 >= 128 * kNormRowsMaxElems,
                "a thread row of up to 128 lanes folds through shared memory");
  float* row_out = a.partial + static_cast<int64_t>(blockIdx.x) * 2 * a.s.cols;
  const int rpb = static_cast<int>(blockDim.y);
  auto fold_rows = [&](float(&acc)[K][E], float* dst) {
    for (int from = 1; from < rpb; ++from) {
      if (y == from)
#pragma unroll
        for (int k = 0; k < K; ++k)
#pragma unroll
          for (int j = 0; j < E; ++j) fold[(k * blockDim.x + lane) * E + j] = acc[k][j];
      __syncthreads();
      if (y == 0)
#pragma unroll
        for (int k = 0; k < K; ++k)
#pragma unroll
          for (int j = 0; j < E; ++j) acc[k][j] += fold[(k * blockDim.x + lane) * E + j];
      __syncthreads();
    }
    if (y != 0) return;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (k >= live) break;
      const int64_t c = a.s.slot_start(lane, k);
#pragma unroll
      for (int j = 0; j < E; ++j) dst[c + j] = acc[k][j];
    }
  };
  fold_rows(dw, row_out);
  fold_rows(db, row_out + a.s.cols);
}

// Column c of the blocks' partial rows (2 cols wide) summed in a fixed order: thread row t takes
// blocks t, t + 8, ..., then the 8 sums fold in thread-row order.
__global__ void __launch_bounds__(kNormRowsFinishX* kNormRowsFinishY)
    norm_rows_finish_kernel(const float* partial, int64_t blocks, int64_t cols, char* dweight,
                            DType dw_dtype, char* dbias, DType db_dtype) {
  __shared__ float sums[kNormRowsFinishY][kNormRowsFinishX];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kNormRowsFinishX + threadIdx.x;
  float acc = 0.0f;
  if (c < 2 * cols)
    for (int64_t b = threadIdx.y; b < blocks; b += kNormRowsFinishY)
      acc += partial[b * 2 * cols + c];
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || c >= 2 * cols) return;
#pragma unroll
  for (int t = 1; t < kNormRowsFinishY; ++t) acc += sums[t][threadIdx.x];
  if (c < cols) {
    if (dweight) store_as<float>(dweight + c * itemsize(dw_dtype), dw_dtype, acc);
  } else if (dbias) {
    store_as<float>(dbias + (c - cols) * itemsize(db_dtype), db_dtype, acc);
  }
}

// Blocks of kNormRowsBlockThreads that one multiprocessor keeps resident for `kernel` (its
// registers decide): the backward's grid is one wave of them, so that few partial rows of
// dweight/dbias are left to fold. Asked once per kernel, of the first device that runs it (a
// machine's GPUs of another model would get another grid size, not other results).
template <auto kernel>
int resident_per_sm() {
  static const int per_sm = [] {
    int blocks = 0;
    FABRIC_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kNormRowsBlockThreads, 0));
    return blocks < 1 ? 1 : blocks;
  }();
  return per_sm;
}

// Calls f(T{}, Y{}) for x's dtype T and the output's (or dy's) dtype Y: T itself, or bf16/f16
// beside float32 rows (norm_rows_wide_fits took only these).
template <typename F>
void visit_wide_dtypes(DType x, DType y, F&& f) {
  if (x == DType::bfloat16) return f(BFloat16{}, BFloat16{});
  if (x == DType::float16) return f(Half{}, Half{});
  if (y == DType::bfloat16) return f(float{}, BFloat16{});
  if (y == DType::float16) return f(float{}, Half{});
  f(float{}, float{});
}

// Calls f(std::integral_constant<int, K>) for the plan's pieces a thread K (1, 2, 4, 6 or 8),
// instantiating only the K that rows of T can have (kNormRowsMaxElems elements a thread).
template <typename T, typename F>
void visit_per_thread(int per_thread, F&& f) {
  constexpr int kMax = kNormRowsMaxElems * static_cast<int>(sizeof(T)) / kNormRowsPieceBytes;
  static_assert(kMax == 4 || kMax == 8, "a piece of 4 or 8 elements");
  switch (per_thread) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
  }
  if constexpr (kMax == 8) {
    if (per_thread == 6) return f(std::integral_constant<int, 6>{});
    return f(std::integral_constant<int, 8>{});
  }
}

}  // namespace

void norm_rows_wide_forward(const NormArgs& n, const NormRowsWide& s) {
  LaunchContext ctx(n.y);
  const dim3 block(static_cast<unsigned>(s.lanes), static_cast<unsigned>(s.rows_per_block()));
  visit_wide_dtypes(n.x_dtype, n.y_dtype, [&](auto x_tag, auto y_tag) {
    using T = decltype(x_tag);
    using Y = decltype(y_tag);
    WideArgs<T, Y> a{};
    a.s = s;
    a.x = static_cast<const T*>(n.x);
    a.weight = static_cast<const T*>(n.weight);
    a.bias = n.rms ? nullptr : static_cast<const T*>(n.bias);
    a.y = static_cast<Y*>(n.y);
    a.mean = n.rms ? nullptr : static_cast<float*>(n.mean);
    a.rstd = static_cast<float*>(n.rstd);
    a.inv_n = 1.0f / static_cast<float>(n.cols);
    a.eps = static_cast<float>(n.eps);
    a.rms = n.rms;
    const unsigned grid = grid_dim(s.blocks);
    visit_per_thread<T>(s.per_thread, [&](auto k) {
      constexpr int K = decltype(k)::value;
      if (a.weight && a.bias)
        norm_rows_forward_kernel<true, true, K><<<grid, block, 0, ctx.stream>>>(a);
      else if (a.weight)
        norm_rows_forward_kernel<true, false, K><<<grid, block, 0, ctx.stream>>>(a);
      else
        norm_rows_forward_kernel<false, false, K><<<grid, block, 0, ctx.stream>>>(a);
    });
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void norm_rows_wide_backward(const NormBackwardArgs& n, const NormRowsWide& plan) {
  LaunchContext ctx(n.dx);
  char* dbias = n.rms ? nullptr : static_cast<char*>(n.dbias);
  const bool params = n.dweight != nullptr || dbias != nullptr;
  const dim3 block(static_cast<unsigned>(plan.lanes), static_cast<unsigned>(plan.rows_per_block()));
  visit_wide_dtypes(n.x_dtype, n.dy_dtype, [&](auto x_tag, auto dy_tag) {
    using T = decltype(x_tag);
    using Y = decltype(dy_tag);
    visit_per_thread<T>(plan.per_thread, [&](auto k) {
      constexpr int K = decltype(k)::value;
      const auto kernel = n.weight ? norm_rows_backward_kernel<true, K, T, Y>
                                   : norm_rows_backward_kernel<false, K, T, Y>;
      const int per_sm = n.weight ? resident_per_sm<norm_rows_backward_kernel<true, K, T, Y>>()
                                  : resident_per_sm<norm_rows_backward_kernel<false, K, T, Y>>();
      WideArgs<T, Y> a{};
      a.s = norm_rows_backward_grid(
          plan, static_cast<int64_t>(per_sm) * multiprocessor_count(ctx.device));
      DeviceScratch partial(ctx.device,
                            params ? static_cast<size_t>(a.s.blocks * 2 * plan.cols) * 4 : 0);
      a.x = static_cast<const T*>(n.x);
      a.dy = static_cast<const Y*>(n.dy);
      a.weight = static_cast<const T*>(n.weight);
      a.dx = static_cast<T*>(n.dx);
      a.mean = n.rms ? nullptr : static_cast<float*>(const_cast<void*>(n.mean));
      a.rstd = static_cast<float*>(const_cast<void*>(n.rstd));
      a.partial = params ? partial.as<float>() : nullptr;
      a.inv_n = 1.0f / static_cast<float>(n.cols);
      a.rms = n.rms;
      kernel<<<grid_dim(a.s.blocks), block, 0, ctx.stream>>>(a);
      FABRIC_CUDA_CHECK_LAUNCH();
      if (!params) return;
      norm_rows_finish_kernel<<<grid_dim((2 * plan.cols + kNormRowsFinishX - 1) / kNormRowsFinishX),
                                dim3(kNormRowsFinishX, kNormRowsFinishY), 0, ctx.stream>>>(
          partial.as<float>(), a.s.blocks, plan.cols, static_cast<char*>(n.dweight), n.weight_dtype,
          dbias, n.dbias_dtype);
      FABRIC_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace fabric::cuda
