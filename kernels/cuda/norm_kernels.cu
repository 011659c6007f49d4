// CUDA layer_norm and rms_norm, forward and backward, over contiguous (rows, cols), with the
// semantics of kernels/cpu/norm.cpp: float32 math for fp32/fp16/bf16 (float64 for float64),
// population variance, rstd = 1 / sqrt(var + eps), mean/rstd saved in the accumulation dtype.
// Forward: blockDim.x threads per row, Welford per thread merged across the row (Chan), then the
// output pass, whose rstd and elements round as the CPU's (tensor/norm_element.h; the statistics
// themselves are summed in another order than the CPU's). Backward: dx per row from two row sums;
// dweight/dbias as column sums over rows split across blocks and folded in a fixed order.
// Rows of float32/bf16/f16 in whole 16-byte pieces go to norm_rows_wide.h's kernels instead (each
// row read once into registers); these serve float64 and the rest.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/norm_rows_wide.h"
#include "kernels/cuda/norm_util.cuh"
#include "kernels/cuda/reduce_util.cuh"
#include "kernels/cuda/welford.cuh"
#include "tensor/norm_element.h"
#include "tensor/reduce_kernels.h"

namespace fabric::cuda {

// In Welford's own namespace, where row_allreduce's unqualified call finds it (argument-dependent
// lookup does not look into this file's unnamed namespace).
template <typename A>
__device__ __forceinline__ Welford<A> shfl_xor(Welford<A> w, int lane) {
  return {cuda::shfl_xor(w.n, lane), cuda::shfl_xor(w.mean, lane), cuda::shfl_xor(w.m2, lane)};
}

namespace {

struct NormDev {
  int64_t rows, cols;
  const char* x;
  const char* dy;
  const char* weight;
  DType weight_dtype;
  int64_t wsz;
  const char* bias;
  DType bias_dtype;
  int64_t bsz;
  char* y;  // forward output, or backward dx
  void* mean;
  void* rstd;
  double eps;
  bool rms;
};

template <typename A>
__device__ __forceinline__ A param_at(const char* p, DType dt, int64_t sz, int64_t j) {
  return load_as<A>(p + j * sz, dt);
}

// ---- forward ----------------------------------------------------------------------------------

template <typename A, typename T, typename Y, typename Load>
__global__ void __launch_bounds__(kRowBlockMaxThreads) norm_forward_kernel(NormDev a, Load load) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = row < a.rows;
  const int64_t N = a.cols, bx = blockDim.x, base = row * N;
  A mean = 0, rstd;
  if (a.rms) {
    A ss = 0;
    if (live) {
#pragma unroll 4
      for (int64_t j = threadIdx.x; j < N; j += bx) {
        const A v = load(a.x, base + j);
        ss += v * v;
      }
    }
    ss = row_allreduce(ss, Plus<A>{});
    rstd = norm::norm_rstd(ss, A(1) / static_cast<A>(N), static_cast<A>(a.eps));
  } else {
    Welford<A> w{0, 0, 0};
    if (live) {
      for (int64_t j = threadIdx.x; j < N; j += bx) {
        const A v = load(a.x, base + j);
        w.n += A(1);
        const A d = v - w.mean;
        w.mean += d / w.n;
        w.m2 += d * (v - w.mean);
      }
    }
    w = row_allreduce(w, WelfordCombine<A>{});
    mean = w.mean;
    rstd = norm::norm_rstd(w.m2, A(1) / static_cast<A>(N), static_cast<A>(a.eps));
  }
  if (!live) return;
  if (threadIdx.x == 0) {
    if (a.mean) static_cast<A*>(a.mean)[row] = mean;
    static_cast<A*>(a.rstd)[row] = rstd;
  }
  // Each element as the CPU rounds it (tensor/norm_element.h), weight and bias known per launch.
  auto write = [&](auto has_w, auto has_b) {
    constexpr bool kW = decltype(has_w)::value, kB = decltype(has_b)::value;
    for (int64_t j = threadIdx.x; j < N; j += bx) {
      const A w = kW ? param_at<A>(a.weight, a.weight_dtype, a.wsz, j) : A(0);
      const A b = kB ? param_at<A>(a.bias, a.bias_dtype, a.bsz, j) : A(0);
      const A v = norm::norm_element<kW, kB>(load(a.x, base + j), mean, rstd, w, b);
      store(a.y + (base + j) * static_cast<int64_t>(sizeof(Y)), cast_value<Y>(v));
    }
  };
  using Yes = std::true_type;
  using No = std::false_type;
  if (a.weight)
    a.bias ? write(Yes{}, Yes{}) : write(Yes{}, No{});
  else
    a.bias ? write(No{}, Yes{}) : write(No{}, No{});
}

// Calls f(Y{}) for the dtype of the output (or of dy) beside an x of T: T itself, or bfloat16 /
// float16 beside a float32 x (a cast to the autocast dtype fused into the norm).
template <typename T, typename F>
void visit_norm_out_dtype(DType dt, F&& f) {
  if (dt == dtype_v<T>) return f(T{});
  if constexpr (std::is_same_v<T, float>) {
    if (dt == DType::bfloat16) return f(BFloat16{});
    if (dt == DType::float16) return f(Half{});
  }
  throw DTypeError(detail::cat("layer_norm/rms_norm: no CUDA kernel for ", dtype_name(dtype_v<T>),
                               " rows with a ", dtype_name(dt), " output or gradient"));
}

void check_param(const char* what, const void* p, DType t) {
  FABRIC_CHECK(!p || (is_floating(t) && !is_fp8(t)), DTypeError, "layer_norm/rms_norm: ", what,
               " must be float64/float32/float16/bfloat16, got ", dtype_name(t));
}

void norm_kernel_cuda(const NormArgs& n) {
  if (n.rows == 0 || n.cols == 0) return;
  check_param("weight", n.weight, n.weight_dtype);
  check_param("bias", n.rms ? nullptr : n.bias, n.bias_dtype);
  if (NormRowsWide plan; norm_rows_wide_fits(n, &plan)) return norm_rows_wide_forward(n, plan);
  NormDev a{};
  a.rows = n.rows;
  a.cols = n.cols;
  a.x = static_cast<const char*>(n.x);
  a.weight = static_cast<const char*>(n.weight);
  a.weight_dtype = n.weight_dtype;
  a.wsz = itemsize(n.weight_dtype);
  a.bias = n.rms ? nullptr : static_cast<const char*>(n.bias);
  a.bias_dtype = n.bias_dtype;
  a.bsz = itemsize(n.bias_dtype);
  a.y = static_cast<char*>(n.y);
  a.mean = n.rms ? nullptr : n.mean;
  a.rstd = n.rstd;
  a.eps = n.eps;
  a.rms = n.rms;
  LaunchContext ctx(n.y);
  const dim3 block = row_block(n.cols);
  const int64_t blocks = (n.rows + block.y - 1) / block.y;
  visit_float_dtype("layer_norm/rms_norm", n.x_dtype, [&](auto t, auto acc, auto load) {
    using T = decltype(t);
    using A = decltype(acc);
    visit_norm_out_dtype<T>(n.y_dtype, [&](auto y) {
      norm_forward_kernel<A, T, decltype(y)><<<grid_dim(blocks), block, 0, ctx.stream>>>(a, load);
    });
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- backward: dx -----------------------------------------------------------------------------
// g = dy * w, xhat = (x - mean) * rstd; dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
// (rms: without mean(g)).

template <typename A, typename T, typename Load, typename DyLoad>
__global__ void __launch_bounds__(kRowBlockMaxThreads)
    norm_backward_dx_kernel(NormDev a, Load load, DyLoad dy_load) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = row < a.rows;
  const int64_t N = a.cols, bx = blockDim.x, base = row * N;
  const A m = live && !a.rms ? static_cast<const A*>(a.mean)[row] : A(0);
  const A rs = live ? static_cast<const A*>(a.rstd)[row] : A(0);
  Sum2<A> s{0, 0};  // sum(g), sum(g * xhat)
  if (live) {
    for (int64_t j = threadIdx.x; j < N; j += bx) {
      A g = dy_load(a.dy, base + j);
      if (a.weight) g = g * param_at<A>(a.weight, a.weight_dtype, a.wsz, j);
      const A xhat = (load(a.x, base + j) - m) * rs;
      s.a += g;
      s.b += g * xhat;
    }
  }
  s = row_allreduce(s, Sum2Combine<A>{});
  if (!live) return;
  const A inv_n = A(1) / static_cast<A>(N);
  const A mg = a.rms ? A(0) : s.a * inv_n, mgx = s.b * inv_n;
  for (int64_t j = threadIdx.x; j < N; j += bx) {
    A g = dy_load(a.dy, base + j);
    if (a.weight) g = g * param_at<A>(a.weight, a.weight_dtype, a.wsz, j);
    const A xhat = (load(a.x, base + j) - m) * rs;
    store(a.y + (base + j) * static_cast<int64_t>(sizeof(T)),
          cast_value<T>(rs * (g - mg - xhat * mgx)));
  }
}

// ---- backward: dweight = sum_rows dy * xhat, dbias = sum_rows dy
// ---------------------------------

constexpr int kColX = 32, kColY = 8;

// Block (kColX, kColY): kColX consecutive columns, kColY threads down the rows of this block's
// split. Partials go to part_w/part_b[split * cols + j] when there are several splits.
template <typename A, typename Load, typename DyLoad>
__global__ void norm_backward_params_kernel(NormDev a, Load load, DyLoad dy_load,
                                            int64_t rows_per_split,
                                            char* dweight, DType dw_dtype, char* dbias,
                                            DType db_dtype, A* part_w, A* part_b) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  const bool live = j < a.cols;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows_per_split;
  const int64_t r1 = r0 + rows_per_split < a.rows ? r0 + rows_per_split : a.rows;
  Sum2<A> s{0, 0};  // dweight, dbias
  if (live) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) {
      const int64_t off = r * a.cols + j;
      const A dy = dy_load(a.dy, off);
      const A m = a.rms ? A(0) : static_cast<const A*>(a.mean)[r];
      s.a += dy * ((load(a.x, off) - m) * static_cast<const A*>(a.rstd)[r]);
      s.b += dy;
    }
  }
  s = col_reduce(s, Sum2Combine<A>{});
  if (threadIdx.y != 0 || !live) return;
  if (gridDim.y == 1) {
    if (dweight) store_as<A>(dweight + j * itemsize(dw_dtype), dw_dtype, s.a);
    if (dbias) store_as<A>(dbias + j * itemsize(db_dtype), db_dtype, s.b);
  } else {
    part_w[static_cast<int64_t>(blockIdx.y) * a.cols + j] = s.a;
    part_b[static_cast<int64_t>(blockIdx.y) * a.cols + j] = s.b;
  }
}

