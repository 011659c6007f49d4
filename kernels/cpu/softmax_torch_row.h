// PyTorch 1.13's last-dim softmax / log_softmax row math as Debian's python3-torch runs it (its
// AVX2 kernels, SoftMaxKernel.cpp's _vec_softmax_lastdim / _vec_log_softmax_lastdim over
// vec::reduce_all / map_reduce_all), so that fabric's rows get torch's bits:
//   - the sum of exp(x - max): rows shorter than one vector (8 floats, 4 doubles) add their values
//     one by one into lane 0; longer rows add each whole vector lane-wise into the first one, the
//     last partial vector into its first lanes only, then fold the lanes: 8 floats as
//     ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) (VecReduceAllSIMD's shuffles), 4 doubles
//     one by one, ((l0 + l1) + l2) + l3 (no SIMD fold for double on AVX2);
//   - exp is SLEEF's expf_u10 / exp_u10 (Sleef_expf8_u10, Sleef_expd4_u10), log SLEEF's
//     logf_u10 / log_u10 (torch takes the log of the sums with Vectorized::log);
//   - bfloat16 (its own paths, float inside): log_softmax reads 16 values per step into two float
//     accumulators and rounds the sum, then its log, to bfloat16 (torch keeps both in BFloat16
//     arrays); softmax adds whole 8-vectors, then the tail one by one with libm's expf;
//   - the backward (_vec_host_softmax_backward_lastdim): the sum of the gradient (log_softmax) or
//     of gradient * output (softmax) in the same lane orders, with the fmas of torch's build.
// exp_ps (vec_math.h) is SLEEF's expf_u10; the logs and the double exp are transcribed here, every
// product kept out of -ffp-contract's fusion so that they round exactly where SLEEF's do (checked
// against Debian's libsleef3 3.5.1, torch's: exp_ps and the float log on every input, the double
// functions on 10^8 samples each).
// tests/kernels/test_softmax_torch_rows.cpp holds them to torch's own results.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace fabric::cpu::torch_softmax {

// v, rounded on its own: never fused with a following add by -ffp-contract=fast.
template <typename T>
inline __attribute__((always_inline)) T rounded(T v) {
  asm("" : "+x"(v));
  return v;
}

// ---- SLEEF's log_u10 on one value (the FMA variant, as Sleef_logf8_u10avx2 / logd4_u10avx2) ---

template <typename T>
struct Two {  // SLEEF's double-T value x + y
  T x, y;
};
template <typename T>
inline Two<T> two_add2(T x, T y) {  // dfadd2_vf2_vf_vf
  const T s = x + y, v = s - x;
  return {s, (x - (s - v)) + (y - v)};
}
template <typename T>
inline Two<T> two_div(Two<T> n, Two<T> d) {  // dfdiv_vf2_vf2_vf2, FMA form
  const T t = T(1) / d.x, s = rounded(n.x * t);
  const T u = std::fma(t, n.x, -s);
  const T v = std::fma(-d.y, t, std::fma(-d.x, t, T(1)));
  return {s, std::fma(s, v, std::fma(n.y, t, u))};
}
template <typename T>
inline Two<T> two_mul(Two<T> x, T y) {  // dfmul_vf2_vf2_vf, FMA form
  const T s = rounded(x.x * y);
  return {s, std::fma(x.y, y, std::fma(x.x, y, -s))};
}
template <typename T>
inline Two<T> two_add(Two<T> x, Two<T> y) {  // dfadd_vf2_vf2_vf2 (|x| >= |y|)
  const T s = x.x + y.x;
  return {s, (((x.x - s) + y.x) + x.y) + y.y};
}
template <typename T>
inline Two<T> two_add(Two<T> x, T y) {  // dfadd_vf2_vf2_vf
  const T s = x.x + y;
  return {s, ((x.x - s) + y) + x.y};
}

