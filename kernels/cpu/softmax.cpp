// CPU softmax / log_softmax and their backward over contiguous (outer, n, inner). Last-dim rows
// (inner == 1) follow torch 1.13's last-dim kernels step for step (softmax_torch_row.h: its sum
// order, SLEEF's exp and log, its bfloat16 roundings), so they are torch's bits; other dims are
// swept in column tiles (vectorised across inner). Rows are spread over OpenMP threads.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/reduce_math.h"
#include "kernels/cpu/softmax_torch_row.h"
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

float round_bf16(float v) { return static_cast<float>(BFloat16(v)); }

// Last-dim rows as torch 1.13 computes them for the output dtype: float64, float32 (float16 too,
// which torch 1.13 refuses on the CPU), or bfloat16, whose own paths round log_softmax's sum and
// its log to bfloat16 and add softmax's last n % 8 exps with libm.

// The row's max. torch's vec::maximum ORs the unordered mask into a NaN lane, so a NaN row's max
// is the all-ones NaN (a single value is its own max), whose bits then propagate. bfloat16's
// log_softmax keeps the max as BFloat16, whose cast makes every NaN 0x7FC0.
template <typename A>
A torch_row_max(const A* x, int64_t n, bool bf16) {
  using Bits = std::conditional_t<sizeof(A) == 4, uint32_t, uint64_t>;
  const A m = row_max(x, n);
  if (m == m || bf16) return m;
  return n == 1 ? x[0] : std::bit_cast<A>(~Bits{0});
}

// The value whose log log_softmax subtracts: the sum of exp(x - m) (bfloat16: rounded to it).
template <typename A>
A log_softmax_sum(const A* x, A m, int64_t n, bool bf16) {
  if constexpr (std::is_same_v<A, float>)
    if (bf16) return round_bf16(torch_softmax::exp_sum_bf16_log(x, m, n));
  return torch_softmax::exp_sum(x, m, n, nullptr);
}

// (x - max) - log(sum), torch's order: max + log(sum) first loses log(sum)'s low bits against a
// large max (logits of 1e4 were off by 2e-4).
template <typename A>
void log_softmax_out(const A* x, A m, A ls, A* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) - ls;
}

// One row y = softmax(x) or log_softmax(x) (n >= 1; y may be x).
template <typename A>
void softmax_row(const A* x, A* y, int64_t n, bool log, bool bf16) {
  namespace ts = torch_softmax;
  const A m = torch_row_max(x, n, bf16);
  if (log) {
    const A s = log_softmax_sum(x, m, n, bf16);
    A ls;
    if constexpr (std::is_same_v<A, float>)
      ls = bf16 ? round_bf16(ts::logf_u10(s)) : ts::logf_u10(s);
    else
      ls = ts::log_u10(s);
    return log_softmax_out(x, m, ls, y, n);
  }
  A sum;
  if constexpr (std::is_same_v<A, float>)
    sum = bf16 ? ts::exp_sum_bf16_softmax(x, m, n, y) : ts::exp_sum(x, m, n, y);
  else
    sum = ts::exp_sum(x, m, n, y);
  const A inv = A(1) / sum;
  for (int64_t j = 0; j < n; ++j) y[j] *= inv;
}

// float log_softmax over up to 8 rows of n at once: their sums' logs as one vector, as torch takes
// a chunk's logs (a scalar log per row costs as much as a short row itself).
constexpr int64_t kLogBatchMaxLen = 2048;  // rows staged 8 at a time in scratch up to this length
void log_softmax_rows8(const char* in, DType it, char* out, DType ot, int64_t n, int64_t k,
                       bool bf16) {
  const int64_t isz = itemsize(it), osz = itemsize(ot);
  float* xs = scratch<float>(0, 8 * n);
  float* ys = scratch<float>(1, 8 * n);
  const float* x[8];
  float m[8];
  alignas(32) float s[8], ls[8];
  for (int64_t j = 0; j < 8; ++j) {
    s[j] = 1;  // lanes past k: any positive value
    if (j >= k) continue;
    x[j] = load_row<float>(in + j * n * isz, it, n, xs + j * n);
    m[j] = torch_row_max(x[j], n, bf16);
    s[j] = log_softmax_sum(x[j], m[j], n, bf16);
  }
  _mm256_store_ps(ls, torch_softmax::logf_u10(_mm256_load_ps(s)));
  for (int64_t j = 0; j < k; ++j) {
    float* y = ot == DType::float32 ? reinterpret_cast<float*>(out + j * n * osz) : ys + j * n;
    log_softmax_out(x[j], m[j], bf16 ? round_bf16(ls[j]) : ls[j], y, n);
    store_row<float>(y, out + j * n * osz, ot, n);
  }
}

