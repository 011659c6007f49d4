// The reduced-precision float formats (fp16, bf16, FP8 E4M3FN, FP8 E5M2): exact decoding to fp32
// and round-to-nearest-even encoding from fp32, with the overflow rules of precision-spec §1.
#pragma once
#include <bit>
#include <cstdint>
#include <type_traits>

#include "tensor/host_device.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__F16C__) && !defined(__CUDA_ARCH__)
#include <immintrin.h>
#define FABRIC_HAVE_F16C_SCALAR 1
#endif


namespace fabric {

// ---- portable reference encoders/decoders ---------------------------------------------------
// Pure integer arithmetic: independent of MXCSR (rounding mode, FTZ/DAZ), usable in constexpr,
// and the ground truth the hardware fast paths are tested against.
namespace detail {

constexpr FABRIC_HD uint32_t f32_bits(float f) { return std::bit_cast<uint32_t>(f); }
constexpr FABRIC_HD float f32_from_bits(uint32_t u) { return std::bit_cast<float>(u); }

// RNE of a finite, non-negative fp32 (bits `a`) onto a format with M mantissa bits and bias B,
// returning the code without sign. Codes past the largest finite one come out as the next
// codes up (the caller decides what overflow means); subnormals are kept.
template <int M, int B>
constexpr FABRIC_HD uint32_t rne_encode_abs(uint32_t a) {
  constexpr int kShift = 23 - M;
  const int e32 = static_cast<int>(a >> 23);
  if (e32 - 127 + B >= 1) {
    // Normal target: rebias the exponent, then round the dropped mantissa bits; a mantissa carry
    // correctly bumps the exponent.
    const uint32_t rebased = a - (static_cast<uint32_t>(127 - B) << 23);
    const uint32_t odd = (rebased >> kShift) & 1u;
    return (rebased + ((1u << (kShift - 1)) - 1u) + odd) >> kShift;
  }
  // Subnormal target: count in units of the smallest subnormal 2^(1-B-M).
  const int s = 151 - B - M - e32;    // right shift of the 24-bit significand
  if (s >= 25 || e32 == 0) return 0;  // below half the smallest subnormal (fp32 denormals too)
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t q = m >> s;
  const uint32_t rem = m & ((1u << s) - 1u);
  const uint32_t half = 1u << (s - 1);
  return q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
}

}  // namespace detail

constexpr FABRIC_HD float half_bits_to_float_portable(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) {
    // Inf, or NaN quieted with its payload kept: what vcvtph2ps and PyTorch's decoder give.
    return detail::f32_from_bits(sign | 0x7F800000u | (mant ? 0x400000u : 0u) | (mant << 13));
  }
  if (exp == 0) {
    if (mant == 0) return detail::f32_from_bits(sign);
    int e = 113;  // renormalise the subnormal: value = mant * 2^-24
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    return detail::f32_from_bits(sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3FFu) << 13));
  }
  return detail::f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

constexpr FABRIC_HD uint16_t float_to_half_bits_portable(float f) {
  const uint32_t u = detail::f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  // NaN: quiet bit set, top payload bits kept (bit-identical to vcvtps2ph).
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 (and inf): inf
  return static_cast<uint16_t>(sign | detail::rne_encode_abs<10, 15>(a));
}

constexpr FABRIC_HD float bf16_bits_to_float(uint16_t b) {
  return detail::f32_from_bits(static_cast<uint32_t>(b) << 16);
}

constexpr FABRIC_HD uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = detail::f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;  // PyTorch: every NaN becomes 0x7FC0
  // bf16 shares fp32's exponent, so RNE is a carry into the kept bits (fp32 denormals included);
  // FLT_MAX carries into the inf code.
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

constexpr FABRIC_HD float fp8_e4m3_bits_to_float(uint8_t v) {
  const uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
  const uint32_t exp = (v >> 3) & 0xFu;
  uint32_t mant = v & 0x7u;
  if ((v & 0x7Fu) == 0x7Fu) return detail::f32_from_bits(sign | 0x7FF00000u);  // as PyTorch
  if (exp == 0) {
    if (mant == 0) return detail::f32_from_bits(sign);
    int e = 121;  // value = mant * 2^-9
    while (!(mant & 0x8u)) {
      mant <<= 1;
      --e;
    }
    return detail::f32_from_bits(sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x7u) << 20));
  }
  return detail::f32_from_bits(sign | ((exp + 120u) << 23) | (mant << 20));
}

constexpr FABRIC_HD uint8_t float_to_fp8_e4m3_bits(float f, bool saturate) {
  const uint32_t u = detail::f32_bits(f);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);  // NaN stays NaN
  // Above 464 (the tie between 448 and the slot the NaN code takes) nothing finite is nearest.
  if (a > 0x43E80000u) return static_cast<uint8_t>(sign | (saturate ? 0x7Eu : 0x7Fu));
  return static_cast<uint8_t>(sign | detail::rne_encode_abs<3, 7>(a));
}

constexpr FABRIC_HD float fp8_e5m2_bits_to_float(uint8_t v) {
  // E5M2 is the top byte of an fp16.
  return half_bits_to_float_portable(static_cast<uint16_t>(v << 8));
}

constexpr FABRIC_HD uint8_t float_to_fp8_e5m2_bits(float f, bool saturate) {
  const uint32_t u = detail::f32_bits(f);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);
  // >= 61440 rounds (ties to even) to 2^16, the inf code.
  if (a >= 0x47700000u) return static_cast<uint8_t>(sign | (saturate ? 0x7Bu : 0x7Cu));
  return static_cast<uint8_t>(sign | detail::rne_encode_abs<2, 15>(a));
}

