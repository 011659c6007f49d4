// SLEEF 3.5.1's float functions that torch 1.13's float32 kernels reach through Vectorized<float>
// and that the math_extra ops need (torch.hypot, erfc, lgamma, logaddexp, logaddexp2, logit,
// floor_divide), one lane at a time: Sleef_expf8_u10, logf8_u10, log2f8_u10, powf8_u10 (base 2
// only), hypotf8_u05, erfcf8_u15, lgammaf8_u10 and fmodf8 as Debian's libsleef3 builds them for
// AVX2 (the FMA forms). Transcribed from SLEEF's sleefsimdsp.c with its operation order
// (sleef_scalar_dw.h holds the double-float arithmetic) and checked against libsleef while
// written: the same bits, NaN payloads included, on all 2^32 inputs of each unary function, on
// 10^8 random pairs for hypot and 2.4 * 10^7 for fmod (a NaN's sign aside).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/sleef_scalar_dw.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu::sleef_scalar::sp {

using F2 = DW<float>;

inline constexpr float kRLn2f =
    1.442695040888963407359924681001892137426645954152985934135449406931f;
inline constexpr float kL2Uf = 0.693145751953125f;
inline constexpr float kL2Lf = 1.428606765330187045e-06f;
inline constexpr F2 kLn2f = {0.69314718246459960938f, -1.904654323148236017e-09f};

// ---- exponent helpers (helperavx2.h / sleefsimdsp.c) ------------------------------------------
// 2^q for q in the normal range (vpow2i_vf_vi2); 32-bit lane arithmetic, wrapping as the vector's.
inline float pow2i(int32_t q) { return from_bits((static_cast<uint32_t>(q) + 0x7fu) << 23); }
// d * 2^e in two steps (vldexp2_vf_vf_vi2)
inline float ldexp2(float d, int32_t e) { return d * pow2i(e >> 1) * pow2i(e - (e >> 1)); }
// q added to d's exponent field (vldexp3_vf_vf_vi2)
inline float ldexp3(float d, int32_t q) {
  return from_bits(bits(d) + (static_cast<uint32_t>(q) << 23));
}
// The full-range ldexp (vldexp_vf_vf_vi2): four steps of at most 2^63 and one of the rest.
inline float ldexp_full(float x, int32_t q) {
  int32_t m = q >> 31;
  m = (((m + q) >> 6) - m) << 4;
  q = q - (m << 2);
  m += 0x7f;
  m = m > 0 ? m : 0;
  m = m > 0xff ? 0xff : m;
  float u = from_bits(static_cast<uint32_t>(m) << 23);
  x = x * u * u * u * u;
  u = from_bits((static_cast<uint32_t>(q) + 0x7fu) << 23);
  return x * u;
}
// floor(log2 |d|) of a normal d (vilogb2k_vi2_vf)
inline int32_t ilogb2k(float d) { return static_cast<int32_t>((bits(d) >> 23) & 0xff) - 0x7f; }
// ilogb2k reaching the subnormals (vilogbk_vi2_vf)
inline int32_t ilogbk(float d) {
  const bool o = d < 5.421010862427522E-20f;
  if (o) d = 1.8446744073709552E19f * d;
  return static_cast<int32_t>((bits(d) >> 23) & 0xff) - (o ? 64 + 0x7f : 0x7f);
}
// vcast_vf_vi2
inline float to_float(int32_t q) { return static_cast<float>(q); }

// ---- kernels shared by the functions below --------------------------------------------------
// e^d of a double-float d, as a float (expkf)
inline float expkf(F2 d) {
  const int32_t q = rint_int((d.x + d.y) * kRLn2f);
  F2 s = add2(d, to_float(q) * -kL2Uf);
  s = add2(s, to_float(q) * -kL2Lf);
  s = normalize(s);
  float u = 0.00136324646882712841033936f;
  u = std::fma(u, s.x, 0.00836596917361021041870117f);
  u = std::fma(u, s.x, 0.0416710823774337768554688f);
  u = std::fma(u, s.x, 0.166665524244308471679688f);
  u = std::fma(u, s.x, 0.499999850988388061523438f);
  F2 t = add(s, mul(squ(s), u));
  t = add(1.0f, t);
  u = ldexp_full(t.x + t.y, q);
  return d.x < -104 ? 0.0f : u;
}

