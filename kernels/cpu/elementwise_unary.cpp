// CPU kernels for unary elementwise ops and clamp. fp32/bf16/fp16 run the AVX-512 polynomials of
// vec_math.h (log, and for fp32/bf16 tanh, sin, cos, expm1, log1p, erf: SLEEF's, vec_sleef_*.h)
// in fp32; float64 exp, log, tanh, sin, cos, log1p, expm1, erf, sigmoid and silu take SLEEF's
// double functions as torch 1.13 does (vec_sleef_f64_*.h, elementwise_f64_sleef.h), the rest libm;
// integers (neg/abs/relu) and bool (logical_not) are scalar.
#include <cmath>
#include <limits>

#include "kernels/cpu/elementwise_common.h"
#include "kernels/cpu/elementwise_f64_sleef.h"
#include "kernels/cpu/gelu_split.h"
#include "kernels/cpu/vec_log1p_expm1.h"
#include "kernels/cpu/vec_sleef_exp_family.h"
#include "kernels/cpu/vec_sleef_f64_erf.h"
#include "kernels/cpu/vec_sleef_f64_exp.h"
#include "kernels/cpu/vec_sleef_f64_hyp.h"
#include "kernels/cpu/vec_sleef_f64_log.h"
#include "kernels/cpu/vec_sleef_f64_sincos.h"
#include "kernels/cpu/vec_sleef_log.h"
#include "kernels/cpu/vec_sleef_sincos.h"
#include "tensor/elementwise_kernels.h"
#include "tensor/gelu_tanh_math.h"

namespace fabric::cpu {
namespace {

using namespace ew;

// ---- GELU, erf form: the lane-split driver of gelu_split.h ------------------------------------
// m <= gelu::kBlock elements; in == out allowed.
template <typename T>
void gelu_erf_block(const T* in, T* out, int64_t m) {
  gelu::split_block(
      in, m, [](__m512 x) { return vec::gelu_erf_is_large(x); },
      [](__m512 x) { return vec::gelu_erf_small_ps(x); },
      [](__m512 x) { return vec::gelu_erf_large_ps(x); },
      [&](int64_t j, __m512 y, __mmask16 live) {
        if (live == 0xFFFF)
          vec::store(out + j, y);
        else
          vec::store(out + j, y, live);
      });
}
static_assert(kStage % gelu::kBlock == 0, "the staged path runs whole GELU blocks in its buffer");

// Compute-bound: regular stores (see unary_f32_loop's `heavy`).
template <typename T>
void gelu_erf_loop(const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    constexpr int64_t sz = sizeof(T);
    if (s[0] == sz && s[1] == sz) {
      T* out = reinterpret_cast<T*>(p[0]);
      const T* in = reinterpret_cast<const T*>(p[1]);
      for (int64_t i = 0; i < n; i += gelu::kBlock) {
        const int64_t m = std::min(gelu::kBlock, n - i);
        gelu::prefetch_ahead(in + i, m);
        gelu::prefetchw_ahead(out + i, m);
        gelu_erf_block(in + i, out + i, m);
      }
    } else {
      unary_staged<T>(p[0], s[0], p[1], s[1], n, [](const float* in, float* out, int64_t m) {
        for (int64_t b = 0; b < m; b += gelu::kBlock)
          gelu_erf_block(in + b, out + b, std::min(gelu::kBlock, m - b));
      });
    }
  });
}

