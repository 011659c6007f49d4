// Spec §6: bitsandbytes NF4/FP4 blockwise quantization and double quantization, bit for bit
// (worked examples 1-4, edge cases) plus round-trip error bounds on random normal data.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "precision/quant_4bit.h"
#include "tensor/factory.h"
#include "tensor/random.h"

namespace fabric::precision {
namespace {

std::vector<uint8_t> bytes_of(const Tensor& t) { return t.to_vector<uint8_t>(); }
std::vector<float> floats_of(const Tensor& t) { return t.to_vector<float>(); }
Tensor f32(const std::vector<float>& v) { return from_vector(v, {static_cast<int64_t>(v.size())}); }

const std::array<float, 16>& table_of(const std::string& qt) {
  return qt == "nf4" ? kNF4Code : kFP4Code;
}

// An independent scalar reading of spec §6 steps 3-6, used to check the vector kernel.
struct Ref {
  std::vector<uint8_t> codes;
  std::vector<float> absmax;
};
Ref reference_quantize(const std::vector<float>& x, int64_t bs, const std::string& qt) {
  Ref r;
  const int64_t n = static_cast<int64_t>(x.size());
  for (int64_t s = 0; s < n; s += bs) {
    const int64_t e = std::min(n, s + bs);
    float m = 0;
    bool nan = false;
    for (int64_t i = s; i < e; ++i) {
      nan |= std::isnan(x[i]);
      m = std::max(m, std::fabs(x[i]));
    }
    if (nan) m = std::numeric_limits<float>::quiet_NaN();
    const float inv = m == 0 ? 0.0f : 1.0f / m;
    r.absmax.push_back(m == 0 && e - s < bs ? 1e-38f : m);
    for (int64_t i = s; i < e; ++i) {
      const float v = x[i] * inv;
      uint8_t c = 0;
      if (qt == "nf4") {
        for (int k = 0; k < 15; ++k) {
          const float mid = static_cast<float>((double(kNF4Code[k]) + kNF4Code[k + 1]) / 2);
          if (v > mid) c = static_cast<uint8_t>(k + 1);
        }
      } else {
        int bucket = 0;
        for (float t : kFP4Thresholds) bucket += std::fabs(v) > t;
        c = kFP4BucketCode[bucket] | (v < 0 ? 8 : 0);
      }
      r.codes.push_back(c);
    }
  }
  if (n % 2) r.codes.push_back(qt == "nf4" ? 7 : 0);
  return r;
}

std::vector<uint8_t> unpack(const std::vector<uint8_t>& packed) {
  std::vector<uint8_t> c;
  for (uint8_t b : packed) {
    c.push_back(b >> 4);
    c.push_back(b & 15);
  }
  return c;
}

TEST(Quant4bitTables, NF4AndFP4AndMidpointsMatchSpec) {
  EXPECT_EQ(kNF4Code[1], -0.6961928009986877f);
  EXPECT_EQ(kNF4Code[14], 0.7229568362236023f);
  EXPECT_EQ(kNF4Midpoints[7], 0.03979014977812767f);
  EXPECT_EQ(kNF4Midpoints[8], 0.120255246758461f);
  EXPECT_EQ(kNF4Midpoints[6], -0.045525018125772476f);
  EXPECT_EQ(kFP4Code[1], 0.0052083333f);
  EXPECT_EQ(kFP4Code[2], 0.6666667f);
  EXPECT_TRUE(std::signbit(kFP4Code[8]));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(kFP4Code[i + 8], -kFP4Code[i]);
}

TEST(Quant8bitDynamic, CodeMatchesSpecKeyEntries) {
  const auto& c = dynamic_code_8bit();
  EXPECT_EQ(c[0], -0.992968738079071f);
  EXPECT_EQ(c[127], 0.0f);
  EXPECT_EQ(c[128], static_cast<float>(5.500000384017767e-07));
  EXPECT_EQ(c[254], 0.992968738079071f);
  EXPECT_EQ(c[255], 1.0f);
  for (int i = 0; i + 1 < 256; ++i) EXPECT_LT(c[i], c[i + 1]) << i;
  EXPECT_EQ(c[47], -0.33203125f);
  EXPECT_EQ(c[207], 0.33203125f);
}

// tools/fixtures/make_dynamic_code_fixture.py: bitsandbytes' create_dynamic_map() under torch.
const nlohmann::json& dynamic_code_fixture() {
  static const nlohmann::json doc = [] {
    const std::string path = FABRIC_TEST_DATA_DIR "/dynamic_code_fixture.json";
    std::ifstream in(path);
    if (!in)
      throw IOError("cannot open " + path +
                    " (made by tools/fixtures/make_dynamic_code_fixture.py)");
    return nlohmann::json::parse(in);
  }();
  return doc;
}

// Bit for bit, whatever the compiler contracts: the entries where a + b * c rounds once or twice
// differ (42 of them when every product-sum is an FMA, as g++ -march=native made them).
TEST(Quant8bitDynamic, CodeEqualsTorchCreateDynamicMapBitForBit) {
  const auto& want = dynamic_code_fixture().at("code");
  const auto& c = dynamic_code_8bit();
  ASSERT_EQ(want.size(), c.size());
  int differ = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    const uint32_t w = want[i].get<uint32_t>();
    if (std::bit_cast<uint32_t>(c[i]) == w) continue;
    if (++differ <= 5)
      ADD_FAILURE() << "dynamic code [" << i << "] = " << std::hexfloat << c[i] << ", torch "
                    << std::bit_cast<float>(w);
  }
  EXPECT_EQ(differ, 0) << "entries differing from torch";
}

TEST(Quant8bitDynamic, LinspaceEqualsTorchBitForBit) {
  for (const auto& c : dynamic_code_fixture().at("linspace")) {
    const int64_t steps = c.at("steps").get<int64_t>();
    const std::vector<float> got = torch_linspace_f32(0.1f, 1.0f, steps);
    ASSERT_EQ(got.size(), c.at("bits").size()) << steps;
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), c.at("bits")[i].get<uint32_t>())
          << "steps " << steps << " [" << i << "]";
  }
  EXPECT_THROW(torch_linspace_f32(0.0f, 1.0f, 1), ValueError);
}

