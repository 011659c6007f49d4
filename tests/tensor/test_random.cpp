// Tests of the Philox generator, the random factories/fills and dropout: known-answer vectors,
// the element -> counter contract, thread-count independence, state save/restore, statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <set>

#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_random.h"
#include "tensor/random.h"
#include "tensor/random_kernels.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

void set_threads(int n) { OmpThreads::set(n); }  // tests/common/omp_threads.h
int max_threads() { return OmpThreads::max_threads(); }

struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

// ---- Philox known answers (Random123 kat_vectors) ------------------------------------------------

TEST(Philox, KnownAnswerVectors) {
  auto expect = [](uint64_t seed, uint64_t hi, uint64_t lo, std::array<uint32_t, 4> want) {
    PhiloxBlock b = philox4x32(seed, hi, lo);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(b.v[i], want[i]) << "word " << i << " seed " << std::hex << seed;
  };
  expect(0, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  expect(~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}, {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  // key {0xa4093822, 0x299f31d0}, counter {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}
  expect(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull,
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

// ---- the element -> (block, word) contract ---------------------------------------------------------

TEST(Random, RandFloat32FollowsTheCounterContract) {
  const uint64_t seed = 0x1234567890abcdefull;
  Generator g(seed);
  g.set_offset(77);
  const int64_t n = 5003;  // several kernel tiles, and a partial last block
  Tensor t = rand({n}, {}, &g);
  EXPECT_EQ(g.offset(), 77u + (n + 3) / 4);
  const float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    PhiloxBlock b = philox4x32(seed, 0, 77 + static_cast<uint64_t>(i / 4));
    const float want = static_cast<float>(b.v[i % 4] >> 8) * 0x1p-24f;
    ASSERT_EQ(p[i], want) << "element " << i;
  }
}

TEST(Random, RandFloat64AndRandintFollowTheCounterContract) {
  const uint64_t seed = 99;
  Generator g(seed);
  const int64_t n = 1001;
  Tensor d = rand({n}, {.dtype = DType::float64}, &g);
  EXPECT_EQ(g.offset(), static_cast<uint64_t>((n + 1) / 2));
  const double* p = d.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    PhiloxBlock b = philox4x32(seed, 0, static_cast<uint64_t>(i / 2));
    const uint64_t bits = ((static_cast<uint64_t>(b.v[2 * (i % 2) + 1]) << 32) | b.v[2 * (i % 2)]) >> 11;
    ASSERT_EQ(p[i], static_cast<double>(bits) * 0x1p-53) << "element " << i;
  }
  const uint64_t off = g.offset();
  Tensor r = randint(-5, 12, {n}, {.dtype = DType::int64}, &g);
  const int64_t* q = r.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    PhiloxBlock b = philox4x32(seed, 0, off + static_cast<uint64_t>(i / 4));
    ASSERT_EQ(q[i], -5 + static_cast<int64_t>((static_cast<uint64_t>(b.v[i % 4]) * 17) >> 32)) << i;
  }
}

TEST(Random, RandnIsBoxMullerOnConsecutiveWordPairs) {
  Generator g(5);
  Tensor t = randn({10}, {}, &g);
  const float* p = t.data<float>();
  for (int64_t i = 0; i < 10; i += 2) {
    PhiloxBlock b = philox4x32(5, 0, static_cast<uint64_t>(i / 4));
    const double u1 = static_cast<double>(b.v[i % 4] >> 8) * 0x1p-24;
    const double u2 = static_cast<double>(b.v[i % 4 + 1] >> 8) * 0x1p-24;
    const double r = std::sqrt(-2 * std::log(1 - u1));
    EXPECT_NEAR(p[i], r * std::cos(2 * std::numbers::pi * u2), 1e-5 * (1 + r)) << i;
    EXPECT_NEAR(p[i + 1], r * std::sin(2 * std::numbers::pi * u2), 1e-5 * (1 + r)) << i;
  }
}

// ---- determinism ---------------------------------------------------------------------------------

TEST(Random, ResultsDoNotDependOnTheThreadCount) {
  const int saved = max_threads();
  auto draw_all = [](int threads) {
    set_threads(threads);
    Generator g(2024);
    std::vector<Tensor> out;
    out.push_back(rand({1 << 20}, {}, &g));
    out.push_back(rand({300001}, {.dtype = DType::float64}, &g));
    out.push_back(randn({1 << 20}, {}, &g));
    out.push_back(randn({300001}, {.dtype = DType::bfloat16}, &g));
    out.push_back(randn({300001}, {.dtype = DType::float64}, &g));
    out.push_back(randint(0, 1000, {1 << 20}, {.dtype = DType::int32}, &g));
    out.push_back(randint(INT64_MIN / 2, INT64_MAX / 2, {200000}, {.dtype = DType::int64}, &g));
    out.push_back(dropout(ones({1 << 20}), 0.25, true, &g));
    out.push_back(scalar_tensor(static_cast<int64_t>(g.offset()), {.dtype = DType::int64}));
    return out;
  };
  std::vector<Tensor> one = draw_all(1);
  std::vector<Tensor> two = draw_all(2);
  std::vector<Tensor> four = draw_all(4);
  set_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_TRUE(bits_equal(one[i], two[i])) << "draw " << i << " differs between 1 and 2 threads";
    EXPECT_TRUE(bits_equal(one[i], four[i])) << "draw " << i << " differs between 1 and 4 threads";
  }
}

