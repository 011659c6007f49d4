// CPU softmax / log_softmax and their backward over contiguous (outer, n, inner). Last-dim rows
// (inner == 1) are vectorised along the row with the AVX-512 exp of reduce_math.h; other dims are
// swept in column tiles (vectorised across inner). Rows are spread over OpenMP threads.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/reduce_math.h"
#include "tensor/reduce_kernels.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kTile = 256;  // inner columns per tile in the strided (inner > 1) layout

// Runs task(t) for t in [0, tasks), in parallel when the whole job touches enough elements.
template <typename Fn>
void parallel_tasks(int64_t tasks, int64_t work, const Fn& task) {
  if (tasks > 1 && work >= 32768 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) task(t);
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  }
}

template <typename A>
void softmax_acc(const RowGeometry& g, const char* in, DType it, char* out, DType ot, bool log) {
  const int64_t n = g.n, isz = itemsize(it), osz = itemsize(ot);
  if (g.inner == 1) {
    const int64_t per = rows_per_task(n);
    parallel_tasks((g.outer + per - 1) / per, g.outer * n, [&](int64_t t) {
      for (int64_t r = t * per; r < std::min(g.outer, (t + 1) * per); ++r) {
        const A* x = load_row<A>(in + r * n * isz, it, n, scratch<A>(0, n));
        A* y = ot == dtype_v<A> ? reinterpret_cast<A*>(out + r * n * osz) : scratch<A>(1, n);
        const A m = row_max(x, n);
        if (!log) {
          const A inv = A(1) / exp_shift_sum(x, y, n, m);
          for (int64_t j = 0; j < n; ++j) y[j] *= inv;
        } else {
          // torch's order, (x - max) - log(sum): max + log(sum) first loses log(sum)'s low bits
          // against a large max (logits of 1e4 were off by 2e-4).
          const A ls = std::log(exp_shift_sum(x, nullptr, n, m));
          for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) - ls;
        }
        store_row<A>(y, out + r * n * osz, ot, n);
      }
    });
    return;
  }
  // (outer, n, inner): per tile of inner columns, max over n, then the exp-sum, then the output.
  const int64_t inner = g.inner, tiles = (inner + kTile - 1) / kTile;
  parallel_tasks(g.outer * tiles, g.outer * n * inner, [&](int64_t t) {
    const int64_t o = t / tiles, c0 = (t % tiles) * kTile, w = std::min(kTile, inner - c0);
    A mx[kTile], sum[kTile], buf[kTile], tmp[kTile];
    auto row = [&](int64_t j) {
      return load_row<A>(in + ((o * n + j) * inner + c0) * isz, it, w, buf);
    };
    for (int64_t c = 0; c < w; ++c) mx[c] = -std::numeric_limits<A>::infinity(), sum[c] = 0;
    for (int64_t j = 0; j < n; ++j) {
      const A* x = row(j);
      for (int64_t c = 0; c < w; ++c) mx[c] = (x[c] > mx[c] || x[c] != x[c]) ? x[c] : mx[c];
    }
    for (int64_t j = 0; j < n; ++j) {
      const A* x = row(j);
      for (int64_t c = 0; c < w; ++c) tmp[c] = x[c] - mx[c];
      exp_inplace(tmp, w);
      for (int64_t c = 0; c < w; ++c) sum[c] += tmp[c];
    }
    for (int64_t c = 0; c < w; ++c) sum[c] = log ? std::log(sum[c]) : A(1) / sum[c];
    for (int64_t j = 0; j < n; ++j) {
      const A* x = row(j);
      if (log) {  // (x - max) - log(sum), as the row path
        for (int64_t c = 0; c < w; ++c) tmp[c] = (x[c] - mx[c]) - sum[c];
      } else {
        for (int64_t c = 0; c < w; ++c) tmp[c] = x[c] - mx[c];
        exp_inplace(tmp, w);
        for (int64_t c = 0; c < w; ++c) tmp[c] *= sum[c];
      }
      store_row<A>(tmp, out + ((o * n + j) * inner + c0) * osz, ot, w);
    }
  });
}

