// SLEEF 3.5.1's double functions that torch 1.13's float64 kernels reach through
// Vectorized<double> and that the math_extra ops need, one lane at a time: Sleef_expd4_u10,
// logd4_u10, log2d4_u10, powd4_u10 (base 2 only), hypotd4_u05, erfcd4_u15, lgammad4_u10 and
// fmodd4 (floor_divide's) as Debian's libsleef3 builds them for AVX2 (FMA forms; polynomials in
// SLEEF's Estrin order, its POLYn macros). Transcribed from sleefsimddp.c with its operation order
// on the double-double arithmetic of sleef_scalar_dw.h, and checked against libsleef while
// written: the same bits on 2 * 10^7 inputs each (random bit patterns and random values in the
// functions' working ranges, the special values), fmod on 1.2 * 10^7 pairs (a NaN's sign aside).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/sleef_scalar_dw.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu::sleef_scalar::dp {

using D2 = DW<double>;

inline constexpr double kRLn2 =
    1.442695040888963407359924681001892137426645954152985934135449406931;
inline constexpr double kL2U = .69314718055966295651160180568695068359375;
inline constexpr double kL2L = .28235290563031577122588448175013436025525412068e-12;
inline constexpr D2 kLn2 = {0.693147180559945286226764, 2.319046813846299558417771e-17};

// ---- Estrin polynomials (estrin.h), fma = vmla ------------------------------------------------
inline double poly2(double x, double c1, double c0) { return std::fma(x, c1, c0); }
inline double poly3(double x, double x2, double c2, double c1, double c0) {
  return std::fma(x2, c2, std::fma(x, c1, c0));
}
inline double poly4(double x, double x2, double c3, double c2, double c1, double c0) {
  return std::fma(x2, std::fma(x, c3, c2), std::fma(x, c1, c0));
}
inline double poly7(double x, double x2, double x4, double c6, double c5, double c4, double c3,
                    double c2, double c1, double c0) {
  return std::fma(x4, poly3(x, x2, c6, c5, c4), poly4(x, x2, c3, c2, c1, c0));
}
inline double poly8(double x, double x2, double x4, double c7, double c6, double c5, double c4,
                    double c3, double c2, double c1, double c0) {
  return std::fma(x4, poly4(x, x2, c7, c6, c5, c4), poly4(x, x2, c3, c2, c1, c0));
}
inline double poly9(double x, double x2, double x4, double x8, double c8, double c7, double c6,
                    double c5, double c4, double c3, double c2, double c1, double c0) {
  return std::fma(x8, c8, poly8(x, x2, x4, c7, c6, c5, c4, c3, c2, c1, c0));
}
inline double poly10(double x, double x2, double x4, double x8, double c9, double c8, double c7,
                     double c6, double c5, double c4, double c3, double c2, double c1, double c0) {
  return std::fma(x8, poly2(x, c9, c8), poly8(x, x2, x4, c7, c6, c5, c4, c3, c2, c1, c0));
}

// ---- exponent helpers (commonfuncs.h): 32-bit lane integers, as vint --------------------------
inline uint32_t high_word(double d) { return static_cast<uint32_t>(bits(d) >> 32); }
// 2^q (vpow2i_vd_vi): (q + 0x3ff) << 20 in the high word
inline double pow2i(int32_t q) {
  return from_bits(static_cast<uint64_t>((static_cast<uint32_t>(q) + 0x3ffu) << 20) << 32);
}
inline double ldexp2(double d, int32_t e) { return d * pow2i(e >> 1) * pow2i(e - (e >> 1)); }
inline double ldexp3(double d, int32_t q) {
  return from_bits(bits(d) + (static_cast<uint64_t>(static_cast<uint32_t>(q) << 20) << 32));
}
inline int32_t ilogb2k(double d) {
  return static_cast<int32_t>((high_word(d) >> 20) & 0x7ff) - 0x3ff;
}
inline int32_t ilogbk(double d) {
  const bool o = d < 4.9090934652977266E-91;
  if (o) d = 2.037035976334486E90 * d;
  return static_cast<int32_t>((high_word(d) & (((1u << 12) - 1) << 20)) >> 20) -
         (o ? 300 + 0x3ff : 0x3ff);
}
inline double rint_d(double x) { return std::nearbyint(x); }  // vrint_vd_vd: to nearest even