TEST(Random, OffsetAdvancesAndStateRestores) {
  Generator g(7);
  EXPECT_EQ(g.offset(), 0u);
  Tensor a = rand({10}, {}, &g);
  EXPECT_EQ(g.offset(), 3u);  // ceil(10 / 4) blocks
  Tensor b = rand({10}, {}, &g);
  EXPECT_EQ(g.offset(), 6u);
  EXPECT_FALSE(bits_equal(a, b));
  randn({5}, {.dtype = DType::float64}, &g);
  EXPECT_EQ(g.offset(), 9u);  // 2 doubles per block
  randint(0, int64_t{1} << 40, {3}, {.dtype = DType::int64}, &g);
  EXPECT_EQ(g.offset(), 11u);  // wide ranges take 64 bits per value
  rand({0}, {}, &g);
  EXPECT_EQ(g.offset(), 11u);

  const GeneratorState saved = g.state();
  Tensor c1 = randn({3, 7}, {}, &g);
  Tensor d1 = rand({9}, {.dtype = DType::bfloat16}, &g);
  g.manual_seed(123);  // move away, then come back
  rand({100}, {}, &g);
  g.set_state(saved);
  EXPECT_EQ(g.state(), saved);
  Tensor c2 = randn({3, 7}, {}, &g);
  Tensor d2 = rand({9}, {.dtype = DType::bfloat16}, &g);
  EXPECT_TRUE(bits_equal(c1, c2));
  EXPECT_TRUE(bits_equal(d1, d2));

  // Same seed, same stream; a different seed, a different stream.
  Generator h1(42), h2(42), h3(43);
  EXPECT_TRUE(bits_equal(rand({64}, {}, &h1), rand({64}, {}, &h2)));
  EXPECT_FALSE(bits_equal(rand({64}, {}, &h1), rand({64}, {}, &h3)));
}

TEST(Random, DefaultGeneratorIsSeededByManualSeed) {
  manual_seed(31337);
  EXPECT_EQ(default_generator().seed(), 31337u);
  EXPECT_EQ(default_generator().offset(), 0u);
  Tensor a = randn({33});
  Tensor a2 = rand({5});
  manual_seed(31337);
  Tensor b = randn({33});
  Tensor b2 = rand({5});
  EXPECT_TRUE(bits_equal(a, b));
  EXPECT_TRUE(bits_equal(a2, b2));
  EXPECT_FALSE(bits_equal(a.narrow(0, 0, 5), a2));
}

TEST(Random, NonContiguousFillsTakeRowMajorOrderOfTheView) {
  Tensor base = zeros({4, 6});
  Tensor view = base.t();  // (6, 4), strides (1, 6)
  Generator g1(11), g2(11);
  uniform_(view, -1, 1, &g1);
  Tensor ref = empty({6, 4});
  uniform_(ref, -1, 1, &g2);
  EXPECT_EQ(view.to_vector<float>(), ref.to_vector<float>());
  // Every element of the base was written.
  for (float v : base.to_vector<float>()) EXPECT_NE(v, 0.0f);

  Tensor strided = zeros({10}).slice(0, 0, 10, 3);  // 4 elements, stride 3
  Generator g3(3), g4(3);
  normal_(strided, 1, 2, &g3);
  Tensor ref2 = empty({4});
  normal_(ref2, 1, 2, &g4);
  EXPECT_EQ(strided.to_vector<float>(), ref2.to_vector<float>());
}

// ---- statistics (1M samples; bounds are many standard errors wide) -------------------------------