// The nested statistics dequantize with the state's own code when it has one (a checkpoint's
// nested_quant_map), as bitsandbytes does with state2.code.
TEST(Quant4bitNF4, DoubleQuantUsesTheStatesNestedCode) {
  const std::vector<float> a = {0.5f, 0.25f, 1.0f, 0.75f};  // spec example 4's absmax
  std::vector<float> x;
  for (float m : a) {
    for (int i = 0; i < 64; ++i) x.push_back(i == 0 ? m : 0.0f);
  }
  auto [packed, st] = quantize_4bit(f32(x), 64, "nf4", true);
  EXPECT_EQ(floats_of(absmax_of(st)),
            (std::vector<float>{0.50048828125f, 0.25263673067092896f, 1.0f, 0.74951171875f}));
  std::vector<float> halved(dynamic_code_8bit().begin(), dynamic_code_8bit().end());
  for (float& v : halved) v *= 0.5f;
  st.nested_code = f32(halved);
  // codes [47, 0, 255, 207], absmax2 0.375, offset 0.625: f32(f32(code/2 * 0.375) + 0.625).
  std::vector<float> want;
  for (int q : {47, 0, 255, 207}) {  // the product rounded on its own (no contraction into an FMA)
    want.push_back(static_cast<float>(double(halved[q]) * 0.375) + 0.625f);
  }
  EXPECT_EQ(floats_of(absmax_of(st)), want);
  // Block 1's max |x| has the NF4 code 1.0: it dequantizes to the block's absmax.
  EXPECT_EQ(floats_of(dequantize_4bit(packed, st))[64], want[1]);
  st.nested_code = f32({1.0f, 2.0f});
  EXPECT_THROW(absmax_of(st), ValueError);
}

