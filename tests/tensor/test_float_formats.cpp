// Tests of the fp16/bf16/FP8 encoders and decoders: every test vector and format-table value of
// precision-spec §1, exhaustive round trips, and RNE against an enumerate-the-codes oracle.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/float_formats.h"

namespace fabric {
namespace {

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits32(uint32_t u) { return std::bit_cast<float>(u); }
const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

float h2f(float f) { return static_cast<float>(Half(f)); }
float b2f(float f) { return static_cast<float>(BFloat16(f)); }
float e4(float f, bool sat) {
  return sat ? static_cast<float>(Float8E4M3::saturating(f)) : static_cast<float>(Float8E4M3(f));
}
float e5(float f, bool sat) {
  return sat ? static_cast<float>(Float8E5M2::saturating(f)) : static_cast<float>(Float8E5M2(f));
}

// ---- spec §1 test vectors ------------------------------------------------------------------

TEST(FloatFormats, SpecVectorsFp16) {
  EXPECT_EQ(h2f(1.00390625f), 1.00390625f);
  EXPECT_EQ(h2f(2049.0f), 2048.0f);  // tie to even
  EXPECT_EQ(h2f(2051.0f), 2052.0f);
  EXPECT_EQ(h2f(65519.0f), 65504.0f);
  EXPECT_EQ(h2f(65520.0f), kInf);
  EXPECT_EQ(h2f(-65520.0f), -kInf);
  EXPECT_EQ(h2f(std::ldexp(1.0f, -25)), 0.0f);  // tie to even (zero)
  EXPECT_EQ(h2f(3e-8f), std::ldexp(1.0f, -24));
  EXPECT_EQ(float_to_half_bits_portable(65520.0f), 0x7C00);
  EXPECT_EQ(float_to_half_bits_portable(3e-8f), 0x0001);
}

TEST(FloatFormats, SpecVectorsBf16) {
  EXPECT_EQ(b2f(1.00390625f), 1.0f);       // tie
  EXPECT_EQ(b2f(1.01171875f), 1.015625f);  // tie
  EXPECT_EQ(b2f(2049.0f), 2048.0f);
  EXPECT_EQ(b2f(2051.0f), 2048.0f);
  EXPECT_EQ(b2f(65519.0f), 65536.0f);
  EXPECT_NEAR(b2f(3e-8f), 3.0035e-8f, 0.0001e-8f);
  EXPECT_EQ(b2f(std::numeric_limits<float>::max()), kInf);  // FLT_MAX rounds up to inf
  EXPECT_EQ(b2f(-std::numeric_limits<float>::max()), -kInf);
}

TEST(FloatFormats, SpecVectorsE4M3) {
  for (bool sat : {false, true}) {
    EXPECT_EQ(e4(1.12f, sat), 1.125f);
    EXPECT_EQ(e4(-369.6f, sat), -384.0f);
    EXPECT_EQ(e4(0.001f, sat), std::ldexp(1.0f, -9));
    EXPECT_EQ(e4(std::ldexp(1.0f, -10), sat), 0.0f);  // tie to zero
    EXPECT_EQ(e4(464.0f, sat), 448.0f);
    EXPECT_EQ(e4(-464.0f, sat), -448.0f);
  }
  EXPECT_TRUE(std::isnan(e4(465.0f, false)));
  EXPECT_TRUE(std::isnan(e4(504.0f, false)));
  EXPECT_EQ(e4(465.0f, true), 448.0f);
  EXPECT_EQ(e4(504.0f, true), 448.0f);
  EXPECT_EQ(e4(-504.0f, true), -448.0f);
  EXPECT_EQ(Float8E4M3(465.0f).x, 0x7F);
  EXPECT_EQ(Float8E4M3(-465.0f).x, 0xFF);
}

TEST(FloatFormats, SpecVectorsE5M2) {
  EXPECT_EQ(e5(60000.0f, false), 57344.0f);
  EXPECT_EQ(e5(60000.0f, true), 57344.0f);
  EXPECT_EQ(e5(61440.0f, false), kInf);
  EXPECT_EQ(e5(62000.0f, false), kInf);
  EXPECT_EQ(e5(-62000.0f, false), -kInf);
  EXPECT_EQ(e5(61440.0f, true), 57344.0f);
  EXPECT_EQ(e5(62000.0f, true), 57344.0f);
  EXPECT_EQ(e5(-62000.0f, true), -57344.0f);
  EXPECT_EQ(e5(1e-5f, false), std::ldexp(1.0f, -16));
  EXPECT_EQ(e5(1e-5f, true), std::ldexp(1.0f, -16));
}

// ---- the format table ----------------------------------------------------------------------

struct TableRow {
  const char* name;
  std::function<float(uint32_t)> decode;
  std::function<uint32_t(float)> encode;
  uint32_t max_code, min_normal_code, largest_sub_code, one_plus_eps_code;
  double max_finite, min_normal, min_sub, largest_sub, eps;
};

TEST(FloatFormats, FormatTable) {
  const std::vector<TableRow> rows = {
      {"fp16", [](uint32_t c) { return static_cast<float>(Half::from_bits(c)); },
       [](float f) { return uint32_t{Half(f).x}; }, 0x7BFF, 0x0400, 0x03FF, 0x3C01, 65504.0,
       6.103515625e-5, 5.9604644775390625e-8, 6.103515625e-5 - 5.9604644775390625e-8,
       std::ldexp(1.0, -10)},
      {"bf16", [](uint32_t c) { return static_cast<float>(BFloat16::from_bits(c)); },
       [](float f) { return uint32_t{BFloat16(f).x}; }, 0x7F7F, 0x0080, 0x007F, 0x3F81,
       3.3895313892515355e38, std::ldexp(1.0, -126), std::ldexp(1.0, -133),
       std::ldexp(1.0, -126) - std::ldexp(1.0, -133), std::ldexp(1.0, -7)},
      {"e4m3", [](uint32_t c) { return static_cast<float>(Float8E4M3::from_bits(c)); },
       [](float f) { return uint32_t{Float8E4M3(f).x}; }, 0x7E, 0x08, 0x07, 0x39, 448.0, 0.015625,
       0.001953125, 0.013671875, std::ldexp(1.0, -3)},
      {"e5m2", [](uint32_t c) { return static_cast<float>(Float8E5M2::from_bits(c)); },
       [](float f) { return uint32_t{Float8E5M2(f).x}; }, 0x7B, 0x04, 0x03, 0x3D, 57344.0,
       std::ldexp(1.0, -14), 1.52587890625e-5, 4.57763671875e-5, std::ldexp(1.0, -2)},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.decode(r.max_code), r.max_finite);
    EXPECT_EQ(r.decode(r.min_normal_code), r.min_normal);
    EXPECT_EQ(r.decode(1), r.min_sub);
    EXPECT_EQ(r.decode(r.largest_sub_code), r.largest_sub);
    EXPECT_EQ(r.decode(r.one_plus_eps_code) - 1.0, r.eps);
    for (uint32_t c :
         {r.max_code, r.min_normal_code, 1u, r.largest_sub_code, r.one_plus_eps_code}) {
      EXPECT_EQ(r.encode(r.decode(c)), c);
    }
  }
}

// ---- NaN, inf, signed zero -----------------------------------------------------------------

TEST(FloatFormats, NaNAndInf) {
  const float neg_nan = -kNaN;
  EXPECT_EQ(Half(kInf).x, 0x7C00);
  EXPECT_EQ(Half(-kInf).x, 0xFC00);
  EXPECT_EQ(Half(kNaN).x, 0x7E00);
  EXPECT_EQ(Half(neg_nan).x, 0xFE00);
  EXPECT_EQ(Half(from_bits32(0x7F800001)).x, 0x7E00);  // signalling NaN comes out quiet
  EXPECT_EQ(bits(static_cast<float>(Half::from_bits(0x7C00))), bits(kInf));
  EXPECT_TRUE(std::isnan(static_cast<float>(Half::from_bits(0x7C01))));
  EXPECT_TRUE(std::isnan(static_cast<float>(Half::from_bits(0xFFFF))));

  EXPECT_EQ(BFloat16(kInf).x, 0x7F80);
  EXPECT_EQ(BFloat16(-kInf).x, 0xFF80);
  EXPECT_EQ(BFloat16(kNaN).x, 0x7FC0);
  EXPECT_EQ(BFloat16(neg_nan).x, 0x7FC0);  // PyTorch drops the sign and payload
  EXPECT_EQ(BFloat16(from_bits32(0xFF812345)).x, 0x7FC0);
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16::from_bits(0xFF81))));

  for (bool sat : {false, true}) {
    EXPECT_EQ(float_to_fp8_e4m3_bits(kNaN, sat), 0x7F);
    EXPECT_EQ(float_to_fp8_e4m3_bits(neg_nan, sat), 0xFF);
    EXPECT_EQ(float_to_fp8_e5m2_bits(kNaN, sat) & 0x7F, 0x7F);
  }
  EXPECT_EQ(float_to_fp8_e4m3_bits(kInf, false), 0x7F);  // E4M3FN has no inf
  EXPECT_EQ(float_to_fp8_e4m3_bits(-kInf, false), 0xFF);
  EXPECT_EQ(float_to_fp8_e4m3_bits(kInf, true), 0x7E);
  EXPECT_EQ(float_to_fp8_e4m3_bits(-kInf, true), 0xFE);
  EXPECT_EQ(float_to_fp8_e5m2_bits(kInf, false), 0x7C);
  EXPECT_EQ(float_to_fp8_e5m2_bits(-kInf, false), 0xFC);
  EXPECT_EQ(float_to_fp8_e5m2_bits(kInf, true), 0x7B);
  EXPECT_EQ(float_to_fp8_e5m2_bits(-kInf, true), 0xFB);

  EXPECT_TRUE(std::isnan(fp8_e4m3_bits_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_bits_to_float(0xFF)));
  EXPECT_EQ(fp8_e5m2_bits_to_float(0x7C), kInf);
  EXPECT_EQ(fp8_e5m2_bits_to_float(0xFC), -kInf);
  for (uint8_t c : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF})
    EXPECT_TRUE(std::isnan(fp8_e5m2_bits_to_float(c)));
  // Every other E4M3 code is finite: 0x78..0x7E are ordinary normals.
  EXPECT_EQ(fp8_e4m3_bits_to_float(0x78), 256.0f);
}

