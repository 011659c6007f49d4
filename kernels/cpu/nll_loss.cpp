// CPU nll_loss and its backward. Each position reads or writes one value of its class row, so
// the loops are specialised on the input and target types once and walk (n, i) directly: no
// per-value dtype dispatch or division. Positions (rows, for the backward) are split over the
// OpenMP threads when there are enough of them.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/error.h"
#include "tensor/reduce_kernels.h"

namespace fabric::cpu {
namespace {

// Below this many positions (forward) or gradient elements (backward) one thread does it all:
// entering a parallel region costs more than the work.
constexpr int64_t kParallelPositions = 16384;
constexpr int64_t kParallelElements = 1 << 16;

// What one thread saw in its targets; `first_bad` is the lowest out-of-range position, or -1.
struct TargetTally {
  int64_t valid = 0;
  int64_t first_bad = -1;

  // A target that is neither ignore_index nor a class is recorded (the first one only: each
  // thread walks its positions in order); returns whether t is a class.
  bool is_class(int64_t t, int64_t classes, int64_t ignore_index, int64_t pos) {
    if (t == ignore_index) return false;
    if (static_cast<uint64_t>(t) < static_cast<uint64_t>(classes)) {
      ++valid;
      return true;
    }
    if (first_bad < 0) first_bad = pos;
    return false;
  }
};

// The statistics of all parts: the lowest bad position names the error, as a serial walk would.
template <typename Tg>
TargetStats fold_tallies(const TargetTally* tallies, size_t parts, const Tg* target) {
  TargetStats st;
  int64_t first_bad = -1;
  for (size_t p = 0; p < parts; ++p) {
    const TargetTally& t = tallies[p];
    st.valid += t.valid;
    if (t.first_bad >= 0 && (first_bad < 0 || t.first_bad < first_bad)) first_bad = t.first_bad;
  }
  if (first_bad >= 0) {
    st.bad = true;
    st.bad_value = static_cast<int64_t>(target[first_bad]);
  }
  return st;
}

// Runs body(part, parts, tally) on `parts` threads, or once as body(0, 1, tally) when not
// parallel (with no allocation: small calls pay only the walk), and folds the tallies.
template <typename Tg, typename Body>
TargetStats tally_parts(bool parallel, const Tg* target, const Body& body) {
  if (!parallel || omp_get_max_threads() == 1 || omp_in_parallel()) {
    TargetTally tally;
    body(0, 1, tally);
    return fold_tallies(&tally, 1, target);
  }
  std::vector<TargetTally> tallies(static_cast<size_t>(omp_get_max_threads()));
  run_parallel_region(true, [&](int64_t part, int64_t parts) {
    body(part, parts, tallies[static_cast<size_t>(part)]);
  });
  return fold_tallies(tallies.data(), tallies.size(), target);
}

// Calls f(T{}, Tg{}) with the storage types of the (floating) input and the (int64/int32) target.
template <typename F>
TargetStats visit_input_and_target(DType dt, DType tdt, const F& f) {
  return visit_dtype(dt, [&](auto x_tag) -> TargetStats {
    using T = decltype(x_tag);
    if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float> ||
                  std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
      if (tdt == DType::int32) return f(T{}, int32_t{});
      return f(T{}, int64_t{});
    } else {
      FABRIC_CHECK(false, DTypeError, "nll_loss: no CPU kernel for ", dtype_name(dt),
                   " input (expected float64/float32/float16/bfloat16)");
      return {};
    }
  });
}

// loss[pos] = -x[n, t, i] in A (0 where ignored or out of range), positions [p0, p1).
template <typename A, typename T, typename Tg>
void nll_loss_positions(const ClassGeometry& g, const T* x, const Tg* target, int64_t ignore_index,
                        int64_t p0, int64_t p1, A* loss, TargetTally& tally) {
  const int64_t C = g.classes, inner = g.inner, n = p0 / inner;
  int64_t i = p0 - n * inner;
  const T* block = x + n * C * inner;  // (C, inner) of position's n
  for (int64_t pos = p0; pos < p1; ++pos) {
    const int64_t t = static_cast<int64_t>(target[pos]);
    loss[pos] =
        tally.is_class(t, C, ignore_index, pos) ? -scalar_cast<A>(block[t * inner + i]) : A(0);
    if (++i == inner) {
      i = 0;
      block += C * inner;
    }
  }
}

TargetStats nll_loss_kernel(const ClassGeometry& g, const void* log_probs, DType dt,
                            const void* target, DType tdt, int64_t ignore_index, void* loss,
                            const TargetCheck&) {
  const int64_t P = g.outer * g.inner;
  return visit_input_and_target(dt, tdt, [&](auto x_tag, auto t_tag) {
    using T = decltype(x_tag);
    using Tg = decltype(t_tag);
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* x = static_cast<const T*>(log_probs);
    const Tg* tg = static_cast<const Tg*>(target);
    return tally_parts(P >= kParallelPositions, tg,
                       [&](int64_t part, int64_t parts, TargetTally& tally) {
                         nll_loss_positions(g, x, tg, ignore_index, P * part / parts,
                                            P * (part + 1) / parts, static_cast<A*>(loss), tally);
                       });
  });
}

// The targets that are classes (the mean's divisor).
template <typename Tg>
int64_t count_classes(const Tg* target, int64_t n, int64_t classes, int64_t ignore_index) {
  int64_t valid = 0;
  for (int64_t p = 0; p < n; ++p) {
    const int64_t t = static_cast<int64_t>(target[p]);
    valid += t != ignore_index && static_cast<uint64_t>(t) < static_cast<uint64_t>(classes);
  }
  return valid;
}

// The gradient written at every class target of a "sum"/"mean": -grad, or -(grad / count) for
// a mean with the count and the quotient rounded to T as torch does (its total weight is a
// tensor of the input's dtype), so half-precision results match torch's bit for bit.
template <typename A, typename T>
T scalar_position_grad(T grad, bool mean, int64_t valid) {
  A v = scalar_cast<A>(grad);
  if (mean) v /= scalar_cast<A>(scalar_cast<T>(static_cast<A>(std::max<int64_t>(valid, 1))));
  return scalar_cast<T>(-v);
}

// Rows [n0, n1) of dx: zeroed, then -grad at each class target.
template <typename A, typename T, typename Tg>
void nll_loss_backward_rows(const ClassGeometry& g, const Tg* target, int64_t ignore_index,
                            const T* grad, bool grad_is_scalar, T scalar_grad, int64_t n0,
                            int64_t n1, T* dx, TargetTally& tally) {
  const int64_t C = g.classes, inner = g.inner;
  for (int64_t n = n0; n < n1; ++n) {
    T* block = dx + n * C * inner;  // (C, inner)
    std::memset(static_cast<void*>(block), 0, static_cast<size_t>(C * inner) * sizeof(T));
    for (int64_t i = 0, pos = n * inner; i < inner; ++i, ++pos) {
      const int64_t t = static_cast<int64_t>(target[pos]);
      if (!tally.is_class(t, C, ignore_index, pos)) continue;
      block[t * inner + i] =
          grad_is_scalar ? scalar_grad : scalar_cast<T>(-scalar_cast<A>(grad[pos]));
    }
  }
}

TargetStats nll_loss_backward_kernel(const ClassGeometry& g, DType dt, const void* target,
                                     DType tdt, int64_t ignore_index, const void* grad,
                                     bool grad_is_scalar, bool mean, void* dlog_probs,
                                     const TargetCheck&) {
  return visit_input_and_target(dt, tdt, [&](auto x_tag, auto t_tag) {
    using T = decltype(x_tag);
    using Tg = decltype(t_tag);
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const Tg* tg = static_cast<const Tg*>(target);
    const T* gr = static_cast<const T*>(grad);
    T scalar_grad{};
    if (grad_is_scalar) {
      const int64_t valid =
          mean ? count_classes(tg, g.outer * g.inner, g.classes, ignore_index) : 0;
      scalar_grad = scalar_position_grad<A>(gr[0], mean, valid);
    }
    const bool parallel = g.outer > 1 && g.outer * g.classes * g.inner >= kParallelElements;
    return tally_parts(parallel, tg, [&](int64_t part, int64_t parts, TargetTally& tally) {
      nll_loss_backward_rows<A>(g, tg, ignore_index, gr, grad_is_scalar, scalar_grad,
                                g.outer * part / parts, g.outer * (part + 1) / parts,
                                static_cast<T*>(dlog_probs), tally);
    });
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(nll_loss_stub, cpu, &cpu::nll_loss_kernel);
FABRIC_REGISTER_KERNEL(nll_loss_backward_stub, cpu, &cpu::nll_loss_backward_kernel);
}  // namespace fabric