template <typename A>
__global__ void norm_backward_params_finish_kernel(int64_t cols, int64_t splits, const A* part_w,
                                                   const A* part_b, char* dweight, DType dw_dtype,
                                                   char* dbias, DType db_dtype) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  A w = 0, b = 0;
  for (int64_t s = 0; s < splits; ++s) {
    w += part_w[s * cols + j];
    b += part_b[s * cols + j];
  }
  if (dweight) store_as<A>(dweight + j * itemsize(dw_dtype), dw_dtype, w);
  if (dbias) store_as<A>(dbias + j * itemsize(db_dtype), db_dtype, b);
}

void norm_backward_kernel_cuda(const NormBackwardArgs& n) {
  if (n.rows == 0 || n.cols == 0) return;
  check_param("weight", n.weight, n.weight_dtype);
  char* dweight = static_cast<char*>(n.dweight);
  char* dbias = n.rms ? nullptr : static_cast<char*>(n.dbias);
  if (dbias) check_param("dbias", dbias, n.dbias_dtype);
  if (!n.dx && !dweight && !dbias) return;
  if (NormRowsWide plan; norm_rows_wide_fits(n, &plan)) return norm_rows_wide_backward(n, plan);
  NormDev a{};
  a.rows = n.rows;
  a.cols = n.cols;
  a.x = static_cast<const char*>(n.x);
  a.dy = static_cast<const char*>(n.dy);
  a.weight = static_cast<const char*>(n.weight);
  a.weight_dtype = n.weight_dtype;
  a.wsz = itemsize(n.weight_dtype);
  a.y = static_cast<char*>(n.dx);
  a.mean = n.rms ? nullptr : const_cast<void*>(n.mean);
  a.rstd = const_cast<void*>(n.rstd);
  a.rms = n.rms;
  LaunchContext ctx(n.dx ? n.dx : dweight ? static_cast<void*>(dweight) : dbias);
  visit_float_dtype("layer_norm/rms_norm", n.x_dtype, [&](auto t, auto acc, auto load) {
    using T = decltype(t);
    using A = decltype(acc);
    visit_norm_out_dtype<T>(n.dy_dtype, [&](auto dy) {
      const TypedLoad<decltype(dy), A> dy_load;
      if (n.dx) {
        const dim3 block = row_block(n.cols);
        const int64_t blocks = (n.rows + block.y - 1) / block.y;
        norm_backward_dx_kernel<A, T><<<grid_dim(blocks), block, 0, ctx.stream>>>(a, load, dy_load);
        FABRIC_CUDA_CHECK_LAUNCH();
      }
      if (!dweight && !dbias) return;
      // Split the rows so that the grid covers the GPU a few times over, each split at least
      // 32 rows per thread row.
      const int64_t col_blocks = (n.cols + kColX - 1) / kColX;
      const int64_t target = 4 * static_cast<int64_t>(multiprocessor_count(ctx.device));
      int64_t splits = 1;
      if (col_blocks < target)
        splits = std::clamp<int64_t>(
            std::min((target + col_blocks - 1) / col_blocks, n.rows / (kColY * 32)), 1, 1024);
      const int64_t rows_per_split = (n.rows + splits - 1) / splits;
      splits = (n.rows + rows_per_split - 1) / rows_per_split;
      DeviceScratch part(ctx.device,
                         splits > 1 ? static_cast<size_t>(2 * splits * n.cols) * sizeof(A) : 0);
      A* pw = part.as<A>();
      A* pb = splits > 1 ? pw + splits * n.cols : nullptr;
      norm_backward_params_kernel<A>
          <<<dim3(grid_dim(col_blocks), grid_dim(splits)), dim3(kColX, kColY), 0, ctx.stream>>>(
              a, load, dy_load, rows_per_split, dweight, n.weight_dtype, dbias, n.dbias_dtype, pw,
              pb);
      FABRIC_CUDA_CHECK_LAUNCH();
      if (splits > 1) {
        norm_backward_params_finish_kernel<A>
            <<<grid_dim((n.cols + 255) / 256), 256, 0, ctx.stream>>>(
                n.cols, splits, pw, pb, dweight, n.weight_dtype, dbias, n.dbias_dtype);
        FABRIC_CUDA_CHECK_LAUNCH();
      }
    });
  });
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(norm_stub, cuda, &cuda::norm_kernel_cuda);
FABRIC_REGISTER_KERNEL(norm_backward_stub, cuda, &cuda::norm_backward_kernel_cuda);
}  // namespace fabric