TEST(FloatFormats, SignedZero) {
  const float tiny_neg = -std::ldexp(1.0f, -30);
  EXPECT_EQ(Half(-0.0f).x, 0x8000);
  EXPECT_EQ(Half(tiny_neg).x, 0x8000);
  EXPECT_EQ(BFloat16(-0.0f).x, 0x8000);
  EXPECT_EQ(BFloat16(-std::ldexp(1.0f, -140)).x, 0x8000);
  EXPECT_EQ(Float8E4M3(-0.0f).x, 0x80);
  EXPECT_EQ(Float8E4M3(tiny_neg).x, 0x80);
  EXPECT_EQ(Float8E5M2(-0.0f).x, 0x80);
  EXPECT_EQ(Float8E5M2(tiny_neg).x, 0x80);
  EXPECT_EQ(bits(static_cast<float>(Half::from_bits(0x8000))), 0x80000000u);
  EXPECT_EQ(bits(static_cast<float>(BFloat16::from_bits(0x8000))), 0x80000000u);
  EXPECT_EQ(bits(fp8_e4m3_bits_to_float(0x80)), 0x80000000u);
  EXPECT_EQ(bits(fp8_e5m2_bits_to_float(0x80)), 0x80000000u);
}

TEST(FloatFormats, DoubleGoesThroughFloat) {
  // 1 + 2^-11 + 2^-40 rounds to 1 + 2^-11 in fp32, which is then a tie in fp16 that goes to 1.0;
  // rounding the double directly would give 1 + 2^-10.
  const double d = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  EXPECT_EQ(Half(d).x, 0x3C00);
  EXPECT_EQ(Half(d).x, Half(static_cast<float>(d)).x);
  const double b = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  EXPECT_EQ(BFloat16(b).x, 0x3F80);
  const double e = 1.0625 + std::ldexp(1.0, -40);  // fp32 tie between 1.0 and 1.125 -> 1.0
  EXPECT_EQ(Float8E4M3(e).x, 0x38);
  EXPECT_EQ(Float8E5M2(1.125 + std::ldexp(1.0, -40)).x, 0x3C);
}

