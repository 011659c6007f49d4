// The 8-lane float64 vector operations the SLEEF double-precision transcriptions
// (vec_sleef_f64_*.h) are written in: AVX-512 instructions (__m512d, __mmask8) where the build has
// them, pairs of AVX2 ones otherwise (avx512_emulation.h covers few of the _pd intrinsics, so this
// layer carries its own AVX2 form). Both forms give every lane the bits the named instruction gives
// it. Products are opaque to the optimiser (SLEEF is compiled with -ffp-contract=off; fabric is
// not), so a product rounds on its own unless the code asks for an fma. Lane-wise 32-bit integers
// (SLEEF's vint: quadrant counts, exponents) live in one __m256i, lane i beside double lane i, on
// both builds.
#pragma once

#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace fabric::cpu::vec::sleef64 {

using VI = __m256i;  // 8 int32 lanes

#if defined(__AVX512F__)

using VD = __m512d;
using MD = __mmask8;  // one bit per lane

FABRIC_VEC_INLINE VD splat(double v) { return _mm512_set1_pd(v); }
FABRIC_VEC_INLINE VD bits_pd(uint64_t v) {
  return _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(v)));
}
FABRIC_VEC_INLINE VD opaque(VD v) {
  asm("" : "+v"(v));
  return v;
}
FABRIC_VEC_INLINE VD add(VD a, VD b) { return _mm512_add_pd(a, b); }
FABRIC_VEC_INLINE VD sub(VD a, VD b) { return _mm512_sub_pd(a, b); }
FABRIC_VEC_INLINE VD mul(VD a, VD b) { return opaque(_mm512_mul_pd(a, b)); }
FABRIC_VEC_INLINE VD div(VD a, VD b) { return _mm512_div_pd(a, b); }
FABRIC_VEC_INLINE VD fma(VD a, VD b, VD c) { return _mm512_fmadd_pd(a, b, c); }    // a b + c
FABRIC_VEC_INLINE VD fms(VD a, VD b, VD c) { return _mm512_fmsub_pd(a, b, c); }    // a b - c
FABRIC_VEC_INLINE VD fnma(VD a, VD b, VD c) { return _mm512_fnmadd_pd(a, b, c); }  // c - a b
FABRIC_VEC_INLINE VD sqrt(VD a) { return _mm512_sqrt_pd(a); }
FABRIC_VEC_INLINE VD vmax(VD a, VD b) { return _mm512_max_pd(a, b); }
FABRIC_VEC_INLINE VD bit_and(VD a, VD b) { return _mm512_and_pd(a, b); }
FABRIC_VEC_INLINE VD bit_or(VD a, VD b) { return _mm512_or_pd(a, b); }
FABRIC_VEC_INLINE VD bit_xor(VD a, VD b) { return _mm512_xor_pd(a, b); }
FABRIC_VEC_INLINE VD bit_andnot(VD a, VD b) { return _mm512_andnot_pd(a, b); }  // ~a & b
FABRIC_VEC_INLINE VD rint(VD a) {                                               // to nearest even
  return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
FABRIC_VEC_INLINE VD trunc(VD a) {
  return _mm512_roundscale_pd(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
}

FABRIC_VEC_INLINE MD cmp_lt(VD a, VD b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
FABRIC_VEC_INLINE MD cmp_le(VD a, VD b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
FABRIC_VEC_INLINE MD cmp_gt(VD a, VD b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
FABRIC_VEC_INLINE MD cmp_ge(VD a, VD b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
FABRIC_VEC_INLINE MD cmp_eq(VD a, VD b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
FABRIC_VEC_INLINE MD isnan(VD a) { return _mm512_cmp_pd_mask(a, a, _CMP_NEQ_UQ); }
// the lanes whose bits equal v's
FABRIC_VEC_INLINE MD bits_eq(VD a, uint64_t v) {
  return _mm512_cmpeq_epi64_mask(_mm512_castpd_si512(a),
                                 _mm512_set1_epi64(static_cast<long long>(v)));
}

FABRIC_VEC_INLINE VD sel(MD m, VD yes, VD no) { return _mm512_mask_mov_pd(no, m, yes); }
FABRIC_VEC_INLINE MD m_or(MD a, MD b) { return static_cast<MD>(a | b); }
FABRIC_VEC_INLINE MD m_and(MD a, MD b) { return static_cast<MD>(a & b); }
FABRIC_VEC_INLINE MD m_andnot(MD a, MD b) { return static_cast<MD>(~a & b); }  // ~a & b
FABRIC_VEC_INLINE unsigned m_bits(MD m) { return m; }
FABRIC_VEC_INLINE MD m_from_bits(unsigned b) { return static_cast<MD>(b); }

// ---- int32 lanes
FABRIC_VEC_INLINE VI rint_i32(VD a) { return _mm512_cvtpd_epi32(a); }  // INT_MIN out of range
FABRIC_VEC_INLINE VI trunc_i32(VD a) { return _mm512_cvttpd_epi32(a); }
FABRIC_VEC_INLINE VD to_pd(VI q) { return _mm512_cvtepi32_pd(q); }
FABRIC_VEC_INLINE MD icmp_eq(VI a, VI b) { return _mm256_cmpeq_epi32_mask(a, b); }
FABRIC_VEC_INLINE MD icmp_gt(VI a, VI b) { return _mm256_cmpgt_epi32_mask(a, b); }
FABRIC_VEC_INLINE VI isel(MD m, VI yes, VI no) { return _mm256_mask_blend_epi32(m, no, yes); }
// the upper 32 bits of each lane (SLEEF's vcastu_vi_vi2 of the bits)
FABRIC_VEC_INLINE VI high_words(VD a) {
  return _mm512_cvtepi64_epi32(_mm512_srli_epi64(_mm512_castpd_si512(a), 32));
}
// q in each lane's upper 32 bits, zero below (vcastu_vi2_vi)
FABRIC_VEC_INLINE VD from_high_words(VI q) {
  return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_cvtepi32_epi64(q), 32));
}
// a's bits plus q << 52: q added to the exponent field (vldexp3)
FABRIC_VEC_INLINE VD add_exponent(VD a, VI q) {
  return _mm512_castsi512_pd(
      _mm512_add_epi64(_mm512_castpd_si512(a), _mm512_slli_epi64(_mm512_cvtepi32_epi64(q), 52)));
}
FABRIC_VEC_INLINE VD gather(const double* base, VI idx) {
  return _mm512_i32gather_pd(idx, base, 8);
}

// ---- memory
FABRIC_VEC_INLINE MD first_lanes(int64_t k) {  // k >= 8: all
  return k >= 8 ? static_cast<MD>(0xFF) : static_cast<MD>((1u << k) - 1u);
}
FABRIC_VEC_INLINE VD load(const double* p) { return _mm512_loadu_pd(p); }
FABRIC_VEC_INLINE VD load(const double* p, MD m) { return _mm512_maskz_loadu_pd(m, p); }  // 0 off m
FABRIC_VEC_INLINE void store(double* p, VD v) { _mm512_storeu_pd(p, v); }
FABRIC_VEC_INLINE void store(double* p, VD v, MD m) { _mm512_mask_storeu_pd(p, m, v); }

#else  // two AVX2 halves: lanes 0-3 in lo, 4-7 in hi

struct VD {
  __m256d lo, hi;
};
struct MD {  // all bits set in a selected lane
  __m256d lo, hi;
};

namespace detail {
template <typename F>
FABRIC_VEC_INLINE VD map(VD a, F f) {
  return {f(a.lo), f(a.hi)};
}
template <typename F>
FABRIC_VEC_INLINE VD map(VD a, VD b, F f) {
  return {f(a.lo, b.lo), f(a.hi, b.hi)};
}
template <typename F>
FABRIC_VEC_INLINE VD map(VD a, VD b, VD c, F f) {
  return {f(a.lo, b.lo, c.lo), f(a.hi, b.hi, c.hi)};
}
template <int kPred>
FABRIC_VEC_INLINE MD cmp(VD a, VD b) {
  return {_mm256_cmp_pd(a.lo, b.lo, kPred), _mm256_cmp_pd(a.hi, b.hi, kPred)};
}
FABRIC_VEC_INLINE __m128i lo128(VI v) { return _mm256_castsi256_si128(v); }
FABRIC_VEC_INLINE __m128i hi128(VI v) { return _mm256_extracti128_si256(v, 1); }
FABRIC_VEC_INLINE VI join(__m128i lo, __m128i hi) { return _mm256_set_m128i(hi, lo); }
// 32-bit lane masks to 64-bit lane masks and back
FABRIC_VEC_INLINE MD widen_mask(VI m) {
  return {_mm256_castsi256_pd(_mm256_cvtepi32_epi64(lo128(m))),
          _mm256_castsi256_pd(_mm256_cvtepi32_epi64(hi128(m)))};
}
FABRIC_VEC_INLINE VI narrow_mask(MD m) {
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  return join(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(m.lo), even)),
              _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(m.hi), even)));
}
FABRIC_VEC_INLINE __m256i i64(__m256d v) { return _mm256_castpd_si256(v); }
FABRIC_VEC_INLINE __m256d f64(__m256i v) { return _mm256_castsi256_pd(v); }
}  // namespace detail

FABRIC_VEC_INLINE VD splat(double v) { return {_mm256_set1_pd(v), _mm256_set1_pd(v)}; }
FABRIC_VEC_INLINE VD bits_pd(uint64_t v) {
  const __m256d b = _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(v)));
  return {b, b};
}
FABRIC_VEC_INLINE VD opaque(VD v) {
  asm("" : "+x"(v.lo), "+x"(v.hi));
  return v;
}
FABRIC_VEC_INLINE VD add(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_add_pd(x, y); });
}
FABRIC_VEC_INLINE VD sub(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_sub_pd(x, y); });
}
FABRIC_VEC_INLINE VD mul(VD a, VD b) {
  return opaque(detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_mul_pd(x, y); }));
}
FABRIC_VEC_INLINE VD div(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_div_pd(x, y); });
}
FABRIC_VEC_INLINE VD fma(VD a, VD b, VD c) {
  return detail::map(a, b, c,
                     [](__m256d x, __m256d y, __m256d z) { return _mm256_fmadd_pd(x, y, z); });
}
FABRIC_VEC_INLINE VD fms(VD a, VD b, VD c) {
  return detail::map(a, b, c,
                     [](__m256d x, __m256d y, __m256d z) { return _mm256_fmsub_pd(x, y, z); });
}
FABRIC_VEC_INLINE VD fnma(VD a, VD b, VD c) {
  return detail::map(a, b, c,
                     [](__m256d x, __m256d y, __m256d z) { return _mm256_fnmadd_pd(x, y, z); });
}
FABRIC_VEC_INLINE VD sqrt(VD a) {
  return detail::map(a, [](__m256d x) { return _mm256_sqrt_pd(x); });
}
FABRIC_VEC_INLINE VD vmax(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_max_pd(x, y); });
}
FABRIC_VEC_INLINE VD bit_and(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_and_pd(x, y); });
}
FABRIC_VEC_INLINE VD bit_or(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_or_pd(x, y); });
}
FABRIC_VEC_INLINE VD bit_xor(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_xor_pd(x, y); });
}
FABRIC_VEC_INLINE VD bit_andnot(VD a, VD b) {
  return detail::map(a, b, [](__m256d x, __m256d y) { return _mm256_andnot_pd(x, y); });
}
FABRIC_VEC_INLINE VD rint(VD a) {
  return detail::map(a, [](__m256d x) {
    return _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  });
}
FABRIC_VEC_INLINE VD trunc(VD a) {
  return detail::map(
      a, [](__m256d x) { return _mm256_round_pd(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); });
}

