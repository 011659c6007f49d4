// CPU reductions (sum/mean/var/logsumexp/max/min; norm()'s in reduce_norm_torch.h), arg-reductions
// and cumsum. Two fast layouts: the innermost reduced dim contiguous (row reductions, vectorised
// along the row) and the innermost kept dim contiguous (column reductions such as bias gradients,
// vectorised across columns); anything else goes through the row path with gathered runs.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/reduce_cols_f32.h"
#include "kernels/cpu/reduce_cols_torch.h"
#include "kernels/cpu/reduce_math.h"
#include "kernels/cpu/reduce_norm_torch.h"
#include "kernels/cpu/reduce_odometer.h"
#include "kernels/cpu/reduce_row_sum.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/reduce_kernels.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kLeaf = 2048;      // reduced elements staged and folded at once
constexpr int64_t kSplit = 1 << 16;  // reduced elements per parallel chunk of one output
constexpr int64_t kColRows = 16;     // rows folded sequentially before pairwise combining
// Below this many outputs (row mode) or column tiles (column mode) long reductions are split into
// fixed chunks combined pairwise, so that a few outputs still use every thread. The rule must not
// depend on the thread count: the chunks fix the summation order, and the same input then gives
// the same bits on any number of threads.
constexpr int64_t kFewOutputs = 16;

// The fold of one ReduceOp in accumulator type A: identity, per-element map (c is the output's
// center) and the combine.
template <ReduceOp OP, typename A>
struct Fold {
  static constexpr bool kMaxLike = OP == ReduceOp::max;
  static constexpr bool kMinLike = OP == ReduceOp::min;
  static A init() {
    if constexpr (kMaxLike) {
      if constexpr (std::is_floating_point_v<A>)
        return -std::numeric_limits<A>::infinity();
      else
        return std::numeric_limits<A>::lowest();
    } else if constexpr (kMinLike) {
      if constexpr (std::is_floating_point_v<A>)
        return std::numeric_limits<A>::infinity();
      else
        return std::numeric_limits<A>::max();
    } else {
      return A(0);
    }
  }
  A map(A x, A c) const {
    if constexpr (OP == ReduceOp::sum || OP == ReduceOp::max || OP == ReduceOp::min)
      return x;
    else if constexpr (OP == ReduceOp::sum_sq_dev)
      return (x - c) * (x - c);
    else
      return std::exp(x - c);  // sum_exp_dev
  }
  static A combine(A a, A b) {
    if constexpr (kMaxLike)
      return (b > a || is_nan_value(b)) ? b : a;
    else if constexpr (kMinLike)
      return (b < a || is_nan_value(b)) ? b : a;
    else
      return a + b;
  }
};

// Folds n contiguous A values.
template <ReduceOp OP, typename A>
A fold_run(const Fold<OP, A>& f, const A* x, int64_t n, A c) {
  using F = Fold<OP, A>;
  if constexpr (OP == ReduceOp::sum && std::is_same_v<A, float>) {
    return row_sum_f32(x, n);  // torch's order (reduce_row_sum.h)
  } else if constexpr (OP == ReduceOp::sum && std::is_same_v<A, double>) {
    return row_sum_f64(x, n);
  } else if constexpr (OP == ReduceOp::sum_exp_dev && std::is_same_v<A, float>) {
    return exp_shift_sum(x, nullptr, n, c);
  } else if constexpr ((OP == ReduceOp::max || OP == ReduceOp::min) && std::is_same_v<A, float>) {
    return row_max<float, OP == ReduceOp::max>(x, n);
  } else if constexpr (F::kMaxLike || F::kMinLike) {
    constexpr int L = 32;
    A acc[L];
    for (int j = 0; j < L; ++j) acc[j] = F::init();
    int64_t i = 0;
    for (; i + L <= n; i += L)
      for (int j = 0; j < L; ++j) acc[j] = F::combine(acc[j], f.map(x[i + j], c));
    for (; i < n; ++i) acc[0] = F::combine(acc[0], f.map(x[i], c));
    A r = acc[0];
    for (int j = 1; j < L; ++j) r = F::combine(r, acc[j]);
    return r;
  } else {
    if (n < 32) {  // short rows: the lane set-up would dominate
      A r = 0;
      for (int64_t i = 0; i < n; ++i) r += f.map(x[i], c);
      return r;
    }
    return sum_range<A>(0, n, [&f, x, c](int64_t i) { return f.map(x[i], c); });
  }
}