template <typename A>
void softmax_acc(const RowGeometry& g, const char* in, DType it, char* out, DType ot, bool log) {
  const int64_t n = g.n, isz = itemsize(it), osz = itemsize(ot);
  if (g.inner == 1) {
    // torch casts the input to the output dtype first, so the output picks the path.
    const bool bf16 = ot == DType::bfloat16;
    const bool batch = std::is_same_v<A, float> && log && n <= kLogBatchMaxLen;
    const int64_t per = batch ? (rows_per_task(n) + 7) / 8 * 8 : rows_per_task(n);
    parallel_tasks((g.outer + per - 1) / per, g.outer * n, [&](int64_t t) {
      const int64_t end = std::min(g.outer, (t + 1) * per);
      for (int64_t r = t * per; r < end; r += batch ? 8 : 1) {
        if (batch) {
          log_softmax_rows8(in + r * n * isz, it, out + r * n * osz, ot, n,
                            std::min<int64_t>(8, end - r), bf16);
          continue;
        }
        const A* x = load_row<A>(in + r * n * isz, it, n, scratch<A>(0, n));
        A* y = ot == dtype_v<A> ? reinterpret_cast<A*>(out + r * n * osz) : scratch<A>(1, n);
        softmax_row(x, y, n, log, bf16);
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

// One last-dim row's gradient d (which may alias gy) as torch 1.13's
// _vec_host_softmax_backward_lastdim: log_softmax gy - exp(y) * sum(gy), softmax
// (gy - sum(gy * y)) * y, the sums in torch's order (softmax_torch_row.h). bfloat16 rows (float
// inside) round the sum to bfloat16 (torch keeps it as the scalar type); `round` rounds the result
// to bfloat16 too, for a gradient stored in another dtype.
template <typename A>
void softmax_backward_row(const A* gy, const A* y, A* d, int64_t n, bool log, bool bf16,
                          bool round) {
  namespace ts = torch_softmax;
  A s;
  if constexpr (std::is_same_v<A, float>)
    s = bf16 ? round_bf16(ts::grad_sum_bf16(gy, log ? nullptr : y, n))
             : ts::grad_sum(gy, log ? nullptr : y, n);
  else
    s = ts::grad_sum(gy, log ? nullptr : y, n);
  if (log) {
    ts::log_softmax_grad(gy, y, s, d, n);
  } else {
    for (int64_t j = 0; j < n; ++j) d[j] = (gy[j] - s) * y[j];
  }
  if constexpr (std::is_same_v<A, float>)
    if (round)
      for (int64_t j = 0; j < n; ++j) d[j] = round_bf16(d[j]);
}

template <typename A>
void softmax_backward_acc(const RowGeometry& g, const char* dy, const char* y, DType dt, char* dx,
                          DType xt, bool log) {
  const int64_t n = g.n, isz = itemsize(dt), osz = itemsize(xt);
  if (g.inner == 1) {
    // torch computes in the output's dtype (so A is float for bfloat16), then casts to the
    // input's.
    const bool bf16 = dt == DType::bfloat16;
    const int64_t per = rows_per_task(n);
    parallel_tasks((g.outer + per - 1) / per, g.outer * n, [&](int64_t t) {
      for (int64_t r = t * per; r < std::min(g.outer, (t + 1) * per); ++r) {
        const A* gy = load_row<A>(dy + r * n * isz, dt, n, scratch<A>(0, n));
        const A* yy = load_row<A>(y + r * n * isz, dt, n, scratch<A>(1, n));
        A* d = xt == dtype_v<A> ? reinterpret_cast<A*>(dx + r * n * osz) : scratch<A>(2, n);
        softmax_backward_row(gy, yy, d, n, log, bf16, bf16 && xt != DType::bfloat16);
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
  // Last-dim rows compute in the output's dtype, as torch's; the other layouts in the wider one.
  if (dt == DType::float64 || (xt == DType::float64 && g.inner != 1))
    return softmax_backward_acc<double>(g, a, b, dt, o, xt, log);
  softmax_backward_acc<float>(g, a, b, dt, o, xt, log);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(softmax_stub, cpu, &cpu::softmax_kernel);
FABRIC_REGISTER_KERNEL(softmax_backward_stub, cpu, &cpu::softmax_backward_kernel);
}  // namespace fabric