void softmax_kernel(const RowGeometry& g, const void* in, DType it, void* out, DType ot, bool log) {
  if (g.outer * g.n * g.inner == 0) return;
  const char* i = static_cast<const char*>(in);
  char* o = static_cast<char*>(out);
  if (it == DType::float64 || ot == DType::float64)
    return softmax_acc<double>(g, i, it, o, ot, log);
  softmax_acc<float>(g, i, it, o, ot, log);
}

template <typename A>
void softmax_backward_acc(const RowGeometry& g, const char* dy, const char* y, DType dt, char* dx,
                          DType xt, bool log) {
  const int64_t n = g.n, isz = itemsize(dt), osz = itemsize(xt);
  if (g.inner == 1) {
    const int64_t per = rows_per_task(n);
    parallel_tasks((g.outer + per - 1) / per, g.outer * n, [&](int64_t t) {
      for (int64_t r = t * per; r < std::min(g.outer, (t + 1) * per); ++r) {
        const A* gy = load_row<A>(dy + r * n * isz, dt, n, scratch<A>(0, n));
        const A* yy = load_row<A>(y + r * n * isz, dt, n, scratch<A>(1, n));
        A* d = xt == dtype_v<A> ? reinterpret_cast<A*>(dx + r * n * osz) : scratch<A>(2, n);
        if (!log) {
          const A s = row_dot(gy, yy, n);
          for (int64_t j = 0; j < n; ++j) d[j] = yy[j] * (gy[j] - s);
        } else {
          const A s = row_sum(gy, n);
          A* e = scratch<A>(3, n);
          std::copy(yy, yy + n, e);
          exp_inplace(e, n);
          for (int64_t j = 0; j < n; ++j) d[j] = gy[j] - e[j] * s;
        }
        store_row<A>(d, dx + r * n * osz, xt, n);
      }
    });
    return;
  }
  const int64_t inner = g.inner, tiles = (inner + kTile - 1) / kTile;
  parallel_tasks(g.outer * tiles, g.outer * n * inner, [&](int64_t t) {
    const int64_t o = t / tiles, c0 = (t % tiles) * kTile, w = std::min(kTile, inner - c0);
    A s[kTile] = {}, b0[kTile], b1[kTile], d[kTile];
    auto off = [&](int64_t j) { return (o * n + j) * inner + c0; };
    for (int64_t j = 0; j < n; ++j) {
      const A* gy = load_row<A>(dy + off(j) * isz, dt, w, b0);
      const A* yy = load_row<A>(y + off(j) * isz, dt, w, b1);
      for (int64_t c = 0; c < w; ++c) s[c] += log ? gy[c] : gy[c] * yy[c];
    }
    for (int64_t j = 0; j < n; ++j) {
      const A* gy = load_row<A>(dy + off(j) * isz, dt, w, b0);
      const A* yy = load_row<A>(y + off(j) * isz, dt, w, b1);
      if (log) {
        std::copy(yy, yy + w, d);
        exp_inplace(d, w);
        for (int64_t c = 0; c < w; ++c) d[c] = gy[c] - d[c] * s[c];
      } else {
        for (int64_t c = 0; c < w; ++c) d[c] = yy[c] * (gy[c] - s[c]);
      }
      store_row<A>(d, dx + off(j) * osz, xt, w);
    }
  });
}

void softmax_backward_kernel(const RowGeometry& g, const void* dy, const void* y, DType dt,
                             void* dx, DType xt, bool log) {
  if (g.outer * g.n * g.inner == 0) return;
  const char* a = static_cast<const char*>(dy);
  const char* b = static_cast<const char*>(y);
  char* o = static_cast<char*>(dx);
  if (dt == DType::float64 || xt == DType::float64)
    return softmax_backward_acc<double>(g, a, b, dt, o, xt, log);
  softmax_backward_acc<float>(g, a, b, dt, o, xt, log);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(softmax_stub, cpu, &cpu::softmax_kernel);
FABRIC_REGISTER_KERNEL(softmax_backward_stub, cpu, &cpu::softmax_backward_kernel);
}  // namespace fabric
