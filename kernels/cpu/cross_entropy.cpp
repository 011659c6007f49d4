// CPU loss kernels: cross-entropy fused with log-softmax (one log-sum-exp per row, then the pick
// and the label-smoothing term, never materialising the probabilities), its backward and
// mse_loss's squared difference (nll_loss is in nll_loss.cpp). Rows are spread over OpenMP
// threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/reduce_math.h"
#include "kernels/cpu/softmax_torch_row.h"
#include "tensor/reduce_kernels.h"

namespace fabric::cpu {
namespace {

int64_t read_target(const void* t, DType dt, int64_t pos) {
  return dt == DType::int32 ? static_cast<const int32_t*>(t)[pos]
                            : static_cast<const int64_t*>(t)[pos];
}

// Runs body(pos) for every position (outer * inner of them) in parallel when the work is large,
// and collects the target statistics: valid count and the first (lowest position) bad target.
template <typename Body>
TargetStats for_positions(const ClassGeometry& g, const void* target, DType tdt,
                          int64_t ignore_index, const Body& body) {
  const int64_t P = g.outer * g.inner, C = g.classes;
  TargetStats st;
  int64_t bad_pos = P;
  const int64_t per = rows_per_task(C), tasks = (P + per - 1) / per;
  auto task = [&](int64_t t, int64_t& valid, int64_t& first_bad) {
    for (int64_t pos = t * per; pos < std::min(P, (t + 1) * per); ++pos) {
      const int64_t tg = read_target(target, tdt, pos);
      if (tg == ignore_index) {
        body(pos, tg, false);
        continue;
      }
      if (tg < 0 || tg >= C) {
        first_bad = std::min(first_bad, pos);
        body(pos, tg, false);
        continue;
      }
      ++valid;
      body(pos, tg, true);
    }
  };
  if (tasks > 1 && P * C >= 32768 && !omp_in_parallel()) {
    int64_t valid = 0;
#pragma omp parallel reduction(+ : valid)
    {
      int64_t local_bad = P;
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tasks; ++t) task(t, valid, local_bad);
#pragma omp critical(fabric_ce_bad)
      bad_pos = std::min(bad_pos, local_bad);
    }
    st.valid = valid;
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t, st.valid, bad_pos);
  }
  if (bad_pos < P) {
    st.bad = true;
    st.bad_value = read_target(target, tdt, bad_pos);
  }
  return st;
}

// The C logits of position pos as A: the row itself when contiguous and of type A, else staged.
template <typename A>
const A* class_row(const ClassGeometry& g, const char* x, DType dt, int64_t pos, A* buf) {
  const int64_t n = pos / g.inner, i = pos % g.inner, isz = itemsize(dt);
  const char* base = x + (n * g.classes * g.inner + i) * isz;
  if (g.inner == 1) return load_row<A>(base, dt, g.classes, buf);
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* p = reinterpret_cast<const T*>(base);
    for (int64_t c = 0; c < g.classes; ++c) buf[c] = scalar_cast<A>(p[c * g.inner]);
  });
  return buf;
}

template <typename A>
TargetStats cross_entropy_acc(const ClassGeometry& g, const char* x, DType dt, const void* target,
                              DType tdt, int64_t ignore_index, double smoothing, A* loss) {
  const int64_t C = g.classes;
  const A s = static_cast<A>(smoothing);
  return for_positions(g, target, tdt, ignore_index, [&](int64_t pos, int64_t t, bool valid) {
    if (!valid) {
      loss[pos] = 0;
      return;
    }
    const A* row = class_row<A>(g, x, dt, pos, scratch<A>(0, C));
    const A m = row_max(row, C);
    // -log p_c as torch's log_softmax then nll_loss: -((x_c - max) - log(sum)) (the negation last:
    // a certain class is -0, as torch's). (max + log(sum)) - x_c would lose log(sum)'s low bits
    // against large logits (0.60413361 for 0.60413063 at 100).
    // Classes along the last dim (inner == 1) are torch's last-dim log_softmax rows: its sum order
    // and SLEEF's log (softmax_torch_row.h), so the loss is torch's bits there too.
    A ls;
    if (g.inner == 1) {
      const A sum = torch_softmax::exp_sum(row, m, C, nullptr);
      if constexpr (std::is_same_v<A, float>)
        ls = torch_softmax::logf_u10(sum);
      else
        ls = torch_softmax::log_u10(sum);
    } else {
      ls = std::log(exp_shift_sum(row, nullptr, C, m));
    }
    A l = -((row[t] - m) - ls);
    if (s != A(0)) {
      // sum_c -log p_c, termwise (each term >= 0, so no cancellation)
      const A smooth = sum_range<A>(0, C, [row, m, ls](int64_t c) { return (m - row[c]) + ls; });
      l = (A(1) - s) * l + s / static_cast<A>(C) * smooth;
    }
    loss[pos] = l;
  });
}

