// norm()'s CPU reductions (ReduceOp::sum_sq, sum_abs, sum_pow, count_nonzero, max_abs, min_abs,
// as tensor/ops_reduce.cpp picks them from p) in PyTorch 1.13's CPU order, so that a norm gets
// torch's bits (torch.norm / linalg.vector_norm, one thread):
//   - p = 2 over one contiguous reduced dim (torch's TensorIterator coalesces a full reduction of
//     contiguous data to one) of float32 or bfloat16: the vectorised last-dim kernel
//     (reduce_row_norm.h);
//   - everything else: binary_kernel_reduce, each output one sequential fold over its elements,
//     the smallest-stride reduced dim innermost, in the accumulator type of the input dtype:
//       float32/float64: acc + x * x as an fma (GCC fused it), acc + |x|, acc + (x != 0),
//         acc + pow(|x|, p), NaN-propagating max/min of |x| (from 0 / inf); the root
//         pow(acc, 1 / p) with 1 / p in the accumulator type;
//       bfloat16 and float16: the accumulator is that dtype (c10::BFloat16 / c10::Half), every
//         operation rounded to it: 4096 ones have a 1-norm of 256 in bfloat16, 2048 in float16.
//         A float16 pow term is added unrounded (as measured; std::pow's float result meeting
//         Half + float), a bfloat16 one rounded first; p itself and 1 / p are rounded to the dtype;
//     and p is taken as float (torch's `float val`), also for float64 inputs.
// What torch does not fix: its generic fold of a single output of 32Ki elements or more splits
// over its threads; this follows its one-thread order. Rows longer than
// kNormExactRow are split into fixed chunks of that length, each in torch's order, whose partial
// folds are combined pairwise (torch folds them in one piece): the result does not depend on the
// thread count, but it is no longer torch's to the bit.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/reduce_odometer.h"
#include "kernels/cpu/reduce_row_norm.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/reduce_kernels.h"

namespace fabric::cpu {

// Longest reduced run folded in one piece (4Mi elements: a 2048 x 2048 gradient). Longer ones are
// split so that one thread runs several chains at once (a single fma chain over 16Mi floats took
// 1.7x the time of the split sum it replaced).
inline constexpr int64_t kNormExactRow = int64_t{1} << 22;

inline bool is_norm_op(ReduceOp op) {
  return op == ReduceOp::sum_sq || op == ReduceOp::sum_abs || op == ReduceOp::sum_pow ||
         op == ReduceOp::count_nonzero || op == ReduceOp::max_abs || op == ReduceOp::min_abs;
}

// Which 16-bit dtype the accumulator stands for (each operation rounded to it), if any.
enum class Acc16 : uint8_t { none, bf16, f16 };

template <Acc16 R>
inline float round16(float v) {
  if constexpr (R == Acc16::bf16)
    return static_cast<float>(BFloat16(v));
  else if constexpr (R == Acc16::f16)
    return static_cast<float>(Half(v));
  else
    return v;
}

// One norm's fold in accumulator type A: torch's NormTwoOps, NormOneOps, NormZeroOps, NormOps,
// AbsMaxOps and AbsMinOps as 1.13's CPU build computes them.
template <ReduceOp OP, typename A, Acc16 R>
struct NormFold {
  A p = 2;  // sum_pow's exponent, already rounded as torch holds it