TEST(Quant4bitNF4, SpecExample1) {
  auto [packed, st] =
      quantize_4bit(f32({0.5f, -1.0f, 0.25f, 2.0f, -0.1f, 0.0f, 1.5f, -2.0f}), 64, "nf4");
  EXPECT_EQ(packed.sizes(), (Shape{4, 1}));
  EXPECT_EQ(bytes_of(packed), (std::vector<uint8_t>{0xA2, 0x9F, 0x67, 0xE0}));
  EXPECT_EQ(floats_of(st.absmax), std::vector<float>{2.0f});
  const std::vector<float> want = {0.4922246038913727f,  -1.0501461029052734f,
                                   0.3218604028224945f,  2.0f,
                                   -0.1821000725030899f, 0.0f,
                                   1.4459136724472046f,  -2.0f};
  EXPECT_EQ(floats_of(dequantize_4bit(packed, st)), want);
}

TEST(Quant4bitFP4, SpecExample1) {
  auto [packed, st] =
      quantize_4bit(f32({0.5f, -1.0f, 0.25f, 2.0f, -0.1f, 0.0f, 1.5f, -2.0f}), 64, "fp4");
  EXPECT_EQ(bytes_of(packed), (std::vector<uint8_t>{0x7D, 0x63, 0x90, 0x2B}));
  const std::vector<float> got = floats_of(dequantize_4bit(packed, st));
  const std::vector<float> want = {0.5f,          -1.0f, 0.33333334f, 2.0f,
                                   -0.010416667f, 0.0f,  1.3333334f,  -2.0f};
  EXPECT_EQ(got, want);
}

TEST(Quant4bitNF4, SpecExample2OddLength) {
  auto [packed, st] = quantize_4bit(f32({1.0f, -3.0f, 0.3f, 0.0f, 2.9f}), 64, "nf4");
  EXPECT_EQ(packed.sizes(), (Shape{3, 1}));
  EXPECT_EQ(bytes_of(packed), (std::vector<uint8_t>{0xB0, 0x87, 0xF7}));
  const std::vector<float> got = floats_of(dequantize_4bit(packed, st));
  const std::vector<float> want = {1.0137458f, -3.0f, 0.23874089f, 0.0f, 3.0f};
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_FLOAT_EQ(got[i], want[i]) << i;
    const uint8_t code = unpack(bytes_of(packed))[i];
    EXPECT_EQ(got[i], kNF4Code[code] * 3.0f) << i;  // exactly table × absmax in fp32
  }
}

TEST(Quant4bitFP4, SpecExample2OddLength) {
  auto [packed, st] = quantize_4bit(f32({1.0f, -3.0f, 0.3f, 0.0f, 2.9f}), 64, "fp4");
  EXPECT_EQ(bytes_of(packed), (std::vector<uint8_t>{0x4B, 0x60, 0x30}));
  EXPECT_EQ(floats_of(dequantize_4bit(packed, st)),
            (std::vector<float>{1.0f, -3.0f, 0.5f, 0.0f, 3.0f}));
}

TEST(Quant4bitNF4, SpecExample3TwoBlocks) {
  std::vector<float> x(70);
  for (int i = 0; i < 70; ++i)
    x[i] = std::sin(0.37f * static_cast<float>(i)) * (i < 64 ? 1.5f : 0.25f);
  for (const std::string qt : {"nf4", "fp4"}) {
    auto [packed, st] = quantize_4bit(f32(x).reshape({7, 10}), 64, qt);
    EXPECT_EQ(packed.numel(), 35);
    ASSERT_EQ(st.absmax.numel(), 2);
    const Ref ref = reference_quantize(x, 64, qt);
    EXPECT_EQ(floats_of(st.absmax), ref.absmax);
    EXPECT_EQ(unpack(bytes_of(packed)), ref.codes);
    const Tensor d = dequantize_4bit(packed, st);
    EXPECT_EQ(d.sizes(), (Shape{7, 10}));
    const std::vector<float> dv = floats_of(d);
    for (int i = 0; i < 70; ++i)
      EXPECT_EQ(dv[i], table_of(qt)[ref.codes[i]] * ref.absmax[i / 64]) << i;
  }
}