// e^d of a double-float d, as a double-float (expk2f); 0 below -104
inline F2 expk2f(F2 d) {
  const int32_t q = rint_int((d.x + d.y) * kRLn2f);
  F2 s = add2(d, to_float(q) * -kL2Uf);
  s = add2(s, to_float(q) * -kL2Lf);
  float u = +0.1980960224e-3f;
  u = std::fma(u, s.x, +0.1394256484e-2f);
  u = std::fma(u, s.x, +0.8333456703e-2f);
  u = std::fma(u, s.x, +0.4166637361e-1f);
  F2 t = add2(mul(s, u), +0.166666659414234244790680580464e+0f);
  t = add2(mul(s, t), 0.5f);
  t = add2(s, mul(squ(s), t));
  t = add(1.0f, t);
  t = {ldexp2(t.x, q), ldexp2(t.y, q)};
  return d.x < -104 ? F2{0.0f, 0.0f} : t;
}

// log d of a positive float, as a double-float (logkf)
inline F2 logkf(float d) {
  const bool o = d < FLT_MIN;
  if (o) d = d * (static_cast<float>(1LL << 32) * static_cast<float>(1LL << 32));
  int32_t e = ilogb2k(d * (1.0f / 0.75f));
  const float m = ldexp3(d, -e);
  if (o) e -= 64;
  const F2 x = div(add2_ss(-1.0f, m), add2_ss(1.0f, m));
  const F2 x2 = squ(x);
  float t = 0.240320354700088500976562f;
  t = std::fma(t, x2.x, 0.285112679004669189453125f);
  t = std::fma(t, x2.x, 0.400007992982864379882812f);
  const F2 c = {0.66666662693023681640625f, 3.69183861259614332084311e-09f};
  F2 s = mul(kLn2f, to_float(e));
  s = add(s, scale(x, 2.0f));
  s = add(s, mul(mul(x2, x), add2(mul(x2, t), c)));
  return s;
}

// log d of a positive double-float (logk2f)
inline F2 logk2f(F2 d) {
  const int32_t e = ilogbk(d.x * (1.0f / 0.75f));
  const F2 m = scale(d, pow2i(-e));
  const F2 x = div(add2(m, -1.0f), add2(m, 1.0f));
  const F2 x2 = squ(x);
  float t = 0.2392828464508056640625f;
  t = std::fma(t, x2.x, 0.28518211841583251953125f);
  t = std::fma(t, x2.x, 0.400005877017974853515625f);
  t = std::fma(t, x2.x, 0.666666686534881591796875f);
  F2 s = mul(kLn2f, to_float(e));
  s = add(s, scale(x, 2.0f));
  s = add(s, mul(mul(x2, x), t));
  return s;
}

// sin(pi d) as a double-float (sinpifk)
inline F2 sinpifk(float d) {
  const float u4 = d * 4.0f;
  int32_t q = trunc_int(u4);
  q = (q + static_cast<int32_t>((static_cast<uint32_t>(q) >> 31) ^ 1u)) & ~1;
  const bool o = (q & 2) == 2;
  float s = u4 - to_float(q);
  const float t = s;
  s = s * s;
  const F2 s2 = mul_ss(t, t);
  float u = o ? -0.2430611801e-7f : +0.3093842054e-6f;
  u = std::fma(u, s, o ? +0.3590577080e-5f : -0.3657307388e-4f);
  u = std::fma(u, s, o ? -0.3259917721e-3f : +0.2490393585e-2f);
  F2 x = add2(u * s, o ? F2{0.015854343771934509277f, 4.4940051354032242811e-10f}
                       : F2{-0.080745510756969451904f, -1.3373665339076936258e-09f});
  x = add2(mul(s2, x), o ? F2{-0.30842512845993041992f, -9.0728339030733922277e-09f}
                         : F2{0.78539818525314331055f, -2.1857338617566484855e-08f});
  x = mul(x, o ? s2 : F2{t, 0.0f});
  if (o) x = add2(x, 1.0f);
  if ((q & 4) == 4) x = {mulsign(x.x, -0.0f), mulsign(x.y, -0.0f)};
  return x;
}