TEST(Random, UniformStatistics) {
  Generator g(1);
  const int64_t n = 1 << 20;
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    std::vector<double> v = rand({n}, {.dtype = dt}, &g).to_vector<double>();
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    EXPECT_GE(*lo, 0.0) << dtype_name(dt);
    EXPECT_LT(*hi, 1.0) << dtype_name(dt);
    Moments m = moments(v);
    // Coarse grids (bf16: steps of 2^-8) shift the mean down by half a step.
    const double step = dt == DType::bfloat16 ? 0x1p-8 : dt == DType::float16 ? 0x1p-11 : 0.0;
    EXPECT_NEAR(m.mean, 0.5 - step / 2, 0.002) << dtype_name(dt);
    EXPECT_NEAR(m.var, 1.0 / 12, 0.001) << dtype_name(dt);
    // Equal mass in ten bins.
    std::vector<int64_t> bins(10, 0);
    for (double x : v) ++bins[static_cast<int>(x * 10)];
    for (int64_t c : bins) EXPECT_NEAR(static_cast<double>(c) / n, 0.1, 0.003) << dtype_name(dt);
  }
  Tensor t = empty({n}, {.dtype = DType::float64});
  uniform_(t, -3, 5, &g);
  std::vector<double> v = t.to_vector<double>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), -3.0);
  EXPECT_LT(*std::max_element(v.begin(), v.end()), 5.0);
  Moments m = moments(v);
  EXPECT_NEAR(m.mean, 1.0, 0.01);
  EXPECT_NEAR(m.var, 64.0 / 12, 0.03);
}

TEST(Random, NormalStatistics) {
  Generator g(2);
  const int64_t n = 1 << 20;
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    std::vector<double> v = randn({n}, {.dtype = dt}, &g).to_vector<double>();
    Moments m = moments(v);
    EXPECT_NEAR(m.mean, 0.0, 0.005) << dtype_name(dt);
    EXPECT_NEAR(m.var, 1.0, 0.01) << dtype_name(dt);
    int64_t within1 = 0, within2 = 0;
    double m3 = 0, m4 = 0;
    for (double x : v) {
      within1 += std::abs(x) < 1;
      within2 += std::abs(x) < 2;
      m3 += x * x * x;
      m4 += x * x * x * x;
    }
    EXPECT_NEAR(static_cast<double>(within1) / n, 0.682689, 0.003) << dtype_name(dt);
    EXPECT_NEAR(static_cast<double>(within2) / n, 0.954500, 0.002) << dtype_name(dt);
    EXPECT_NEAR(m3 / n, 0.0, 0.02) << dtype_name(dt);   // skewness
    EXPECT_NEAR(m4 / n, 3.0, 0.05) << dtype_name(dt);   // kurtosis
    EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); }));
  }
  Tensor t = empty({n});
  normal_(t, 2, 3, &g);
  Moments m = moments(t.to_vector<double>());
  EXPECT_NEAR(m.mean, 2.0, 0.015);
  EXPECT_NEAR(m.var, 9.0, 0.09);
}

TEST(Random, RandintCoversTheRangeAndNeverHitsHigh) {
  Generator g(3);
  const int64_t n = 1 << 20;
  std::vector<int64_t> v = randint(-3, 7, {n}, {.dtype = DType::int64}, &g).to_vector<int64_t>();
  std::vector<int64_t> counts(10, 0);
  for (int64_t x : v) {
    ASSERT_GE(x, -3);
    ASSERT_LT(x, 7);
    ++counts[x + 3];
  }
  for (int64_t c : counts) EXPECT_NEAR(static_cast<double>(c) / n, 0.1, 0.003);

  // Small dtypes and bool.
  std::vector<int64_t> u8 = randint(250, 256, {4096}, {.dtype = DType::uint8}, &g).to_vector<int64_t>();
  EXPECT_EQ(std::set<int64_t>(u8.begin(), u8.end()), (std::set<int64_t>{250, 251, 252, 253, 254, 255}));
  std::vector<bool> bits = randint(0, 2, {1000}, {.dtype = DType::bool_}, &g).to_vector<bool>();
  EXPECT_GT(std::count(bits.begin(), bits.end(), true), 400);
  EXPECT_GT(std::count(bits.begin(), bits.end(), false), 400);
  std::vector<float> fl = randint(-8, 8, {1000}, {.dtype = DType::float32}, &g).to_vector<float>();
  for (float x : fl) EXPECT_EQ(x, std::floor(x));

  // A range past 2^32 uses 64-bit words: both halves of a symmetric range appear, means near 0.
  const int64_t big = int64_t{1} << 61;
  std::vector<double> w = randint(-big, big, {n}, {.dtype = DType::int64}, &g).to_vector<double>();
  Moments m = moments(w);
  EXPECT_NEAR(m.mean / static_cast<double>(big), 0.0, 0.005);
  EXPECT_NEAR(m.var / (static_cast<double>(big) * static_cast<double>(big)), 1.0 / 3, 0.003);
  // The full int64 range does not overflow.
  std::vector<int64_t> all = randint(INT64_MIN, INT64_MAX, {1000}, {.dtype = DType::int64}, &g).to_vector<int64_t>();
  EXPECT_GT(std::count_if(all.begin(), all.end(), [](int64_t x) { return x < 0; }), 400);
  EXPECT_EQ(std::count(all.begin(), all.end(), INT64_MAX), 0);
}

