// CUDA reductions (sum/mean/norms/var/logsumexp/max/min), arg-reductions and cumsum, with the
// semantics of kernels/cpu/reduce.cpp: float32 accumulation for fp32/fp16/bf16, float64 for
// float64, int64 for integers and bool; NaN-propagating max/min; first index (first NaN) wins.
// Two layouts: row mode (threads along the reduced elements, tree-folded with warp shuffles) and
// column mode (threads along a contiguous kept dim, folded over the block's y threads); outputs
// with long reductions are split over several blocks whose partials a second kernel folds in a
// fixed order, so results do not depend on timing.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/col_sum_wide.h"
#include "kernels/cuda/float_family.h"
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/reduce_kernels.h"

namespace fabric::cuda {
namespace {

// ReduceGeometry in a form kernels take by value (plain arrays), with the totals.
struct Geo {
  const char* in;
  char* out;
  DType in_dtype, out_dtype;
  int nkeep, nred;
  int64_t keep_sizes[kMaxReduceDims], keep_in[kMaxReduceDims], keep_out[kMaxReduceDims];
  int64_t red_sizes[kMaxReduceDims], red_in[kMaxReduceDims];
  int64_t nout, nred_total;
  int64_t isz, osz;  // itemsizes of in and out
};

Geo make_geo(const ReduceGeometry& g) {
  Geo d{};
  d.in = g.in;
  d.out = g.out;
  d.in_dtype = g.in_dtype;
  d.out_dtype = g.out_dtype;
  d.isz = itemsize(g.in_dtype);
  d.osz = itemsize(g.out_dtype);
  d.nkeep = g.nkeep;
  for (int i = 0; i < g.nkeep; ++i) {
    d.keep_sizes[i] = g.keep_sizes[i];
    d.keep_in[i] = g.keep_in[i];
    d.keep_out[i] = g.keep_out[i];
  }
  if (g.nred == 0) {  // each output reads one element
    d.nred = 1;
    d.red_sizes[0] = 1;
    d.red_in[0] = 1;
  } else {
    d.nred = g.nred;
    for (int i = 0; i < g.nred; ++i) {
      d.red_sizes[i] = g.red_sizes[i];
      d.red_in[i] = g.red_in[i];
    }
  }
  d.nout = g.num_out();
  d.nred_total = 1;
  for (int i = 0; i < d.nred; ++i) d.nred_total *= d.red_sizes[i];
  return d;
}

// Offsets (elements) in the input and the output of output number o.
__device__ __forceinline__ void keep_offsets(const Geo& g, int64_t o, int64_t& in_off,
                                             int64_t& out_off) {
  in_off = 0;
  out_off = 0;
  for (int d = g.nkeep - 1; d >= 0; --d) {
    const int64_t s = g.keep_sizes[d], q = o / s, i = o - q * s;
    o = q;
    in_off += i * g.keep_in[d];
    out_off += i * g.keep_out[d];
  }
}

__device__ __forceinline__ int64_t red_offset(const Geo& g, int64_t r) {
  int64_t off = 0;
  for (int d = g.nred - 1; d >= 0; --d) {
    const int64_t s = g.red_sizes[d], q = r / s;
    off += (r - q * s) * g.red_in[d];
    r = q;
  }
  return off;
}

// What the fold's store does after the fold (floating accumulators only).
struct FinishParams {
  ReduceOp op;
  ReduceFinish finish;
  double divisor;
  double p;
  const void* center;  // accumulator values at output offsets, or null
};

template <typename A>
__device__ __forceinline__ A lse_shift(A c) {
  return (c == dev_inf<A>() || c == -dev_inf<A>()) ? A(0) : c;
}

// The center of the output at out_off (var's mean, logsumexp's shift).
template <typename A>
__device__ __forceinline__ A center_at(const FinishParams& fp, int64_t out_off) {
  if constexpr (std::is_floating_point_v<A>) {
    if (!fp.center) return A(0);
    const A c = static_cast<const A*>(fp.center)[out_off];
    return fp.op == ReduceOp::sum_exp_dev ? lse_shift(c) : c;
  } else {
    return A(0);
  }
}

enum FoldKind { kSum, kMax, kMin };

// One ReduceOp over accumulator A: the combine is compile-time (sum-like, max-like, min-like),
// the per-element map a uniform switch.
template <typename A, int K>
struct Fold {
  using Acc = A;
  ReduceOp op;
  A p;