// ---- kernels ------------------------------------------------------------------------------------
// The shared start of xlog_u1, xlog2 and logk: d out of the subnormals, its exponent and
// x = (m - 1) / (m + 1) in double-double.
inline D2 log_reduce(double d, int32_t& e) {
  const bool o = d < DBL_MIN;
  if (o) d = d * (static_cast<double>(1LL << 32) * static_cast<double>(1LL << 32));
  e = ilogb2k(d * (1.0 / 0.75));
  const double m = ldexp3(d, -e);
  if (o) e -= 64;
  return div(add2_ss(-1.0, m), add2_ss(1.0, m));
}
inline double log_specials(double d, double r) {
  if (d == INFINITY) r = INFINITY;
  if (d < 0 || std::isnan(d)) r = NAN;
  if (d == 0) r = -INFINITY;
  return r;
}

// log d as a double-double (logk)
inline D2 logk(double d) {
  int32_t e;
  D2 x = log_reduce(d, e);
  const D2 x2 = squ(x);
  const double x4 = x2.x * x2.x, x8 = x4 * x4, x16 = x8 * x8;
  const double t =
      poly9(x2.x, x4, x8, x16, 0.116255524079935043668677, 0.103239680901072952701192,
            0.117754809412463995466069, 0.13332981086846273921509, 0.153846227114512262845736,
            0.181818180850050775676507, 0.222222222230083560345903, 0.285714285714249172087875,
            0.400000000000000077715612);
  const D2 c = {0.666666666666666629659233, 3.80554962542412056336616e-17};
  D2 s = mul(kLn2, static_cast<double>(e));
  s = add(s, scale(x, 2.0));
  x = mul(x2, x);
  s = add(s, mul(x, c));
  x = mul(x2, x);
  s = add(s, mul(x, t));
  return s;
}

// e^d of a double-double, as a double (expk)
inline double expk(D2 d) {
  const double dq = rint_d((d.x + d.y) * kRLn2);
  const int32_t q = rint_int(dq);
  D2 s = add2(d, dq * -kL2U);
  s = add2(s, dq * -kL2L);
  s = normalize(s);
  const double s2 = s.x * s.x, s4 = s2 * s2, s8 = s4 * s4;
  const double u = poly10(
      s.x, s2, s4, s8, 2.51069683420950419527139e-08, 2.76286166770270649116855e-07,
      2.75572496725023574143864e-06, 2.48014973989819794114153e-05, 0.000198412698809069797676111,
      0.0013888888939977128960529, 0.00833333333332371417601081, 0.0416666666665409524128449,
      0.166666666666666740681535, 0.500000000000000999200722);
  D2 t = add(1.0, s);
  t = add(t, mul(squ(s), u));
  const double r = ldexp2(t.x + t.y, q);
  return d.x < -1000 ? 0.0 : r;
}

// e^d of a double-double, as a double-double (expk2)
inline D2 expk2(D2 d) {
  const double dq = rint_d((d.x + d.y) * kRLn2);
  const int32_t q = rint_int(dq);
  D2 s = add2(d, dq * -kL2U);
  s = add2(s, dq * -kL2L);
  const D2 s2 = squ(s), s4 = squ(s2);
  const double s8 = s4.x * s4.x;
  const double u =
      poly10(s.x, s2.x, s4.x, s8, +0.1602472219709932072e-9, +0.2092255183563157007e-8,
             +0.2505230023782644465e-7, +0.2755724800902135303e-6, +0.2755731892386044373e-5,
             +0.2480158735605815065e-4, +0.1984126984148071858e-3, +0.1388888888886763255e-2,
             +0.8333333333333347095e-2, +0.4166666666666669905e-1);
  D2 t = add(0.5, mul(s, +0.1666666666666666574e+0));
  t = add(1.0, mul(t, s));
  t = add(1.0, mul(t, s));
  t = add(t, mul(s4, u));
  t = {ldexp2(t.x, q), ldexp2(t.y, q)};
  return d.x < -1000 ? D2{0.0, 0.0} : t;
}