TEST(Random, ArgumentErrors) {
  auto expect_msg = [](auto&& fn, const char* what) {
    try {
      fn();
      ADD_FAILURE() << "no exception; expected one mentioning " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  EXPECT_THROW(rand({3}, {.dtype = DType::int64}), DTypeError);
  EXPECT_THROW(randn({3}, {.dtype = DType::float8_e4m3fn}), DTypeError);
  expect_msg([] { rand({2, -1}); }, "rand: negative dimension -1");
  EXPECT_THROW(randint(5, 5, {3}), ValueError);
  expect_msg([] { randint(5, 2, {3}); }, "low=5, high=2");
  expect_msg([] { randint(-1, 10, {3}, {.dtype = DType::uint8}); }, "uint8");
  EXPECT_THROW(randint(0, 300, {3}, {.dtype = DType::int8}), ValueError);
  EXPECT_THROW(randint(0, 2, {3}, {.dtype = DType::float8_e5m2}), DTypeError);
  Tensor f = empty({3});
  expect_msg([&] { uniform_(f, 1, 0); }, "from=1, to=0");
  EXPECT_THROW(uniform_(f, 0, INFINITY), ValueError);
  expect_msg([&] { normal_(f, 0, -1); }, "std=-1");
  expect_msg([&] { normal_(f, 0, NAN); }, "std=nan");
  // torch's bounds: each end and the width must fit the dtype (they filled inf and NaN).
  expect_msg([&] { uniform_(f, -3e38, 3e38); }, "to-from <= the largest float32");
  expect_msg([&] { uniform_(f, 0, 1e39); }, "to is out of bounds for float32");
  Tensor h = zeros({4}, {.dtype = DType::float16});
  expect_msg([&] { uniform_(h, 0, 1e5); }, "to is out of bounds for float16");
  expect_msg([&] { uniform_(h, -7e4, 0); }, "from is out of bounds for float16");
  Tensor b = zeros({4}, {.dtype = DType::bfloat16});
  expect_msg([&] { uniform_(b, 0, 1e39); }, "bfloat16");
  Tensor d = zeros({4}, {.dtype = DType::float64});
  expect_msg([&] { uniform_(d, -1e308, 1e308); }, "to-from");
  EXPECT_EQ(h.to(DType::float32).to_vector<float>(), (std::vector<float>{0, 0, 0, 0}));
  uniform_(h, -3e4, 3e4);  // the widest float16 range that fits
  for (float v : h.to(DType::float32).to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
  Tensor i = empty({3}, {.dtype = DType::int32});
  expect_msg([&] { uniform_(i); }, "uniform_: expects a float64, float32, float16 or bfloat16 tensor, got int32");
  expect_msg([&] { normal_(i); }, "normal_");
  // A failed call consumes nothing.
  Generator g(1);
  EXPECT_THROW(uniform_(f, 2, 1, &g), ValueError);
  EXPECT_EQ(g.offset(), 0u);
}

// What torch 1.13 takes: an infinite or NaN mean and an infinite std fill with mean + std * z;
// randint past a floating dtype's exact integers warns and rounds (an integer dtype's overflow
// stays an error, above).
TEST(Random, NonFiniteMomentsAndInexactRandintAsTorch) {
  Tensor f = empty({64});
  for (float v : normal_(f, INFINITY, 1).to_vector<float>()) EXPECT_EQ(v, INFINITY);
  for (float v : normal_(f, NAN, 1).to_vector<float>()) EXPECT_TRUE(std::isnan(v));
  for (float v : normal_(f, 0, INFINITY).to_vector<float>()) EXPECT_TRUE(std::isinf(v));
  test::CapturedWarnings warnings;
  const Tensor r = randint(0, (int64_t{1} << 24) + 2, {1000}, {.dtype = DType::float32});
  for (float v : r.to_vector<float>())
    EXPECT_TRUE(v >= 0 && v <= 16777218.0f && v == std::floor(v));
  const Tensor h = randint(0, 2050, {100}, {.dtype = DType::float16});
  ASSERT_EQ(warnings.messages().size(), 2u);
  EXPECT_NE(warnings.messages()[0].find(
                "randint: [0, 16777218) is out of the exactly representable range"),
            std::string::npos);
  EXPECT_NE(warnings.messages()[1].find("of float16"), std::string::npos);
  EXPECT_EQ(h.dtype(), DType::float16);
}

TEST(Random, RequiresGradAndZeroDim) {
  Tensor t = randn({2, 2}, {.requires_grad = true});
  EXPECT_TRUE(t.requires_grad());
  Tensor s = rand({});
  EXPECT_EQ(s.dim(), 0);
  const float v = s.item<float>();
  EXPECT_GE(v, 0.0f);
  EXPECT_LT(v, 1.0f);
}

// ---- dropout ---------------------------------------------------------------------------------------

TEST(Dropout, InvertedScalingAndKeepRate) {
  Generator g(9);
  const int64_t n = 1 << 20;
  Tensor x = randn({n}, {}, &g);
  auto [out, mask] = dropout_with_mask(x, 0.3, true, &g);
  ASSERT_TRUE(mask.defined());
  EXPECT_EQ(mask.dtype(), DType::float32);
  const float scale = 1.0f / 0.7f;  // torch's 1 / float(1 - p)
  const float* xp = x.data<float>();
  const float* op = out.data<float>();
  const float* mp = mask.data<float>();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(mp[i] == 0.0f || mp[i] == scale) << i;
    ASSERT_EQ(op[i], xp[i] * mp[i]) << i;
    kept += mp[i] != 0;
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 0.002);
  // Expectation is preserved: mean of dropout(ones) ~ 1.
  Moments m = moments(dropout(ones({n}, {.dtype = DType::float64}), 0.5, true, &g).to_vector<double>());
  EXPECT_NEAR(m.mean, 1.0, 0.005);
}

TEST(Dropout, IdentityZeroAndErrors) {
  Tensor x = randn({4, 5});
  Generator g(1);
  EXPECT_TRUE(dropout(x, 0.0, true, &g).is_same(x));
  EXPECT_TRUE(dropout(x, 0.7, false, &g).is_same(x));
  auto [same, no_mask] = dropout_with_mask(x, 0.5, false, &g);
  EXPECT_TRUE(same.is_same(x));
  EXPECT_FALSE(no_mask.defined());
  EXPECT_EQ(g.offset(), 0u);  // nothing drawn

  auto [z, zmask] = dropout_with_mask(x, 1.0, true, &g);
  for (float v : z.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  for (float v : zmask.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  // As PyTorch computes input * mask, a dropped inf gives NaN.
  Tensor inf = full({2}, INFINITY);
  for (float v : dropout(inf, 1.0, true, &g).to_vector<float>()) EXPECT_TRUE(std::isnan(v));

  for (double bad : {-0.1, 1.5, static_cast<double>(NAN)}) {
    try {
      dropout(x, bad, true, &g);
      ADD_FAILURE() << "p=" << bad << " accepted";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("dropout: probability has to be between 0 and 1"), std::string::npos);
    }
  }
  EXPECT_THROW(dropout(x, 2.0, false, &g), ValueError);  // checked even when not training
  Tensor xi = ones({3}, {.dtype = DType::int64});
  try {
    dropout(xi, 0.5, true, &g);
    ADD_FAILURE() << "int64 accepted";
  } catch (const DTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("int64"), std::string::npos);
  }
  EXPECT_TRUE(dropout(xi, 0.5, false, &g).is_same(xi));
  // torch returns before the dtype check: p == 1 is the input times a 0-dim zero, and an empty
  // input is itself.
  const Tensor zi = dropout(xi, 1.0, true, &g);
  EXPECT_EQ(zi.dtype(), DType::int64);
  EXPECT_EQ(zi.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0}));
  const Tensor empty_x = ones({0}, {.dtype = DType::int64});
  EXPECT_TRUE(dropout(empty_x, 0.5, true, &g).is_same(empty_x));
}