// log of 8 floats as SLEEF's xlogf_u1 in its AVX2 form (Sleef_logf8_u10avx2, ~1 ulp): the
// exponent from d * 4/3, the mantissa's log from atanh((m - 1) / (m + 1)) in double-float.
inline __m256 logf_u10(__m256 d) {
  const auto set = [](float v) { return _mm256_set1_ps(v); };
  const auto mul = [](__m256 a, __m256 b) { return rounded(_mm256_mul_ps(a, b)); };
  const auto fma = [](__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); };
  const __m256 tiny = _mm256_cmp_ps(d, set(std::numeric_limits<float>::min()), _CMP_LT_OQ);
  d = _mm256_blendv_ps(d, mul(d, set(18446744073709551616.0f)), tiny);  // * 2^64
  __m256i e = _mm256_sub_epi32(
      _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(mul(d, set(1.0f / 0.75f))), 23),
                       _mm256_set1_epi32(0xff)),
      _mm256_set1_epi32(0x7f));
  const __m256 m =
      _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(d), _mm256_slli_epi32(e, 23)));
  e = _mm256_blendv_epi8(e, _mm256_sub_epi32(e, _mm256_set1_epi32(64)), _mm256_castps_si256(tiny));
  const __m256 ef = _mm256_cvtepi32_ps(e);
  // s = (ln2 hi, ln2 lo) * e (dfmul_vf2_vf2_vf)
  __m256 sx = mul(set(0.69314718246459960938f), ef);
  __m256 sy = fma(set(-1.904654323148236017e-09f), ef,
                  _mm256_fmsub_ps(set(0.69314718246459960938f), ef, sx));
  // x = (m - 1) / (m + 1) in double-float: dfadd2 both, then dfdiv
  const auto add2 = [](__m256 a, __m256 b, __m256& lo) {
    const __m256 sum = _mm256_add_ps(a, b), v = _mm256_sub_ps(sum, a);
    lo = _mm256_add_ps(_mm256_sub_ps(a, _mm256_sub_ps(sum, v)), _mm256_sub_ps(b, v));
    return sum;
  };
  __m256 nl, dl;
  const __m256 nh = add2(set(-1.0f), m, nl), dh = add2(set(1.0f), m, dl);
  const __m256 t0 = _mm256_div_ps(set(1.0f), dh), xq = mul(nh, t0);
  const __m256 u = _mm256_fmsub_ps(t0, nh, xq);
  const __m256 v = _mm256_fnmadd_ps(dl, t0, _mm256_fnmadd_ps(dh, t0, set(1.0f)));
  const __m256 xx = xq, xy = fma(xq, v, fma(nl, t0, u));
  const __m256 x2 = mul(xx, xx);
  __m256 t = fma(set(0.3027294874e+0f), x2, set(0.3996108174e+0f));
  t = fma(t, x2, set(0.6666694880e+0f));
  // s += 2x (dfadd_vf2_vf2_vf2), then s += x^3 t (dfadd_vf2_vf2_vf)
  const __m256 x2h = mul(xx, set(2.0f)), x2l = mul(xy, set(2.0f));
  __m256 h = _mm256_add_ps(sx, x2h);
  sy = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_sub_ps(sx, h), x2h), sy), x2l);
  sx = h;
  const __m256 w = mul(mul(x2, xx), t);
  h = _mm256_add_ps(sx, w);
  sy = _mm256_add_ps(_mm256_add_ps(_mm256_sub_ps(sx, h), w), sy);
  __m256 r = _mm256_add_ps(h, sy);
  const __m256 inf = set(std::numeric_limits<float>::infinity());
  r = _mm256_blendv_ps(r, inf, _mm256_cmp_ps(d, inf, _CMP_EQ_OQ));
  r = _mm256_blendv_ps(r, set(std::numeric_limits<float>::quiet_NaN()),
                       _mm256_cmp_ps(d, set(0.0f), _CMP_NGE_UQ));  // d < 0 or NaN
  const __m256 zero = _mm256_cmp_ps(d, set(0.0f), _CMP_EQ_OQ);
  return _mm256_blendv_ps(r, _mm256_sub_ps(set(0.0f), inf), zero);
}
inline float logf_u10(float d) { return _mm256_cvtss_f32(logf_u10(_mm256_set1_ps(d))); }