TEST(Quant4bitNF4, SpecExample4DoubleQuant) {
  // The 8-bit stage on the centred statistics directly.
  const Quantized8bit q = quantize_blockwise_8bit(f32({-0.125f, -0.375f, 0.375f, 0.125f}), 256);
  EXPECT_EQ(floats_of(q.absmax), std::vector<float>{0.375f});
  EXPECT_EQ(bytes_of(q.codes), (std::vector<uint8_t>{47, 0, 255, 207}));

  // The full path: four blocks of 64 whose absmax are 0.5, 0.25, 1.0, 0.75.
  std::vector<float> x(256, 0.01f);
  const float peaks[4] = {0.5f, 0.25f, 1.0f, 0.75f};
  for (int b = 0; b < 4; ++b) x[b * 64 + 5] = -peaks[b];
  auto [packed, st] = quantize_4bit(f32(x), 64, "nf4", /*compress_statistics=*/true);
  ASSERT_TRUE(st.nested);
  EXPECT_EQ(st.absmax.dtype(), DType::uint8);
  EXPECT_EQ(st.nested_offset, 0.625f);
  EXPECT_EQ(floats_of(st.nested_absmax), std::vector<float>{0.375f});
  EXPECT_EQ(bytes_of(st.absmax), (std::vector<uint8_t>{47, 0, 255, 207}));
  const std::vector<float> want = {0.50048828125f, 0.25263673067092896f, 1.0f, 0.74951171875f};
  EXPECT_EQ(floats_of(absmax_of(st)), want);
  // Dequantization uses the recovered absmax.
  auto [packed2, plain] = quantize_4bit(f32(x), 64, "nf4", false);
  EXPECT_EQ(bytes_of(packed2), bytes_of(packed));
  const std::vector<float> d = floats_of(dequantize_4bit(packed, st));
  const std::vector<uint8_t> codes = unpack(bytes_of(packed));
  for (int i = 0; i < 256; ++i) EXPECT_EQ(d[i], kNF4Code[codes[i]] * want[i / 64]) << i;
}

TEST(Quant4bitNF4, DoubleQuantSingleBlockReturnsOffset) {
  auto [packed, st] = quantize_4bit(f32({0.5f, -0.3f, 0.1f}), 64, "nf4", true);
  EXPECT_EQ(st.nested_offset, 0.5f);
  EXPECT_EQ(floats_of(absmax_of(st)), std::vector<float>{0.5f});
}

TEST(Quant4bitNF4, AllZeroBlocks) {
  std::vector<float> x(64 + 10, 0.0f);  // a full and a trailing partial all-zero block
  for (const std::string qt : {"nf4", "fp4"}) {
    auto [packed, st] = quantize_4bit(f32(x), 64, qt);
    const uint8_t z = qt == "nf4" ? 0x77 : 0x00;
    for (uint8_t b : bytes_of(packed)) EXPECT_EQ(b, z) << qt;
    EXPECT_EQ(floats_of(st.absmax), (std::vector<float>{0.0f, 1e-38f})) << qt;
    for (float v : floats_of(dequantize_4bit(packed, st))) EXPECT_EQ(v, 0.0f) << qt;
  }
}