  __device__ __forceinline__ A identity() const {
    if constexpr (K == kSum) {
      return A(0);
    } else if constexpr (std::is_floating_point_v<A>) {
      return K == kMax ? -dev_inf<A>() : dev_inf<A>();
    } else {
      return K == kMax ? INT64_MIN : INT64_MAX;
    }
  }
  __device__ __forceinline__ A map(A x, A c, int64_t) const {
    if constexpr (!std::is_floating_point_v<A>) {
      return x;  // integers fold sum/max/min of x only (checked on the host)
    } else {
      switch (op) {
        case ReduceOp::sum_abs:
        case ReduceOp::max_abs:
        case ReduceOp::min_abs:
          return x < A(0) ? A(-x) : x;
        case ReduceOp::sum_sq:
          return x * x;
        case ReduceOp::sum_pow:
          return dev_pow(x < A(0) ? A(-x) : x, p);
        case ReduceOp::count_nonzero:
          return x != A(0) ? A(1) : A(0);
        case ReduceOp::sum_sq_dev:
          return (x - c) * (x - c);
        case ReduceOp::sum_exp_dev:
          return dev_exp(x - c);
        default:
          return x;
      }
    }
  }
  __device__ __forceinline__ A operator()(A a, A b) const {
    if constexpr (K == kSum) {
      return a + b;
    } else if constexpr (K == kMax) {
      return (b > a || dev_isnan(b)) ? b : a;
    } else {
      return (b < a || dev_isnan(b)) ? b : a;
    }
  }
  __device__ __forceinline__ void store(const Geo& g, const FinishParams& fp, int64_t out_off, A r,
                                        A c) const {
    if constexpr (std::is_floating_point_v<A>) {
      if (fp.divisor != 1) r = r / static_cast<A>(fp.divisor);
      switch (fp.finish) {
        case ReduceFinish::none:
          break;
        case ReduceFinish::sqrt:
          r = dev_sqrt(r);
          break;
        case ReduceFinish::root:
          r = dev_pow(r, static_cast<A>(1.0 / fp.p));
          break;
        case ReduceFinish::log_add_center:
          r = dev_log(r) + lse_shift(c);
          break;
      }
    }
    store_as<A>(g.out + out_off * g.osz, g.out_dtype, r);
  }
};

// (value, index) of the running extreme; index -1 is "nothing seen yet".
template <typename A>
struct ArgAcc {
  A v;
  int64_t i;
};
template <typename A>
__device__ __forceinline__ ArgAcc<A> shfl_xor(ArgAcc<A> a, int m) {
  return {cuda::shfl_xor(a.v, m), cuda::shfl_xor(a.i, m)};
}

template <typename A>
struct ArgFold {
  using Acc = ArgAcc<A>;
  bool is_max;
  int64_t* indices;