  A init() const { return OP == ReduceOp::min_abs ? std::numeric_limits<A>::infinity() : A(0); }
  static A rnd(A v) {
    if constexpr (R == Acc16::none)
      return v;
    else
      return round16<R>(v);
  }
  A step(A acc, A x) const {
    if constexpr (OP == ReduceOp::sum_sq) {
      if constexpr (R == Acc16::none)
        return std::fma(x, x, acc);
      else
        return rnd(acc + rnd(x * x));
    } else if constexpr (OP == ReduceOp::sum_abs) {
      return rnd(acc + std::fabs(x));
    } else if constexpr (OP == ReduceOp::count_nonzero) {
      return rnd(acc + (x != A(0) ? A(1) : A(0)));
    } else if constexpr (OP == ReduceOp::max_abs || OP == ReduceOp::min_abs) {
      return combine(acc, std::fabs(x));
    } else {  // sum_pow
      const A t = std::pow(std::fabs(x), p);
      if constexpr (R == Acc16::f16)
        return rnd(acc + t);
      else
        return rnd(acc + rnd(t));
    }
  }
  // Partial folds of the pieces of a split row.
  // Also max_abs/min_abs's step: a NaN, once met, stays (written as selects, not branches).
  A combine(A a, A b) const {
    if constexpr (OP == ReduceOp::max_abs || OP == ReduceOp::min_abs) {
      const A m = (OP == ReduceOp::max_abs ? b > a : b < a) ? b : a;
      return b != b ? b : m;
    } else {
      return rnd(a + b);
    }
  }
  A project(A acc) const {
    if constexpr (OP == ReduceOp::sum_sq)
      return rnd(std::sqrt(acc));
    else if constexpr (OP == ReduceOp::sum_pow)
      return rnd(std::pow(acc, rnd(A(1) / p)));
    else
      return acc;
  }
};

// The largest (kMax) or smallest |x| of a contiguous float32 run, NaN if it holds one: the
// value torch's sequential AbsMaxOps/AbsMinOps fold gives, in any order (vectorised: the sequential
// select chain took 4.6x the time of the fold it replaced).
template <bool kMax>
inline float abs_extreme_run(const float* x, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 init = _mm256_set1_ps(kMax ? 0.0f : std::numeric_limits<float>::infinity());
  __m256 m0 = init, m1 = init, bad = _mm256_setzero_ps();
  const auto pick = [](__m256 a, __m256 m) {
    return kMax ? _mm256_max_ps(a, m) : _mm256_min_ps(a, m);  // m where a is NaN
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
    const __m256 b = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i + 8));
    m0 = pick(a, m0);
    m1 = pick(b, m1);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
  }
  alignas(32) float l[16];
  _mm256_store_ps(l, m0);
  _mm256_store_ps(l + 8, m1);
  bool nan = _mm256_movemask_ps(bad) != 0;
  float r = l[0];
  for (int j = 1; j < 16; ++j) r = (kMax ? l[j] > r : l[j] < r) ? l[j] : r;
  for (; i < n; ++i) {
    const float a = std::fabs(x[i]);
    nan |= a != a;
    r = (kMax ? a > r : a < r) ? a : r;
  }
  return nan ? std::numeric_limits<float>::quiet_NaN() : r;
}

template <typename T, typename A>
inline A load_as(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return static_cast<A>(static_cast<std::conditional_t<std::is_floating_point_v<T>, T, float>>(v));
}

// The reduced elements of one output as (outer dims) x (an innermost run of `len` elements
// `stride` apart); every stream of a block shares it, from its own base.
struct NormRun {
  int nouter = 0;
  const int64_t* outer_sizes = nullptr;
  const int64_t* outer_strides = nullptr;
  int64_t outer_count = 1;
  int64_t len = 1, stride = 1;
};

// Folds NS streams together, each in torch's order (independent chains, so they overlap).
// kAdjacent: stream k starts k elements after stream 0 (neighbouring columns, loaded together).
template <int NS, bool kAdjacent, typename T, typename F, typename A>
void fold_streams(const F& f, const char* const* base, const NormRun& run, A* acc) {
  constexpr int64_t isz = sizeof(T);
  ReduceOdometer od(run.nouter, run.outer_sizes, run.outer_strides, nullptr, 0);
  for (int64_t o = 0; o < run.outer_count; ++o, od.next()) {
    for (int64_t i = 0; i < run.len; ++i) {
      const int64_t off = (od.off0 + i * run.stride) * isz;
      if constexpr (kAdjacent) {
        const char* p = base[0] + off;
        for (int k = 0; k < NS; ++k) acc[k] = f.step(acc[k], load_as<T, A>(p + k * isz));
      } else {
        for (int k = 0; k < NS; ++k) acc[k] = f.step(acc[k], load_as<T, A>(base[k] + off));
      }
    }
  }
}

