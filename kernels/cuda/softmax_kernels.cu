// CUDA softmax / log_softmax and their backward over contiguous (outer, n, inner), with the
// semantics of kernels/cpu/softmax.cpp: float32 math (float64 when either side is float64), a row
// whose max is not finite (a NaN or +inf in it, or all -inf) comes out all NaN. Last-dim rows
// (inner == 1) get blockDim.x threads each, one pass keeping a running max and a rescaled sum,
// then one pass writing; other dims get one thread per (outer, inner) column.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/reduce_util.cuh"
#include "tensor/reduce_kernels.h"

namespace fabric::cuda {
namespace {

struct SoftmaxArgs {
  const char* in;  // forward: x; backward: dy
  const char* y;   // backward: the forward output
  DType in_dtype;
  char* out;
  DType out_dtype;
  int64_t outer, n, inner, osz;
  bool log;
};

// ---- forward ----------------------------------------------------------------------------------

template <typename A, typename Load>
__global__ void __launch_bounds__(kRowBlockMaxThreads)
    softmax_rows_kernel(SoftmaxArgs a, Load load) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = row < a.outer;
  const int64_t n = a.n, bx = blockDim.x;
  const char* x = a.in;
  const int64_t base = row * n;
  MaxSum<A> st = max_sum_init<A>();
  if (live) {
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < n; j += bx) max_sum_add(st, load(x, base + j));
  }
  st = row_allreduce(st, MaxSumCombine<A>{});
  if (!live) return;
  const bool nan = nan_row(st);
  // log: (x - max) - log(sum), the CPU's and torch's order (max + log(sum) first cancels).
  const A ls = dev_log(st.s), inv = A(1) / st.s;
  for (int64_t j = threadIdx.x; j < n; j += bx) {
    const A v = load(x, base + j);
    const A y = nan ? dev_nan<A>() : a.log ? (v - st.m) - ls : dev_exp(v - st.m) * inv;
    store_as<A>(a.out + (base + j) * a.osz, a.out_dtype, y);
  }
}

template <typename A>
__global__ void softmax_cols_kernel(SoftmaxArgs a, AnyLoad<A> load) {
  const int64_t cols = a.outer * a.inner;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < cols;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / a.inner, i = t - o * a.inner, base = o * a.n * a.inner + i;
    MaxSum<A> st = max_sum_init<A>();
    for (int64_t j = 0; j < a.n; ++j) max_sum_add(st, load(a.in, base + j * a.inner));
    const bool nan = nan_row(st);
    const A ls = dev_log(st.s), inv = A(1) / st.s;
    for (int64_t j = 0; j < a.n; ++j) {
      const int64_t off = base + j * a.inner;
      const A v = load(a.in, off);
      const A y = nan ? dev_nan<A>() : a.log ? (v - st.m) - ls : dev_exp(v - st.m) * inv;
      store_as<A>(a.out + off * a.osz, a.out_dtype, y);
    }
  }
}

int64_t col_blocks(int64_t cols) { return std::min<int64_t>((cols + 255) / 256, 65535); }