// ---- GELU, tanh form ---------------------------------------------------------------------------
// float32 results take vec::gelu_tanh_ps's float32-accurate argument, bfloat16/float16 the cheaper
// one their precision allows. Compute-bound like the erf form: blocks with software prefetch and
// regular stores.
template <typename T>
void gelu_tanh_loop(const StridedLoop& loop) {
  constexpr bool kFull = std::is_same_v<T, float>;
  auto rows = [](const auto* in, auto* out, int64_t n) {
    for (int64_t i = 0; i < n; i += gelu::kBlock) {
      const int64_t m = std::min(gelu::kBlock, n - i);
      gelu::prefetch_ahead(in + i, m);
      gelu::prefetchw_ahead(out + i, m);
      int64_t j = i;
      for (; j + 16 <= i + m; j += 16)
        vec::store(out + j, vec::gelu_tanh_ps<kFull>(vec::load(in + j)));
      if (j < i + m) {
        const __mmask16 t = vec::tail_mask(i + m - j);
        vec::store(out + j, vec::gelu_tanh_ps<kFull>(vec::load(in + j, t)), t);
      }
    }
  };
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    constexpr int64_t sz = sizeof(T);
    if (s[0] == sz && s[1] == sz) {
      rows(reinterpret_cast<const T*>(p[1]), reinterpret_cast<T*>(p[0]), n);
    } else {
      unary_staged<T>(p[0], s[0], p[1], s[1], n,
                      [&](const float* in, float* out, int64_t m) { rows(in, out, m); });
    }
  });
}

// ---- fp32 family
// ---------------------------------------------------------------------------------
// tanh, sin, cos, expm1, log1p, erf: float32 and bfloat16 take SLEEF's functions (vec_sleef_*.h),
// torch 1.13's Vectorized<float> ones, for its bits; float16 keeps the functions it had (torch
// 1.13 has no float16 vector path for them: its scalar loop, libm's, is not matched here).
template <typename T, bool kGrouped = false, typename Sleef, typename Other>
void sleef_unary(const StridedLoop& loop, const Sleef& sleef_f, const Other& other_f) {
  if constexpr (std::is_same_v<T, Half>)
    unary_f32_loop<T>(loop, other_f, true);
  else if constexpr (kGrouped)
    grouped_f32_loop<T>(loop, sleef_f);
  else
    unary_f32_loop<T>(loop, sleef_f, true);
}

// sin / cos: a lane's bits depend on the other lanes of its AVX2 vector of 8 (vec_sleef_sincos.h),
// which in torch (one thread) start at multiples of 8 elements from the row's start. for_each_row
// cuts a long 1-D loop into parallel chunks at n * c / chunks, anywhere: here the chunks are cut at
// multiples of 16 instead, and each (< 2 grains) runs serially through unary_f32_loop.
template <typename T, typename F>
void grouped_f32_loop(const StridedLoop& loop, const F& f) {
  constexpr int64_t kGrain = 32768;  // for_each_row's: a chunk of up to ~kGrain stays one row
  const int64_t n = loop.numel();
  if (loop.ndim != 1 || n < 2 * kGrain) return unary_f32_loop<T>(loop, f, true);
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  const auto cut = [&](int64_t c) { return c == chunks ? n : n * c / chunks / 16 * 16; };
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = cut(c), e = cut(c + 1);
    if (e <= b) continue;
    StridedLoop part = loop;
    part.sizes[0] = e - b;
    for (int k = 0; k < part.num_operands; ++k) part.ops[k].data += b * part.ops[k].strides[0];
    unary_f32_loop<T>(part, f, true);
  }
}