// ---- exhaustive round trips ----------------------------------------------------------------

TEST(FloatFormats, ExhaustiveRoundTrip16) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const auto h = static_cast<uint16_t>(c);
    const float hf = half_bits_to_float(h);
    if (std::isnan(hf)) {
      EXPECT_TRUE(std::isnan(static_cast<float>(Half(hf)))) << std::hex << c;
      EXPECT_EQ(Half(hf).x & 0x7C00, 0x7C00);
    } else {
      EXPECT_EQ(Half(hf).x, h) << std::hex << c;
      EXPECT_EQ(float_to_half_bits_portable(hf), h) << std::hex << c;
    }
    // The F16C decoder is bit-identical to the portable one, NaN payloads included.
    EXPECT_EQ(bits(hf), bits(half_bits_to_float_portable(h))) << std::hex << c;

    const float bf = bf16_bits_to_float(h);
    if (std::isnan(bf)) {
      EXPECT_EQ(BFloat16(bf).x, 0x7FC0) << std::hex << c;
    } else {
      EXPECT_EQ(BFloat16(bf).x, h) << std::hex << c;
    }
  }
}

TEST(FloatFormats, ExhaustiveRoundTrip8) {
  for (uint32_t c = 0; c < 256; ++c) {
    const auto v = static_cast<uint8_t>(c);
    for (bool sat : {false, true}) {
      const float f4 = fp8_e4m3_bits_to_float(v);
      EXPECT_EQ(float_to_fp8_e4m3_bits(f4, sat), v) << std::hex << c;  // NaN code maps to itself
      const float f5 = fp8_e5m2_bits_to_float(v);
      if (std::isnan(f5)) {
        EXPECT_TRUE(std::isnan(fp8_e5m2_bits_to_float(float_to_fp8_e5m2_bits(f5, sat))));
      } else if (std::isinf(f5) && sat) {
        EXPECT_EQ(float_to_fp8_e5m2_bits(f5, sat), (v & 0x80) | 0x7B);
      } else {
        EXPECT_EQ(float_to_fp8_e5m2_bits(f5, sat), v) << std::hex << c;
      }
    }
    // Decoding is exact: E5M2 is fp16's top byte, E4M3 lies inside fp16's range.
    const float f5 = fp8_e5m2_bits_to_float(v);
    EXPECT_EQ(bits(f5), bits(half_bits_to_float(static_cast<uint16_t>(c << 8))));
    const float f4 = fp8_e4m3_bits_to_float(v);
    if (!std::isnan(f4)) {
      EXPECT_EQ(static_cast<float>(Half(f4)), f4);
    }
  }
}