template <typename A>
void softmax_acc(const RowGeometry& g, const SoftmaxArgs& a) {
  LaunchContext ctx(a.out);
  if (g.inner == 1) {
    const dim3 block = row_block(g.n);
    const int64_t blocks = (g.outer + block.y - 1) / block.y;
    visit_loader<A>(a.in_dtype, [&](auto load) {
      softmax_rows_kernel<A><<<grid_dim(blocks), block, 0, ctx.stream>>>(a, load);
    });
  } else {
    softmax_cols_kernel<A><<<grid_dim(col_blocks(g.outer * g.inner)), 256, 0, ctx.stream>>>(
        a, AnyLoad<A>{a.in_dtype, itemsize(a.in_dtype)});
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

void check_float(const char* what, DType t) {
  FABRIC_CHECK(is_floating(t) && !is_fp8(t), DTypeError, what,
               ": expected float64/float32/float16/bfloat16, got ", dtype_name(t));
}

void softmax_kernel_cuda(const RowGeometry& g, const void* in, DType it, void* out, DType ot,
                         bool log) {
  check_float("softmax", it);
  check_float("softmax", ot);
  if (g.outer * g.n * g.inner == 0) return;
  const SoftmaxArgs a{static_cast<const char*>(in),
                      nullptr,
                      it,
                      static_cast<char*>(out),
                      ot,
                      g.outer,
                      g.n,
                      g.inner,
                      itemsize(ot),
                      log};
  if (it == DType::float64 || ot == DType::float64) return softmax_acc<double>(g, a);
  softmax_acc<float>(g, a);
}

// ---- backward ---------------------------------------------------------------------------------
// softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy).

template <typename A, typename Load>
__global__ void __launch_bounds__(kRowBlockMaxThreads)
    softmax_backward_rows_kernel(SoftmaxArgs a, Load load) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = row < a.outer;
  const int64_t n = a.n, bx = blockDim.x, base = row * n;
  A s = 0;
  if (live) {
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < n; j += bx)
      s += a.log ? load(a.in, base + j) : load(a.in, base + j) * load(a.y, base + j);
  }
  s = row_allreduce(s, Plus<A>{});
  if (!live) return;
  for (int64_t j = threadIdx.x; j < n; j += bx) {
    const A dy = load(a.in, base + j), y = load(a.y, base + j);
    const A dx = a.log ? dy - dev_exp(y) * s : y * (dy - s);
    store_as<A>(a.out + (base + j) * a.osz, a.out_dtype, dx);
  }
}

template <typename A>
__global__ void softmax_backward_cols_kernel(SoftmaxArgs a, AnyLoad<A> load) {
  const int64_t cols = a.outer * a.inner;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < cols;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / a.inner, i = t - o * a.inner, base = o * a.n * a.inner + i;
    A s = 0;
    for (int64_t j = 0; j < a.n; ++j) {
      const int64_t off = base + j * a.inner;
      s += a.log ? load(a.in, off) : load(a.in, off) * load(a.y, off);
    }
    for (int64_t j = 0; j < a.n; ++j) {
      const int64_t off = base + j * a.inner;
      const A dy = load(a.in, off), y = load(a.y, off);
      store_as<A>(a.out + off * a.osz, a.out_dtype, a.log ? dy - dev_exp(y) * s : y * (dy - s));
    }
  }
}

template <typename A>
void softmax_backward_acc(const RowGeometry& g, const SoftmaxArgs& a) {
  LaunchContext ctx(a.out);
  if (g.inner == 1) {
    const dim3 block = row_block(g.n);
    const int64_t blocks = (g.outer + block.y - 1) / block.y;
    visit_loader<A>(a.in_dtype, [&](auto load) {
      softmax_backward_rows_kernel<A><<<grid_dim(blocks), block, 0, ctx.stream>>>(a, load);
    });
  } else {
    softmax_backward_cols_kernel<A>
        <<<grid_dim(col_blocks(g.outer * g.inner)), 256, 0, ctx.stream>>>(
            a, AnyLoad<A>{a.in_dtype, itemsize(a.in_dtype)});
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

void softmax_backward_kernel_cuda(const RowGeometry& g, const void* dy, const void* y, DType dt,
                                  void* dx, DType xt, bool log) {
  check_float("softmax_backward", dt);
  check_float("softmax_backward", xt);
  if (g.outer * g.n * g.inner == 0) return;
  const SoftmaxArgs a{static_cast<const char*>(dy),
                      static_cast<const char*>(y),
                      dt,
                      static_cast<char*>(dx),
                      xt,
                      g.outer,
                      g.n,
                      g.inner,
                      itemsize(xt),
                      log};
  if (dt == DType::float64 || xt == DType::float64) return softmax_backward_acc<double>(g, a);
  softmax_backward_acc<float>(g, a);
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(softmax_stub, cuda, &cuda::softmax_kernel_cuda);
FABRIC_REGISTER_KERNEL(softmax_backward_stub, cuda, &cuda::softmax_backward_kernel_cuda);
}  // namespace fabric