template <typename T>
void vec_unary(UnaryOp op, const StridedLoop& loop) {
  using vec::splat;
  switch (op) {
    case UnaryOp::neg:
      return unary_f32_loop<T>(loop, [](__m512 x) {
        return _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
      });
    case UnaryOp::abs:
      return unary_f32_loop<T>(loop, [](__m512 x) { return vec::abs_ps(x); });
    case UnaryOp::exp:
      return unary_f32_loop<T>(
          loop, [](__m512 x) { return vec::exp_ps(x); }, true);
    case UnaryOp::log:  // SLEEF's, as torch's: its bits
      return unary_f32_loop<T>(
          loop, [](__m512 x) { return vec::logf_u10_ps(x); }, true);
    case UnaryOp::sqrt:
      return unary_f32_loop<T>(loop, [](__m512 x) { return _mm512_sqrt_ps(x); });
    case UnaryOp::rsqrt:
      return unary_f32_loop<T>(
          loop, [](__m512 x) { return _mm512_div_ps(splat(1.0f), _mm512_sqrt_ps(x)); });
    case UnaryOp::tanh:  // SLEEF's, as torch's: its bits (vec::tanh_ps stays GELU's)
      return sleef_unary<T>(
          loop, [](__m512 x) { return vec::tanhf_u10_ps(x); },
          [](__m512 x) { return vec::tanh_ps(x); });
    case UnaryOp::sigmoid:
      return unary_f32_loop<T>(
          loop, [](__m512 x) { return vec::sigmoid_ps(x); }, true);
    // vmaxps returns its second operand when either is NaN: relu(NaN) = NaN, as in PyTorch.
    case UnaryOp::relu:
      return unary_f32_loop<T>(loop,
                               [](__m512 x) { return _mm512_max_ps(_mm512_setzero_ps(), x); });
    case UnaryOp::gelu_erf:
      return gelu_erf_loop<T>(loop);
    case UnaryOp::gelu_tanh:
      return gelu_tanh_loop<T>(loop);
    case UnaryOp::silu:
      return unary_f32_loop<T>(
          loop, [](__m512 x) { return vec::silu_ps(x); }, true);
    // SLEEF's, as torch's: its bits. A lane's result depends on its 8-lane half (the reduction
    // that half's AVX2 vector takes): grouped_f32_loop starts the vectors at multiples of 8.
    case UnaryOp::sin:
      return sleef_unary<T, true>(
          loop, [](__m512 x) { return vec::sinf_u10_ps(x); },
          [](__m512 x) { return per_lane(x, [](float v) { return std::sin(v); }); });
    case UnaryOp::cos:
      return sleef_unary<T, true>(
          loop, [](__m512 x) { return vec::cosf_u10_ps(x); },
          [](__m512 x) { return per_lane(x, [](float v) { return std::cos(v); }); });
    case UnaryOp::reciprocal:
      return unary_f32_loop<T>(loop, [](__m512 x) { return _mm512_div_ps(splat(1.0f), x); });
    // SLEEF's, as torch's: its bits (vec::log1p_ps / expm1_ps / erf_ps stay the activations')
    case UnaryOp::log1p:
      return sleef_unary<T>(
          loop, [](__m512 x) { return vec::log1pf_u10_ps(x); },
          [](__m512 x) { return vec::log1p_ps(x); });
    case UnaryOp::expm1:
      return sleef_unary<T>(
          loop, [](__m512 x) { return vec::expm1f_u10_ps(x); },
          [](__m512 x) { return vec::expm1_ps(x); });
    case UnaryOp::erf:
      return sleef_unary<T>(
          loop, [](__m512 x) { return vec::erff_u10_ps(x); },
          [](__m512 x) { return vec::erf_ps(x); });
    // vrndscaleps: NaN and infinities pass, -0.5 rounds to -0 (as torch); round is half to even.
    case UnaryOp::floor:
      return unary_f32_loop<T>(loop, [](__m512 x) {
        return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      });
    case UnaryOp::ceil:
      return unary_f32_loop<T>(loop, [](__m512 x) {
        return _mm512_roundscale_ps(x, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
      });
    case UnaryOp::round:
      return unary_f32_loop<T>(loop, [](__m512 x) {
        return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      });
    case UnaryOp::trunc:
      return unary_f32_loop<T>(loop, [](__m512 x) {
        return _mm512_roundscale_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      });
    // (0 < x) - (x < 0): both compares are false for NaN and zeros, giving +0 (torch).
    case UnaryOp::sign:
      return unary_f32_loop<T>(loop, [](__m512 x) {
        const __m512 zero = _mm512_setzero_ps();
        const __m512 pos =
            _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(zero, x, _CMP_LT_OQ), splat(1.0f));
        return _mm512_mask_mov_ps(pos, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), splat(-1.0f));
      });
    case UnaryOp::logical_not:
      break;
  }
  throw DTypeError("unary kernel: logical_not runs on bool tensors only");
}