// ---- the functions ----------------------------------------------------------------------------
// Sleef_expf8_u10 (xexpf)
inline float expf_u10(float d) {
  const int32_t q = rint_int(d * kRLn2f);
  float s = std::fma(to_float(q), -kL2Uf, d);
  s = std::fma(to_float(q), -kL2Lf, s);
  float u = 0.000198527617612853646278381f;
  u = std::fma(u, s, 0.00139304355252534151077271f);
  u = std::fma(u, s, 0.00833336077630519866943359f);
  u = std::fma(u, s, 0.0416664853692054748535156f);
  u = std::fma(u, s, 0.166666671633720397949219f);
  u = std::fma(u, s, 0.5f);
  u = 1.0f + std::fma(s * s, u, s);
  u = ldexp2(u, q);
  if (d < -104) u = 0.0f;
  if (100 < d) u = INFINITY;
  return u;
}

// The shared start of xlogf_u1 and xlog2f: d out of the subnormals, its exponent and
// x = (m - 1) / (m + 1) in double-float.
inline F2 log_reduce(float d, float& ef) {
  const bool o = d < FLT_MIN;
  if (o) d = d * (static_cast<float>(1LL << 32) * static_cast<float>(1LL << 32));
  int32_t e = ilogb2k(d * (1.0f / 0.75f));
  const float m = ldexp3(d, -e);
  if (o) e -= 64;
  ef = to_float(e);
  return div(add2_ss(-1.0f, m), add2_ss(1.0f, m));
}
// +inf -> +inf, negative or NaN -> NaN, +-0 -> -inf
inline float log_specials(float d, float r) {
  if (d == INFINITY) r = INFINITY;
  if (d < 0 || std::isnan(d)) r = NAN;
  if (d == 0) r = -INFINITY;
  return r;
}

// Sleef_logf8_u10 (xlogf_u1)
inline float logf_u10(float d) {
  float ef;
  const F2 x = log_reduce(d, ef);
  const float x2 = x.x * x.x;
  float t = +0.3027294874e+0f;
  t = std::fma(t, x2, +0.3996108174e+0f);
  t = std::fma(t, x2, +0.6666694880e+0f);
  F2 s = mul(kLn2f, ef);
  s = add(s, scale(x, 2.0f));
  s = add(s, (x2 * x.x) * t);
  return log_specials(d, s.x + s.y);
}

// Sleef_log2f8_u10 (xlog2f)
inline float log2f_u10(float d) {
  float ef;
  const F2 x = log_reduce(d, ef);
  const float x2 = x.x * x.x;
  float t = +0.4374550283e+0f;
  t = std::fma(t, x2, +0.5764790177e+0f);
  t = std::fma(t, x2, +0.9618012905120f);
  F2 s = add2(ef, mul(x, F2{2.8853900432586669922f, 3.2734474483568488616e-08f}));
  s = add2(s, (x2 * x.x) * t);
  return log_specials(d, s.x + s.y);
}

// Sleef_powf8_u10(2, y) (xpowf with x = 2: positive, finite, not 1)
inline float pow2f_u10(float y) {
  float result = expkf(mul(logkf(2.0f), y));
  if (std::isnan(result)) result = INFINITY;
  if (std::isinf(y)) {
    const float efx = mulsign(1.0f, y);  // (|x| - 1) with y's sign
    result = efx < 0 ? 0.0f : (efx == 0 ? 1.0f : INFINITY);
  }
  if (std::isnan(y)) result = from_bits(0xFFFFFFFFu);  // SLEEF's NaN: all bits set
  if (y == 0) result = 1.0f;
  return result;
}

// Sleef_fmodf8 (xfmodf): the quotient's digits peeled off in double-float, at most 8 rounds;
// exact, except that a quotient beyond FLT_MAX gives NaN (the reciprocal estimate overflows).
inline float toward0(float x) { return x == 0 ? 0.0f : from_bits(bits(x) - 1); }  // vtoward0f
inline float fmodf(float x, float y) {
  float nu = std::fabs(x), de = std::fabs(y), s = 1;
  if (de < FLT_MIN) {
    nu *= static_cast<float>(1ULL << 25);
    de *= static_cast<float>(1ULL << 25);
    s *= 1.0f / static_cast<float>(1ULL << 25);
  }
  const float rde = toward0(1.0f / de);
  F2 r = {nu, 0.0f};
  for (int i = 0; i < 8; ++i) {
    const float q = (de + de > r.x && r.x >= de) ? 1.0f : toward0(r.x) * rde;
    r = normalize(add2(r, mul_ss(std::trunc(q), -de)));
    if (r.x < de) break;
  }
  float ret = (r.x + r.y) * s;
  if (r.x + r.y == de) ret = 0;
  ret = mulsign(ret, x);
  if (nu < de) ret = x;
  if (de == 0) ret = NAN;
  return ret;
}