// n elements of dtype dt at p, `stride` bytes apart, converted to A into out.
template <typename A>
void gather_to(const char* p, DType dt, int64_t stride, int64_t n, A* out) {
  if (stride == itemsize(dt)) {
    if (dt == dtype_v<A>)
      std::memcpy(out, p, static_cast<size_t>(n) * sizeof(A));
    else
      convert(dt, p, dtype_v<A>, out, n);
    return;
  }
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, p + i * stride, sizeof(T));
      out[i] = scalar_cast<A>(v);
    }
  });
}

template <ReduceOp OP, typename A>
struct Reducer {
  using F = Fold<OP, A>;
  ReduceGeometry g;
  ReduceParams prm;
  F f;
  int64_t isz = 4;  // input itemsize
  int64_t nred = 1;

  explicit Reducer(const ReduceGeometry& geo, const ReduceParams& p) : g(geo), prm(p) {
    if (g.nred == 0) {  // each output reads one element
      g.nred = 1;
      g.red_sizes[0] = 1;
      g.red_in[0] = 1;
    }
    isz = itemsize(g.in_dtype);
    nred = g.num_red();
  }

  A center_at(int64_t out_off) const {
    if (!prm.center) return A(0);
    const A c = static_cast<const A*>(prm.center)[out_off];
    return OP == ReduceOp::sum_exp_dev ? lse_shift(c) : c;
  }

  // ---- row path: fold the flattened reduced range [b, e) of the output whose input starts at
  // base. direct(): [b, e) as one contiguous run of A values in memory, or null.
  const A* direct(const char* base, int64_t b, int64_t e) const {
    if (dtype_v<A> != g.in_dtype) return nullptr;
    return reinterpret_cast<const A*>(contiguous_run(base, b, e));
  }
  // [b, e) as one contiguous run of input elements (any dtype) in memory, or null.
  const char* contiguous_run(const char* base, int64_t b, int64_t e) const {
    const int last = g.nred - 1;
    const int64_t row = g.red_sizes[last];
    if (g.red_in[last] != 1) return nullptr;
    // One reduced dim: every range is one run, said without the three 64-bit divisions below,
    // which every row of a short-row sum paid.
    if (last == 0) return base + b * isz;
    if (b / row != (e - 1) / row) return nullptr;
    ReduceOdometer od(last, g.red_sizes.data(), g.red_in.data(), nullptr, b / row);
    return base + (od.off0 + b % row) * isz;
  }
  // A float16/bfloat16 sum over one contiguous run, widened as it is read: torch's order for
  // those dtypes (16 values to a vector, reduce_row_sum.h) over the whole run, in one pass.
  bool widened_run(const char* base, int64_t b, int64_t e, A& out) const {
    if constexpr (OP == ReduceOp::sum && std::is_same_v<A, float>) {
      if (g.in_dtype != DType::bfloat16 && g.in_dtype != DType::float16) return false;
      const char* p = contiguous_run(base, b, e);
      if (!p) return false;
      const auto* h = reinterpret_cast<const uint16_t*>(p);
      out = g.in_dtype == DType::bfloat16 ? row_sum_bf16(h, e - b) : row_sum_f16(h, e - b);
      return true;
    }
    return false;
  }
  // Stages up to kLeaf elements (converted to A, gathered across rows) and folds them.
  A leaf(const char* base, int64_t b, int64_t e, A c) const {
    const int last = g.nred - 1;
    const int64_t row = g.red_sizes[last], rs = g.red_in[last];
    ReduceOdometer od(last, g.red_sizes.data(), g.red_in.data(), nullptr, b / row);
    int64_t col = b % row;
    A* buf = scratch<A>(0, kLeaf);
    int64_t k = 0;
    for (int64_t pos = b; pos < e;) {
      const int64_t n = std::min(row - col, e - pos);
      gather_to<A>(base + (od.off0 + col * rs) * isz, g.in_dtype, rs * isz, n, buf + k);
      k += n;
      pos += n;
      col = 0;
      od.next();
    }
    return fold_run<OP, A>(f, buf, k, c);
  }
  A range(const char* base, int64_t b, int64_t e, A c) const {
    if (const A* p = direct(base, b, e)) return fold_run<OP, A>(f, p, e - b, c);
    if (A r; widened_run(base, b, e, r)) return r;
    if (e - b <= kLeaf) return leaf(base, b, e, c);
    const int64_t m = b + ((e - b) / 2 + kLeaf - 1) / kLeaf * kLeaf;
    return F::combine(range(base, b, m, c), range(base, m, e, c));
  }