// log(d) as SLEEF's xlog_u1 (~1 ulp), in double-double.
inline double log_u10(double d) {
  if (d != d || d < 0) return std::numeric_limits<double>::quiet_NaN();
  if (d == 0) return -std::numeric_limits<double>::infinity();
  if (d == std::numeric_limits<double>::infinity()) return d;
  const bool tiny = d < std::numeric_limits<double>::min();
  if (tiny) d = rounded(d * 18446744073709551616.0);  // 2^64
  int64_t e =
      static_cast<int64_t>((std::bit_cast<uint64_t>(rounded(d * (1.0 / 0.75))) >> 52) & 0x7ff) -
      0x3ff;
  const double m = std::bit_cast<double>(std::bit_cast<int64_t>(d) - (e << 52));
  if (tiny) e -= 64;
  const Two<double> x = two_div(two_add2(-1.0, m), two_add2(1.0, m));
  const double x2 = rounded(x.x * x.x), x4 = rounded(x2 * x2), x8 = rounded(x4 * x4);
  // SLEEF's POLY7 (Estrin's scheme)
  const double hi = std::fma(x4, 0.1532076988502701353e+0,
                             std::fma(x2, 0.1525629051003428716e+0, 0.1818605932937785996e+0));
  const double lo = std::fma(x4, std::fma(x2, 0.2222214519839380009e+0, 0.2857142932794299317e+0),
                             std::fma(x2, 0.3999999999635251990e+0, 0.6666666666667333541e+0));
  const double t = std::fma(x8, hi, lo);
  Two<double> s = two_mul(Two<double>{0.693147180559945286226764, 2.319046813846299558417771e-17},
                          static_cast<double>(e));
  s = two_add(s, Two<double>{rounded(x.x * 2.0), rounded(x.y * 2.0)});
  s = two_add(s, rounded(rounded(x2 * x.x) * t));
  return s.x + s.y;
}

// ---- SLEEF's exp_u10 on 4 doubles (xexp, FMA form: Sleef_expd4_u10avx2) ------------------------

inline __attribute__((always_inline)) __m256d exp_pd(__m256d d) {
  const auto set = [](double v) { return _mm256_set1_pd(v); };
  const auto fma = [](__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); };
  const __m256d u0 = _mm256_round_pd(
      rounded(_mm256_mul_pd(d, set(1.442695040888963407359924681001892137426645954152985934135))),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m128i q = _mm256_cvtpd_epi32(u0);
  __m256d s = fma(u0, set(-.69314718055966295651160180568695068359375), d);
  s = fma(u0, set(-.28235290563031577122588448175013436025525412068e-12), s);
  const __m256d s2 = rounded(_mm256_mul_pd(s, s)), s4 = rounded(_mm256_mul_pd(s2, s2));
  const __m256d s8 = rounded(_mm256_mul_pd(s4, s4));
  // SLEEF's POLY10 (Estrin's scheme), then three Horner steps
  const auto poly4 = [&](double c3, double c2, double c1, double c0) {
    return fma(s2, fma(s, set(c3), set(c2)), fma(s, set(c1), set(c0)));
  };
  const __m256d p8 = fma(s4,
                         poly4(+0.2755762628169491192e-6, +0.2755723402025388239e-5,
                               +0.2480158687479686264e-4, +0.1984126989855865850e-3),
                         poly4(+0.1388888888914497797e-2, +0.8333333333314938210e-2,
                               +0.4166666666666602598e-1, +0.1666666666666669072e+0));
  __m256d u = fma(s8, fma(s, set(+0.2081276378237164457e-8), set(+0.2511210703042288022e-7)), p8);
  u = fma(u, s, set(0.5));
  u = fma(u, s, set(1.0));
  u = fma(u, s, set(1.0));
  // u * 2^q as two scalings (vldexp2): 2^(q >> 1) * 2^(q - (q >> 1))
  const __m128i qa = _mm_srai_epi32(q, 1), qb = _mm_sub_epi32(q, qa);
  const auto pow2i = [](__m128i k) {
    return _mm256_castsi256_pd(
        _mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm_add_epi32(k, _mm_set1_epi32(0x3ff))), 52));
  };
  u = rounded(_mm256_mul_pd(rounded(_mm256_mul_pd(u, pow2i(qa))), pow2i(qb)));
  u = _mm256_blendv_pd(u, set(std::numeric_limits<double>::infinity()),
                       _mm256_cmp_pd(d, set(709.78271114955742909217217426), _CMP_GT_OQ));
  return _mm256_andnot_pd(_mm256_cmp_pd(d, set(-1000), _CMP_LT_OQ), u);
}

// ---- the sums of exp(x - m) over one row of n >= 1 values, in torch's order --------------------
// Each stores the exps into y when y is not null; the bfloat16 softmax one always does.

// lanes [0, k) of acc + v, the others acc's (Vectorized::set(acc, acc + v, k)).
inline __m256 add_first(__m256 acc, __m256 v, int64_t k) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 take =
      _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), lane));
  return _mm256_blendv_ps(acc, _mm256_add_ps(acc, v), take);
}
inline __m256d add_first(__m256d acc, __m256d v, int64_t k) {
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
  const __m256d take = _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_set1_epi64x(k), lane));
  return _mm256_blendv_pd(acc, _mm256_add_pd(acc, v), take);
}