FABRIC_VEC_INLINE MD cmp_lt(VD a, VD b) { return detail::cmp<_CMP_LT_OQ>(a, b); }
FABRIC_VEC_INLINE MD cmp_le(VD a, VD b) { return detail::cmp<_CMP_LE_OQ>(a, b); }
FABRIC_VEC_INLINE MD cmp_gt(VD a, VD b) { return detail::cmp<_CMP_GT_OQ>(a, b); }
FABRIC_VEC_INLINE MD cmp_ge(VD a, VD b) { return detail::cmp<_CMP_GE_OQ>(a, b); }
FABRIC_VEC_INLINE MD cmp_eq(VD a, VD b) { return detail::cmp<_CMP_EQ_OQ>(a, b); }
FABRIC_VEC_INLINE MD isnan(VD a) { return detail::cmp<_CMP_NEQ_UQ>(a, a); }
FABRIC_VEC_INLINE MD bits_eq(VD a, uint64_t v) {
  const __m256i b = _mm256_set1_epi64x(static_cast<long long>(v));
  return {detail::f64(_mm256_cmpeq_epi64(detail::i64(a.lo), b)),
          detail::f64(_mm256_cmpeq_epi64(detail::i64(a.hi), b))};
}

FABRIC_VEC_INLINE VD sel(MD m, VD yes, VD no) {
  return {_mm256_blendv_pd(no.lo, yes.lo, m.lo), _mm256_blendv_pd(no.hi, yes.hi, m.hi)};
}
FABRIC_VEC_INLINE MD m_or(MD a, MD b) {
  return {_mm256_or_pd(a.lo, b.lo), _mm256_or_pd(a.hi, b.hi)};
}
FABRIC_VEC_INLINE MD m_and(MD a, MD b) {
  return {_mm256_and_pd(a.lo, b.lo), _mm256_and_pd(a.hi, b.hi)};
}
FABRIC_VEC_INLINE MD m_andnot(MD a, MD b) {
  return {_mm256_andnot_pd(a.lo, b.lo), _mm256_andnot_pd(a.hi, b.hi)};
}
FABRIC_VEC_INLINE unsigned m_bits(MD m) {
  return static_cast<unsigned>(_mm256_movemask_pd(m.lo) | (_mm256_movemask_pd(m.hi) << 4));
}
FABRIC_VEC_INLINE MD m_from_bits(unsigned b) {
  const __m256i sel_bit = _mm256_setr_epi64x(1, 2, 4, 8);
  const auto half = [&](unsigned h) {
    const __m256i v = _mm256_and_si256(_mm256_set1_epi64x(h), sel_bit);
    return detail::f64(_mm256_cmpeq_epi64(v, sel_bit));
  };
  return {half(b & 15u), half((b >> 4) & 15u)};
}