// ---- scalar types
// --------------------------------------------------------------------------------
template <typename T, typename F>
void scalar_unary_loop(const StridedLoop& loop, const F& f) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    if (s[0] == sizeof(T) && s[1] == sizeof(T)) {
      T* o = reinterpret_cast<T*>(p[0]);
      const T* a = reinterpret_cast<const T*>(p[1]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        store_elem<T>(p[0] + i * s[0], f(load_elem<T>(p[1] + i * s[1])));
    }
  });
}

// ---- float64 -----------------------------------------------------------------------------------
// torch 1.13's Vectorized<double> ops call SLEEF's Sleef_<op>d4_u10 (vec256_double.h): the vml ops
// (exp log tanh sin cos log1p expm1 erf) send every element through them, sigmoid and silu
// (cpu_kernel_vec) whole blocks of 8 with the scalar formula, libm's exp inside, for the rest.
// Their bits, through the transcriptions of vec_sleef_f64_*.h.
void f64_unary(UnaryOp op, const StridedLoop& loop) {
  using D = double;
  using vec::sleef64::VD;
  switch (op) {
    case UnaryOp::neg:
      return scalar_unary_loop<D>(loop, [](D x) { return -x; });
    case UnaryOp::abs:
      return scalar_unary_loop<D>(loop, [](D x) { return std::fabs(x); });
    case UnaryOp::exp:
      return f64_map_all(loop, [](VD x) { return vec::exp_u10_pd(x); });
    case UnaryOp::log:
      return f64_map_all(loop, [](VD x) { return vec::log_u10_pd(x); });
    case UnaryOp::sqrt:
      return scalar_unary_loop<D>(loop, [](D x) { return std::sqrt(x); });
    case UnaryOp::rsqrt:
      return scalar_unary_loop<D>(loop, [](D x) { return 1.0 / std::sqrt(x); });
    case UnaryOp::tanh:
      return f64_map_all(loop, [](VD x) { return vec::tanh_u10_pd(x); });
    case UnaryOp::sigmoid:  // torch: (1 + (0 - x).exp()).reciprocal()
      return f64_blocks_then_scalar(
          loop,
          [](VD x) {
            using namespace vec::sleef64;
            return rec(add(splat(1.0), vec::exp_u10_pd(sub(zero(), x))));
          },
          [](D x) { return 1.0 / (1.0 + std::exp(-x)); });
    case UnaryOp::relu:
      // torch's clamp_min(x, 0): NaN and -0.0 come back as they are (as the float32 vmaxps above).
      return scalar_unary_loop<D>(loop, [](D x) { return x < 0 ? 0.0 : x; });
    // The cancellation-free forms of vec_math.h (erfc; x * sigmoid(2u) from exp(-|2u|)).
    case UnaryOp::gelu_erf:
      return scalar_unary_loop<D>(
          loop, [](D x) { return 0.5 * x * std::erfc(-x * 0.70710678118654752440); });
    case UnaryOp::gelu_tanh:
      return scalar_unary_loop<D>(loop, [](D x) { return gelu_tanh::forward(x); });
    case UnaryOp::silu:  // torch: x / (1 + x.neg().exp())
      return f64_blocks_then_scalar(
          loop,
          [](VD x) {
            using namespace vec::sleef64;
            return div(x, add(splat(1.0), vec::exp_u10_pd(neg(x))));
          },
          [](D x) { return x / (1.0 + std::exp(-x)); });
    case UnaryOp::sin:
      return f64_map_all(loop, [](VD x) { return vec::sin_u10_pd(x); });
    case UnaryOp::cos:
      return f64_map_all(loop, [](VD x) { return vec::cos_u10_pd(x); });
    case UnaryOp::reciprocal:
      return scalar_unary_loop<D>(loop, [](D x) { return 1.0 / x; });
    case UnaryOp::log1p:
      return f64_map_all(loop, [](VD x) { return vec::log1p_u10_pd(x); });
    case UnaryOp::expm1:
      return f64_map_all(loop, [](VD x) { return vec::expm1_u10_pd(x); });
    case UnaryOp::erf:
      return f64_map_all(loop, [](VD x) { return vec::erf_u10_pd(x); });
    case UnaryOp::floor:
      return scalar_unary_loop<D>(loop, [](D x) { return std::floor(x); });
    case UnaryOp::ceil:
      return scalar_unary_loop<D>(loop, [](D x) { return std::ceil(x); });
    case UnaryOp::round:  // the default rounding mode: half to even
      return scalar_unary_loop<D>(loop, [](D x) { return std::nearbyint(x); });
    case UnaryOp::trunc:
      return scalar_unary_loop<D>(loop, [](D x) { return std::trunc(x); });
    case UnaryOp::sign:
      return scalar_unary_loop<D>(loop, [](D x) { return D((0.0 < x) - (x < 0.0)); });
    case UnaryOp::logical_not:
      break;
  }
  throw DTypeError("unary kernel: logical_not runs on bool tensors only");
}