TargetStats cross_entropy_kernel(const ClassGeometry& g, const void* logits, DType dt,
                                 const void* target, DType tdt, int64_t ignore_index,
                                 double smoothing, void* loss, const TargetCheck&) {
  const char* x = static_cast<const char*>(logits);
  if (dt == DType::float64)
    return cross_entropy_acc<double>(g, x, dt, target, tdt, ignore_index, smoothing,
                                     static_cast<double*>(loss));
  return cross_entropy_acc<float>(g, x, dt, target, tdt, ignore_index, smoothing,
                                  static_cast<float*>(loss));
}

template <typename A>
TargetStats cross_entropy_backward_acc(const ClassGeometry& g, const char* x, DType dt,
                                       const void* target, DType tdt, int64_t ignore_index,
                                       double smoothing, const A* grad, bool grad_is_scalar,
                                       bool mean, char* dx) {
  const int64_t C = g.classes, isz = itemsize(dt);
  A scale = grad_is_scalar ? grad[0] : A(0);
  if (grad_is_scalar && mean) {
    int64_t valid = 0;
    for (int64_t pos = 0; pos < g.outer * g.inner; ++pos) {
      const int64_t t = read_target(target, tdt, pos);
      valid += t != ignore_index && t >= 0 && t < C;
    }
    scale /= static_cast<A>(valid);
  }
  const A s = static_cast<A>(smoothing), off = s / static_cast<A>(C);
  auto write_row = [&](int64_t pos, A* d) {
    const int64_t n = pos / g.inner, i = pos % g.inner;
    char* base = dx + (n * C * g.inner + i) * isz;
    if (g.inner == 1) return store_row<A>(d, base, dt, C);
    visit_dtype(dt, [&](auto tag) {
      using T = decltype(tag);
      T* p = reinterpret_cast<T*>(base);
      for (int64_t c = 0; c < C; ++c) p[c * g.inner] = scalar_cast<T>(d[c]);
    });
  };
  return for_positions(g, target, tdt, ignore_index, [&](int64_t pos, int64_t t, bool valid) {
    A* d = scratch<A>(1, C);
    if (!valid) {
      std::fill(d, d + C, A(0));
      return write_row(pos, d);
    }
    const A gp = grad_is_scalar ? scale : grad[pos];
    const A* row = class_row<A>(g, x, dt, pos, scratch<A>(0, C));
    const A m = row_max(row, C);
    const A inv = A(1) / exp_shift_sum(row, d, C, m);  // d = exp(x - m)
    for (int64_t c = 0; c < C; ++c) d[c] = gp * (d[c] * inv - off);
    d[t] -= gp * (A(1) - s);
    write_row(pos, d);
  });
}

TargetStats cross_entropy_backward_kernel(const ClassGeometry& g, const void* logits, DType dt,
                                          const void* target, DType tdt, int64_t ignore_index,
                                          double smoothing, const void* grad, bool grad_is_scalar,
                                          bool mean, void* dlogits, const TargetCheck&) {
  const char* x = static_cast<const char*>(logits);
  char* d = static_cast<char*>(dlogits);
  if (dt == DType::float64)
    return cross_entropy_backward_acc<double>(g, x, dt, target, tdt, ignore_index, smoothing,
                                              static_cast<const double*>(grad), grad_is_scalar,
                                              mean, d);
  return cross_entropy_backward_acc<float>(g, x, dt, target, tdt, ignore_index, smoothing,
                                           static_cast<const float*>(grad), grad_is_scalar, mean,
                                           d);
}

// out = (a - b)^2, computed in float32 (float64 when any operand is float64).
template <typename A>
void squared_diff_acc(const StridedLoop& loop) {
  const DType ot = loop.ops[0].dtype, it = loop.ops[1].dtype;
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* st) {
    const bool flat = st[0] == itemsize(ot) && st[1] == itemsize(it) && st[2] == itemsize(it);
    if (flat && it == dtype_v<A> && ot == dtype_v<A>) {
      const A* a = reinterpret_cast<const A*>(p[1]);
      const A* b = reinterpret_cast<const A*>(p[2]);
      A* o = reinterpret_cast<A*>(p[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = (a[i] - b[i]) * (a[i] - b[i]);
      return;
    }
    visit_dtype(it, [&](auto itag) {
      using T = decltype(itag);
      visit_dtype(ot, [&](auto otag) {
        using O = decltype(otag);
        for (int64_t i = 0; i < n; ++i) {
          T a, b;
          std::memcpy(&a, p[1] + i * st[1], sizeof(T));
          std::memcpy(&b, p[2] + i * st[2], sizeof(T));
          const A d = scalar_cast<A>(a) - scalar_cast<A>(b);
          const O o = scalar_cast<O>(d * d);
          std::memcpy(p[0] + i * st[0], &o, sizeof(O));
        }
      });
    });
  });
}

void squared_diff_kernel(const StridedLoop& loop) {
  if (loop.ops[0].dtype == DType::float64 || loop.ops[1].dtype == DType::float64)
    return squared_diff_acc<double>(loop);
  squared_diff_acc<float>(loop);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(cross_entropy_stub, cpu, &cpu::cross_entropy_kernel);
FABRIC_REGISTER_KERNEL(cross_entropy_backward_stub, cpu, &cpu::cross_entropy_backward_kernel);
FABRIC_REGISTER_KERNEL(squared_diff_stub, cpu, &cpu::squared_diff_kernel);
}  // namespace fabric