TEST(Quant4bitNF4, NaNPoisonsItsBlockOnly) {
  std::vector<float> x(128, 0.5f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[70] = -1.0f;
  for (const std::string qt : {"nf4", "fp4"}) {
    auto [packed, st] = quantize_4bit(f32(x), 64, qt);
    const std::vector<float> a = floats_of(st.absmax);
    EXPECT_TRUE(std::isnan(a[0]));
    EXPECT_EQ(a[1], 1.0f);
    const std::vector<uint8_t> c = unpack(bytes_of(packed));
    for (int i = 0; i < 64; ++i) EXPECT_EQ(c[i], 0) << qt << " " << i;
    const std::vector<float> d = floats_of(dequantize_4bit(packed, st));
    for (int i = 0; i < 64; ++i) EXPECT_TRUE(std::isnan(d[i])) << qt << " " << i;
    EXPECT_EQ(d[70], -1.0f);
    EXPECT_EQ(d[64], table_of(qt)[c[64]] * 1.0f);
  }
}

TEST(Quant4bitNF4, InfMakesBlockNonFinite) {
  std::vector<float> x(64, 0.5f);
  x[0] = std::numeric_limits<float>::infinity();
  x[1] = 0.0f;
  x[2] = -0.25f;
  for (const std::string qt : {"nf4", "fp4"}) {
    auto [packed, st] = quantize_4bit(f32(x), 64, qt);
    EXPECT_TRUE(std::isinf(floats_of(st.absmax)[0]));
    const std::vector<uint8_t> c = unpack(bytes_of(packed));
    EXPECT_EQ(c[0], 0) << qt;                    // inf · 0 = NaN -> code 0
    EXPECT_EQ(c[2], qt == "nf4" ? 7 : 0) << qt;  // finite · 0 = 0 (-0 keeps code 0)
    for (float v : floats_of(dequantize_4bit(packed, st))) EXPECT_FALSE(std::isfinite(v)) << qt;
  }
}

TEST(Quant4bitFP4, TinyNegativeGetsMinusZeroCode) {
  auto [packed, st] = quantize_4bit(f32({1.0f, -1e-4f}), 32, "fp4");
  EXPECT_EQ(bytes_of(packed), std::vector<uint8_t>{0x38});
  EXPECT_TRUE(std::signbit(floats_of(dequantize_4bit(packed, st))[1]));
}

TEST(Quant4bitNF4, MidpointTiesGoToLowerIndex) {
  // absmax 1 so x·r = x: each exact midpoint takes the lower code, one ulp above the upper one.
  for (int k = 0; k < 15; ++k) {
    const float m = kNF4Midpoints[k];
    auto [packed, st] = quantize_4bit(f32({1.0f, m, std::nextafter(m, 2.0f)}), 32, "nf4");
    const std::vector<uint8_t> c = unpack(bytes_of(packed));
    EXPECT_EQ(c[1], k) << k;
    EXPECT_EQ(c[2], k + 1) << k;
  }
  for (int k = 0; k < 7; ++k) {
    const float t = kFP4Thresholds[k];
    auto [packed, st] = quantize_4bit(f32({1.0f, t, std::nextafter(t, 2.0f)}), 32, "fp4");
    const std::vector<uint8_t> c = unpack(bytes_of(packed));
    EXPECT_EQ(c[1], kFP4BucketCode[k]) << k;
    EXPECT_EQ(c[2], kFP4BucketCode[k + 1]) << k;
  }
}

TEST(Quant4bitNF4, ArgumentErrors) {
  const Tensor x = f32({1, 2, 3});
  for (int64_t bs : {0, 16, 48, 8192, -64})
    EXPECT_THROW(quantize_4bit(x, bs, "nf4"), ValueError) << bs;
  EXPECT_THROW(quantize_4bit(x, 64, "int4"), ValueError);
  EXPECT_THROW(quantize_4bit(from_vector(std::vector<int32_t>{1, 2}), 64, "nf4"), DTypeError);
  EXPECT_THROW(quantize_4bit(Tensor(), 64, "nf4"), ValueError);
  auto [packed, st] = quantize_4bit(x, 64, "nf4");
  QuantState4bit bad = st;
  bad.shape = {5};
  EXPECT_THROW(dequantize_4bit(packed, bad), ShapeError);
  EXPECT_THROW(dequantize_4bit(packed.to(DType::int32), st), DTypeError);
}

TEST(Quant4bitNF4, OddLengthsAndAllBlocksizesMatchReference) {
  Generator gen(7);
  for (int64_t bs = 32; bs <= 4096; bs *= 2) {
    for (int64_t n :
         {int64_t{1}, int64_t{3}, int64_t{17}, int64_t{33}, bs - 1, bs + 1, 3 * bs + 5}) {
      const std::vector<float> x = floats_of(randn({n}, {}, &gen));
      for (const std::string qt : {"nf4", "fp4"}) {
        auto [packed, st] = quantize_4bit(f32(x), bs, qt);
        const Ref ref = reference_quantize(x, bs, qt);
        ASSERT_EQ(unpack(bytes_of(packed)), ref.codes) << qt << " bs=" << bs << " n=" << n;
        ASSERT_EQ(floats_of(st.absmax), ref.absmax) << qt << " bs=" << bs << " n=" << n;
      }
    }
  }
}

TEST(Quant4bitNF4, LargeParallelMatchesReferenceAndErrorBound) {
  Generator gen(11);
  const int64_t n = (1 << 18) + 37;
  const std::vector<float> x = floats_of(randn({n}, {}, &gen));
  for (const std::string qt : {"nf4", "fp4"}) {
    auto [packed, st] = quantize_4bit(f32(x), 64, qt);
    const Ref ref = reference_quantize(x, 64, qt);
    ASSERT_EQ(unpack(bytes_of(packed)), ref.codes) << qt;
    const std::vector<float> d = floats_of(dequantize_4bit(packed, st));
    // The largest gap between neighbouring codes (NF4: -1 to -0.6962; FP4: 2/3 to 1).
    double gap = 0;
    std::vector<float> sorted(table_of(qt).begin(), table_of(qt).end());
    std::sort(sorted.begin(), sorted.end());
    for (int k = 0; k + 1 < 16; ++k) gap = std::max(gap, double(sorted[k + 1]) - sorted[k]);
    EXPECT_NEAR(gap, qt == "nf4" ? 1.0 + kNF4Code[1] : 1.0 / 3.0, 1e-7);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double a = ref.absmax[i / 64];
      const double err = std::fabs(double(d[i]) - x[i]);
      ASSERT_LE(err, a * gap / 2 * (1 + 1e-6)) << qt << " at " << i;
      worst = std::max(worst, err / a);
    }
    EXPECT_GT(worst, 0.0);
  }
}