  // ---- column path: fold rows [b, e) of w columns (input stride 1) into acc
  void cols(const char* base, int64_t w, int64_t b, int64_t e, const A* cen, A* acc) const {
    constexpr int64_t W = 1024 / sizeof(A);
    if (e - b > kColRows) {
      const int64_t m = b + ((e - b) / 2 + kColRows - 1) / kColRows * kColRows;
      cols(base, w, b, m, cen, acc);
      A tmp[W];
      cols(base, w, m, e, cen, tmp);
      for (int64_t j = 0; j < w; ++j) acc[j] = F::combine(acc[j], tmp[j]);
      return;
    }
    if constexpr (OP == ReduceOp::sum && std::is_same_v<A, float>) {
      if (col_sum_rows_f32_supports(g.in_dtype)) {
        const char* rows[kColRows];
        ReduceOdometer od(g.nred, g.red_sizes.data(), g.red_in.data(), nullptr, b);
        for (int64_t r = b; r < e; ++r, od.next()) rows[r - b] = base + od.off0 * isz;
        return col_sum_rows_f32(rows, e - b, g.in_dtype, w, acc);
      }
    }
    for (int64_t j = 0; j < w; ++j) acc[j] = F::init();
    A rowbuf[W];
    ReduceOdometer od(g.nred, g.red_sizes.data(), g.red_in.data(), nullptr, b);
    for (int64_t r = b; r < e; ++r, od.next()) {
      const A* x = load_row<A>(base + od.off0 * isz, g.in_dtype, w, rowbuf);
      if constexpr (OP == ReduceOp::sum_exp_dev && std::is_same_v<A, float>) {
        for (int64_t j = 0; j < w; ++j) rowbuf[j] = x[j] - cen[j];
        exp_inplace(rowbuf, w);
        for (int64_t j = 0; j < w; ++j) acc[j] += rowbuf[j];
      } else {
        for (int64_t j = 0; j < w; ++j) acc[j] = F::combine(acc[j], f.map(x[j], cen[j]));
      }
    }
  }

  // v rounded to the float16/bfloat16 output dtype.
  A round_to_out(A v) const {
    return g.out_dtype == DType::bfloat16
               ? static_cast<A>(scalar_cast<float>(scalar_cast<BFloat16>(v)))
               : static_cast<A>(scalar_cast<float>(scalar_cast<Half>(v)));
  }
  A finish(A r, A c) const {
    if constexpr (std::is_floating_point_v<A>) {
      if (prm.divisor != 1) {
        // torch 1.13's CPU mean of float16/bfloat16 is the sum rounded to that dtype, divided by
        // the count rounded to it too (2049 is 2048 in bfloat16; 65535 is inf in float16).
        A divisor = static_cast<A>(prm.divisor);
        if (g.out_dtype == DType::bfloat16 || g.out_dtype == DType::float16) {
          r = round_to_out(r);
          divisor = round_to_out(divisor);
        }
        r = static_cast<A>(r / divisor);
      }
      switch (prm.finish) {
        case ReduceFinish::none:
          break;
        case ReduceFinish::sqrt:
          r = std::sqrt(r);
          break;
        case ReduceFinish::root:
          r = std::pow(r, static_cast<A>(1.0 / prm.p));
          break;
        case ReduceFinish::log_add_center:
          r = std::log(r) + lse_shift(c);
          break;
      }
    }
    return r;
  }
  void store(int64_t out_off, A v) const {
    visit_dtype(g.out_dtype, [&](auto tag) {
      using T = decltype(tag);
      const T t = scalar_cast<T>(v);
      std::memcpy(g.out + out_off * static_cast<int64_t>(sizeof(T)), &t, sizeof(T));
    });
  }