template <ReduceOp OP, typename A, Acc16 R, typename T>
class NormReducer {
 public:
  NormReducer(const ReduceGeometry& geo, const ReduceParams& prm) : g_(geo) {
    if (g_.nred == 0) {  // each output reads one element
      g_.nred = 1;
      g_.red_sizes[0] = 1;
      g_.red_in[0] = 1;
    }
    // torch's p: a float, held in the accumulator's dtype.
    f_.p = NormFold<OP, A, R>::rnd(static_cast<A>(static_cast<float>(prm.p)));
    nred_ = g_.num_red();
  }

  void run() {
    const int64_t nout = g_.num_out();
    if (nout == 0) return;
    const bool parallel = !omp_in_parallel() && omp_get_max_threads() > 1;
    const int last = g_.nred - 1;
    const bool one_run = g_.nred == 1;
    // Split rows: few outputs whose single reduced run is longer than kNormExactRow.
    if (one_run && nred_ > kNormExactRow) return run_split(nout, parallel);
    if constexpr (OP == ReduceOp::sum_sq && !std::is_same_v<T, double> &&
                  !std::is_same_v<T, Half>) {
      if (one_run && g_.red_in[0] == 1 && g_.out_dtype == g_.in_dtype)
        return run_lastdim(nout, parallel);
    }
    constexpr bool kExtreme = OP == ReduceOp::max_abs || OP == ReduceOp::min_abs;
    if constexpr (kExtreme && std::is_same_v<T, float>) {
      if (one_run && g_.red_in[0] == 1) return run_extreme_rows(nout, parallel);
    }
    NormRun run;
    run.nouter = last;
    run.outer_sizes = g_.red_sizes.data();
    run.outer_strides = g_.red_in.data();
    for (int d = 0; d < last; ++d) run.outer_count *= g_.red_sizes[d];
    run.len = g_.red_sizes[last];
    run.stride = g_.red_in[last];
    // Neighbouring outputs read neighbouring elements (a reduction over a leading dim): fold 64
    // columns at once with vector loads (16 took 3x as long: a 64-byte strip of each row is too
    // little for the prefetchers). Other outputs go 16 at a time, their chains interleaved.
    const bool adjacent = g_.nkeep > 0 && g_.keep_in[g_.nkeep - 1] == 1;
    constexpr int NS = 64;
    const int64_t blocks = (nout + NS - 1) / NS;
    auto task = [&](int64_t b) {
      const int64_t o0 = b * NS, m = std::min<int64_t>(NS, nout - o0);
      ReduceOdometer od(g_.nkeep, g_.keep_sizes.data(), g_.keep_in.data(), g_.keep_out.data(), o0);
      const char* base[NS];
      int64_t out_off[NS];
      bool contiguous_block = adjacent;
      for (int64_t k = 0; k < m; ++k, od.next()) {
        base[k] = g_.in + od.off0 * static_cast<int64_t>(sizeof(T));
        out_off[k] = od.off1;
        if (k > 0 && base[k] != base[k - 1] + sizeof(T)) contiguous_block = false;
      }
      A acc[NS];
      for (int64_t k = 0; k < m; ++k) acc[k] = f_.init();
      if (m == NS && contiguous_block) {
        fold_streams<NS, true, T>(f_, base, run, acc);
      } else {
        int64_t k = 0;
        for (; k + 16 <= m; k += 16) fold_streams<16, false, T>(f_, base + k, run, acc + k);
        for (; k + 4 <= m; k += 4) fold_streams<4, false, T>(f_, base + k, run, acc + k);
        for (; k < m; ++k) fold_streams<1, false, T>(f_, base + k, run, acc + k);
      }
      for (int64_t k = 0; k < m; ++k) store(out_off[k], f_.project(acc[k]));
    };
    run_tasks(blocks, parallel && nout * nred_ >= 32768, task);
  }