FABRIC_VEC_INLINE VI rint_i32(VD a) {
  return detail::join(_mm256_cvtpd_epi32(a.lo), _mm256_cvtpd_epi32(a.hi));
}
FABRIC_VEC_INLINE VI trunc_i32(VD a) {
  return detail::join(_mm256_cvttpd_epi32(a.lo), _mm256_cvttpd_epi32(a.hi));
}
FABRIC_VEC_INLINE VD to_pd(VI q) {
  return {_mm256_cvtepi32_pd(detail::lo128(q)), _mm256_cvtepi32_pd(detail::hi128(q))};
}
FABRIC_VEC_INLINE MD icmp_eq(VI a, VI b) { return detail::widen_mask(_mm256_cmpeq_epi32(a, b)); }
FABRIC_VEC_INLINE MD icmp_gt(VI a, VI b) { return detail::widen_mask(_mm256_cmpgt_epi32(a, b)); }
FABRIC_VEC_INLINE VI isel(MD m, VI yes, VI no) {
  return _mm256_blendv_epi8(no, yes, detail::narrow_mask(m));
}
FABRIC_VEC_INLINE VI high_words(VD a) {
  const __m256i odd = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
  return detail::join(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(detail::i64(a.lo), odd)),
                      _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(detail::i64(a.hi), odd)));
}
FABRIC_VEC_INLINE VD from_high_words(VI q) {
  return {detail::f64(_mm256_slli_epi64(_mm256_cvtepi32_epi64(detail::lo128(q)), 32)),
          detail::f64(_mm256_slli_epi64(_mm256_cvtepi32_epi64(detail::hi128(q)), 32))};
}
FABRIC_VEC_INLINE VD add_exponent(VD a, VI q) {
  const auto half = [](__m256d x, __m128i e) {
    return detail::f64(
        _mm256_add_epi64(detail::i64(x), _mm256_slli_epi64(_mm256_cvtepi32_epi64(e), 52)));
  };
  return {half(a.lo, detail::lo128(q)), half(a.hi, detail::hi128(q))};
}
FABRIC_VEC_INLINE VD gather(const double* base, VI idx) {
  return {_mm256_i32gather_pd(base, detail::lo128(idx), 8),
          _mm256_i32gather_pd(base, detail::hi128(idx), 8)};
}