// The kept elements' scale is torch's noise.div_(1 - p) in the input's dtype: 1 - p rounded to
// it, then the quotient rounded (torch 1.13: F.dropout(torch.ones(4000, dtype=dt), p).unique()).
TEST(Dropout, ScaleRoundsAsTorchs) {
  struct Row {
    DType dtype;
    double p, kept;
  };
  for (const Row& r : {Row{DType::float32, 0.04, 1.0416667461395264},
                       Row{DType::bfloat16, 0.01, 1.015625}, Row{DType::bfloat16, 0.12, 1.140625},
                       Row{DType::bfloat16, 0.56, 2.28125}, Row{DType::float64, 0.04, 1 / 0.96}}) {
    Generator g(3);
    const auto [out, mask] = dropout_with_mask(ones({4000}, {.dtype = r.dtype}), r.p, true, &g);
    int64_t kept = 0;
    for (double v : out.to_vector<double>()) {
      ASSERT_TRUE(v == 0 || v == r.kept) << dtype_name(r.dtype) << " p=" << r.p << ": " << v;
      kept += v != 0;
    }
    EXPECT_GT(kept, 0);
    EXPECT_EQ(dropout_scale(r.p, r.dtype), r.kept);
  }
}

TEST(Dropout, ReproducibleAndLayoutIndependent) {
  Tensor x = randn({64, 48});
  Generator g1(5), g2(5);
  Tensor a = dropout(x, 0.4, true, &g1);
  Tensor b = dropout(x, 0.4, true, &g2);
  EXPECT_TRUE(bits_equal(a, b));
  EXPECT_EQ(g1.offset(), static_cast<uint64_t>(64 * 48 / 4));
  EXPECT_FALSE(bits_equal(dropout(x, 0.4, true, &g1), a));  // the next draw differs

  // A transposed input gives the mask in the view's row-major order.
  Tensor xt = x.t();
  Generator g3(8), g4(8);
  auto [o1, m1] = dropout_with_mask(xt, 0.5, true, &g3);
  auto [o2, m2] = dropout_with_mask(xt.contiguous(), 0.5, true, &g4);
  EXPECT_TRUE(bits_equal(o1, o2));
  EXPECT_TRUE(bits_equal(m1, m2));
}

