// CPU kernels of batch_norm/group_norm (tensor/channel_norm_kernels.h): per-plane sums and the
// per-plane affine map over contiguous (planes, len), in float32 (float64 for float64). Runs of
// consecutive planes (~32K elements) are one contiguous chunk, converted at once and spread over
// OpenMP threads, so short planes (BatchNorm1d's (N, C): one value each) cost no more per element
// than long ones. Each plane's sum is one cascade sum, whatever the thread count.
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/reduce_math.h"
#include "tensor/channel_norm_affine.h"
#include "tensor/channel_norm_kernels.h"

namespace fabric::cpu {
namespace {

// Planes at most this long are summed by a plain loop (the cascade's setup costs more).
constexpr int64_t kShortPlane = 16;

// Runs range(p0, p1) over runs of consecutive planes of at least ~32K elements (or one plane).
template <typename F>
void for_plane_runs(int64_t planes, int64_t len, const F& range) {
  const int64_t per = rows_per_task(len), tasks = (planes + per - 1) / per;
  if (tasks > 1 && planes * len >= 32768 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) range(t * per, std::min(planes, (t + 1) * per));
  } else {
    for (int64_t t = 0; t < tasks; ++t) range(t * per, std::min(planes, (t + 1) * per));
  }
}

// Sums of planes of one value each (len 1): w[j] (+)= x, wd[j] (+)= x * d with d = v[j] - c[j]
// and x = u[j] or d. Each pointer test is made once, outside the loop, so that it vectorises.
template <bool kAdd, typename A>
void unit_plane_sums(int64_t n, const A* v, const A* u, const A* c, A* w, A* wd) {
  auto loop = [&](auto has_u, auto has_c, auto has_wd) {
    for (int64_t j = 0; j < n; ++j) {
      const A d = has_c ? v[j] - c[j] : v[j];
      const A x = has_u ? u[j] : d;
      w[j] = kAdd ? w[j] + x : x;
      if constexpr (has_wd) wd[j] = kAdd ? wd[j] + x * d : x * d;
    }
  };
  using T = std::true_type;
  using F = std::false_type;
  if (u) {
    if (c) return wd ? loop(T{}, T{}, T{}) : loop(T{}, T{}, F{});
    return wd ? loop(T{}, F{}, T{}) : loop(T{}, F{}, F{});
  }
  if (c) return wd ? loop(F{}, T{}, T{}) : loop(F{}, T{}, F{});
  return wd ? loop(F{}, F{}, T{}) : loop(F{}, F{}, F{});
}

// A folded sum goes through at most this many per-block partials (a count fixed by the shape),
// joined in block order.
constexpr int64_t kFoldBlocks = 16;

template <typename A>
void plane_sums_acc(const PlaneSumsArgs& a) {
  const int64_t L = a.len, sz = itemsize(a.dtype), K = a.period;
  const bool fold = a.fold && K > 0;
  const A* center = static_cast<const A*>(a.center);
  A* sum_w = static_cast<A*>(a.sum_w);
  A* sum_wd = static_cast<A*>(a.sum_wd);
  // Blocks of planes, loaded `chunk` planes (~32K elements) at a time; folded sums keep one
  // partial per block.
  const int64_t chunk = rows_per_task(L), chunks = (a.planes + chunk - 1) / chunk;
  const int64_t blocks = fold ? std::min(kFoldBlocks, chunks) : chunks;
  const int64_t per_block = (a.planes + blocks - 1) / blocks;
  std::vector<A> part(fold ? static_cast<size_t>(blocks * 2 * K) : 0, A(0));
  auto block = [&](int64_t b) {
    A* pw = fold ? part.data() + b * 2 * K : nullptr;
    A* pwd = fold ? pw + K : nullptr;
    auto emit = [&](int64_t p, int64_t k, A sw, A swd) {
      if (fold) {
        pw[k] += sw;
        pwd[k] += swd;
      } else {
        sum_w[p] = sw;
        if (sum_wd) sum_wd[p] = swd;
      }
    };
    const int64_t end = std::min(a.planes, (b + 1) * per_block);
    for (int64_t p0 = b * per_block; p0 < end; p0 += chunk) {
      const int64_t p1 = std::min(end, p0 + chunk), n = (p1 - p0) * L;
      const A* v0 =
          load_row<A>(static_cast<const char*>(a.v) + p0 * L * sz, a.dtype, n, scratch<A>(0, n));
      const A* u0 = a.u ? load_row<A>(static_cast<const char*>(a.u) + p0 * L * sz, a.dtype, n,
                                      scratch<A>(1, n))
                        : nullptr;
      if (L == 1) {  // BatchNorm1d on (N, C): runs of consecutive k, elementwise loops
        for (int64_t p = p0; p < p1;) {
          const int64_t k0 = K ? p % K : p, run = K ? std::min(p1 - p, K - k0) : p1 - p;
          const A* v = v0 + (p - p0);
          const A* u = u0 ? u0 + (p - p0) : nullptr;
          const A* c = center ? center + k0 : nullptr;
          if (fold)
            unit_plane_sums<true>(run, v, u, c, pw + k0, pwd + k0);
          else
            unit_plane_sums<false>(run, v, u, c, sum_w + p, sum_wd ? sum_wd + p : nullptr);
          p += run;
        }
        continue;
      }
      // k: the plane's coefficient index, p % period counted up without a division per plane.
      int64_t k = K ? p0 % K : p0;
      for (int64_t p = p0; p < p1; ++p, k = k + 1 == K ? 0 : k + 1) {
        const A* v = v0 + (p - p0) * L;
        const A* u = u0 ? u0 + (p - p0) * L : nullptr;
        const A c = center ? center[k] : A(0);
        A sw = 0, swd = 0;
        if (L <= kShortPlane) {
          for (int64_t i = 0; i < L; ++i) {
            const A d = v[i] - c, w = u ? u[i] : d;
            sw += w;
            swd += w * d;
          }
        } else if (u) {
          sw = row_sum(u, L);
          swd = sum_range<A>(0, L, [u, v, c](int64_t i) { return u[i] * (v[i] - c); });
        } else {
          sw = sum_range<A>(0, L, [v, c](int64_t i) { return v[i] - c; });
          swd = sum_range<A>(0, L, [v, c](int64_t i) { return (v[i] - c) * (v[i] - c); });
        }
        emit(p, k, sw, swd);
      }
    }
  };
  if (blocks > 1 && a.planes * L >= 32768 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) block(b);
  } else {
    for (int64_t b = 0; b < blocks; ++b) block(b);
  }
  if (!fold) return;
  for (int64_t k = 0; k < K; ++k) {
    A w = 0, wd = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      w += part[b * 2 * K + k];
      wd += part[b * 2 * K + K + k];
    }
    sum_w[k] = w;
    if (sum_wd) sum_wd[k] = wd;
  }
}