template <typename T>
void int_unary(UnaryOp op, const StridedLoop& loop) {
  using U = std::make_unsigned_t<T>;
  switch (op) {
    // Two's complement wrap: -INT_MIN and abs(INT_MIN) stay INT_MIN, uint8 negates modulo 256.
    case UnaryOp::neg:
      return scalar_unary_loop<T>(loop,
                                  [](T x) { return static_cast<T>(U(0) - static_cast<U>(x)); });
    case UnaryOp::abs:
      return scalar_unary_loop<T>(
          loop, [](T x) { return x < T(0) ? static_cast<T>(U(0) - static_cast<U>(x)) : x; });
    case UnaryOp::relu:
      return scalar_unary_loop<T>(loop, [](T x) { return x > T(0) ? x : T(0); });
    // Integers are already whole: the rounding ops copy.
    case UnaryOp::floor:
    case UnaryOp::ceil:
    case UnaryOp::round:
    case UnaryOp::trunc:
      return scalar_unary_loop<T>(loop, [](T x) { return x; });
    case UnaryOp::sign:
      return scalar_unary_loop<T>(loop,
                                  [](T x) { return static_cast<T>((T(0) < x) - (x < T(0))); });
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("unary kernel: op ", static_cast<int>(op),
                                         " needs a floating dtype, got ", dtype_name(dtype_v<T>)));
}

void unary_kernel(UnaryOp op, const StridedLoop& loop) {
  const DType dt = loop.ops[0].dtype;
  reject_fp8(dt, "unary kernel");
  if (dt == DType::bool_) {
    FABRIC_CHECK(op == UnaryOp::logical_not, DTypeError,
                 "unary kernel: only logical_not runs on bool");
    return scalar_unary_loop<bool>(loop, [](bool x) { return !x; });
  }
  FABRIC_CHECK(op != UnaryOp::logical_not, DTypeError,
               "unary kernel: logical_not runs on bool tensors only, got ", dtype_name(dt));
  switch (dt) {
    case DType::float32:
      return vec_unary<float>(op, loop);
    case DType::bfloat16:
      return vec_unary<BFloat16>(op, loop);
    case DType::float16:
      return vec_unary<Half>(op, loop);
    case DType::float64:
      return f64_unary(op, loop);
    case DType::int64:
      return int_unary<int64_t>(op, loop);
    case DType::int32:
      return int_unary<int32_t>(op, loop);
    case DType::int8:
      return int_unary<int8_t>(op, loop);
    case DType::uint8:
      return int_unary<uint8_t>(op, loop);
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("unary kernel: no CPU kernel for ", dtype_name(dt)));
}