  __device__ __forceinline__ Acc identity() const { return {A(0), -1}; }
  __device__ __forceinline__ Acc map(A x, A, int64_t r) const { return {x, r}; }
  // Order-free form of the CPU's scan: the first NaN wins, then the extreme, ties to the lower
  // index.
  __device__ __forceinline__ Acc operator()(Acc a, Acc b) const {
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    const bool na = dev_isnan(a.v), nb = dev_isnan(b.v);
    if (na || nb) {
      if (na && nb) return a.i < b.i ? a : b;
      return na ? a : b;
    }
    if (a.v == b.v) return a.i < b.i ? a : b;
    return (is_max ? a.v > b.v : a.v < b.v) ? a : b;
  }
  __device__ __forceinline__ void store(const Geo& g, const FinishParams&, int64_t out_off, Acc a,
                                        A) const {
    indices[out_off] = a.i;
    if (g.out) store_as<A>(g.out + out_off * g.osz, g.out_dtype, a.v);
  }
};

// Launch shape: row mode puts blockDim.x threads on each output's reduced elements and
// blockDim.y outputs in a block; column mode puts blockDim.x consecutive outputs in a block and
// blockDim.y threads on the reduced elements. gridDim.y splits each output's reduced range into
// chunks of `chunk` elements.
struct Config {
  bool col;
  int bx, by;
  int64_t blocks_x;
  int64_t splits, chunk;
};

// The most threads choose_config gives a block (row mode: 512 lanes on one output; column mode
// stays within 256). reduce_kernel declares it in __launch_bounds__, so ptxas keeps its registers
// within 64K / 512 = 128 a thread and a larger kernel cannot fail to launch on a GPU only.
constexpr int kReduceMaxThreads = 512;

Config choose_config(const Geo& g, int sms) {
  Config c{};
  const int64_t R = g.nred_total, nout = g.nout;
  c.col = g.nkeep > 0 && g.keep_in[g.nkeep - 1] == 1 && g.red_in[g.nred - 1] != 1 && R > 1;
  int lanes;
  if (c.col) {
    c.bx = static_cast<int>(std::min<int64_t>(32, pow2_ceil(nout)));
    c.by = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(256 / c.bx, pow2_ceil(R))));
    c.blocks_x = (nout + c.bx - 1) / c.bx;
    lanes = c.by;
  } else {
    c.bx = R <= 32 ? pow2_ceil(std::max<int64_t>(R, 1))
                   : std::clamp(pow2_ceil((R + 3) / 4), 32, kReduceMaxThreads);
    c.by = std::max(1, 256 / c.bx);
    c.blocks_x = (nout + c.by - 1) / c.by;
    lanes = c.bx;
  }
  // Few blocks for the GPU and long reductions: split them (each split keeps >= 32 elements per
  // lane, so the partials stay a small fraction of the input).
  const int64_t target = 4 * static_cast<int64_t>(sms);
  c.splits = 1;
  if (c.blocks_x < target && R >= static_cast<int64_t>(lanes) * 64) {
    c.splits = std::min<int64_t>(
        {(target + c.blocks_x - 1) / c.blocks_x, R / (static_cast<int64_t>(lanes) * 32), 4096});
    c.splits = std::max<int64_t>(c.splits, 1);
  }
  c.chunk = (R + c.splits - 1) / c.splits;
  if (c.chunk == 0) c.chunk = 1;
  c.splits = std::max<int64_t>(1, (R + c.chunk - 1) / c.chunk);
  return c;
}

// Folds the reduced elements i, i + step, ... < e of the output whose input starts at `base`,
// with four independent accumulators in flight on the common single-dim layout.
template <typename A, typename R, typename Load>
__device__ __forceinline__ typename R::Acc fold_range(const Geo& g, const R& r, const Load& load,
                                                      const char* base, int64_t i, int64_t e,
                                                      int64_t step, A c) {
  using Acc = typename R::Acc;
  Acc a0 = r.identity(), a1 = a0, a2 = a0, a3 = a0;
  if (g.nred == 1) {
    const int64_t rs = g.red_in[0];
    for (; i + 3 * step < e; i += 4 * step) {
      const A x0 = load(base, i * rs), x1 = load(base, (i + step) * rs);
      const A x2 = load(base, (i + 2 * step) * rs), x3 = load(base, (i + 3 * step) * rs);
      a0 = r(a0, r.map(x0, c, i));
      a1 = r(a1, r.map(x1, c, i + step));
      a2 = r(a2, r.map(x2, c, i + 2 * step));
      a3 = r(a3, r.map(x3, c, i + 3 * step));
    }
    for (; i < e; i += step) a0 = r(a0, r.map(load(base, i * rs), c, i));
  } else {
    for (; i < e; i += step) a0 = r(a0, r.map(load(base, red_offset(g, i)), c, i));
  }
  return r(r(a0, a1), r(a2, a3));
}

template <typename A, typename R, typename Load>
__global__ void __launch_bounds__(kReduceMaxThreads)
    reduce_kernel(Geo g, R r, Load load, FinishParams fp, Config cfg, typename R::Acc* partial) {
  using Acc = typename R::Acc;
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t o = cfg.col ? static_cast<int64_t>(blockIdx.x) * cfg.bx + tx
                            : static_cast<int64_t>(blockIdx.x) * cfg.by + ty;
  const bool live = o < g.nout;
  int64_t in_off = 0, out_off = 0;
  if (live) keep_offsets(g, o, in_off, out_off);
  const A c = live ? center_at<A>(fp, out_off) : A(0);
  const int64_t b = static_cast<int64_t>(blockIdx.y) * cfg.chunk;
  const int64_t e = b + cfg.chunk < g.nred_total ? b + cfg.chunk : g.nred_total;
  const int lane = cfg.col ? ty : tx;
  const int step = cfg.col ? cfg.by : cfg.bx;
  Acc acc = r.identity();
  if (live) {
    const char* base = g.in + in_off * g.isz;
    acc = fold_range<A>(g, r, load, base, b + lane, e, step, c);
  }
  acc = cfg.col ? col_reduce(acc, r) : row_allreduce(acc, r);
  if ((cfg.col ? ty : tx) != 0 || !live) return;
  if (gridDim.y == 1) {
    r.store(g, fp, out_off, acc, c);
  } else {
    partial[static_cast<int64_t>(blockIdx.y) * g.nout + o] = acc;
  }
}