// Each element's rounding order, one definition shared with the CUDA kernel.
using channel_norm::affine_element;
using channel_norm::affine_shift;
using channel_norm::with_affine_terms;

template <typename A>
void plane_affine_acc(const PlaneAffineArgs& a) {
  const int64_t L = a.len, sz = itemsize(a.dtype);
  const A* ca = a.u ? static_cast<const A*>(a.a) : nullptr;
  const A* cb = a.v ? static_cast<const A*>(a.b) : nullptr;
  const A* cc = static_cast<const A*>(a.c);
  // The center only matters to the a term.
  const A* center = ca ? static_cast<const A*>(a.center) : nullptr;
  for_plane_runs(a.planes, L, [&](int64_t p0, int64_t p1) {
    const int64_t n = (p1 - p0) * L;
    const A* u0 =
        ca ? load_row<A>(static_cast<const char*>(a.u) + p0 * L * sz, a.dtype, n, scratch<A>(0, n))
           : nullptr;
    const A* v0 =
        cb ? load_row<A>(static_cast<const char*>(a.v) + p0 * L * sz, a.dtype, n, scratch<A>(1, n))
           : nullptr;
    char* out = static_cast<char*>(a.out) + p0 * L * sz;
    A* y0 = a.dtype == dtype_v<A> ? reinterpret_cast<A*>(out) : scratch<A>(2, n);
    with_affine_terms(ca, center, cb, cc, [&](auto has_a, auto has_m, auto has_b, auto has_c) {
      constexpr bool kA = decltype(has_a)::value, kM = decltype(has_m)::value;
      constexpr bool kB = decltype(has_b)::value, kC = decltype(has_c)::value;
      auto element = [](A u, A ka, A m, A shift, A v, A kb, A c) {
        return affine_element<kA, kM, kB, kC>(u, ka, m, shift, v, kb, c);
      };
      // A coefficient, read only where its term is there (known at compile time).
      auto coef = [](auto has, const A* t, int64_t k) {
        if constexpr (decltype(has)::value)
          return t[k];
        else
          return A(0);
      };
      if (L == 1) {  // BatchNorm1d on (N, C): runs of consecutive k, elementwise loops
        for (int64_t p = p0; p < p1;) {
          const int64_t k0 = a.period ? p % a.period : p;
          const int64_t run = a.period ? std::min(p1 - p, a.period - k0) : p1 - p, i0 = p - p0;
          for (int64_t j = 0; j < run; ++j) {
            const int64_t k = k0 + j, i = i0 + j;
            const A ka = coef(has_a, ca, k), m = coef(has_m, center, k), c = coef(has_c, cc, k);
            y0[i] = element(kA ? u0[i] : A(0), ka, m, affine_shift(ka, m, c), kB ? v0[i] : A(0),
                            coef(has_b, cb, k), c);
          }
          p += run;
        }
        return;
      }
      // k: the plane's coefficient index, p % period counted up without a division per plane.
      int64_t k = a.period ? p0 % a.period : p0;
      for (int64_t p = p0; p < p1; ++p, k = k + 1 == a.period ? 0 : k + 1) {
        const int64_t off = (p - p0) * L;
        const A ka = coef(has_a, ca, k), m = coef(has_m, center, k), c = coef(has_c, cc, k);
        const A kb = coef(has_b, cb, k);
        const A shift = affine_shift(ka, m, c);
        const A* u = u0 ? u0 + off : nullptr;
        const A* v = v0 ? v0 + off : nullptr;
        A* y = y0 + off;
        for (int64_t i = 0; i < L; ++i)
          y[i] = element(kA ? u[i] : A(0), ka, m, shift, kB ? v[i] : A(0), kb, c);
      }
    });
    store_row<A>(y0, out, a.dtype, n);
  });
}

template <typename A>
void plane_sums_typed(const PlaneSumsArgs& a) {
  if (a.planes > 0) return plane_sums_acc<A>(a);
  if (!a.fold || a.period == 0) return;
  // An empty fold: zero sums.
  std::fill_n(static_cast<A*>(a.sum_w), a.period, A(0));
  if (a.sum_wd) std::fill_n(static_cast<A*>(a.sum_wd), a.period, A(0));
}

void plane_sums_kernel(const PlaneSumsArgs& a) {
  if (a.dtype == DType::float64) return plane_sums_typed<double>(a);
  plane_sums_typed<float>(a);
}

void plane_affine_kernel(const PlaneAffineArgs& a) {
  if (a.planes == 0 || a.len == 0) return;
  if (a.dtype == DType::float64) return plane_affine_acc<double>(a);
  plane_affine_acc<float>(a);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(plane_sums_stub, cpu, &cpu::plane_sums_kernel);
FABRIC_REGISTER_KERNEL(plane_affine_stub, cpu, &cpu::plane_affine_kernel);
}  // namespace fabric