// ---- RNE against an oracle -----------------------------------------------------------------
// The oracle lists every finite non-negative value of a format in order, plus the code just past
// the largest finite one (where rounding goes on overflow), and picks the nearest with ties to
// the even code by comparing x against the exact midpoints in double.
struct Oracle {
  std::vector<double> value;
  std::vector<uint32_t> code;
  uint32_t sign_bit;
  uint32_t overflow_code;  // the result's magnitude code for anything past the last finite value

  uint32_t encode(float f) const {
    const uint32_t sign = std::signbit(f) ? sign_bit : 0;
    const double x = std::fabs(static_cast<double>(f));
    if (std::isinf(x) || x >= value.back()) return sign | overflow_code;
    const size_t hi =
        static_cast<size_t>(std::upper_bound(value.begin(), value.end(), x) - value.begin());
    const size_t lo = hi - 1;
    if (x == value[lo]) return sign | code[lo];
    const double mid = (value[lo] + value[hi]) / 2;  // exact: few significant bits
    size_t pick = x < mid ? lo : x > mid ? hi : ((code[lo] & 1) == 0 ? lo : hi);
    if (pick == value.size() - 1) return sign | overflow_code;
    return sign | code[pick];
  }
};

Oracle make_oracle(uint32_t last_finite, uint32_t past_code, double past_value, uint32_t sign_bit,
                   uint32_t overflow_code, const std::function<double(uint32_t)>& decode) {
  Oracle o{{}, {}, sign_bit, overflow_code};
  for (uint32_t c = 0; c <= last_finite; ++c) {
    o.value.push_back(decode(c));
    o.code.push_back(c);
  }
  o.value.push_back(past_value);
  o.code.push_back(past_code);
  EXPECT_TRUE(std::is_sorted(o.value.begin(), o.value.end()));
  return o;
}

// Random fp32 inputs that exercise every region of a format: raw random bit patterns (mostly
// far out of range), values spread over the format's exponent range, and exact midpoints
// between neighbouring codes and their fp32 neighbours (the ties).
std::vector<float> oracle_inputs(const Oracle& o, int min_exp, int max_exp, std::mt19937_64& rng,
                                 size_t n) {
  std::vector<float> in;
  in.reserve(n);
  std::uniform_int_distribution<uint32_t> any;
  std::uniform_int_distribution<int> expd(min_exp - 3, max_exp + 2);
  std::uniform_int_distribution<size_t> idx(0, o.value.size() - 2);
  std::uniform_real_distribution<float> unit(1.0f, 2.0f);
  while (in.size() < n) {
    switch (in.size() % 4) {
      case 0:
        in.push_back(from_bits32(any(rng)));
        break;
      case 1:
        in.push_back((any(rng) & 1 ? -1.0f : 1.0f) * std::ldexp(unit(rng), expd(rng)));
        break;
      default: {
        const size_t i = idx(rng);
        const auto mid = static_cast<float>((o.value[i] + o.value[i + 1]) / 2);
        const int step = static_cast<int>(any(rng) % 3) - 1;
        float x = step == 0 ? mid : std::nextafter(mid, step > 0 ? kInf : 0.0f);
        in.push_back(any(rng) & 1 ? -x : x);
      }
    }
  }
  return in;
}

