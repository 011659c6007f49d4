// SLEEF's double-word arithmetic (src/libm/df.h for float, dd.h for double) one lane at a time, in
// the FMA form Debian's libsleef3 3.5.1 builds for AVX2 (ENABLE_FMA_SP / ENABLE_FMA_DP): a value
// is the unevaluated sum x + y of two floats or two doubles. The float and double forms are the
// same formulas, so one template serves both. The scalar SLEEF transcriptions
// (sleef_scalar_sp.h, sleef_scalar_dp.h) are built from these: each lane of a SLEEF vector
// function depends on its own input only, so a scalar transcription with the same operations in
// the same order gives the library's bits. Compiled without contraction (the pragma below): every
// fma here is one SLEEF writes.
// Names follow vec_sleef_df.h: SLEEF's dfadd_vf2_vf2_vf is add(W, T), dfadd2_vf2_vf_vf2 is
// add2(T, W) and so on by overload; the pair-from-two-scalars forms are add_ss, add2_ss, mul_ss,
// and dfmul_vf_vf2_vf2 (a single result) is mul_s.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace fabric::cpu::sleef_scalar {

template <typename T>
struct DW {  // x + y, |y| <= ulp(x) / 2 once normalised
  T x, y;
};

// vcast_vf2_d: a double constant split into a float pair (float only).
inline DW<float> dw_from_double(double d) {
  const auto hi = static_cast<float>(d);
  return {hi, static_cast<float>(d - hi)};
}

template <typename T>
inline DW<T> neg(DW<T> a) {
  return {-a.x, -a.y};
}
template <typename T>
inline DW<T> abs(DW<T> a) {  // dfabs: y's sign flipped with x's
  return {std::fabs(a.x), std::signbit(a.x) ? -a.y : a.y};
}
template <typename T>
inline DW<T> normalize(DW<T> t) {
  const T s = t.x + t.y;
  return {s, (t.x - s) + t.y};
}
template <typename T>
inline DW<T> scale(DW<T> d, T s) {
  return {d.x * s, d.y * s};
}
template <typename T>
inline DW<T> add_ss(T x, T y) {  // |x| >= |y|
  const T s = x + y;
  return {s, (x - s) + y};
}
template <typename T>
inline DW<T> add2_ss(T x, T y) {
  const T s = x + y, v = s - x;
  return {s, (x - (s - v)) + (y - v)};
}
template <typename T>
inline DW<T> add(DW<T> x, T y) {
  const T s = x.x + y;
  return {s, ((x.x - s) + y) + x.y};
}
template <typename T>
inline DW<T> sub(DW<T> x, T y) {
  const T s = x.x - y;
  return {s, ((x.x - s) - y) + x.y};
}
template <typename T>
inline DW<T> add(T x, DW<T> y) {
  const T s = x + y.x;
  return {s, ((x - s) + y.x) + y.y};
}
template <typename T>
inline DW<T> add(DW<T> x, DW<T> y) {  // |x| >= |y|
  const T s = x.x + y.x;
  return {s, (((x.x - s) + y.x) + x.y) + y.y};
}
template <typename T>
inline DW<T> sub(DW<T> x, DW<T> y) {  // |x| >= |y|
  const T s = x.x - y.x;
  return {s, (((x.x - s) - y.x) + x.y) - y.y};
}
template <typename T>
inline DW<T> add2(DW<T> x, T y) {
  const T s = x.x + y, v = s - x.x;
  return {s, ((x.x - (s - v)) + (y - v)) + x.y};
}
template <typename T>
inline DW<T> add2(T x, DW<T> y) {
  const T s = x + y.x, v = s - x;
  return {s, ((x - (s - v)) + (y.x - v)) + y.y};
}
template <typename T>
inline DW<T> add2(DW<T> x, DW<T> y) {
  const T s = x.x + y.x, v = s - x.x;
  return {s, ((x.x - (s - v)) + (y.x - v)) + (x.y + y.y)};
}
template <typename T>
inline DW<T> mul_ss(T x, T y) {
  const T s = x * y;
  return {s, std::fma(x, y, -s)};
}
template <typename T>
inline DW<T> mul(DW<T> x, T y) {
  const T s = x.x * y;
  return {s, std::fma(x.y, y, std::fma(x.x, y, -s))};
}
template <typename T>
inline DW<T> mul(DW<T> x, DW<T> y) {
  const T s = x.x * y.x;
  return {s, std::fma(x.x, y.y, std::fma(x.y, y.x, std::fma(x.x, y.x, -s)))};
}
template <typename T>
inline T mul_s(DW<T> x, DW<T> y) {
  return std::fma(x.x, y.x, std::fma(x.y, y.x, x.x * y.y));
}
template <typename T>
inline DW<T> squ(DW<T> x) {
  const T s = x.x * x.x;
  return {s, std::fma(x.x + x.x, x.y, std::fma(x.x, x.x, -s))};
}
template <typename T>
inline DW<T> div(DW<T> n, DW<T> d) {
  const T t = T(1) / d.x, qx = n.x * t;
  const T u = std::fma(t, n.x, -qx);
  const T qy = std::fma(-d.y, t, std::fma(-d.x, t, T(1)));
  return {qx, std::fma(qx, qy, std::fma(n.y, t, u))};
}
template <typename T>
inline DW<T> rec_s(T d) {
  const T q = T(1) / d;
  return {q, q * std::fma(-d, q, T(1))};
}
template <typename T>
inline DW<T> rec(DW<T> d) {
  const T q = T(1) / d.x;
  return {q, q * std::fma(-d.y, q, std::fma(-d.x, q, T(1)))};
}
template <typename T>
inline DW<T> sqrt(DW<T> d) {  // dfsqrt_vf2_vf2 / ddsqrt_vd2_vd2 (no reciprocal-sqrt form on AVX2)
  const T t = std::sqrt(d.x + d.y);
  return scale(mul(add2(d, mul_ss(t, t)), rec_s(t)), T(0.5));
}

// Bit-level helpers of SLEEF's helpers/commonfuncs.
inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint64_t bits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}
inline double from_bits(uint64_t u) {
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}
// x with its sign flipped where y's sign bit is set (vmulsign)
inline float mulsign(float x, float y) { return from_bits(bits(x) ^ (bits(y) & 0x80000000u)); }
inline double mulsign(double x, double y) {
  return from_bits(static_cast<uint64_t>(bits(x) ^ (bits(y) & (uint64_t{1} << 63))));
}
// vrint_vi2_vf / vrint_vi_vd: to nearest even (cvtps2dq / cvtpd2dq; out of range gives INT_MIN)
inline int32_t rint_int(float x) {
  return std::isfinite(x) && std::fabs(x) < 2147483648.0f ? static_cast<int32_t>(std::nearbyint(x))
                                                          : INT32_MIN;
}
inline int32_t rint_int(double x) {
  return std::isfinite(x) && std::fabs(x) < 2147483648.0 ? static_cast<int32_t>(std::nearbyint(x))
                                                         : INT32_MIN;
}
// vtruncate_vi2_vf / vtruncate_vi_vd (cvttps2dq: INT_MIN out of range)
inline int32_t trunc_int(float x) {
  return std::isfinite(x) && std::fabs(x) < 2147483648.0f ? static_cast<int32_t>(x) : INT32_MIN;
}
inline int32_t trunc_int(double x) {
  return std::isfinite(x) && std::fabs(x) < 2147483648.0 ? static_cast<int32_t>(x) : INT32_MIN;
}

}  // namespace fabric::cpu::sleef_scalar

#pragma GCC pop_options