// log d of a positive double-double (logk2)
inline D2 logk2(D2 d) {
  const int32_t e = ilogbk(d.x * (1.0 / 0.75));
  const D2 m = {ldexp2(d.x, -e), ldexp2(d.y, -e)};
  const D2 x = div(add2(m, -1.0), add2(m, 1.0));
  const D2 x2 = squ(x);
  const double x4 = x2.x * x2.x, x8 = x4 * x4;
  double t =
      poly7(x2.x, x4, x8, 0.13860436390467167910856, 0.131699838841615374240845,
            0.153914168346271945653214, 0.181816523941564611721589, 0.22222224632662035403996,
            0.285714285511134091777308, 0.400000000000914013309483);
  t = std::fma(t, x2.x, 0.666666666666664853302393);
  D2 s = mul(kLn2, static_cast<double>(e));
  s = add(s, scale(x, 2.0));
  s = add(s, mul(mul(x2, x), t));
  return s;
}

// sin(pi d) as a double-double (sinpik)
inline D2 sinpik(double d) {
  const double u4 = d * 4.0;
  int32_t q = trunc_int(u4);
  q = (q + static_cast<int32_t>((static_cast<uint32_t>(q) >> 31) ^ 1u)) & ~1;
  const bool o = (q & 2) == 2;
  double s = u4 - static_cast<double>(q);
  const double t = s;
  s = s * s;
  const D2 s2 = mul_ss(t, t);
  double u = o ? 9.94480387626843774090208e-16 : -2.02461120785182399295868e-14;
  u = std::fma(u, s, o ? -3.89796226062932799164047e-13 : 6.948218305801794613277840e-12);
  u = std::fma(u, s, o ? 1.150115825399960352669010e-10 : -1.75724749952853179952664e-09);
  u = std::fma(u, s, o ? -2.46113695010446974953590e-08 : 3.133616889668683928784220e-07);
  u = std::fma(u, s, o ? 3.590860448590527540050620e-06 : -3.65762041821615519203610e-05);
  u = std::fma(u, s, o ? -0.000325991886927389905997954 : 0.0024903945701927185027435600);
  D2 x = add2(u * s, o ? D2{0.0158543442438155018914259, -1.04693272280631521908845e-18}
                       : D2{-0.0807455121882807852484731, 3.61852475067037104849987e-18});
  x = add2(mul(s2, x), o ? D2{-0.308425137534042437259529, -1.95698492133633550338345e-17}
                         : D2{0.785398163397448278999491, 3.06287113727155002607105e-17});
  x = mul(x, o ? s2 : D2{t, 0.0});
  if (o) x = add2(x, 1.0);
  if ((q & 4) == 4) x = {mulsign(x.x, -0.0), mulsign(x.y, -0.0)};
  return x;
}

// ---- the functions ----------------------------------------------------------------------------
// Sleef_expd4_u10 (xexp)
inline double expd_u10(double d) {
  const double u0 = rint_d(d * kRLn2);
  const int32_t q = rint_int(u0);
  double s = std::fma(u0, -kL2U, d);
  s = std::fma(u0, -kL2L, s);
  const double s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
  double u = poly10(s, s2, s4, s8, +0.2081276378237164457e-8, +0.2511210703042288022e-7,
                    +0.2755762628169491192e-6, +0.2755723402025388239e-5, +0.2480158687479686264e-4,
                    +0.1984126989855865850e-3, +0.1388888888914497797e-2, +0.8333333333314938210e-2,
                    +0.4166666666666602598e-1, +0.1666666666666669072e+0);
  u = std::fma(u, s, +0.5000000000000000000e+0);
  u = std::fma(u, s, +0.1000000000000000000e+1);
  u = std::fma(u, s, +0.1000000000000000000e+1);
  u = ldexp2(u, q);
  if (d > 709.78271114955742909217217426) u = INFINITY;
  if (d < -1000) u = 0.0;
  return u;
}

