// The NF4 quantizer's code search (a 1/16 bin lookup and one compare) against the scalar count
// of midpoints strictly below x·r: every float within 64 ulps of each midpoint and each bin edge
// of [-1, 1], a sweep of the whole range, and the non-finite scaled values of a block whose
// absmax is so small that 1/absmax overflows (±inf and 0·inf = NaN).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "precision/quant_4bit.h"
#include "tensor/factory.h"

namespace fabric::precision {
namespace {

// Midpoints strictly below v (ties and NaN low), as bitsandbytes' search decides.
uint8_t ref_nf4_code(float v) {
  uint8_t c = 0;
  for (float m : kNF4Midpoints) c += v > m;
  return c;
}

std::vector<uint8_t> codes_of(const Tensor& packed, int64_t n) {
  const std::vector<uint8_t> p = packed.to_vector<uint8_t>();
  std::vector<uint8_t> c(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) c[i] = i % 2 == 0 ? p[i / 2] >> 4 : p[i / 2] & 0x0F;
  return c;
}

// Quantizes `values` in blocks of 64 whose first element is 1.0 (absmax 1, r = 1: x·r = x) and
// checks every code against the reference.
void expect_codes_match(const std::vector<float>& values) {
  constexpr int64_t bs = 64;
  std::vector<float> x;
  for (size_t i = 0; i < values.size(); ++i) {
    if (x.size() % bs == 0) x.push_back(1.0f);
    x.push_back(values[i]);
  }
  const int64_t n = static_cast<int64_t>(x.size());
  const Quantized4bit q = quantize_4bit(from_vector(x, {n}), bs, "nf4");
  const std::vector<uint8_t> got = codes_of(q.packed, n);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (got[i] != ref_nf4_code(x[i]) && bad++ < 5) {
      ADD_FAILURE() << "x = " << x[i] << " (bits " << std::hex << std::bit_cast<uint32_t>(x[i])
                    << std::dec << "): code " << int(got[i]) << ", expected "
                    << int(ref_nf4_code(x[i]));
    }
  }
  EXPECT_EQ(bad, 0);
}

std::vector<float> around(float centre, int ulps) {
  std::vector<float> v;
  float lo = centre, hi = centre;
  v.push_back(centre);
  for (int k = 0; k < ulps; ++k) {
    lo = std::nextafter(lo, -2.0f);
    hi = std::nextafter(hi, 2.0f);
    v.push_back(lo);
    v.push_back(hi);
  }
  return v;
}

TEST(QuantNF4Search, EveryFloatNearMidpointsAndBinEdges) {
  std::vector<float> values;
  for (float m : kNF4Midpoints) {
    for (float v : around(m, 64)) values.push_back(v);
  }
  for (int b = 0; b <= 32; ++b) {
    for (float v : around(static_cast<float>(b) / 16.0f - 1.0f, 64)) {
      if (std::fabs(v) <= 1.0f) values.push_back(v);
    }
  }
  expect_codes_match(values);
}

TEST(QuantNF4Search, SweepOfTheWholeRange) {
  // Every 194th float of [0, 1] by bit pattern, both signs (about 11M values).
  std::vector<float> values;
  const uint32_t one = std::bit_cast<uint32_t>(1.0f);
  for (uint32_t bits = 0; bits <= one; bits += 97 * 2) {
    const float v = std::bit_cast<float>(bits);
    values.push_back(v);
    values.push_back(-v);
  }
  expect_codes_match(values);
}

TEST(QuantNF4Search, OverflowingScaleGivesInfAndNaN) {
  // absmax is the smallest subnormal: 1/absmax = inf, so x·r is +inf, -inf or (for 0) NaN:
  // codes 15, 0 and 0, as the reference's compares give.
  const float tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<float> x = {tiny, -tiny, 0.0f, tiny, -tiny};
  const Quantized4bit q = quantize_4bit(from_vector(x, {5}), 64, "nf4");
  EXPECT_EQ(codes_of(q.packed, 5), (std::vector<uint8_t>{15, 0, 0, 15, 0}));
  EXPECT_EQ(ref_nf4_code(std::numeric_limits<float>::infinity()), 15);
  EXPECT_EQ(ref_nf4_code(std::numeric_limits<float>::quiet_NaN()), 0);
}

}  // namespace
}  // namespace fabric::precision