FABRIC_VEC_INLINE MD first_lanes(int64_t k) { return m_from_bits(k >= 8 ? 0xFFu : (1u << k) - 1u); }
FABRIC_VEC_INLINE VD load(const double* p) { return {_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4)}; }
FABRIC_VEC_INLINE VD load(const double* p, MD m) {
  return {_mm256_maskload_pd(p, detail::i64(m.lo)), _mm256_maskload_pd(p + 4, detail::i64(m.hi))};
}
FABRIC_VEC_INLINE void store(double* p, VD v) {
  _mm256_storeu_pd(p, v.lo);
  _mm256_storeu_pd(p + 4, v.hi);
}
FABRIC_VEC_INLINE void store(double* p, VD v, MD m) {
  _mm256_maskstore_pd(p, detail::i64(m.lo), v.lo);
  _mm256_maskstore_pd(p + 4, detail::i64(m.hi), v.hi);
}

#endif

// ---- built on the above, the same on both builds ----------------------------------------------
FABRIC_VEC_INLINE VD zero() { return splat(0.0); }
FABRIC_VEC_INLINE VD rec(VD a) { return div(splat(1.0), a); }
FABRIC_VEC_INLINE VD neg(VD a) { return bit_xor(splat(-0.0), a); }
FABRIC_VEC_INLINE VD abs(VD a) { return bit_andnot(splat(-0.0), a); }
// x with its sign flipped where y's sign bit is set (vmulsign)
FABRIC_VEC_INLINE VD mulsign(VD x, VD y) { return bit_xor(x, bit_and(y, splat(-0.0))); }
FABRIC_VEC_INLINE MD isinf(VD a) { return cmp_eq(abs(a), splat(__builtin_inf())); }
FABRIC_VEC_INLINE MD is_pos_inf(VD a) { return cmp_eq(a, splat(__builtin_inf())); }
FABRIC_VEC_INLINE MD is_neg_zero(VD a) { return bits_eq(a, 0x8000000000000000ull); }
FABRIC_VEC_INLINE MD signbit(VD a) {
  return bits_eq(bit_and(a, splat(-0.0)), 0x8000000000000000ull);
}
// all bits set where m (SLEEF's vor_vm_vo64_vm: a NaN), a elsewhere
FABRIC_VEC_INLINE VD or_ones(MD m, VD a) { return sel(m, bits_pd(~0ull), a); }
// 0 where m (vandnot_vm_vo64_vm)
FABRIC_VEC_INLINE VD zero_where(MD m, VD a) { return sel(m, zero(), a); }
FABRIC_VEC_INLINE bool all(MD m) { return m_bits(m) == 0xFFu; }