// Sleef_logd4_u10 (xlog_u1)
inline double logd_u10(double d) {
  int32_t e;
  const D2 x = log_reduce(d, e);
  const double x2 = x.x * x.x, x4 = x2 * x2, x8 = x4 * x4;
  const double t =
      poly7(x2, x4, x8, 0.1532076988502701353e+0, 0.1525629051003428716e+0,
            0.1818605932937785996e+0, 0.2222214519839380009e+0, 0.2857142932794299317e+0,
            0.3999999999635251990e+0, 0.6666666666667333541e+0);
  D2 s = mul(kLn2, static_cast<double>(e));
  s = add(s, scale(x, 2.0));
  s = add(s, (x2 * x.x) * t);
  return log_specials(d, s.x + s.y);
}

// Sleef_log2d4_u10 (xlog2)
inline double log2d_u10(double d) {
  int32_t e;
  const D2 x = log_reduce(d, e);
  const double x2 = x.x * x.x, x4 = x2 * x2, x8 = x4 * x4;
  const double t =
      poly7(x2, x4, x8, +0.2211941750456081490e+0, +0.2200768693152277689e+0,
            +0.2623708057488514656e+0, +0.3205977477944495502e+0, +0.4121985945485324709e+0,
            +0.5770780162997058982e+0, +0.96179669392608091449);
  D2 s = add2(static_cast<double>(e), mul(x, D2{2.885390081777926774, 6.0561604995516736434e-18}));
  s = add2(s, (x2 * x.x) * t);
  return log_specials(d, s.x + s.y);
}

// Sleef_powd4_u10(2, y) (xpow with x = 2: positive, finite, not 1)
inline double pow2d_u10(double y) {
  const D2 d = mul(logk(2.0), y);
  double result = expk(d);
  if (d.x > 709.78271114955742909217217426) result = INFINITY;
  if (std::isinf(y)) {
    const double efx = mulsign(1.0, y);  // (|x| - 1) with y's sign
    result = efx < 0 ? 0.0 : (efx == 0 ? 1.0 : INFINITY);
  }
  if (std::isnan(y)) result = from_bits(~uint64_t{0});  // SLEEF's NaN: all bits set
  if (y == 0) result = 1.0;
  return result;
}

// Sleef_fmodd4 (xfmod): the quotient's digits peeled off in double-double, at most 21 rounds;
// exact, except that a quotient beyond DBL_MAX gives NaN.
inline double toward0(double x) { return x == 0 ? 0.0 : from_bits(bits(x) - 1); }  // vtoward0
inline double fmodd(double x, double y) {
  double n = std::fabs(x), d = std::fabs(y), s = 1;
  if (d < DBL_MIN) {
    n *= static_cast<double>(1ULL << 54);
    d *= static_cast<double>(1ULL << 54);
    s *= 1.0 / static_cast<double>(1ULL << 54);
  }
  D2 r = {n, 0.0};
  const double rd = toward0(1.0 / d);
  for (int i = 0; i < 21; ++i) {
    double q = std::trunc(toward0(r.x) * rd);
    if (3 * d > r.x && r.x >= d) q = 2;
    if (d + d > r.x && r.x >= d) q = 1;
    r = normalize(add2(r, mul_ss(q, -d)));
    if (r.x < d) break;
  }
  double ret = r.x * s;
  if (r.x + r.y == d) ret = 0;
  ret = mulsign(ret, x);
  if (n < d) ret = x;
  if (d == 0) ret = NAN;
  return ret;
}