  // Evenly spaced contiguous float16/bfloat16 rows summed into outputs of the same dtype, no
  // centre: what widened_run() would read, without the odometer and store()'s dtype switch.
  bool plain_16bit_sum_rows() const {
    if constexpr (OP == ReduceOp::sum && std::is_same_v<A, float>) {
      const bool half = g.in_dtype == DType::bfloat16 || g.in_dtype == DType::float16;
      return half && g.out_dtype == g.in_dtype && g.nkeep == 1 && g.nred == 1 && g.red_in[0] == 1 &&
             !prm.center;
    }
    return false;
  }
  // v rounded to the float16/bfloat16 output dtype and stored.
  void store16(int64_t out_off, A v) const {
    auto* out = reinterpret_cast<uint16_t*>(g.out) + out_off;
    if (g.out_dtype == DType::bfloat16)
      *out = BFloat16(static_cast<float>(v)).x;
    else
      *out = Half(static_cast<float>(v)).x;
  }

  void run() {
    const int64_t nout = g.num_out();
    if (nout == 0) return;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const bool col_mode =
        g.nkeep > 0 && g.keep_in[g.nkeep - 1] == 1 && g.red_in[g.nred - 1] != 1 && nred > 0;
    if (col_mode) return run_cols(threads);
    if (nred == 0) {
      ReduceOdometer od(g.nkeep, g.keep_sizes.data(), g.keep_in.data(), g.keep_out.data(), 0);
      for (int64_t o = 0; o < nout; ++o, od.next())
        store(od.off1, finish(F::init(), center_at(od.off1)));
      return;
    }
    if (nout < kFewOutputs && nred >= 2 * kSplit) {
      // Few long rows: split each row into fixed chunks (the result does not depend on the thread
      // count: neither does the choice of this path).
      const int64_t chunks = (nred + kSplit - 1) / kSplit;
      std::vector<A> part(static_cast<size_t>(chunks));
      ReduceOdometer od(g.nkeep, g.keep_sizes.data(), g.keep_in.data(), g.keep_out.data(), 0);
      for (int64_t o = 0; o < nout; ++o, od.next()) {
        const char* base = g.in + od.off0 * isz;
        const A c = center_at(od.off1);
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < chunks; ++k)
          part[k] = range(base, k * kSplit, std::min(nred, (k + 1) * kSplit), c);
        for (int64_t w = 1; w < chunks; w *= 2)
          for (int64_t k = 0; k + w < chunks; k += 2 * w)
            part[k] = F::combine(part[k], part[k + w]);
        store(od.off1, finish(part[0], c));
      }
      return;
    }
    const int64_t per = std::max<int64_t>(1, 32768 / std::max<int64_t>(nred, 1));
    const int64_t tasks = (nout + per - 1) / per;
    // Evenly spaced contiguous rows of the accumulator's dtype into outputs of it, no centre: the
    // rows are read in place and stored directly (short rows of 49 paid ~9 ns each for the
    // odometer, the range checks and store()'s dtype switch, twice the sum itself).
    const bool plain_rows = g.nkeep == 1 && g.nred == 1 && g.red_in[0] == 1 &&
                            g.in_dtype == dtype_v<A> && g.out_dtype == dtype_v<A> && !prm.center;
    if (plain_rows) {
      const A* in = reinterpret_cast<const A*>(g.in);
      A* out = reinterpret_cast<A*>(g.out);
      const int64_t in_step = g.keep_in[0], out_step = g.keep_out[0];
      run_tasks(tasks, threads > 1, [&](int64_t t) {
        const int64_t o1 = std::min(nout, (t + 1) * per);
        for (int64_t o = t * per; o < o1; ++o)
          out[o * out_step] = finish(fold_run<OP, A>(f, in + o * in_step, nred, A(0)), A(0));
      });
      return;
    }
    if (plain_16bit_sum_rows()) {
      // The same for float16/bfloat16 sums and means into their own dtype (rows of 49 took 13 ns
      // each through the general path against torch's 7.5).
      const auto* in = reinterpret_cast<const uint16_t*>(g.in);
      const bool bf16 = g.in_dtype == DType::bfloat16;
      const int64_t in_step = g.keep_in[0], out_step = g.keep_out[0];
      run_tasks(tasks, threads > 1, [&](int64_t t) {
        const int64_t o1 = std::min(nout, (t + 1) * per);
        for (int64_t o = t * per; o < o1; ++o) {
          const uint16_t* row = in + o * in_step;
          const A s = bf16 ? row_sum_bf16(row, nred) : row_sum_f16(row, nred);
          store16(o * out_step, finish(s, A(0)));
        }
      });
      return;
    }
    auto task = [&](int64_t t) {
      const int64_t o0 = t * per, o1 = std::min(nout, o0 + per);
      ReduceOdometer od(g.nkeep, g.keep_sizes.data(), g.keep_in.data(), g.keep_out.data(), o0);
      for (int64_t o = o0; o < o1; ++o, od.next()) {
        const A c = center_at(od.off1);
        store(od.off1, finish(range(g.in + od.off0 * isz, 0, nred, c), c));
      }
    };
    run_tasks(tasks, threads > 1, task);
  }

  // torch's order (reduce_cols_torch.h) for w columns from base, over all the reduced rows.
  void torch_tile(bool split4, const char* base, int64_t w, A* out) const {
    ReduceOdometer od(g.nred, g.red_sizes.data(), g.red_in.data(), nullptr, 0);
    const auto next_row = [&] {
      const char* p = base + od.off0 * isz;
      od.next();
      return p;
    };
    torch_column_sums<A, 1024 / sizeof(A)>(split4, nred, g.in_dtype, w, next_row, out);
  }

  void run_cols(int threads) {
    constexpr int64_t W = 1024 / sizeof(A);
    const int ko = g.nkeep - 1;  // the contiguous kept dim
    const int64_t width = g.keep_sizes[ko];
    const int64_t tiles = (width + W - 1) / W;
    int64_t outer = 1;
    for (int d = 0; d < ko; ++d) outer *= g.keep_sizes[d];
    const int64_t tasks = outer * tiles;
    // Few tiles but many rows: split the rows into fixed chunks and combine the partials. A
    // floating sum keeps torch's column order (reduce_cols_torch.h) unless it has more rows than
    // the row path's split takes (128Ki).
    constexpr bool kTorchOrder = OP == ReduceOp::sum && std::is_floating_point_v<A>;
    const int64_t split_rows = kTorchOrder ? 2 * kSplit : 4 * kColRows * 64;
    const int64_t chunks = (tasks < kFewOutputs && nred >= split_rows)
                               ? std::min<int64_t>(64, (nred + 4095) / 4096)
                               : 1;
    const int64_t cascade_cols = torch_cascade_columns(width, g.in_dtype);
    const int64_t rows_per = (nred + chunks - 1) / chunks;
    std::vector<A> part(static_cast<size_t>(chunks > 1 ? chunks * tasks * W : 0));
    auto do_task = [&](int64_t t, int64_t k, A* acc) {
      const int64_t o = t / tiles, c0 = (t % tiles) * W, w = std::min(W, width - c0);
      ReduceOdometer od(ko, g.keep_sizes.data(), g.keep_in.data(), g.keep_out.data(), o);
      A cen[W];
      if (prm.center)
        for (int64_t j = 0; j < w; ++j) cen[j] = center_at(od.off1 + (c0 + j) * g.keep_out[ko]);
      else
        std::fill_n(cen, w, A(0));
      const int64_t r0 = k * rows_per, r1 = std::min(nred, r0 + rows_per);
      if (r0 >= r1) {
        for (int64_t j = 0; j < w; ++j) acc[j] = F::init();
        return;
      }
      if constexpr (kTorchOrder) {
        if (chunks == 1) {  // the tile's columns before torch's cut by cascade, the rest split4
          const char* base = g.in + (od.off0 + c0) * isz;
          const int64_t cut = std::clamp<int64_t>(cascade_cols - c0, 0, w);
          if (cut > 0) torch_tile(false, base, cut, acc);
          if (cut < w) torch_tile(true, base + cut * isz, w - cut, acc + cut);
          return;
        }
      }
      cols(g.in + (od.off0 + c0) * isz, w, r0, r1, cen, acc);
    };
    // A plain sum or mean into contiguous outputs of the accumulator's dtype stores the tile as
    // one run: per element, store()'s dtype switch and finish()'s checks cost more than folding a
    // few short columns (a sum over a dim of 3 took 3-7x torch's time).
    const bool plain_store = g.out_dtype == dtype_v<A> && g.keep_out[ko] == 1 && !prm.center &&
                             prm.finish == ReduceFinish::none &&
                             (prm.divisor == 1 || std::is_floating_point_v<A>);
    auto store_task = [&](int64_t t, const A* acc) {
      const int64_t o = t / tiles, c0 = (t % tiles) * W, w = std::min(W, width - c0);
      ReduceOdometer od(ko, g.keep_sizes.data(), g.keep_in.data(), g.keep_out.data(), o);
      if (plain_store) {
        A* out = reinterpret_cast<A*>(g.out) + od.off1 + c0;
        if (prm.divisor == 1) {
          std::memcpy(out, acc, static_cast<size_t>(w) * sizeof(A));
        } else {
          const A divisor = static_cast<A>(prm.divisor);  // finish()'s division
          for (int64_t j = 0; j < w; ++j) out[j] = static_cast<A>(acc[j] / divisor);
        }
        return;
      }
      for (int64_t j = 0; j < w; ++j) {
        const int64_t off = od.off1 + (c0 + j) * g.keep_out[ko];
        store(off, finish(acc[j], prm.center ? static_cast<const A*>(prm.center)[off] : A(0)));
      }
    };
    if (chunks == 1) {
      auto one = [&](int64_t t) {
        A acc[W];
        do_task(t, 0, acc);
        store_task(t, acc);
      };
      run_tasks(tasks, threads > 1 && tasks * nred * W >= 32768, one);
      return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < tasks * chunks; ++q)
      do_task(q / chunks, q % chunks, part.data() + q * W);
    for (int64_t t = 0; t < tasks; ++t) {
      A* p = part.data() + t * chunks * W;
      for (int64_t w = 1; w < chunks; w *= 2)
        for (int64_t k = 0; k + w < chunks; k += 2 * w)
          for (int64_t j = 0; j < W; ++j)
            p[k * W + j] = F::combine(p[k * W + j], p[(k + w) * W + j]);
      store_task(t, p);
    }
  }
};