// Folds the splits' partials of each output in split order and stores the result.
template <typename A, typename R>
__global__ void reduce_finish_kernel(Geo g, R r, FinishParams fp, int64_t splits,
                                     const typename R::Acc* partial) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= g.nout) return;
  int64_t in_off, out_off;
  keep_offsets(g, o, in_off, out_off);
  typename R::Acc acc = partial[o];
  for (int64_t s = 1; s < splits; ++s) acc = r(acc, partial[s * g.nout + o]);
  r.store(g, fp, out_off, acc, center_at<A>(fp, out_off));
}

template <typename A, typename R>
void run_reduce(const Geo& g, const R& r, const FinishParams& fp, const void* anchor) {
  if (g.nout == 0) return;
  LaunchContext ctx(anchor);
  const Config cfg = choose_config(g, multiprocessor_count(ctx.device));
  using Acc = typename R::Acc;
  DeviceScratch partial(
      ctx.device, cfg.splits > 1 ? static_cast<size_t>(cfg.splits * g.nout) * sizeof(Acc) : 0);
  visit_loader<A>(g.in_dtype, [&](auto load) {
    reduce_kernel<A, R, decltype(load)>
        <<<dim3(grid_dim(cfg.blocks_x), grid_dim(cfg.splits)), dim3(cfg.bx, cfg.by), 0,
           ctx.stream>>>(g, r, load, fp, cfg, partial.as<Acc>());
    FABRIC_CUDA_CHECK_LAUNCH();
  });
  if (cfg.splits > 1) {
    reduce_finish_kernel<A, R><<<grid_dim((g.nout + 255) / 256), 256, 0, ctx.stream>>>(
        g, r, fp, cfg.splits, partial.as<Acc>());
    FABRIC_CUDA_CHECK_LAUNCH();
  }
}

template <typename A>
void reduce_acc(ReduceOp op, const Geo& g, const ReduceParams& p) {
  const FinishParams fp{op, p.finish, p.divisor, p.p, p.center};
  const A pw = static_cast<A>(p.p);
  switch (op) {
    case ReduceOp::sum:
      return run_reduce<A>(g, Fold<A, kSum>{op, pw}, fp, g.out);
    case ReduceOp::max:
      return run_reduce<A>(g, Fold<A, kMax>{op, pw}, fp, g.out);
    case ReduceOp::min:
      return run_reduce<A>(g, Fold<A, kMin>{op, pw}, fp, g.out);
    default:
      break;
  }
  if constexpr (std::is_floating_point_v<A>) {
    switch (op) {
      case ReduceOp::sum_abs:
      case ReduceOp::sum_sq:
      case ReduceOp::sum_pow:
      case ReduceOp::count_nonzero:
      case ReduceOp::sum_sq_dev:
      case ReduceOp::sum_exp_dev:
        return run_reduce<A>(g, Fold<A, kSum>{op, pw}, fp, g.out);
      case ReduceOp::max_abs:
        return run_reduce<A>(g, Fold<A, kMax>{op, pw}, fp, g.out);
      case ReduceOp::min_abs:
        return run_reduce<A>(g, Fold<A, kMin>{op, pw}, fp, g.out);
      default:
        break;
    }
  }
  throw DTypeError(::fabric::detail::cat("reduce: op ", static_cast<int>(op),
                                         " is not defined for ", dtype_name(g.in_dtype)));
}

void check_dtypes(const char* what, DType in, DType out) {
  FABRIC_CHECK(!is_fp8(in) && !is_fp8(out), DTypeError, what, ": no CUDA kernel reads or writes ",
               dtype_name(is_fp8(in) ? in : out), " (fp8 values are converted, not computed on)");
}

// ---- column sums in 16-byte pieces (col_sum_wide.h) -------------------------------------------