FABRIC_VEC_INLINE VI isplat(int v) { return _mm256_set1_epi32(v); }
FABRIC_VEC_INLINE VI iadd(VI a, VI b) { return _mm256_add_epi32(a, b); }
FABRIC_VEC_INLINE VI isub(VI a, VI b) { return _mm256_sub_epi32(a, b); }
FABRIC_VEC_INLINE VI iand(VI a, VI b) { return _mm256_and_si256(a, b); }
template <int kShift>
FABRIC_VEC_INLINE VI isra(VI a) {
  return _mm256_srai_epi32(a, kShift);
}
template <int kShift>
FABRIC_VEC_INLINE VI isrl(VI a) {
  return _mm256_srli_epi32(a, kShift);
}
template <int kShift>
FABRIC_VEC_INLINE VI isll(VI a) {
  return _mm256_slli_epi32(a, kShift);
}
FABRIC_VEC_INLINE VI ineg(VI a) { return isub(isplat(0), a); }
FABRIC_VEC_INLINE MD ieq(VI a, int v) { return icmp_eq(a, isplat(v)); }

// 2^q for q in the normal range (vpow2i_vd_vi)
FABRIC_VEC_INLINE VD pow2i(VI q) { return from_high_words(isll<20>(iadd(q, isplat(0x3ff)))); }
// d 2^e in two steps, so e may reach past the normal range (vldexp2_vd_vd_vi)
FABRIC_VEC_INLINE VD ldexp2(VD d, VI e) {
  const VI h = isra<1>(e);
  return mul(mul(d, pow2i(h)), pow2i(isub(e, h)));
}
// the unbiased exponent field (vilogb2k_vi_vd: no subnormal care)
FABRIC_VEC_INLINE VI ilogb2k(VD d) {
  return isub(iand(isrl<20>(high_words(d)), isplat(0x7ff)), isplat(0x3ff));
}

}  // namespace fabric::cpu::vec::sleef64