// VecReduceAllSIMD<float>'s fold of 8 lanes: halves, then pairs of pairs, then neighbours.
inline float fold8(__m256 v) {
  v = _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 0x1));
  v = _mm256_add_ps(v, _mm256_shuffle_ps(v, v, 0x4E));
  v = _mm256_add_ps(v, _mm256_shuffle_ps(v, v, 0xB1));
  return _mm256_cvtss_f32(v);
}

// vec_reduce_all(op, v, k): lanes [0, k) added one by one.
template <typename T>
inline T add_in_order(const T* lanes, int64_t k) {
  T r = lanes[0];
  for (int64_t j = 1; j < k; ++j) r += lanes[j];
  return r;
}

inline __m256 lo8(__m512 v) { return _mm512_castps512_ps256(v); }
inline __m256 hi8(__m512 v) { return _mm512_extractf32x8_ps(v, 1); }

// exp(x[i, i + k) - m) for k <= 16 (the lanes past k hold exp(-m), never added), stored into y.
struct ExpF32 {
  const float* x;
  float* y;
  __m512 m;
  __m512 operator()(int64_t i, int64_t k) const {
    const __mmask16 in = vec::tail_mask(k);
    const __m512 v = vec::exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, x + i), m));
    if (y) _mm512_mask_storeu_ps(y + i, in, v);
    return v;
  }
};

// float32 (map_reduce_all over 8-float vectors).
inline float exp_sum(const float* x, float m, int64_t n, float* y) {
  const ExpF32 ex{x, y, _mm512_set1_ps(m)};
  if (n < 8) {
    alignas(64) float e[16];
    _mm512_store_ps(e, ex(0, n));
    return add_in_order(e, n);
  }
  __m512 v = ex(0, std::min<int64_t>(n, 16));
  __m256 acc = lo8(v);
  int64_t i = std::min<int64_t>(n, 16);
  acc = add_first(acc, hi8(v), i - 8);
  for (; i + 16 <= n; i += 16) {  // one dependent chain of 8 lanes, as torch's
    v = ex(i, 16);
    acc = _mm256_add_ps(acc, lo8(v));
    acc = _mm256_add_ps(acc, hi8(v));
  }
  if (i < n) {
    const int64_t k = n - i;
    v = ex(i, k);
    if (k >= 8) {
      acc = _mm256_add_ps(acc, lo8(v));
      acc = add_first(acc, hi8(v), k - 8);
    } else {
      acc = add_first(acc, lo8(v), k);
    }
  }
  return fold8(acc);
}

// float64 (map_reduce_all over 4-double vectors, whose lanes are then added one by one).
inline double exp_sum(const double* x, double m, int64_t n, double* y) {
  const __m256d s = _mm256_set1_pd(m);
  const auto ex = [&](int64_t i, int64_t k) {
    const __m256i in = _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
    const __m256d v = exp_pd(_mm256_sub_pd(_mm256_maskload_pd(x + i, in), s));
    if (y) _mm256_maskstore_pd(y + i, in, v);
    return v;
  };
  alignas(32) double lanes[4];
  if (n < 4) {
    _mm256_store_pd(lanes, ex(0, n));
    return add_in_order(lanes, n);
  }
  __m256d acc = ex(0, 4);
  int64_t i = 4;
  for (; i + 4 <= n; i += 4) acc = _mm256_add_pd(acc, ex(i, 4));
  if (i < n) acc = add_first(acc, ex(i, n - i), n - i);
  _mm256_store_pd(lanes, acc);
  return add_in_order(lanes, 4);
}

// bfloat16 log_softmax (functional_bfloat16.h's map_reduce_all: a 16-value step feeds two 8-float
// accumulators, added together before the fold). The caller rounds the sum to bfloat16.
inline float exp_sum_bf16_log(const float* x, float m, int64_t n) {
  const ExpF32 ex{x, nullptr, _mm512_set1_ps(m)};
  if (n < 16) {
    alignas(64) float e[16];
    _mm512_store_ps(e, ex(0, n));
    if (n <= 8) return add_in_order(e, n);
    for (int64_t j = 0; j < n - 8; ++j) e[j] += e[j + 8];
    return add_in_order(e, 8);
  }
  __m512 v = ex(0, 16);
  __m256 a0 = lo8(v), a1 = hi8(v);
  int64_t i = 16;
  for (; i + 16 <= n; i += 16) {
    v = ex(i, 16);
    a0 = _mm256_add_ps(a0, lo8(v));
    a1 = _mm256_add_ps(a1, hi8(v));
  }
  if (i < n) {
    const int64_t k = n - i;
    v = ex(i, k);
    if (k > 8) {
      a0 = _mm256_add_ps(a0, lo8(v));
      a1 = add_first(a1, hi8(v), k - 8);
    } else {
      a0 = add_first(a0, lo8(v), k);
    }
  }
  return fold8(_mm256_add_ps(a0, a1));
}