// ---- fp16 with the F16C fast path ----------------------------------------------------------
// vcvtps2ph/vcvtph2ps are bit-identical to the portable versions above (NaNs included); tests
// check that exhaustively.
constexpr FABRIC_HD float half_bits_to_float(uint16_t h) {
#ifdef FABRIC_HAVE_F16C_SCALAR
  if (!std::is_constant_evaluated()) return _cvtsh_ss(h);
#endif
  return half_bits_to_float_portable(h);
}

constexpr FABRIC_HD uint16_t float_to_half_bits(float f) {
#ifdef FABRIC_HAVE_F16C_SCALAR
  if (!std::is_constant_evaluated()) {
    return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
#endif
  return float_to_half_bits_portable(f);
}

// ---- the scalar types ----------------------------------------------------------------------
// Each holds exactly one data member so arrays of them alias raw storage. Construction from
// double goes through float first, as PyTorch does (double -> float -> half).

struct Half {
  uint16_t x;
  Half() = default;
  constexpr FABRIC_HD explicit Half(float f) : x(float_to_half_bits(f)) {}
  constexpr FABRIC_HD explicit Half(double d) : Half(static_cast<float>(d)) {}
  constexpr FABRIC_HD explicit operator float() const { return half_bits_to_float(x); }
  static constexpr FABRIC_HD Half from_bits(uint16_t b) {
    Half h;
    h.x = b;
    return h;
  }
  friend constexpr FABRIC_HD bool operator==(Half a, Half b) { return a.x == b.x; }
};

struct BFloat16 {
  uint16_t x;
  BFloat16() = default;
  constexpr FABRIC_HD explicit BFloat16(float f) : x(float_to_bf16_bits(f)) {}
  constexpr FABRIC_HD explicit BFloat16(double d) : BFloat16(static_cast<float>(d)) {}
  constexpr FABRIC_HD explicit operator float() const { return bf16_bits_to_float(x); }
  static constexpr FABRIC_HD BFloat16 from_bits(uint16_t b) {
    BFloat16 h;
    h.x = b;
    return h;
  }
  friend constexpr FABRIC_HD bool operator==(BFloat16 a, BFloat16 b) { return a.x == b.x; }
};

// The constructor is PyTorch's non-saturating cast (|x| > 464 and ±inf give NaN); saturating()
// is CUDA's __NV_SATFINITE cast as Transformer Engine uses it.
struct Float8E4M3 {
  uint8_t x;
  Float8E4M3() = default;
  constexpr FABRIC_HD explicit Float8E4M3(float f) : x(float_to_fp8_e4m3_bits(f, false)) {}
  constexpr FABRIC_HD explicit Float8E4M3(double d) : Float8E4M3(static_cast<float>(d)) {}
  static constexpr FABRIC_HD Float8E4M3 saturating(float f) {
    return from_bits(float_to_fp8_e4m3_bits(f, true));
  }
  constexpr FABRIC_HD explicit operator float() const { return fp8_e4m3_bits_to_float(x); }
  static constexpr FABRIC_HD Float8E4M3 from_bits(uint8_t b) {
    Float8E4M3 h;
    h.x = b;
    return h;
  }
  friend constexpr FABRIC_HD bool operator==(Float8E4M3 a, Float8E4M3 b) { return a.x == b.x; }
};

// The constructor overflows to ±inf (|x| >= 61440); saturating() clamps to ±57344, inf included.
struct Float8E5M2 {
  uint8_t x;
  Float8E5M2() = default;
  constexpr FABRIC_HD explicit Float8E5M2(float f) : x(float_to_fp8_e5m2_bits(f, false)) {}
  constexpr FABRIC_HD explicit Float8E5M2(double d) : Float8E5M2(static_cast<float>(d)) {}
  static constexpr FABRIC_HD Float8E5M2 saturating(float f) {
    return from_bits(float_to_fp8_e5m2_bits(f, true));
  }
  constexpr FABRIC_HD explicit operator float() const { return fp8_e5m2_bits_to_float(x); }
  static constexpr FABRIC_HD Float8E5M2 from_bits(uint8_t b) {
    Float8E5M2 h;
    h.x = b;
    return h;
  }
  friend constexpr FABRIC_HD bool operator==(Float8E5M2 a, Float8E5M2 b) { return a.x == b.x; }
};

static_assert(sizeof(Half) == 2 && std::is_trivially_copyable_v<Half>);
static_assert(sizeof(BFloat16) == 2 && std::is_trivially_copyable_v<BFloat16>);
static_assert(sizeof(Float8E4M3) == 1 && std::is_trivially_copyable_v<Float8E4M3>);
static_assert(sizeof(Float8E5M2) == 1 && std::is_trivially_copyable_v<Float8E5M2>);

// Compile-time spot checks of the spec's test vectors: the portable paths are constexpr.
static_assert(float_to_half_bits_portable(65520.0f) == 0x7C00);
static_assert(float_to_half_bits_portable(65519.0f) == 0x7BFF);
static_assert(float_to_bf16_bits(1.00390625f) == 0x3F80);
static_assert(float_to_fp8_e4m3_bits(464.0f, false) == 0x7E);
static_assert(float_to_fp8_e4m3_bits(465.0f, false) == 0x7F);
static_assert(float_to_fp8_e5m2_bits(61440.0f, false) == 0x7C);
static_assert(fp8_e4m3_bits_to_float(0x7E) == 448.0f);

}  // namespace fabric