// Sleef_hypotd4_u05 (xhypot_u05)
inline double hypotd_u05(double x, double y) {
  x = std::fabs(x);
  y = std::fabs(y);
  const double min = x < y ? x : y;  // vminpd / vmaxpd: the second operand when unordered
  const double max = x > y ? x : y;
  double n = min, d = max;
  if (max < DBL_MIN) {
    n *= static_cast<double>(1ULL << 54);
    d *= static_cast<double>(1ULL << 54);
  }
  D2 t = div(D2{n, 0.0}, D2{d, 0.0});
  t = mul(sqrt(add2(squ(t), 1.0)), max);
  double ret = t.x + t.y;
  if (std::isnan(ret)) ret = INFINITY;
  if (min == 0) ret = max;
  if (std::isnan(x) || std::isnan(y)) ret = NAN;
  if (x == INFINITY || y == INFINITY) ret = INFINITY;
  return ret;
}

// Sleef_erfcd4_u15 (xerfc_u15): four polynomial ranges below 27.3, erfc(-a) = 2 - erfc(a).
inline double erfcd_u15(double a) {
  const double s = a;
  a = std::fabs(a);
  const bool o0 = a < 1.0, o1 = a < 2.2, o2 = a < 4.2, o3 = a < 27.3;
  const auto pick = [&](double c0, double c1, double c2, double c3) {
    return o0 ? c0 : o1 ? c1 : o2 ? c2 : c3;
  };
  const D2 u = o0 ? mul_ss(a, a) : o1 ? D2{a, 0.0} : div(D2{1.0, 0.0}, D2{a, 0.0});
  static constexpr double kT[18][4] = {
      {+0.6801072401395386139e-20, +0.3438010341362585303e-12, -0.5757819536420710449e+2,
       +0.2334249729638701319e+5},
      {-0.2161766247570055669e-18, -0.1237021188160598264e-10, +0.4669289654498104483e+3,
       -0.4695661044933107769e+5},
      {+0.4695919173301595670e-17, +0.2117985839877627852e-09, -0.1796329879461355858e+4,
       +0.3173403108748643353e+5},
      {-0.9049140419888007122e-16, -0.2290560929177369506e-08, +0.4355892193699575728e+4,
       +0.3242982786959573787e+4},
      {+0.1634018903557410728e-14, +0.1748931621698149538e-07, -0.7456258884965764992e+4,
       -0.2014717999760347811e+5},
      {-0.2783485786333451745e-13, -0.9956602606623249195e-07, +0.9553977358167021521e+4,
       +0.1554006970967118286e+5},
      {+0.4463221276786415752e-12, +0.4330010240640327080e-06, -0.9470019905444229153e+4,
       -0.6150874190563554293e+4},
      {-0.6711366622850136563e-11, -0.1435050600991763331e-05, +0.7387344321849855078e+4,
       +0.1240047765634815732e+4},
      {+0.9422759050232662223e-10, +0.3460139479650695662e-05, -0.4557713054166382790e+4,
       -0.8210325475752699731e+2},
      {-0.1229055530100229098e-08, -0.4988908180632898173e-05, +0.2207866967354055305e+4,
       +0.3242443880839930870e+2},
      {+0.1480719281585086512e-07, -0.1308775976326352012e-05, -0.8217975658621754746e+3,
       -0.2923418863833160586e+2},
      {-0.1636584469123399803e-06, +0.2825086540850310103e-04, +0.2268659483507917400e+3,
       +0.3457461732814383071e+0},
      {+0.1646211436588923575e-05, -0.6393913713069986071e-04, -0.4633361260318560682e+2,
       +0.5489730155952392998e+1},
      {-0.1492565035840623511e-04, -0.2566436514695078926e-04, +0.9557380123733945965e+1,
       +0.1559934132251294134e-2},
      {+0.1205533298178967851e-03, +0.5895792375659440364e-03, -0.2958429331939661289e+1,
       -0.1541741566831520638e+1},
      {-0.8548327023450850081e-03, -0.1695715579163588598e-02, +0.1670329508092765480e+0,
       +0.2823152230558364186e-5},
      {+0.5223977625442187932e-02, +0.2089116434918055149e-03, +0.6096615680115419211e+0,
       +0.6249999184195342838e+0},
      {-0.2686617064513125222e-01, +0.1912855949584917753e-01, +0.1059212443193543585e-2,
       +0.1741749416408701288e-8},
  };
  double t = pick(kT[0][0], kT[0][1], kT[0][2], kT[0][3]);
  for (int i = 1; i < 18; ++i) t = std::fma(t, u.x, pick(kT[i][0], kT[i][1], kT[i][2], kT[i][3]));
  D2 d = mul(u, t);
  d = add2(d, D2{pick(0.11283791670955126141, -0.10277263343147646779, -0.50005180473999022439,
                      -0.5000000000258444377),
                 pick(-4.0175691625932118483e-18, -6.2338714083404900225e-18,
                      2.6362140569041995803e-17, -4.0074044712386992281e-17)});
  d = mul(d, u);
  d = add2(d, D2{pick(-0.37612638903183753802, -0.63661976742916359662, 1.601106273924963368e-06,
                      2.3761973137523364792e-13),
                 pick(1.3391897206042552387e-17, 7.6321019159085724662e-18,
                      1.1974001857764476775e-23, -1.1670076950531026582e-29)});
  d = mul(d, u);
  d = add2(d, D2{pick(1.1283791670955125586, -1.1283791674717296161, -0.57236496645145429341,
                      -0.57236494292470108114),
                 pick(1.5335459613165822674e-17, 8.0896847755965377194e-17,
                      3.0704553245872027258e-17, -2.3984352208056898003e-17)});
  D2 x = mul(o1 ? d : D2{-a, 0.0}, a);
  if (!o1) x = add2(x, d);
  x = o0 ? sub(D2{1.0, 0.0}, x) : expk2(x);
  if (!o1) x = mul(x, u);
  double r = o3 ? x.x + x.y : 0.0;
  if (std::signbit(s)) r = 2 - r;
  if (std::isnan(s)) r = NAN;
  return r;
}