// bfloat16 softmax (its float-buffer path): the whole 8-vectors from a zero accumulator, folded,
// then the last n % 8 values one by one with libm's expf, as torch's scalar tail.
inline float exp_sum_bf16_softmax(const float* x, float m, int64_t n, float* y) {
  const ExpF32 ex{x, y, _mm512_set1_ps(m)};
  const int64_t whole = n - n % 8;
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= whole; i += 16) {
    const __m512 v = ex(i, 16);
    acc = _mm256_add_ps(acc, lo8(v));
    acc = _mm256_add_ps(acc, hi8(v));
  }
  if (i < whole) {
    acc = _mm256_add_ps(acc, lo8(ex(i, 8)));
    i += 8;
  }
  float r = fold8(acc);
  for (; i < n; ++i) {
    y[i] = std::exp(x[i] - m);
    r += y[i];
  }
  return r;
}

// ---- the backward's row sums (_vec_host_softmax_backward_lastdim) -----------------------------
// log_softmax's is reduce_all(+) of the gradient g, softmax's map2_reduce_all(g * y, +), in the
// forward's lane order. torch's AVX2 build contracts acc + g * y into one fma (and its output's
// g - exp(y) * sum too) wherever the product feeds nothing but that add, so the first vector's
// products, and those of a row shorter than one vector (stored, then added one by one), are
// rounded on their own.

// lanes [0, k) of v, the others acc's (Vectorized::set(acc, v, k)).
inline __m256 take_first(__m256 acc, __m256 v, int64_t k) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_blendv_ps(
      acc, v,
      _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), lane)));
}
inline __m256d take_first(__m256d acc, __m256d v, int64_t k) {
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
  return _mm256_blendv_pd(acc, v,
                          _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_set1_epi64x(k), lane)));
}
inline __m256i lanes_below(int64_t k) {  // float lanes [0, k) of 8
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// g (and y for the product) over 8 floats at i, k of them (zeros past k).
struct GradF32 {
  const float* g;
  const float* y;                            // null: log_softmax's plain sum of g
  __m256 term(int64_t i, int64_t k) const {  // g or g * y, rounded
    const __m256i in = lanes_below(k);
    const __m256 a = _mm256_maskload_ps(g + i, in);
    return y ? rounded(_mm256_mul_ps(a, _mm256_maskload_ps(y + i, in))) : a;
  }
  __m256 add(__m256 acc, int64_t i, int64_t k) const {  // acc + g, or fma(g, y, acc)
    const __m256i in = lanes_below(k);
    const __m256 a = _mm256_maskload_ps(g + i, in);
    return y ? _mm256_fmadd_ps(a, _mm256_maskload_ps(y + i, in), acc) : _mm256_add_ps(acc, a);
  }
  __m256 add8(__m256 acc, int64_t i) const {  // add(acc, i, 8)
    const __m256 a = _mm256_loadu_ps(g + i);
    return y ? _mm256_fmadd_ps(a, _mm256_loadu_ps(y + i), acc) : _mm256_add_ps(acc, a);
  }
  // The hardware prefetcher alone leaves one dependent chain waiting on memory (2.5x slower).
  void prefetch(int64_t i) const {
    _mm_prefetch(reinterpret_cast<const char*>(g + i + kAhead), _MM_HINT_T0);
    if (y) _mm_prefetch(reinterpret_cast<const char*>(y + i + kAhead), _MM_HINT_T0);
  }
  static constexpr int64_t kAhead = 512;  // floats
};

// float32 (reduce_all / map2_reduce_all over 8-float vectors).
inline float grad_sum(const float* g, const float* y, int64_t n) {
  const GradF32 f{g, y};
  if (n < 8) {
    alignas(32) float e[8];
    _mm256_store_ps(e, f.term(0, n));
    return add_in_order(e, n);
  }
  __m256 acc = f.term(0, 8);
  int64_t i = 8;
  for (; i + 16 <= n; i += 16) f.prefetch(i), acc = f.add8(f.add8(acc, i), i + 8);
  if (i + 8 <= n) acc = f.add8(acc, i), i += 8;
  if (i < n) acc = take_first(acc, f.add(acc, i, n - i), n - i);
  return fold8(acc);
}

// float64 (4-double vectors, whose lanes are then added one by one).
inline double grad_sum(const double* g, const double* y, int64_t n) {
  const auto in = [](int64_t k) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
  };
  const auto term = [&](int64_t i, int64_t k) {
    const __m256d a = _mm256_maskload_pd(g + i, in(k));
    return y ? rounded(_mm256_mul_pd(a, _mm256_maskload_pd(y + i, in(k)))) : a;
  };
  const auto add = [&](__m256d acc, int64_t i, int64_t k) {
    const __m256d a = _mm256_maskload_pd(g + i, in(k));
    return y ? _mm256_fmadd_pd(a, _mm256_maskload_pd(y + i, in(k)), acc) : _mm256_add_pd(acc, a);
  };
  alignas(32) double lanes[4];
  if (n < 4) {
    _mm256_store_pd(lanes, term(0, n));
    return add_in_order(lanes, n);
  }
  __m256d acc = term(0, 4);
  int64_t i = 4;
  for (; i + 4 <= n; i += 4) {
    if (i % 8 == 0) {  // as GradF32::prefetch, a line per 8 doubles
      _mm_prefetch(reinterpret_cast<const char*>(g + i + GradF32::kAhead), _MM_HINT_T0);
      if (y) _mm_prefetch(reinterpret_cast<const char*>(y + i + GradF32::kAhead), _MM_HINT_T0);
    }
    acc = add(acc, i, 4);
  }
  if (i < n) acc = take_first(acc, add(acc, i, n - i), n - i);
  _mm256_store_pd(lanes, acc);
  return add_in_order(lanes, 4);
}

