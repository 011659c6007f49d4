// The AVX-512 intrinsics the CPU kernels use, held to Intel's definitions lane by lane: on an
// AVX-512 CPU this checks the instructions (and our reading of them), on an AVX2 CPU the emulation
// of kernels/cpu/avx512_emulation.h, so that both give the kernels the same lanes.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/x86_simd.h"
#include "tensor/float_formats.h"

namespace fabric {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
const float kDenormal = std::bit_cast<float>(0x00000123u);

struct F16 {
  float v[16];
};
F16 lanes(__m512 x) {
  F16 r;
  _mm512_storeu_ps(r.v, x);
  return r;
}
__m512 vec(const float (&v)[16]) { return _mm512_loadu_ps(v); }
uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// Intel's vscalefps for finite b and a: a * 2^floor(b), rounded once.
float scalef_ref(float a, float b) {
  return static_cast<float>(std::ldexp(static_cast<double>(a), static_cast<int>(std::floor(b))));
}

TEST(X86Simd, ScalefIsOneRoundingOfATimesAPowerOfTwo) {
  const float a[16] = {1.5f, -1.5f, 1.9999999f, 0.75f, 3.0f, 1.0f, -0.0f, 0.0f,
                       1.2345678f, 1.0f, 1.5f, 1.75f, -1.25f, 1.0f, kDenormal, 2.5f};
  const float b[16] = {0.0f, 3.7f, -126.0f, -130.2f, -149.0f, -150.0f, 5.0f, 200.0f,
                       127.0f, 128.0f, -127.0f, -140.0f, 10.0f, -1.0f, 20.0f, -0.5f};
  const F16 r = lanes(_mm512_scalef_ps(vec(a), vec(b)));
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(bits(r.v[i]), bits(scalef_ref(a[i], b[i]))) << "lane " << i << ": " << a[i] << " * 2^"
                                                          << b[i];
  // NaN in either operand gives NaN; infinities as multiplication by 0 / inf.
  const float c[16] = {kNan, 1.0f, 2.0f, 0.0f, -3.0f, kInf, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const float d[16] = {1.0f, kNan, kInf, 1.0f, -kInf, 1.0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const F16 s = lanes(_mm512_scalef_ps(vec(c), vec(d)));
  EXPECT_TRUE(std::isnan(s.v[0]));
  EXPECT_TRUE(std::isnan(s.v[1]));
  EXPECT_EQ(s.v[2], kInf);
  EXPECT_EQ(s.v[3], 0.0f);
  EXPECT_EQ(bits(s.v[4]), bits(-0.0f));
  EXPECT_EQ(s.v[5], kInf);
}

// Infinite and NaN operands, as the SDM's table for VSCALEFPS has them and an AMD Zen 5 gave them
// (X86SimdEmulation, 2026-12-04): a quiet NaN a is no NaN beside b = ±inf; 0 * 2^inf and
// inf * 2^-inf are the default NaN with its sign set.
TEST(X86Simd, ScalefTreatsInfinitiesAndNaNsAsTheSdm) {
  const uint32_t q1 = 0x7FC00011u, nq1 = 0xFFC00011u, s1 = 0x7F800011u, q2 = 0xFFC00022u,
                 s2 = 0x7F800022u, inf = 0x7F800000u, ninf = 0xFF800000u, zero = 0u,
                 nzero = 0x80000000u, one = 0x3F800000u, three = 0x40400000u,
                 nthree = 0xC0400000u, indefinite = 0xFFC00000u;
  const uint32_t cases[16][3] = {  // a, b, vscalefps(a, b)
      {q1, inf, inf},           {nq1, ninf, zero},        {q1, three, q1},       {q1, q2, q1},
      {s1, inf, 0x7FC00011u},   {s1, ninf, 0x7FC00011u},  {one, q2, q2},         {one, s2, 0x7FC00022u},
      {zero, inf, indefinite},  {nzero, inf, indefinite}, {inf, ninf, indefinite}, {ninf, inf, ninf},
      {nzero, ninf, nzero},     {inf, three, inf},        {nthree, ninf, nzero}, {three, inf, inf}};
  float a[16], b[16];
  for (int i = 0; i < 16; ++i) {
    a[i] = std::bit_cast<float>(cases[i][0]);
    b[i] = std::bit_cast<float>(cases[i][1]);
  }
  const F16 r = lanes(_mm512_scalef_ps(vec(a), vec(b)));
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(bits(r.v[i]), cases[i][2])
        << std::hex << "a " << cases[i][0] << ", b " << cases[i][1] << " (lane " << i << ")";
}

TEST(X86Simd, GetexpAndGetmantSplitNormalsAndDenormals) {
  const float x[16] = {1.0f, 1.5f, -3.0f, 1024.5f, 0.1f, kDenormal, 1e-40f, 3.4e38f,
                       -0.75f, 2.0f, 7.99f, 1e-30f, 65504.0f, 0.5f, -1e-39f, 123.0f};
  const F16 e = lanes(_mm512_getexp_ps(vec(x)));
  const F16 m = lanes(_mm512_getmant_ps(vec(x), _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(e.v[i], static_cast<float>(std::ilogb(x[i]))) << "getexp lane " << i;
    int ex;
    EXPECT_EQ(bits(m.v[i]), bits(std::fabs(std::frexp(x[i], &ex)) * 2.0f)) << "getmant lane " << i;
  }
  const float special[16] = {0.0f, -0.0f, kInf, -kInf, kNan, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const F16 es = lanes(_mm512_getexp_ps(vec(special)));
  EXPECT_EQ(es.v[0], -kInf);
  EXPECT_EQ(es.v[1], -kInf);
  EXPECT_EQ(es.v[2], kInf);
  EXPECT_EQ(es.v[3], kInf);
  EXPECT_TRUE(std::isnan(es.v[4]));
  EXPECT_TRUE(std::isnan(lanes(_mm512_getmant_ps(vec(special), _MM_MANT_NORM_1_2,
                                                 _MM_MANT_SIGN_zero)).v[4]));
}

TEST(X86Simd, BroadcastsAndReciprocalsKeepSignsOfZero) {
  const float v[4] = {-0.0f, 0.0f, -2.5f, std::bit_cast<float>(0x7F800001u)};  // last: a signalling NaN
  for (float x : v) {
    const F16 r = lanes(_mm512_set1_ps(x));
    for (int i = 0; i < 16; ++i) ASSERT_EQ(bits(r.v[i]), bits(x));
    double d[8];
    _mm512_storeu_pd(d, _mm512_set1_pd(static_cast<double>(x)));
    if (!std::isnan(x)) {
      ASSERT_EQ(std::bit_cast<uint64_t>(d[7]), std::bit_cast<uint64_t>(static_cast<double>(x)));
    }
  }
  const float x[16] = {-kInf, kInf, -0.0f, 0.0f, 2.0f, -4.0f, 0.5f, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const F16 r = lanes(_mm512_rcp14_ps(vec(x)));
  EXPECT_EQ(bits(r.v[0]), bits(-0.0f));
  EXPECT_EQ(bits(r.v[1]), bits(0.0f));
  EXPECT_EQ(r.v[2], -kInf);
  EXPECT_EQ(r.v[3], kInf);
  for (int i = 4; i < 7; ++i) EXPECT_NEAR(r.v[i], 1.0f / x[i], std::fabs(1.0f / x[i]) * 0x1p-14f);
}

TEST(X86Simd, RangeGivesTheNegatedSmallerMagnitude) {
  const float a[16] = {1.0f, -5.0f, 3.0f, -0.0f, 10.0f, -10.0f, 2.5f, kInf,
                       -kInf, 0.25f, -7.0f, 7.0f, 1e-40f, -1e30f, 4.0f, kNan};
  const F16 r = lanes(_mm512_range_ps(vec(a), _mm512_set1_ps(4.0f), 0x0E));
  for (int i = 0; i < 16; ++i) {
    const float want = std::isnan(a[i]) ? -4.0f : -std::fmin(std::fabs(a[i]), 4.0f);
    EXPECT_EQ(bits(r.v[i]), bits(want)) << "lane " << i;
  }
}

// NaN operands, as the SDM's table for VRANGE has them and an AMD Zen 5 gave them (2026-12-04): a
// quiet NaN beside a number is ignored, two quiet NaNs give the first, both with the sign set; a
// signalling NaN (a's before b's) comes back quietened with its sign.
TEST(X86Simd, RangeTreatsQuietAndSignallingNaNsAsTheSdm) {
  const uint32_t q1 = 0x7FC00011u, q2 = 0x7FC00022u, s1 = 0x7F800011u, s2 = 0x7F800022u,
                 nq1 = 0xFFC00011u, four = 0x40800000u, mfive = 0xC0A00000u, inf = 0x7F800000u;
  const uint32_t cases[14][3] = {  // a, b, vrangeps(a, b, 0x0E)
      {q1, q2, 0xFFC00011u},    {q2, q1, 0xFFC00022u},  {s1, q2, 0x7FC00011u},
      {q1, s2, 0x7FC00022u},    {s1, s2, 0x7FC00011u},  {nq1, four, 0xC0800000u},
      {four, nq1, 0xC0800000u}, {q1, inf, 0xFF800000u}, {inf, q1, 0xFF800000u},
      {s1, four, 0x7FC00011u},  {four, s2, 0x7FC00022u}, {nq1, q2, 0xFFC00011u},
      {q1, mfive, 0xC0A00000u}, {mfive, q1, 0xC0A00000u}};
  float a[16] = {}, b[16] = {};
  for (int i = 0; i < 14; ++i) {
    a[i] = std::bit_cast<float>(cases[i][0]);
    b[i] = std::bit_cast<float>(cases[i][1]);
  }
  const F16 r = lanes(_mm512_range_ps(vec(a), vec(b), 0x0E));
  for (int i = 0; i < 14; ++i)
    EXPECT_EQ(bits(r.v[i]), cases[i][2])
        << std::hex << "a " << cases[i][0] << ", b " << cases[i][1] << " (lane " << i << ")";
}

TEST(X86Simd, FpclassSortsEveryKindOfValue) {
  const float snan = std::bit_cast<float>(0x7F800001u);
  const float x[16] = {kNan, 0.0f, -0.0f, kInf, -kInf, kDenormal, -1.0f, snan,
                       1.0f, -kDenormal, 3e38f, -3e38f, 1e-37f, -kNan, 0.5f, -0.5f};
  // Which of the eight classes each lane is in (bit i = class i, as vfpclassps numbers them).
  const int cls[16] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80,
                       0x00, 0x60, 0x00, 0x40, 0x00, 0x01, 0x00, 0x40};
  const __m512 v = vec(x);
  const __mmask16 got[8] = {
      _mm512_fpclass_ps_mask(v, 0x01), _mm512_fpclass_ps_mask(v, 0x02),
      _mm512_fpclass_ps_mask(v, 0x04), _mm512_fpclass_ps_mask(v, 0x08),
      _mm512_fpclass_ps_mask(v, 0x10), _mm512_fpclass_ps_mask(v, 0x20),
      _mm512_fpclass_ps_mask(v, 0x40), _mm512_fpclass_ps_mask(v, 0x80)};
  for (int c = 0; c < 8; ++c)
    for (int i = 0; i < 16; ++i)
      EXPECT_EQ((got[c] >> i) & 1, (cls[i] >> c) & 1) << "class bit " << c << ", lane " << i;
  const double y[8] = {0.0, -kInf, 1.0, std::nan(""), kInf, 5e-324, -2.0, -0.0};
  EXPECT_EQ(_mm512_fpclass_pd_mask(_mm512_loadu_pd(y), 0x01 | 0x08 | 0x10 | 0x80), 0b00011010);
  EXPECT_EQ(_mm512_fpclass_pd_mask(_mm512_loadu_pd(y), 0x20), 0b00100000);
}

TEST(X86Simd, ReductionsFoldHalvesThenQuartersThenPairs) {
  float x[16];
  for (int i = 0; i < 16; ++i) x[i] = 1.0f + std::ldexp(1.0f, -(i + 5)) * (i % 3 == 0 ? -1 : 1);
  x[3] = 1e8f;
  x[11] = -1e8f;
  // GCC's sequence: (hi8 + lo8), then its (hi4 + lo4), then t + swap-halves(t), then t0 + t1.
  float t3[8], t6[4], t8[4];
  for (int i = 0; i < 8; ++i) t3[i] = x[8 + i] + x[i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[4 + i] + t3[i];
  for (int i = 0; i < 4; ++i) t8[i] = t6[i] + t6[i ^ 2];
  EXPECT_EQ(bits(_mm512_reduce_add_ps(vec(x))), bits(t8[0] + t8[1]));
  x[7] = -2e9f;
  x[13] = 3e9f;
  EXPECT_EQ(_mm512_reduce_max_ps(vec(x)), 3e9f);
  EXPECT_EQ(_mm512_reduce_min_ps(vec(x)), -2e9f);
  EXPECT_EQ(_mm512_reduce_max_epu32(_mm512_setr_epi32(1, 2, 3, -1, 5, 6, 7, 8, 9, 10, 11, 12,
                                                      13, 14, 15, 16)),
            0xFFFFFFFFu);
}

TEST(X86Simd, HalfConversionsMatchTheScalarOnes) {
  std::vector<float> in;
  for (uint32_t u = 0; u < (1u << 16); ++u) in.push_back(static_cast<float>(Half::from_bits(static_cast<uint16_t>(u))));
  in.push_back(65520.0f);       // rounds to inf
  in.push_back(1.0f + 0x1p-11f);  // a tie, to even
  in.push_back(1e-8f);          // below the smallest subnormal's half
  while (in.size() % 16) in.push_back(0.3f);
  for (size_t i = 0; i < in.size(); i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(&in[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    uint16_t hv[16];
    std::memcpy(hv, &h, sizeof hv);
    const F16 back = lanes(_mm512_cvtph_ps(h));
    for (int l = 0; l < 16; ++l) {
      const Half want(in[i + l]);
      if (std::isnan(in[i + l])) {
        EXPECT_TRUE(std::isnan(back.v[l]));
        continue;
      }
      ASSERT_EQ(hv[l], want.x) << in[i + l];
      ASSERT_EQ(bits(back.v[l]), bits(static_cast<float>(want)));
    }
  }
}

TEST(X86Simd, PermutesPacksAndShufflesFollowTheirTables) {
  int32_t a[16], b[16];
  for (int i = 0; i < 16; ++i) a[i] = 100 + i, b[i] = 200 + i;
  const __m512i va = _mm512_loadu_si512(a), vb = _mm512_loadu_si512(b);
  const __m512i idx = _mm512_setr_epi32(31, 0, 17, 5, 16, 15, 8, 9, 30, 2, 24, 7, 1, 23, 12, 19);
  int32_t r[16];
  _mm512_storeu_si512(r, _mm512_permutex2var_epi32(va, idx, vb));
  int32_t ix[16];
  _mm512_storeu_si512(ix, idx);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(r[i], ix[i] & 16 ? b[ix[i] & 15] : a[ix[i] & 15]);
  _mm512_storeu_si512(r, _mm512_permutexvar_epi32(idx, va));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(r[i], a[ix[i] & 15]);
  // 128-bit blocks: a[1], a[3], b[0], b[2] for 0b10'00'11'01.
  _mm512_storeu_si512(r, _mm512_shuffle_i32x4(va, vb, 0x8D));
  const int from[4][2] = {{0, 1}, {0, 3}, {1, 0}, {1, 2}};
  for (int blk = 0; blk < 4; ++blk)
    for (int j = 0; j < 4; ++j)
      EXPECT_EQ(r[4 * blk + j], (from[blk][0] ? b : a)[4 * from[blk][1] + j]);
  // packus_epi32 per 128-bit lane: 4 of a then 4 of b, saturated to [0, 65535].
  int32_t p[16], q[16];
  for (int i = 0; i < 16; ++i) p[i] = (i - 4) * 20000, q[i] = 70000 - i;
  uint16_t pk[32];
  _mm512_storeu_si512(pk, _mm512_packus_epi32(_mm512_loadu_si512(p), _mm512_loadu_si512(q)));
  auto sat = [](int32_t v) { return static_cast<uint16_t>(v < 0 ? 0 : v > 65535 ? 65535 : v); };
  for (int lane = 0; lane < 4; ++lane)
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(pk[8 * lane + j], sat(p[4 * lane + j]));
      EXPECT_EQ(pk[8 * lane + 4 + j], sat(q[4 * lane + j]));
    }
  // vpermt2w: 64 16-bit lanes of a then b.
  uint16_t w0[32], w1[32], wi[32], wr[32];
  for (int i = 0; i < 32; ++i) w0[i] = static_cast<uint16_t>(i), w1[i] = static_cast<uint16_t>(1000 + i),
                               wi[i] = static_cast<uint16_t>((i * 37 + 5) & 127);
  _mm512_storeu_si512(wr, _mm512_permutex2var_epi16(_mm512_loadu_si512(w0), _mm512_loadu_si512(wi),
                                                    _mm512_loadu_si512(w1)));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(wr[i], (wi[i] & 32 ? w1 : w0)[wi[i] & 31]);
}

TEST(X86Simd, MasksSelectLanesAndMaskedMemoryTouchesOnlyThem) {
  float src[16], dst[16];
  for (int i = 0; i < 16; ++i) src[i] = static_cast<float>(i + 1), dst[i] = -1.0f;
  const __mmask16 k = 0b1010'0000'1100'0101;
  _mm512_mask_storeu_ps(dst, k, _mm512_maskz_loadu_ps(k, src));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(dst[i], k >> i & 1 ? src[i] : -1.0f) << i;
  uint16_t h[32], hd[32];
  for (int i = 0; i < 32; ++i) h[i] = static_cast<uint16_t>(i * 3), hd[i] = 0xFFFF;
  const __mmask32 k32 = 0x8001'F00Fu;
  _mm512_mask_storeu_epi16(hd, k32, _mm512_maskz_loadu_epi16(k32, h));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(hd[i], k32 >> i & 1 ? h[i] : 0xFFFF) << i;
  // 16-bit compares give one mask bit per lane, in lane order.
  uint16_t e[32];
  for (int i = 0; i < 32; ++i) e[i] = static_cast<uint16_t>(i % 5 == 0 ? 7 : i);
  const __mmask32 eq = _mm512_mask_cmpeq_epi16_mask(0xFFFF'FFFEu, _mm512_loadu_si512(e), _mm512_set1_epi16(7));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(eq >> i & 1, (i != 0 && e[i] == 7) ? 1u : 0u) << i;
  uint16_t bl[32];
  _mm512_storeu_si512(bl, _mm512_mask_blend_epi16(eq, _mm512_loadu_si512(h), _mm512_loadu_si512(e)));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(bl[i], eq >> i & 1 ? e[i] : h[i]) << i;
  // vpternlogd 0xD8: c ? b : a (bitwise), the copysign select of vec_math.h.
  const __m512i x = _mm512_set1_epi32(0x0F0F'1234), y = _mm512_set1_epi32(static_cast<int32_t>(0xFF00'FF00u)),
                z = _mm512_set1_epi32(0x5555'AAAA);
  int32_t t[16];
  _mm512_storeu_si512(t, _mm512_ternarylogic_epi32(x, y, z, 0xD8));
  EXPECT_EQ(static_cast<uint32_t>(t[5]), (0x5555'AAAAu & 0xFF00'FF00u) | (~0x5555'AAAAu & 0x0F0F'1234u));
}

}  // namespace
}  // namespace fabric