TEST(FloatFormats, RneMatchesOracle) {
  std::mt19937_64 rng(1234);
  const Oracle f16 = make_oracle(0x7BFF, 0x7C00, 65536.0, 0x8000, 0x7C00, [](uint32_t c) {
    return half_bits_to_float_portable(static_cast<uint16_t>(c));
  });
  const Oracle bf16 =
      make_oracle(0x7F7F, 0x7F80, std::ldexp(1.0, 128), 0x8000, 0x7F80,
                  [](uint32_t c) { return bf16_bits_to_float(static_cast<uint16_t>(c)); });
  auto d4 = [](uint32_t c) { return double{fp8_e4m3_bits_to_float(static_cast<uint8_t>(c))}; };
  auto d5 = [](uint32_t c) { return double{fp8_e5m2_bits_to_float(static_cast<uint8_t>(c))}; };
  const Oracle e4 = make_oracle(0x7E, 0x7F, 480.0, 0x80, 0x7F, d4);
  const Oracle e4s = make_oracle(0x7E, 0x7F, 480.0, 0x80, 0x7E, d4);
  const Oracle e5 = make_oracle(0x7B, 0x7C, 65536.0, 0x80, 0x7C, d5);
  const Oracle e5s = make_oracle(0x7B, 0x7C, 65536.0, 0x80, 0x7B, d5);

  constexpr size_t kN = 1'000'000;
  int failures = 0;
  auto check = [&](const char* name, uint32_t got, uint32_t want, float x) {
    if (got != want && ++failures <= 20) {
      ADD_FAILURE() << name << " x=" << x << " (0x" << std::hex << bits(x) << ") got 0x" << got
                    << " want 0x" << want;
    }
  };
  for (float x : oracle_inputs(f16, -24, 15, rng, kN)) {
    if (std::isnan(x)) continue;
    check("fp16", Half(x).x, f16.encode(x), x);
    check("fp16 portable", float_to_half_bits_portable(x), f16.encode(x), x);
  }
  for (float x : oracle_inputs(bf16, -133, 127, rng, kN)) {
    if (!std::isnan(x)) check("bf16", BFloat16(x).x, bf16.encode(x), x);
  }
  for (float x : oracle_inputs(e4, -9, 8, rng, kN)) {
    if (std::isnan(x)) continue;
    check("e4m3", Float8E4M3(x).x, e4.encode(x), x);
    check("e4m3 sat", Float8E4M3::saturating(x).x, e4s.encode(x), x);
  }
  for (float x : oracle_inputs(e5, -16, 15, rng, kN)) {
    if (std::isnan(x)) continue;
    check("e5m2", Float8E5M2(x).x, e5.encode(x), x);
    check("e5m2 sat", Float8E5M2::saturating(x).x, e5s.encode(x), x);
  }
  EXPECT_EQ(failures, 0);
}

// The F16C fast path (what Half uses when compiled with F16C) equals the portable encoder on
// random fp32 bit patterns, NaN payloads included.
TEST(FloatFormats, FastPathMatchesPortable) {
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<uint32_t> any;
  int failures = 0;
  for (int i = 0; i < 4'000'000; ++i) {
    const float x = from_bits32(any(rng));
    const uint16_t fast = Half(x).x, ref = float_to_half_bits_portable(x);
    if (fast != ref && ++failures <= 20)
      ADD_FAILURE() << std::hex << bits(x) << ": " << fast << " vs " << ref;
  }
  EXPECT_EQ(failures, 0);
}

TEST(FloatFormats, ConstexprAndLayout) {
  static_assert(Half(1.0f).x == 0x3C00);
  static_assert(BFloat16(-2.0f).x == 0xC000);
  static_assert(Float8E4M3(0.5f).x == 0x30);
  static_assert(Float8E5M2(-0.5f).x == 0xB8);
  static_assert(Float8E4M3::saturating(1e9f).x == 0x7E);
  static_assert(static_cast<float>(Half::from_bits(0x3555)) == 0.333251953125f);
  static_assert(sizeof(Half[7]) == 14 && alignof(Half) == 2);
  EXPECT_EQ(Half::from_bits(0x1234), Half::from_bits(0x1234));
  EXPECT_EQ(dtype_v<Float8E5M2>, DType::float8_e5m2);
}

}  // namespace
}  // namespace fabric