// Sleef_hypotf8_u05 (xhypotf_u05)
inline float hypotf_u05(float x, float y) {
  x = std::fabs(x);
  y = std::fabs(y);
  const float min = x < y ? x : y;  // vminps / vmaxps: the second operand when unordered
  const float max = x > y ? x : y;
  float n = min, d = max;
  if (max < FLT_MIN) {
    n *= static_cast<float>(1ULL << 24);
    d *= static_cast<float>(1ULL << 24);
  }
  F2 t = div(F2{n, 0.0f}, F2{d, 0.0f});
  t = mul(sqrt(add2(squ(t), 1.0f)), max);
  float ret = t.x + t.y;
  if (std::isnan(ret)) ret = INFINITY;
  if (min == 0) ret = max;
  if (std::isnan(x) || std::isnan(y)) ret = NAN;
  if (x == INFINITY || y == INFINITY) ret = INFINITY;
  return ret;
}

// Sleef_erfcf8_u15 (xerfcf_u15): four polynomial ranges below 10.1, erfc(-a) = 2 - erfc(a).
inline float erfcf_u15(float a) {
  const float s = a;
  a = std::fabs(a);
  const bool o0 = a < 1.0f, o1 = a < 2.2f, o2 = a < 4.3f, o3 = a < 10.1f;
  const auto pick = [&](float c0, float c1, float c2, float c3) {
    return o0 ? c0 : o1 ? c1 : o2 ? c2 : c3;
  };
  const auto pick2 = [&](double c0, double c1, double c2, double c3) {
    return dw_from_double(o0 ? c0 : o1 ? c1 : o2 ? c2 : c3);
  };
  const F2 u = o1 ? F2{a, 0.0f} : div(F2{1.0f, 0.0f}, F2{a, 0.0f});
  float t = pick(-0.8638041618e-4f, -0.6236977242e-5f, -0.3869504035e+0f, +0.1115344167e+1f);
  t = std::fma(t, u.x,
               pick(+0.6000166177e-3f, +0.5749821503e-4f, +0.1288077235e+1f, -0.9454904199e+0f));
  t = std::fma(t, u.x,
               pick(-0.1665703603e-2f, +0.6002851478e-5f, -0.1816803217e+1f, -0.3667259514e+0f));
  t = std::fma(t, u.x,
               pick(+0.1795156277e-3f, -0.2851036377e-2f, +0.1249150872e+1f, +0.7155663371e+0f));
  t = std::fma(t, u.x,
               pick(+0.1914106123e-1f, +0.2260518074e-1f, -0.1328857988e+0f, -0.1262947265e-1f));
  F2 d = mul(u, t);
  d = add2(d, pick2(-0.102775359343930288081655368891e+0, -0.105247583459338632253369014063e+0,
                    -0.482365310333045318680618892669e+0, -0.498961546254537647970305302739e+0));
  d = mul(d, u);
  d = add2(d, pick2(-0.636619483208481931303752546439e+0, -0.635609463574589034216723775292e+0,
                    -0.134450203224533979217859332703e-2, -0.471199543422848492080722832666e-4));
  d = mul(d, u);
  d = add2(d, pick2(-0.112837917790537404939545770596e+1, -0.112855987376668622084547028949e+1,
                    -0.572319781150472949561786101080e+0, -0.572364030327966044425932623525e+0));
  F2 x = mul(o1 ? d : F2{-a, 0.0f}, a);
  if (!o1) x = add2(x, d);
  x = expk2f(x);
  if (!o1) x = mul(x, u);
  float r = o3 ? x.x + x.y : 0.0f;
  if (std::signbit(s)) r = 2 - r;
  if (std::isnan(s)) r = NAN;
  return r;
}