template <typename A>
void reduce_acc(ReduceOp op, const ReduceGeometry& g, const ReduceParams& p) {
  switch (op) {
#define FABRIC_REDUCE_CASE(name)            \
  case ReduceOp::name:                      \
    Reducer<ReduceOp::name, A>(g, p).run(); \
    return;
    FABRIC_REDUCE_CASE(sum)
    FABRIC_REDUCE_CASE(max)
    FABRIC_REDUCE_CASE(min)
#undef FABRIC_REDUCE_CASE
    default:
      break;
  }
  if constexpr (std::is_floating_point_v<A>) {
    // norm()'s folds follow torch's order (reduce_norm_torch.h).
    if (is_norm_op(op)) return norm_reduce<A>(op, g, p);
    switch (op) {
#define FABRIC_REDUCE_CASE(name)            \
  case ReduceOp::name:                      \
    Reducer<ReduceOp::name, A>(g, p).run(); \
    return;
      FABRIC_REDUCE_CASE(sum_sq_dev)
      FABRIC_REDUCE_CASE(sum_exp_dev)
#undef FABRIC_REDUCE_CASE
      default:
        break;
    }
  }
  throw DTypeError(::fabric::detail::cat("reduce: op ", static_cast<int>(op),
                                         " is not defined for ", dtype_name(g.in_dtype)));
}