// bfloat16 (functional_bfloat16.h's reduce_all / map2_reduce_all: 16 values a step into two
// 8-float accumulators, added together before the fold). The caller rounds the sum to bfloat16.
inline float grad_sum_bf16(const float* g, const float* y, int64_t n) {
  const GradF32 f{g, y};
  if (n < 16) {
    if (n <= 8) {
      alignas(32) float e[8];
      _mm256_store_ps(e, f.term(0, n));
      return add_in_order(e, n);
    }
    alignas(32) float e[8];
    const __m256 a = f.term(0, 8);
    _mm256_store_ps(e, take_first(a, f.add(a, 8, n - 8), n - 8));
    return add_in_order(e, 8);
  }
  __m256 a0 = f.term(0, 8), a1 = f.term(8, 8);
  int64_t i = 16;
  for (; i + 16 <= n; i += 16) f.prefetch(i), a0 = f.add8(a0, i), a1 = f.add8(a1, i + 8);
  if (i < n) {
    const int64_t k = n - i;
    if (k > 8) {
      a0 = f.add(a0, i, 8);
      a1 = take_first(a1, f.add(a1, i + 8, k - 8), k - 8);
    } else {
      a0 = take_first(a0, f.add(a0, i, k), k);
    }
  }
  return fold8(_mm256_add_ps(a0, a1));
}

// log_softmax's gradient g - exp(y) * s, one fma per value as torch's (d may be g or y).
inline void log_softmax_grad(const float* g, const float* y, float s, float* d, int64_t n) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(y + i + GradF32::kAhead), _MM_HINT_T0);
    const __mmask16 in = vec::tail_mask(n - i);
    const __m512 e = vec::exp_ps(_mm512_maskz_loadu_ps(in, y + i));
    _mm512_mask_storeu_ps(d + i, in, _mm512_fnmadd_ps(e, vs, _mm512_maskz_loadu_ps(in, g + i)));
  }
}
inline void log_softmax_grad(const double* g, const double* y, double s, double* d, int64_t n) {
  const __m256d vs = _mm256_set1_pd(s);
  for (int64_t i = 0; i < n; i += 4) {
    if (i % 8 == 0)
      _mm_prefetch(reinterpret_cast<const char*>(y + i + GradF32::kAhead), _MM_HINT_T0);
    const __m256i in =
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - i), _mm256_setr_epi64x(0, 1, 2, 3));
    const __m256d e = exp_pd(_mm256_maskload_pd(y + i, in));
    _mm256_maskstore_pd(d + i, in, _mm256_fnmadd_pd(e, vs, _mm256_maskload_pd(g + i, in)));
  }
}

}  // namespace fabric::cpu::torch_softmax
