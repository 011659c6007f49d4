// SLEEF 3.5.1's argument reduction for the float64 sin, cos and tan (vec_sleef_f64_sincos.h,
// vec_sleef_f64_tan.h), 8 lanes: Cody-Waite by pi (two parts) when every lane of SLEEF's AVX2
// vector is below 15 in magnitude, by pi in seven parts when all are below 1e14, else Payne-Hanek
// (rempi, FMA form, with SLEEF's table of 1/(2 pi) pieces, vec_sleef_f64_rempi_table.cpp) for the
// whole vector. The paths can differ in the last bit, so a lane's result depends on the other lanes
// of its AVX2 vector: reduce_by_halves takes, for each half of the 8 lanes, the path SLEEF's 4-lane
// vector holding those lanes would take (torch's vectors start at multiples of 4 elements of a row
// or of its 1024-element gather buffer, as these halves do: the loops start 8-lane vectors at
// multiples of 8). NaN lanes count as large.
#pragma once

#include <cstdint>

#include "kernels/cpu/vec_sleef_f64_dd.h"

namespace fabric::cpu::vec::sleef64 {

// Sleef_rempitabdp, four doubles per exponent (e - 55 clamped to [0, 968]), and the zero row that
// follows it in libsleef (infinities and NaNs index it).
inline constexpr int kRempiRowsD = 970;
extern const uint64_t kRempiTabD[kRempiRowsD * 4];

struct Reduced {  // the argument less q quarter (or half) turns, and q
  D2 s;
  VI q;
};

// (x - rint(4x) / 4, rint(4x) - 4 rint(x)): the quarter turns of x and what they leave
// (rempisub, FULL_FP_ROUNDING form; its products are by powers of two, exact).
FABRIC_VEC_INLINE VD rempisub(VD x, VI& q) {
  const VD y = rint(mul(x, splat(4.0)));
  q = trunc_i32(sub(y, mul(rint(x), splat(4.0))));
  return sub(x, mul(y, splat(0.25)));
}

// rempi: a mod (pi/2) as a double-double, with the quarter count (its low bits matter).
FABRIC_VEC_INLINE Reduced rempi(VD a) {
  const double* tab = reinterpret_cast<const double*>(kRempiTabD);
  VI ex = isub(ilogb2k(a), isplat(55));
  // exponents above 700 scaled down by 2^64 (the table rows already account for it)
  const VI scale_q = isel(icmp_gt(ex, isplat(700 - 55)), isplat(-64), isplat(0));
  a = add_exponent(a, scale_q);
  ex = _mm256_andnot_si256(isra<31>(ex), ex);  // max(ex, 0)
  ex = isll<2>(ex);
  VI q, q2;
  D2 x = mul_dd(a, gather(tab, ex));
  x.x = rempisub(x.x, q);
  x = normalize(x);
  x = add2(x, mul_dd(a, gather(tab + 1, ex)));
  x.x = rempisub(x.x, q2);
  q = iadd(q, q2);
  x = normalize(x);
  x = add2(x, mul(D2{gather(tab + 2, ex), gather(tab + 3, ex)}, a));
  x = normalize(x);
  x = mul(x, dd(3.141592653589793116 * 2, 1.2246467991473532072e-16 * 2));
  const MD o = cmp_lt(abs(a), splat(0.7));
  return {{sel(o, a, x.x), zero_where(o, x.y)}, q};
}

inline constexpr double kTrigRangeMax2 = 15, kTrigRangeMax = 1e+14;

// Each 4-lane half reduced as its own AVX2 vector would be: small (all |d| < 15), medium (all
// |d| < max_medium) or large.
template <typename Small, typename Medium, typename Large>
FABRIC_VEC_INLINE Reduced reduce_by_halves(VD d, double max_medium, const Small& small,
                                           const Medium& medium, const Large& large) {
  const VD a = abs(d);
  const unsigned below_small = m_bits(cmp_lt(a, splat(kTrigRangeMax2)));
  if (__builtin_expect(below_small == 0xFFu, 1)) return small(d);
  const unsigned below_medium = m_bits(cmp_lt(a, splat(max_medium)));
  const auto path = [&](unsigned shift) {
    return ((below_small >> shift) & 15u) == 15u    ? 0
           : ((below_medium >> shift) & 15u) == 15u ? 1
                                                    : 2;
  };
  const int lo = path(0), hi = path(4);
  const auto reduce = [&](int p) { return p == 0 ? small(d) : p == 1 ? medium(d) : large(d); };
  Reduced r = reduce(lo);
  if (hi != lo) {
    const Reduced h = reduce(hi);
    const MD upper = m_from_bits(0xF0u);
    r = {sel(upper, h.s, r.s), isel(upper, h.q, r.q)};
  }
  return r;
}

}  // namespace fabric::cpu::vec::sleef64