// gammafk: log|Gamma(a)| as clc + log(clln / clld), with the reflection below 0.5.
struct GammaParts {
  F2 a, b;
};
inline GammaParts gammafk(float a) {
  F2 clc = {0, 0}, clln = {1, 0}, clld = {1, 0};
  const bool otiny = std::fabs(a) < 1e-30f, oref = a < 0.5f;
  F2 x = otiny ? F2{0, 0} : oref ? add2_ss(1.0f, -a) : F2{a, 0};
  const bool o0 = 0.5f <= x.x && x.x <= 1.2f;
  const bool o2 = 2.3f <= x.x;
  F2 y = normalize(mul(add2(x, 1.0f), x));
  y = normalize(mul(add2(x, 2.0f), y));
  const bool o = o2 && x.x <= 7;
  if (o) clln = y;
  if (o) x = add2(x, 3.0f);
  const float t = o2 ? 1.0f / x.x : normalize(add2(x, o0 ? -1.0f : -2.0f)).x;
  const auto pick = [&](float c0, float c1, float c2) { return o2 ? c0 : o0 ? c1 : c2; };
  float u = pick(+0.000839498720672087279971000786, +0.9435157776e+0f, +0.1102489550e-3f);
  u = std::fma(u, t, pick(-5.17179090826059219329394422e-05, +0.8670063615e+0f, +0.8160019934e-4f));
  u = std::fma(u, t, pick(-0.000592166437353693882857342347, +0.4826702476e+0f, +0.1528468856e-3f));
  u = std::fma(u, t, pick(+6.97281375836585777403743539e-05, -0.8855129778e-1f, -0.2355068718e-3f));
  u = std::fma(u, t, pick(+0.000784039221720066627493314301, +0.1013825238e+0f, +0.4962242092e-3f));
  u = std::fma(u, t, pick(-0.000229472093621399176949318732, -0.1493408978e+0f, -0.1193488017e-2f));
  u = std::fma(u, t, pick(-0.002681327160493827160473958490, +0.1697509140e+0f, +0.2891599433e-2f));
  u = std::fma(u, t, pick(+0.003472222222222222222175164840, -0.2072454542e+0f, -0.7385451812e-2f));
  u = std::fma(u, t, pick(+0.083333333333333333335592087900, +0.2705872357e+0f, +0.2058077045e-1f));
  y = mul(add2(x, -0.5f), logk2f(x));
  y = add2(y, neg(x));
  y = add2(y, dw_from_double(0.91893853320467278056));  // log(2 pi) / 2
  F2 z = add2(mul_ss(u, t),
              o0 ? -0.400686534596170958447352690395e+0f : -0.673523028297382446749257758235e-1f);
  z = add2(mul(z, t),
           o0 ? +0.822466960142643054450325495997e+0f : +0.322467033928981157743538726901e+0f);
  z = add2(mul(z, t),
           o0 ? -0.577215665946766039837398973297e+0f : +0.422784335087484338986941629852e+0f);
  z = mul(z, t);
  clc = o2 ? y : z;
  if (o2) clld = add2(mul_ss(u, t), 1.0f);
  y = clln;
  clc = otiny  ? dw_from_double(41.58883083359671856503)                // log(2^60)
        : oref ? add2(dw_from_double(1.1447298858494001639), neg(clc))  // log(pi)
               : clc;
  clln = otiny ? F2{1, 0} : oref ? clln : clld;
  if (oref) {
    const float r = a - static_cast<float>(1LL << 12) *
                            to_float(trunc_int(a * (1.0f / static_cast<float>(1LL << 12))));
    x = mul(clld, sinpifk(r));
  }
  clld = otiny  ? F2{a * (static_cast<float>(1LL << 30) * static_cast<float>(1LL << 30)), 0}
         : oref ? x
                : y;
  return {clc, div(clln, clld)};
}

// Sleef_lgammaf8_u10 (xlgammaf_u1); +inf at the poles and for +-inf
inline float lgammaf_u1(float a) {
  const GammaParts d = gammafk(a);
  const F2 y = add2(d.a, logk2f(abs(d.b)));
  float r = y.x + y.y;
  const bool is_int = std::trunc(a) == a;
  const bool is_number = !std::isinf(a) && !std::isnan(a);
  if (std::isinf(a) || (a <= 0 && is_int) || (is_number && std::isnan(r))) r = INFINITY;
  return r;
}

}  // namespace fabric::cpu::sleef_scalar::sp

#pragma GCC pop_options