 private:
  void store(int64_t out_off, A v) const {
    visit_dtype(g_.out_dtype, [&](auto tag) {
      using O = decltype(tag);
      const O t = scalar_cast<O>(v);
      std::memcpy(g_.out + out_off * static_cast<int64_t>(sizeof(O)), &t, sizeof(O));
    });
  }

  // Sums of squares of n contiguous float32/bfloat16 values from each of NS starts.
  template <int NS>
  static void lastdim_sumsq(const char* const* starts, int64_t n, float* out) {
    if constexpr (std::is_same_v<T, float>)
      norm2_rows_f32<NS>(reinterpret_cast<const float* const*>(starts), n, out);
    else
      norm2_rows_bf16<NS>(reinterpret_cast<const uint16_t* const*>(starts), n, out);
  }

  // p = 2 over contiguous rows of float32/bfloat16: torch's vectorised kernel, 16 rows at a time.
  void run_lastdim(int64_t nout, bool parallel) {
    const int64_t n = nred_;
    constexpr int NS = 16;
    const int64_t per = std::max<int64_t>(NS, (32768 / std::max<int64_t>(n, 1)) / NS * NS);
    const int64_t tasks = (nout + per - 1) / per;
    auto task = [&](int64_t t) {
      const int64_t o0 = t * per, o1 = std::min(nout, o0 + per);
      ReduceOdometer od(g_.nkeep, g_.keep_sizes.data(), g_.keep_in.data(), g_.keep_out.data(), o0);
      for (int64_t o = o0; o < o1; o += NS) {
        const int64_t m = std::min<int64_t>(NS, o1 - o);
        const char* starts[NS];
        int64_t out_off[NS];
        for (int64_t k = 0; k < m; ++k, od.next()) {
          starts[k] = g_.in + od.off0 * static_cast<int64_t>(sizeof(T));
          out_off[k] = od.off1;
        }
        float s[NS];
        if (m == NS) {
          lastdim_sumsq<NS>(starts, n, s);
        } else {
          int64_t k = 0;
          for (; k + 4 <= m; k += 4) lastdim_sumsq<4>(starts + k, n, s + k);
          for (; k < m; ++k) lastdim_sumsq<1>(starts + k, n, s + k);
        }
        // torch: result = scalar_t(std::sqrt(sum)), the root in float.
        for (int64_t k = 0; k < m; ++k) store(out_off[k], static_cast<A>(std::sqrt(s[k])));
      }
    };
    run_tasks(tasks, parallel && nout * n >= 32768, task);
  }