void reduce_kernel(ReduceOp op, const ReduceGeometry& g, const ReduceParams& p) {
  switch (reduce_acc_dtype(g.in_dtype)) {
    case DType::float64:
      return reduce_acc<double>(op, g, p);
    case DType::float32:
      return reduce_acc<float>(op, g, p);
    default:
      return reduce_acc<int64_t>(op, g, p);
  }
}

// ---- arg-reductions -------------------------------------------------------------------------

// True when v should replace best as the running extreme (strict, so the first index wins;
// the first NaN wins over everything).
template <typename A>
inline bool better(bool is_max, A v, A best) {
  if (is_nan_value(best)) return false;
  if (is_nan_value(v)) return true;
  return is_max ? v > best : v < best;
}

template <typename A>
void arg_reduce_acc(bool is_max, const ReduceGeometry& geo, int64_t* indices) {
  ReduceGeometry g = geo;
  const int64_t isz = itemsize(g.in_dtype);
  const int64_t n = g.nred == 0 ? 1 : g.red_sizes[0];
  const int64_t rs = g.nred == 0 ? 1 : g.red_in[0];
  const int64_t nout = g.num_out();
  if (nout == 0 || n == 0) return;
  auto store_val = [&](int64_t off, A v) {
    if (!g.out) return;
    visit_dtype(g.out_dtype, [&](auto tag) {
      using T = decltype(tag);
      const T t = scalar_cast<T>(v);
      std::memcpy(g.out + off * static_cast<int64_t>(sizeof(T)), &t, sizeof(T));
    });
  };
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool col_mode = g.nkeep > 0 && g.keep_in[g.nkeep - 1] == 1 && rs != 1;
  if (col_mode) {
    constexpr int64_t W = 1024 / sizeof(A);
    const int ko = g.nkeep - 1;
    const int64_t width = g.keep_sizes[ko], tiles = (width + W - 1) / W;
    int64_t outer = 1;
    for (int d = 0; d < ko; ++d) outer *= g.keep_sizes[d];
    const int64_t tasks = outer * tiles;
    auto task = [&](int64_t t) {
      const int64_t o = t / tiles, c0 = (t % tiles) * W, w = std::min(W, width - c0);
      ReduceOdometer od(ko, g.keep_sizes.data(), g.keep_in.data(), g.keep_out.data(), o);
      const char* base = g.in + (od.off0 + c0) * isz;
      A best[W], rowbuf[W];
      int64_t idx[W];
      const A* x0 = load_row<A>(base, g.in_dtype, w, rowbuf);
      for (int64_t j = 0; j < w; ++j) best[j] = x0[j], idx[j] = 0;
      for (int64_t r = 1; r < n; ++r) {
        const A* x = load_row<A>(base + r * rs * isz, g.in_dtype, w, rowbuf);
        for (int64_t j = 0; j < w; ++j) {
          const bool take = better(is_max, x[j], best[j]);
          best[j] = take ? x[j] : best[j];
          idx[j] = take ? r : idx[j];
        }
      }
      for (int64_t j = 0; j < w; ++j) {
        const int64_t off = od.off1 + (c0 + j) * g.keep_out[ko];
        indices[off] = idx[j];
        store_val(off, best[j]);
      }
    };
    run_tasks(tasks, threads > 1 && tasks * n * W >= 32768, task);
    return;
  }
  // Row path: scan each row in staged chunks; a chunk's extreme is found vectorised and its first
  // position looked up only when it improves on the running one.
  auto row = [&](const char* base, int64_t out_off) {
    A best = 0;
    int64_t bi = -1;
    A* buf = scratch<A>(1, kLeaf);
    for (int64_t b = 0; b < n; b += kLeaf) {
      const int64_t m = std::min(kLeaf, n - b);
      const A* x;
      if (rs == 1 && dtype_v<A> == g.in_dtype) {
        x = reinterpret_cast<const A*>(base + b * isz);
      } else {
        gather_to<A>(base + b * rs * isz, g.in_dtype, rs * isz, m, buf);
        x = buf;
      }
      const A cm = is_max ? fold_run<ReduceOp::max, A>(Fold<ReduceOp::max, A>{}, x, m, A(0))
                          : fold_run<ReduceOp::min, A>(Fold<ReduceOp::min, A>{}, x, m, A(0));
      if (bi < 0 || better(is_max, cm, best)) {
        int64_t j = 0;
        if (is_nan_value(cm)) {
          while (!is_nan_value(x[j])) ++j;
        } else {
          while (x[j] != cm) ++j;
        }
        best = x[j];  // the element itself: of -0 and +0, the one whose index is returned
        bi = b + j;
        if (is_nan_value(best)) break;
      }
    }
    indices[out_off] = bi;
    store_val(out_off, best);
  };
  const int64_t per = std::max<int64_t>(1, 32768 / n);
  const int64_t tasks = (nout + per - 1) / per;
  auto task = [&](int64_t t) {
    const int64_t o0 = t * per, o1 = std::min(nout, o0 + per);
    ReduceOdometer od(g.nkeep, g.keep_sizes.data(), g.keep_in.data(), g.keep_out.data(), o0);
    for (int64_t o = o0; o < o1; ++o, od.next()) row(g.in + od.off0 * isz, od.off1);
  };
  run_tasks(tasks, threads > 1, task);
}

