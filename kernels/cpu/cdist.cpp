// CPU cdist and its backward (cdist_kernels.h), parallel over the rows of x1 of every batch. x2
// is first transposed to (M, R) per batch, so that the innermost loops run over contiguous x2
// rows: the forward keeps one accumulator per x2 row (independent lanes, so it vectorizes) and
// the backward sums over x2's rows as an omp simd reduction. Features add in order; 16-bit dtypes
// compute in float32.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/run_tasks.h"
#include "kernels/cpu/x86_simd.h"
#include "tensor/cdist_kernels.h"
#include "tensor/conv_kernels.h"

namespace fabric::cpu {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// torch's special cases of p, each its own loop (the general one calls pow per feature).
enum class Norm { zero, one, two, inf, general };

Norm norm_of(double p) {
  if (p == 0) return Norm::zero;
  if (p == 1) return Norm::one;
  if (p == 2) return Norm::two;
  if (std::isinf(p)) return Norm::inf;
  return Norm::general;
}

template <typename A>
A sign_of(A v) {
  return static_cast<A>((v > 0) - (v < 0));
}

// Every batch's x2 (R, M) as (M, R) in the accumulation type.
template <typename T, typename A = acc_t<T>>
std::vector<A> transposed_x2(const CdistDesc& d, const T* x2) {
  const int64_t R = d.rows2, M = d.features;
  std::vector<A> t(static_cast<size_t>(d.batch * R * M));
  run_tasks(d.batch * R, d.batch * R * M > 65536, [&](int64_t bj) {
    const int64_t b = bj / R, j = bj % R;
    A* tb = t.data() + b * M * R;
    for (int64_t k = 0; k < M; ++k) tb[k * R + j] = static_cast<A>(x2[bj * M + k]);
  });
  return t;
}

// grad or dist stored (batch, R, P) (grad_transposed) as (batch, P, R) in the accumulation type,
// in 32 x 32 tiles so that both sides stay in cache.
template <typename T, typename A = acc_t<T>>
std::vector<A> untransposed(const CdistDesc& d, const T* v) {
  constexpr int64_t kTile = 32;
  const int64_t P = d.rows1, R = d.rows2, tiles = (P + kTile - 1) / kTile;
  std::vector<A> t(static_cast<size_t>(d.batch * P * R));
  run_tasks(d.batch * tiles, d.batch * P * R > 65536, [&](int64_t bt) {
    const int64_t b = bt / tiles, i0 = (bt % tiles) * kTile, i1 = std::min(P, i0 + kTile);
    for (int64_t j0 = 0; j0 < R; j0 += kTile)
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < std::min(R, j0 + kTile); ++j)
          t[(b * P + i) * R + j] = static_cast<A>(v[(b * R + j) * P + i]);
  });
  return t;
}

template <typename T, Norm N>
void forward(const CdistDesc& d, const T* x1, const T* x2, T* out) {
  using A = acc_t<T>;
  const int64_t P = d.rows1, R = d.rows2, M = d.features;
  const std::vector<A> x2t = transposed_x2(d, x2);
  const A p = static_cast<A>(d.p), inv_p = static_cast<A>(1.0 / d.p);
  run_tasks_with_scratch(
      d.batch * P, d.batch * P * R * M > 65536,
      [&] { return std::vector<A>(static_cast<size_t>(R)); },
      [&](int64_t r, std::vector<A>& acc) {
        const T* a = x1 + r * M;
        const A* t = x2t.data() + (r / P) * M * R;
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t k = 0; k < M; ++k) {
          const A ak = static_cast<A>(a[k]);
          const A* tk = t + k * R;
          for (int64_t j = 0; j < R; ++j) {
            const A diff = std::abs(ak - tk[j]);
            if constexpr (N == Norm::zero)
              acc[j] += diff != 0 ? (diff == diff ? A(1) : diff) : A(0);
            if constexpr (N == Norm::one) acc[j] += diff;
            if constexpr (N == Norm::two) acc[j] += diff * diff;
            if constexpr (N == Norm::inf) acc[j] = diff > acc[j] || diff != diff ? diff : acc[j];
            if constexpr (N == Norm::general) acc[j] += std::pow(diff, p);
          }
        }
        T* o = out + r * R;
        for (int64_t j = 0; j < R; ++j) {
          A v = acc[j];
          if constexpr (N == Norm::two) v = std::sqrt(v);
          if constexpr (N == Norm::general) v = std::pow(v, inv_p);
          o[j] = static_cast<T>(v);
        }
      });
}