  // max/min of |x| over contiguous float32 rows.
  void run_extreme_rows(int64_t nout, bool parallel) {
    const int64_t n = nred_;
    const int64_t per = std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1));
    const int64_t tasks = (nout + per - 1) / per;
    auto task = [&](int64_t t) {
      const int64_t o0 = t * per, o1 = std::min(nout, o0 + per);
      ReduceOdometer od(g_.nkeep, g_.keep_sizes.data(), g_.keep_in.data(), g_.keep_out.data(), o0);
      for (int64_t o = o0; o < o1; ++o, od.next()) {
        const T* x = reinterpret_cast<const T*>(g_.in) + od.off0;
        store(od.off1, static_cast<A>(abs_extreme_run<OP == ReduceOp::max_abs>(x, n)));
      }
    };
    run_tasks(tasks, parallel && nout * n >= 32768, task);
  }

  // One reduced run longer than kNormExactRow per output: chunks of that length, each folded in
  // torch's order (4 at a time on a thread), combined pairwise.
  void run_split(int64_t nout, bool parallel) {
    const int64_t n = nred_, stride = g_.red_in[0];
    const int64_t chunks = (n + kNormExactRow - 1) / kNormExactRow;
    const int64_t full = n / kNormExactRow;  // chunks of the full length
    constexpr bool kLastdim =
        OP == ReduceOp::sum_sq && !std::is_same_v<T, double> && !std::is_same_v<T, Half>;
    const bool lastdim = kLastdim && stride == 1 && g_.out_dtype == g_.in_dtype;
    std::vector<A> part(static_cast<size_t>(chunks));
    ReduceOdometer od(g_.nkeep, g_.keep_sizes.data(), g_.keep_in.data(), g_.keep_out.data(), 0);
    for (int64_t o = 0; o < nout; ++o, od.next()) {
      const char* row = g_.in + od.off0 * static_cast<int64_t>(sizeof(T));
      const auto start = [&](int64_t c) {
        return row + c * kNormExactRow * stride * static_cast<int64_t>(sizeof(T));
      };
      // Groups of 4 full chunks, then the rest one by one.
      const int64_t groups = full / 4, tasks = groups + (chunks - groups * 4);
      auto task = [&](int64_t t) {
        const int64_t c0 = t < groups ? t * 4 : groups * 4 + (t - groups);
        const int m = t < groups ? 4 : 1;
        const int64_t len = std::min(kNormExactRow, n - c0 * kNormExactRow);
        const char* starts[4];
        for (int k = 0; k < m; ++k) starts[k] = start(c0 + k);
        if (lastdim) {
          float s[4];
          if (m == 4)
            lastdim_sumsq<4>(starts, len, s);
          else
            lastdim_sumsq<1>(starts, len, s);
          for (int k = 0; k < m; ++k) part[c0 + k] = static_cast<A>(s[k]);
          return;
        }
        NormRun run;
        run.len = len;
        run.stride = stride;
        A acc[4];
        for (int k = 0; k < m; ++k) acc[k] = f_.init();
        if (m == 4)
          fold_streams<4, false, T>(f_, starts, run, acc);
        else
          fold_streams<1, false, T>(f_, starts, run, acc);
        for (int k = 0; k < m; ++k) part[c0 + k] = acc[k];
      };
      run_tasks(tasks, parallel, task);
      for (int64_t w = 1; w < chunks; w *= 2)
        for (int64_t k = 0; k + w < chunks; k += 2 * w)
          part[k] = lastdim ? part[k] + part[k + w] : f_.combine(part[k], part[k + w]);
      store(od.off1,
            lastdim ? static_cast<A>(std::sqrt(static_cast<float>(part[0]))) : f_.project(part[0]));
    }
  }

  ReduceGeometry g_;
  NormFold<OP, A, R> f_;
  int64_t nred_ = 1;
};

template <ReduceOp OP, typename A>
void norm_reduce_op(const ReduceGeometry& g, const ReduceParams& p) {
  if constexpr (std::is_same_v<A, double>) {
    NormReducer<OP, double, Acc16::none, double>(g, p).run();
  } else {
    switch (g.in_dtype) {
      case DType::float32:
        return NormReducer<OP, float, Acc16::none, float>(g, p).run();
      case DType::bfloat16:
        return NormReducer<OP, float, Acc16::bf16, BFloat16>(g, p).run();
      case DType::float16:
        return NormReducer<OP, float, Acc16::f16, Half>(g, p).run();
      default:
        throw DTypeError(::fabric::detail::cat("norm: ", dtype_name(g.in_dtype),
                                               " input is not supported by the CPU kernel"));
    }
  }
}

// The CPU kernel of the norm ops, A being reduce_acc_dtype(g.in_dtype)'s type.
template <typename A>
void norm_reduce(ReduceOp op, const ReduceGeometry& g, const ReduceParams& p) {
  switch (op) {
    case ReduceOp::sum_sq:
      return norm_reduce_op<ReduceOp::sum_sq, A>(g, p);
    case ReduceOp::sum_abs:
      return norm_reduce_op<ReduceOp::sum_abs, A>(g, p);
    case ReduceOp::sum_pow:
      return norm_reduce_op<ReduceOp::sum_pow, A>(g, p);
    case ReduceOp::count_nonzero:
      return norm_reduce_op<ReduceOp::count_nonzero, A>(g, p);
    case ReduceOp::max_abs:
      return norm_reduce_op<ReduceOp::max_abs, A>(g, p);
    default:
      return norm_reduce_op<ReduceOp::min_abs, A>(g, p);
  }
}

}  // namespace fabric::cpu