TEST(Dropout, LowPrecisionDtypes) {
  for (DType dt : {DType::bfloat16, DType::float16, DType::float64}) {
    Generator g(4);
    Tensor x = randn({1000}, {.dtype = dt}, &g);
    auto [out, mask] = dropout_with_mask(x, 0.2, true, &g);
    EXPECT_EQ(out.dtype(), dt);
    EXPECT_EQ(mask.dtype(), dt);
    std::vector<double> xv = x.to_vector<double>(), ov = out.to_vector<double>(), mv = mask.to_vector<double>();
    const double scale = Tensor(scalar_tensor(1.0 / 0.8, {.dtype = dt})).item<double>();
    for (size_t i = 0; i < xv.size(); ++i) {
      ASSERT_TRUE(mv[i] == 0 || mv[i] == scale) << dtype_name(dt) << " " << i;
      // One rounding of the float32 product.
      const double want = scalar_tensor(xv[i] * mv[i], {.dtype = dt}).item<double>();
      ASSERT_EQ(ov[i], want) << dtype_name(dt) << " " << i;
    }
  }
}

struct Captured {
  OpId op;
  std::vector<Tensor> inputs;
  double p;
};
std::vector<Captured>* g_captured = nullptr;
void capture(const OpRecord& r) {
  if (!g_captured || r.op != OpId::dropout) return;
  g_captured->push_back({r.op, std::vector<Tensor>(r.inputs, r.inputs + r.num_inputs),
                         r.attrs ? static_cast<const DropoutAttrs*>(r.attrs)->p : -1});
}

TEST(Dropout, RecordsInputAndMaskForAutograd) {
  std::vector<Captured> seen;
  AutogradRecorder prev = autograd_recorder();
  g_captured = &seen;
  set_autograd_recorder(&capture);
  Tensor x = randn({8, 8}, {.requires_grad = true});
  auto [out, mask] = dropout_with_mask(x, 0.25, true);
  dropout(x, 0.25, false);  // the identity records nothing
  set_autograd_recorder(prev);
  g_captured = nullptr;
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].p, 0.25);
  ASSERT_EQ(seen[0].inputs.size(), 2u);
  EXPECT_TRUE(seen[0].inputs[0].is_same(x));
  EXPECT_TRUE(seen[0].inputs[1].is_same(mask));
}

}  // namespace
}  // namespace fabric