// gammak: log|Gamma(a)| as clc + log(clln / clld), with the reflection below 0.5.
struct GammaPartsD {
  D2 a, b;
};
inline GammaPartsD gammak(double a) {
  D2 clc = {0, 0}, clln = {1, 0}, clld = {1, 0};
  const bool otiny = std::fabs(a) < 1e-306, oref = a < 0.5;
  D2 x = otiny ? D2{0, 0} : oref ? add2_ss(1.0, -a) : D2{a, 0};
  const bool o0 = 0.5 <= x.x && x.x <= 1.1;
  const bool o2 = 2.3 <= x.x;
  D2 y = normalize(mul(add2(x, 1.0), x));
  y = normalize(mul(add2(x, 2.0), y));
  y = normalize(mul(add2(x, 3.0), y));
  y = normalize(mul(add2(x, 4.0), y));
  const bool o = o2 && x.x <= 7;
  if (o) clln = y;
  if (o) x = add2(x, 5.0);
  const double t = o2 ? 1.0 / x.x : normalize(add2(x, o0 ? -1.0 : -2.0)).x;
  static constexpr double kU[23][3] = {
      {-156.801412704022726379848862, +0.2947916772827614196e+2, +0.7074816000864609279e-7},
      {+1.120804464289911606838558160000, +0.1281459691827820109e+3, +0.4009244333008730443e-6},
      {+13.39798545514258921833306020000, +0.2617544025784515043e+3, +0.1040114641628246946e-5},
      {-0.116546276599463200848033357000, +0.3287022855685790432e+3, +0.1508349150733329167e-5},
      {-1.391801093265337481495562410000, +0.2818145867730348186e+3, +0.1288143074933901020e-5},
      {+0.015056113040026424412918973400, +0.1728670414673559605e+3, +0.4744167749884993937e-6},
      {+0.179540117061234856098844714000, +0.7748735764030416817e+2, -0.6554816306542489902e-7},
      {-0.002481743600264997730942489280, +0.2512856643080930752e+2, -0.3189252471452599844e-6},
      {-0.029527880945699120504851034100, +0.5766792106140076868e+1, +0.1358883821470355377e-6},
      {+0.000540164767892604515196325186, +0.7270275473996180571e+0, -0.4343931277157336040e-6},
      {+0.006403362833808069794787256200, +0.8396709124579147809e-1, +0.9724785897406779555e-6},
      {-0.000162516262783915816896611252, -0.8211558669746804595e-1, -0.2036886057225966011e-5},
      {-0.001914438498565477526465972390, +0.6828831828341884458e-1, +0.4373363141819725815e-5},
      {+7.20489541602001055898311517e-05, -0.7712481339961671511e-1, -0.9439951268304008677e-5},
      {+0.000839498720672087279971000786, +0.8337492023017314957e-1, +0.2050727030376389804e-4},
      {-5.17179090826059219329394422e-05, -0.9094964931456242518e-1, -0.4492620183431184018e-4},
      {-0.000592166437353693882857342347, +0.1000996313575929358e+0, +0.9945751236071875931e-4},
      {+6.97281375836585777403743539e-05, -0.1113342861544207724e+0, -0.2231547599034983196e-3},
      {+0.000784039221720066627493314301, +0.1255096673213020875e+0, +0.5096695247101967622e-3},
      {-0.000229472093621399176949318732, -0.1440498967843054368e+0, -0.1192753911667886971e-2},
      {-0.002681327160493827160473958490, +0.1695571770041949811e+0, +0.2890510330742210310e-2},
      {+0.003472222222222222222175164840, -0.2073855510284092762e+0, -0.7385551028674461858e-2},
      {+0.083333333333333333335592087900, +0.2705808084277815939e+0, +0.2058080842778455335e-1},
  };
  const int col = o2 ? 0 : o0 ? 1 : 2;
  double u = kU[0][col];
  for (int i = 1; i < 23; ++i) u = std::fma(u, t, kU[i][col]);
  y = mul(add2(x, -0.5), logk2(x));
  y = add2(y, neg(x));
  y = add2(y, D2{0.91893853320467278056, -3.8782941580672414498e-17});  // log(2 pi) / 2
  D2 z = add2(mul_ss(u, t), o0 ? -0.4006856343865314862e+0 : -0.6735230105319810201e-1);
  z = add2(mul(z, t), o0 ? +0.8224670334241132030e+0 : +0.3224670334241132030e+0);
  z = add2(mul(z, t), o0 ? -0.5772156649015328655e+0 : +0.4227843350984671345e+0);
  z = mul(z, t);
  clc = o2 ? y : z;
  if (o2) clld = add2(mul_ss(u, t), 1.0);
  y = clln;
  clc = otiny  ? D2{83.1776616671934334590333, 3.67103459631568507221878e-15}         // log(2^120)
        : oref ? add2(D2{1.1447298858494001639, 1.026595116270782638e-17}, neg(clc))  // log(pi)
               : clc;
  clln = otiny ? D2{1, 0} : oref ? clln : clld;
  if (oref) {
    const double r =
        a - static_cast<double>(1LL << 28) *
                static_cast<double>(trunc_int(a * (1.0 / static_cast<double>(1LL << 28))));
    x = mul(clld, sinpik(r));
  }
  clld = otiny  ? D2{a * (static_cast<double>(1LL << 60) * static_cast<double>(1LL << 60)), 0}
         : oref ? x
                : y;
  return {clc, div(clln, clld)};
}

// Sleef_lgammad4_u10 (xlgamma_u1); +inf at the poles and for +-inf
inline double lgammad_u1(double a) {
  const GammaPartsD d = gammak(a);
  const D2 y = add2(d.a, logk2(abs(d.b)));
  double r = y.x + y.y;
  const bool is_int = std::trunc(a) == a;
  const bool is_number = !std::isinf(a) && !std::isnan(a);
  if (std::isinf(a) || (a <= 0 && is_int) || (is_number && std::isnan(r))) r = INFINITY;
  return r;
}

}  // namespace fabric::cpu::sleef_scalar::dp

#pragma GCC pop_options