// Eight consecutive elements from a 16-byte aligned address (cols % 8 == 0 and an aligned base).
template <typename T>
struct PieceLoad {
  __device__ __forceinline__ void operator()(const T* p, float (&v)[kColSumPiece]) const {
    struct alignas(16) Piece {
      T v[kColSumPiece];
    };
    const Piece x = *reinterpret_cast<const Piece*>(p);
#pragma unroll
    for (int j = 0; j < kColSumPiece; ++j) v[j] = static_cast<float>(x.v[j]);
  }
};

constexpr int kColSumThreads = kColSumBlockX * kColSumBlockY;
static_assert(kColSumThreads == kColSumBlockX * kColSumPiece, "one folding thread per column");

// Block (bx, split): 256 columns over the split's rows. The 8 thread rows' sums meet in shared
// memory; thread t then folds column t of the block in thread-row order.
template <typename T>
__global__ void __launch_bounds__(kColSumThreads)
    col_sum_wide_kernel(const T* in, ColSumWide s, float* partial, char* out, DType out_dtype) {
  __shared__ float sums[kColSumBlockY][kColSumThreads + 1];
  float acc[kColSumPiece];
  col_sum_wide_thread(in, s, blockIdx.x, static_cast<int>(threadIdx.x), blockIdx.y,
                      static_cast<int>(threadIdx.y), PieceLoad<T>{}, acc);
#pragma unroll
  for (int j = 0; j < kColSumPiece; ++j) sums[threadIdx.y][threadIdx.x * kColSumPiece + j] = acc[j];
  __syncthreads();
  const int t = static_cast<int>(threadIdx.y * kColSumBlockX + threadIdx.x);
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColSumThreads + t;
  if (col >= s.cols) return;
  float v = sums[0][t];
#pragma unroll
  for (int y = 1; y < kColSumBlockY; ++y) v += sums[y][t];
  if (gridDim.y == 1) {
    store_as<float>(out + col * itemsize(out_dtype), out_dtype, v);
  } else {
    partial[static_cast<int64_t>(blockIdx.y) * s.cols + col] = v;
  }
}

// The splits' partials of each column, in split order.
__global__ void col_sum_wide_finish_kernel(const float* partial, int64_t splits, int64_t cols,
                                           char* out, DType out_dtype) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  float v = partial[col];
  for (int64_t k = 1; k < splits; ++k) v += partial[k * cols + col];
  store_as<float>(out + col * itemsize(out_dtype), out_dtype, v);
}

void col_sum_wide(const ReduceGeometry& rg, const ColSumWide& shape) {
  LaunchContext ctx(rg.out);
  const ColSumWide s = plan_col_sum_wide(shape.rows, shape.cols, multiprocessor_count(ctx.device));
  DeviceScratch partial(ctx.device,
                        s.splits > 1 ? static_cast<size_t>(s.splits * s.cols) * sizeof(float) : 0);
  const dim3 grid(grid_dim(s.col_blocks()), grid_dim(s.splits));
  const dim3 block(kColSumBlockX, kColSumBlockY);
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    col_sum_wide_kernel<T><<<grid, block, 0, ctx.stream>>>(
        reinterpret_cast<const T*>(rg.in), s, partial.as<float>(), rg.out, rg.out_dtype);
    FABRIC_CUDA_CHECK_LAUNCH();
  };
  visit_f32_family("column sum", rg.in_dtype, run);
  if (s.splits > 1) {
    col_sum_wide_finish_kernel<<<grid_dim((s.cols + 255) / 256), 256, 0, ctx.stream>>>(
        partial.as<float>(), s.splits, s.cols, rg.out, rg.out_dtype);
    FABRIC_CUDA_CHECK_LAUNCH();
  }
}

void reduce_kernel_cuda(ReduceOp op, const ReduceGeometry& rg, const ReduceParams& p) {
  check_dtypes("reduce", rg.in_dtype, rg.out_dtype);
  if (ColSumWide shape; col_sum_wide_fits(op, rg, p, &shape)) return col_sum_wide(rg, shape);
  const Geo g = make_geo(rg);
  switch (reduce_acc_dtype(rg.in_dtype)) {
    case DType::float64:
      return reduce_acc<double>(op, g, p);
    case DType::float32:
      return reduce_acc<float>(op, g, p);
    default:
      return reduce_acc<int64_t>(op, g, p);
  }
}