// dx1[i,k] = sum_j scale[j] * h(x1[i,k] - x2[j,k]) with torch's _cdist_backward terms: the
// per-pair factor (grad over a power of dist, zero where dist is zero) is computed once per row.
template <typename T, Norm N>
void backward(const CdistDesc& d, const T* grad, const T* x1, const T* x2, const T* dist, T* dx1) {
  using A = acc_t<T>;
  const int64_t P = d.rows1, R = d.rows2, M = d.features;
  if constexpr (N == Norm::zero) {  // piecewise constant: no gradient
    std::fill(dx1, dx1 + d.batch * P * M, static_cast<T>(A(0)));
    return;
  } else {
    const std::vector<A> x2t = transposed_x2(d, x2);
    std::vector<A> grad_t, dist_t;
    if (d.grad_transposed) {
      grad_t = untransposed(d, grad);
      dist_t = untransposed(d, dist);
    }
    const A p = static_cast<A>(d.p);
    struct RowScratch {
      std::vector<A> scale, dj;  // per x2 row: the pair's factor and its distance
    };
    run_tasks_with_scratch(
        d.batch * P, d.batch * P * R * M > 65536,
        [&] {
          return RowScratch{std::vector<A>(static_cast<size_t>(R)),
                            std::vector<A>(static_cast<size_t>(R))};
        },
        [&](int64_t r, RowScratch& scratch) {
          std::vector<A>& scale = scratch.scale;
          std::vector<A>& dj = scratch.dj;
          for (int64_t j = 0; j < R; ++j) {
            const int64_t at = r * R + j;
            const A gj = d.grad_transposed ? grad_t[at] : static_cast<A>(grad[at]);
            const A dist_j = d.grad_transposed ? dist_t[at] : static_cast<A>(dist[at]);
            dj[j] = dist_j;
            if constexpr (N == Norm::one || N == Norm::inf) scale[j] = gj;
            if constexpr (N == Norm::two) scale[j] = dist_j == 0 ? A(0) : gj / dist_j;
            if constexpr (N == Norm::general)
              scale[j] = dist_j == 0 ? A(0) : gj / std::pow(dist_j, p - 1);
          }
          const T* a = x1 + r * M;
          const A* t = x2t.data() + (r / P) * M * R;
          const A* s = scale.data();
          const A* dd = dj.data();
          for (int64_t k = 0; k < M; ++k) {
            const A ak = static_cast<A>(a[k]);
            const A* tk = t + k * R;
            A sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < R; ++j) {
              const A diff = ak - tk[j];
              if constexpr (N == Norm::one) sum += s[j] * sign_of(diff);
              if constexpr (N == Norm::two) sum += s[j] * diff;
              if constexpr (N == Norm::inf)
                sum += s[j] * sign_of(diff) * static_cast<A>(std::abs(diff) == dd[j]);
              if constexpr (N == Norm::general)
                sum += diff == 0 ? A(0) : s[j] * sign_of(diff) * std::pow(std::abs(diff), p - 1);
            }
            dx1[r * M + k] = static_cast<T>(sum);
          }
        });
  }
}

template <typename F>
void visit_norm(double p, F&& f) {
  switch (norm_of(p)) {
    case Norm::zero:
      return f(std::integral_constant<Norm, Norm::zero>{});
    case Norm::one:
      return f(std::integral_constant<Norm, Norm::one>{});
    case Norm::two:
      return f(std::integral_constant<Norm, Norm::two>{});
    case Norm::inf:
      return f(std::integral_constant<Norm, Norm::inf>{});
    case Norm::general:
      return f(std::integral_constant<Norm, Norm::general>{});
  }
}