TEST(Quant4bitNF4, HalfAndBFloat16InputsKeepDtypeAndShape) {
  Generator gen(3);
  const Tensor x32 = randn({6, 50}, {}, &gen);
  for (DType dt : {DType::float16, DType::bfloat16}) {
    const Tensor x = x32.to(dt);
    const Tensor xf = x.to(DType::float32);  // exact widening
    for (const std::string qt : {"nf4", "fp4"}) {
      auto [p, st] = quantize_4bit(x, 32, qt);
      auto [pf, stf] = quantize_4bit(xf, 32, qt);
      EXPECT_EQ(bytes_of(p), bytes_of(pf));
      EXPECT_EQ(floats_of(st.absmax), floats_of(stf.absmax));
      const Tensor d = dequantize_4bit(p, st);
      EXPECT_EQ(d.dtype(), dt);
      EXPECT_EQ(d.sizes(), (Shape{6, 50}));
      EXPECT_EQ(floats_of(d), floats_of(dequantize_4bit(pf, stf).to(dt)));
    }
  }
}

TEST(Quant4bitNF4, EmptyTensor) {
  auto [packed, st] = quantize_4bit(empty({0, 4}), 64, "nf4", true);
  EXPECT_EQ(packed.numel(), 0);
  const Tensor d = dequantize_4bit(packed, st);
  EXPECT_EQ(d.sizes(), (Shape{0, 4}));
}

}  // namespace
}  // namespace fabric::precision