void arg_reduce_kernel(bool is_max, const ReduceGeometry& g, int64_t* indices) {
  switch (reduce_acc_dtype(g.in_dtype)) {
    case DType::float64:
      return arg_reduce_acc<double>(is_max, g, indices);
    case DType::float32:
      return arg_reduce_acc<float>(is_max, g, indices);
    default:
      return arg_reduce_acc<int64_t>(is_max, g, indices);
  }
}

// ---- cumsum ---------------------------------------------------------------------------------

template <typename A>
void cumsum_acc(const ScanGeometry& g) {
  const int64_t isz = itemsize(g.in_dtype), osz = itemsize(g.out_dtype);
  const char* in = static_cast<const char*>(g.in);
  char* out = static_cast<char*>(g.out);
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool big = g.outer * g.len * g.inner >= 32768 && threads > 1;
  if (g.inner == 1) {
    if constexpr (std::is_same_v<A, double>) {
      if (g.in_dtype == DType::float32 && g.out_dtype == DType::float32) {
        // float32 rows in one pass (torch's loop): widening and rounding each element in place
        // of the two conversion passes through a double row below, which cost more than the
        // scan itself ((2048, 2048): 4.8 ms against torch's 3.1).
        auto row_f32 = [&](int64_t o) {
          const float* x = reinterpret_cast<const float*>(in) + o * g.len;
          float* y = reinterpret_cast<float*>(out) + o * g.len;
          double acc = 0;
          for (int64_t i = 0; i < g.len; ++i) {
            acc += x[i];
            y[i] = static_cast<float>(acc);
          }
        };
        run_tasks(g.outer, big, row_f32);
        return;
      }
    }
    // (outer, len): one sequential scan per row.
    auto row = [&](int64_t o) {
      A* buf = scratch<A>(0, g.len);
      const A* x = load_row<A>(in + o * g.len * isz, g.in_dtype, g.len, buf);
      A acc = 0;
      for (int64_t i = 0; i < g.len; ++i) {
        acc += x[i];
        buf[i] = acc;
      }
      store_row<A>(buf, out + o * g.len * osz, g.out_dtype, g.len);
    };
    run_tasks(g.outer, big, row);
    return;
  }
  // (outer, len, inner): running sums of rows, vectorised across inner in tiles.
  constexpr int64_t W = 1024 / sizeof(A);
  const int64_t tiles = (g.inner + W - 1) / W;
  auto task = [&](int64_t t) {
    const int64_t o = t / tiles, c0 = (t % tiles) * W, w = std::min(W, g.inner - c0);
    A acc[W] = {}, rowbuf[W];
    for (int64_t l = 0; l < g.len; ++l) {
      const int64_t off = (o * g.len + l) * g.inner + c0;
      const A* x = load_row<A>(in + off * isz, g.in_dtype, w, rowbuf);
      for (int64_t j = 0; j < w; ++j) acc[j] += x[j];
      store_row<A>(acc, out + off * osz, g.out_dtype, w);
    }
  };
  run_tasks(g.outer * tiles, big, task);
}

void cumsum_kernel(const ScanGeometry& g) {
  if (g.outer * g.len * g.inner == 0) return;
  // PyTorch's CPU scans accumulate float32 in double (acc_type<float, is_cuda=false>); a running
  // sum of many float32 terms drifts by whole percents otherwise. The half types accumulate in
  // float32, integers in int64.
  if (g.out_dtype == DType::float32) return cumsum_acc<double>(g);
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
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(reduce_stub, cpu, &cpu::reduce_kernel);
FABRIC_REGISTER_KERNEL(arg_reduce_stub, cpu, &cpu::arg_reduce_kernel);
FABRIC_REGISTER_KERNEL(cumsum_stub, cpu, &cpu::cumsum_kernel);
}  // namespace fabric