void arg_reduce_kernel_cuda(bool is_max, const ReduceGeometry& rg, int64_t* indices) {
  check_dtypes("arg_reduce", rg.in_dtype, rg.out ? rg.out_dtype : rg.in_dtype);
  FABRIC_CHECK(rg.nred <= 1, ValueError, "arg_reduce: expected at most one reduced dim, got ",
               rg.nred);
  const Geo g = make_geo(rg);
  if (g.nout == 0 || g.nred_total == 0) return;
  const FinishParams fp{ReduceOp::max, ReduceFinish::none, 1.0, 2.0, nullptr};
  switch (reduce_acc_dtype(rg.in_dtype)) {
    case DType::float64:
      return run_reduce<double>(g, ArgFold<double>{is_max, indices}, fp, indices);
    case DType::float32:
      return run_reduce<float>(g, ArgFold<float>{is_max, indices}, fp, indices);
    default:
      return run_reduce<int64_t>(g, ArgFold<int64_t>{is_max, indices}, fp, indices);
  }
}

// ---- cumsum ---------------------------------------------------------------------------------

struct ScanArgs {
  const char* in;
  DType in_dtype;
  char* out;
  DType out_dtype;
  int64_t outer, len, inner, isz, osz;
};

constexpr int kScanThreads = 256;

// (outer, len) rows longer than a warp: one block per row, block-wide scans of kScanThreads
// elements with a carry.
template <typename A>
__global__ void cumsum_rows_kernel(ScanArgs s) {
  for (int64_t row = blockIdx.x; row < s.outer; row += gridDim.x) {
    const char* in = s.in + row * s.len * s.isz;
    char* out = s.out + row * s.len * s.osz;
    A carry = 0;
    for (int64_t b = 0; b < s.len; b += kScanThreads) {
      const int64_t i = b + threadIdx.x;
      const A x = i < s.len ? load_as<A>(in + i * s.isz, s.in_dtype) : A(0);
      A total;
      const A v = block_inclusive_scan(x, total);
      if (i < s.len) store_as<A>(out + i * s.osz, s.out_dtype, carry + v);
      carry += total;
    }
  }
}

// (outer, len, inner) with inner > 1, or short rows: one thread per (outer, inner) column,
// running down len.
template <typename A>
__global__ void cumsum_cols_kernel(ScanArgs s) {
  const int64_t cols = s.outer * s.inner;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < cols;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / s.inner, i = t - o * s.inner;
    A acc = 0;
    for (int64_t l = 0; l < s.len; ++l) {
      const int64_t off = (o * s.len + l) * s.inner + i;
      acc += load_as<A>(s.in + off * s.isz, s.in_dtype);
      store_as<A>(s.out + off * s.osz, s.out_dtype, acc);
    }
  }
}

template <typename A>
void cumsum_acc(const ScanGeometry& g) {
  LaunchContext ctx(g.out);
  const ScanArgs s{static_cast<const char*>(g.in),
                   g.in_dtype,
                   static_cast<char*>(g.out),
                   g.out_dtype,
                   g.outer,
                   g.len,
                   g.inner,
                   itemsize(g.in_dtype),
                   itemsize(g.out_dtype)};
  if (g.inner == 1 && g.len > 32) {
    cumsum_rows_kernel<A>
        <<<grid_dim(std::min<int64_t>(g.outer, 65535)), kScanThreads, 0, ctx.stream>>>(s);
  } else {
    const int64_t blocks = std::min<int64_t>((g.outer * g.inner + 255) / 256, 65535);
    cumsum_cols_kernel<A><<<grid_dim(blocks), 256, 0, ctx.stream>>>(s);
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

void cumsum_kernel_cuda(const ScanGeometry& g) {
  check_dtypes("cumsum", g.in_dtype, g.out_dtype);
  if (g.outer * g.len * g.inner == 0) return;
  switch (reduce_acc_dtype(g.out_dtype)) {
    case DType::float64:
      return cumsum_acc<double>(g);
    case DType::float32:
      return cumsum_acc<float>(g);
    default:
      return cumsum_acc<int64_t>(g);
  }
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(reduce_stub, cuda, &cuda::reduce_kernel_cuda);
FABRIC_REGISTER_KERNEL(arg_reduce_stub, cuda, &cuda::arg_reduce_kernel_cuda);
FABRIC_REGISTER_KERNEL(cumsum_stub, cuda, &cuda::cumsum_kernel_cuda);
}  // namespace fabric