// ---- clamp
// --------------------------------------------------------------------------------------- A bound
// in T's compute type. Integer bounds saturate to T's range, so clamp(uint8, min=-5) is the
// identity rather than a wrapped min of 251.
template <typename M>
M bound_as(const Scalar& s) {
  if constexpr (std::is_floating_point_v<M>) {
    return static_cast<M>(s.to_double());
  } else {
    const int64_t v = s.is_floating() ? scalar_cast<int64_t>(s.to_double()) : s.to_int();
    const int64_t lo = static_cast<int64_t>(std::numeric_limits<M>::min());
    const int64_t hi = static_cast<int64_t>(std::numeric_limits<M>::max());
    return static_cast<M>(std::clamp(v, lo, hi));
  }
}

void clamp_kernel(const StridedLoop& loop, const Scalar* lo, const Scalar* hi) {
  const DType dt = loop.ops[0].dtype;
  reject_fp8(dt, "clamp kernel");
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, Float8E4M3> && !std::is_same_v<T, Float8E5M2>) {
      using M = std::conditional_t<std::is_same_v<T, bool>, int32_t, opmath_t<T>>;
      const bool has_lo = lo != nullptr, has_hi = hi != nullptr;
      const M l = has_lo ? bound_as<M>(*lo) : M{}, h = has_hi ? bound_as<M>(*hi) : M{};
      // max then min, so min > max gives max everywhere (PyTorch); NaN anywhere propagates.
      auto f = [=](M x) -> M {
        if constexpr (std::is_floating_point_v<M>) {
          if (has_lo) x = (std::isnan(x) || std::isnan(l)) ? x + l : (x < l ? l : x);
          if (has_hi) x = (std::isnan(x) || std::isnan(h)) ? x + h : (x > h ? h : x);
        } else {
          if (has_lo) x = x < l ? l : x;
          if (has_hi) x = x > h ? h : x;
        }
        return x;
      };
      // Dense rows of float/double with non-NaN bounds: two selects per element that the compiler
      // vectorises (f's per-element NaN tests and bound flags kept it scalar, ~13x slower than
      // maximum). A NaN x passes both comparisons unchanged, so it still propagates; a missing
      // bound is an infinite one.
      bool dense_selects = false;
      M lo_v{}, hi_v{};
      if constexpr (std::is_same_v<T, M> && std::is_floating_point_v<M>) {
        dense_selects = !(has_lo && std::isnan(l)) && !(has_hi && std::isnan(h));
        lo_v = has_lo ? l : -std::numeric_limits<M>::infinity();
        hi_v = has_hi ? h : std::numeric_limits<M>::infinity();
      }
      for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
        if constexpr (std::is_same_v<T, M>) {
          if (dense_selects && s[0] == sizeof(T) && s[1] == sizeof(T)) {
            T* o = reinterpret_cast<T*>(p[0]);
            const T* a = reinterpret_cast<const T*>(p[1]);
            for (int64_t i = 0; i < n; ++i) {
              T x = a[i];
              x = x < lo_v ? lo_v : x;  // max first, so lo > hi gives hi everywhere (PyTorch)
              o[i] = x > hi_v ? hi_v : x;
            }
            return;
          }
          if (s[0] == sizeof(T) && s[1] == sizeof(T)) {
            T* o = reinterpret_cast<T*>(p[0]);
            const T* a = reinterpret_cast<const T*>(p[1]);
            for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
            return;
          }
        }
        for (int64_t i = 0; i < n; ++i) {
          const M r = f(static_cast<M>(load_elem<T>(p[1] + i * s[1])));
          if constexpr (std::is_same_v<T, bool>) {
            store_elem<T>(p[0] + i * s[0], r != 0);
          } else {
            store_elem<T>(p[0] + i * s[0], static_cast<T>(r));
          }
        }
      });
    }
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(unary_stub, cpu, &cpu::unary_kernel);
FABRIC_REGISTER_KERNEL(clamp_stub, cpu, &cpu::clamp_kernel);
}  // namespace fabric