void cdist_forward(const CdistDesc& d, const void* x1, const void* x2, void* out) {
  visit_conv_dtype(d.dtype, "cdist", [&](auto t) {
    using T = decltype(t);
    visit_norm(d.p, [&](auto n) {
      forward<T, decltype(n)::value>(d, static_cast<const T*>(x1), static_cast<const T*>(x2),
                                     static_cast<T*>(out));
    });
  });
}

void cdist_backward(const CdistDesc& d, const void* grad, const void* x1, const void* x2,
                    const void* dist, void* dx1) {
  visit_conv_dtype(d.dtype, "cdist_backward", [&](auto t) {
    using T = decltype(t);
    visit_norm(d.p, [&](auto n) {
      backward<T, decltype(n)::value>(d, static_cast<const T*>(grad), static_cast<const T*>(x1),
                                      static_cast<const T*>(x2), static_cast<const T*>(dist),
                                      static_cast<T*>(dx1));
    });
  });
}

// torch's 1e-30 floor in T, and its square root: a dist at the floor is one whose r was clamped.
template <typename T>
constexpr T kMmFloor = static_cast<T>(1e-30);

template <typename F>
void visit_mm_dtype(DType t, const char* what, F&& f) {
  if (t == DType::float64) return f(double{});
  FABRIC_CHECK(t == DType::float32, DTypeError, what, " kernel: unsupported dtype ",
               dtype_name(t), " (expected float32 or float64)");
  return f(float{});
}

// AVX-512 by hand: std::sqrt keeps its errno path under omp simd (the loop stayed scalar, 4x
// slower than the GEMM's output pass). max(floor, x) returns x when x is NaN, as clamp_min. The
// maskz forms throughout: GCC 12's unmasked ones warn of an uninitialized pass-through.
void cdist_mm_sqrt(int64_t n, DType dtype, void* r) {
  visit_mm_dtype(dtype, "cdist_mm_sqrt", [&](auto t) {
    using T = decltype(t);
    constexpr int64_t kLanes = 64 / sizeof(T), kBlock = 16384;
    T* v = static_cast<T*>(r);
    run_tasks((n + kBlock - 1) / kBlock, n > 65536, [&](int64_t block) {
      const int64_t b0 = block * kBlock, b1 = std::min(n, b0 + kBlock);
      for (int64_t i = b0; i < b1; i += kLanes) {
        const int64_t left = std::min(kLanes, b1 - i);
        if constexpr (std::is_same_v<T, float>) {
          const __mmask16 m = static_cast<__mmask16>((1u << left) - 1u);
          const __m512 x =
              _mm512_maskz_max_ps(m, _mm512_set1_ps(kMmFloor<T>), _mm512_maskz_loadu_ps(m, v + i));
          _mm512_mask_storeu_ps(v + i, m, _mm512_maskz_sqrt_ps(m, x));
        } else {
          const __mmask8 m = static_cast<__mmask8>((1u << left) - 1u);
          const __m512d x =
              _mm512_maskz_max_pd(m, _mm512_set1_pd(kMmFloor<T>), _mm512_maskz_loadu_pd(m, v + i));
          _mm512_mask_storeu_pd(v + i, m, _mm512_maskz_sqrt_pd(m, x));
        }
      }
    });
  });
}

void cdist_mm_scale(int64_t n, DType dtype, const void* grad, const void* dist, void* scale) {
  visit_mm_dtype(dtype, "cdist_mm_scale", [&](auto t) {
    using T = decltype(t);
    const T* g = static_cast<const T*>(grad);
    const T* d = static_cast<const T*>(dist);
    T* s = static_cast<T*>(scale);
    const T at_floor = std::sqrt(kMmFloor<T>);
    const auto scale_of = [&](int64_t i) { s[i] = d[i] > at_floor ? g[i] / (2 * d[i]) : T(0); };
    if (n > 65536) {
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) scale_of(i);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) scale_of(i);
    }
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(cdist_stub, cpu, &cpu::cdist_forward);
FABRIC_REGISTER_KERNEL(cdist_backward_stub, cpu, &cpu::cdist_backward);
FABRIC_REGISTER_KERNEL(cdist_mm_sqrt_stub, cpu, &cpu::cdist_mm_sqrt);
FABRIC_REGISTER_KERNEL(cdist_mm_scale_stub, cpu, &cpu::cdist_mm_scale);
}  // namespace fabric
