// A torch_cpu generator gives torch 1.13's CPU values for a seed: every random factory and fill,
// each dtype, contiguous and transposed tensors, normal_'s vectorised path with its ragged tail,
// the float64 normal cached across calls, randint's 64-bit draws, bernoulli_ and dropout. Expected
// values: tests/tensor/torch_cpu_rng_rows.h (tools/fixtures/make_torch_cpu_rng_rows.py).
#include <gtest/gtest.h>

#include <algorithm>

#include "tensor/bernoulli.h"
#include "tensor/exponential.h"
#include "tensor/factory.h"
#include "tensor/multinomial.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/randperm.h"
#include "tensor/torch_cpu_rng.h"
#include "tests/common/expect_error.h"
#include "tests/tensor/torch_cpu_rng_check.h"

namespace fabric {
namespace {

using testing::expect_torch_values;
using testing::torch_cpu_rng_row;

Generator torch_generator(const std::string& row) {
  return Generator(torch_cpu_rng_row(row).seed, RngAlgorithm::torch_cpu);
}

Tensor filled(const Shape& shape, DType dt) { return empty(shape, {.dtype = dt}); }

// Same dtype, shape and bytes.
bool same(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.sizes() == b.sizes() && testing::fnv1a(a) == testing::fnv1a(b);
}

TEST(TorchCpuRng, RandInEveryFloatDtype) {
  {
    Generator g = torch_generator("rand_f32");
    expect_torch_values("rand_f32", rand({10}, {}, &g));
  }
  {
    Generator g = torch_generator("rand_f64");
    expect_torch_values("rand_f64", rand({7}, {.dtype = DType::float64}, &g));
  }
  {
    Generator g = torch_generator("rand_bf16");
    expect_torch_values("rand_bf16", rand({50}, {.dtype = DType::bfloat16}, &g));
  }
  {
    Generator g = torch_generator("rand_f16");
    expect_torch_values("rand_f16", rand({50}, {.dtype = DType::float16}, &g));
  }
}

TEST(TorchCpuRng, UniformOverARangeInEveryFloatDtype) {
  const struct {
    const char* row;
    DType dtype;
    int64_t n;
    double low, high;
  } cases[] = {{"uniform_f32", DType::float32, 1000, -0.37, 0.37},
               {"uniform_f64", DType::float64, 300, -0.3, 1.7},
               {"uniform_bf16", DType::bfloat16, 300, -2.5, 0.37},
               {"uniform_f16", DType::float16, 300, -2.5, 0.37}};
  for (const auto& c : cases) {
    Generator g = torch_generator(c.row);
    Tensor t = filled({c.n}, c.dtype);
    uniform_(t, c.low, c.high, &g);
    expect_torch_values(c.row, t);
  }
}

TEST(TorchCpuRng, NormalScalarAndVectorisedPaths) {
  // < 16 elements: one float64 Box–Muller draw each; 16 and more: torch's normal_fill, with a
  // ragged tail recomputed from 16 fresh uniforms.
  for (const auto& [row, n] :
       {std::pair{"randn_f32_5", 5}, {"randn_f32_16", 16}, {"randn_f32_37", 37}}) {
    Generator g = torch_generator(row);
    expect_torch_values(row, randn({n}, {}, &g));
  }
  {
    Generator g = torch_generator("randn_f64_7");
    expect_torch_values("randn_f64_7", randn({7}, {.dtype = DType::float64}, &g));
  }
  const struct {
    const char* row;
    DType dtype;
    int64_t n;
    double mean, std;
  } cases[] = {{"normal_f32_big", DType::float32, 65541, 0.1, 1.3},
               {"normal_f64_big", DType::float64, 4099, 0.3, 0.7},
               {"normal_bf16_big", DType::bfloat16, 4099, 0.25, 0.6},
               {"normal_f16_big", DType::float16, 4099, 0.25, 0.6},
               {"normal_bf16_small", DType::bfloat16, 9, 0.25, 0.6}};
  for (const auto& c : cases) {
    Generator g = torch_generator(c.row);
    Tensor t = filled({c.n}, c.dtype);
    normal_(t, c.mean, c.std, &g);
    expect_torch_values(c.row, t);
  }
}

TEST(TorchCpuRng, NonContiguousTensorsAreDrawnInMemoryOrder) {
  {
    Generator g = torch_generator("normal_transposed");
    Tensor t = filled({6, 4}, DType::float32).t();
    normal_(t, 0.0, 2.0, &g);
    expect_torch_values("normal_transposed", t);
  }
  {
    Generator g = torch_generator("uniform_transposed");
    Tensor t = filled({4, 6}, DType::float32).t();
    uniform_(t, -1.0, 1.0, &g);
    expect_torch_values("uniform_transposed", t);
  }
}

TEST(TorchCpuRng, FloatSixtyFourNormalPairCarriesIntoTheNextCall) {
  Generator g = torch_generator("normal_cache_across_calls");
  const Tensor a = randn({3}, {.dtype = DType::float64}, &g);
  const Tensor b = randn({1}, {.dtype = DType::float64}, &g);
  expect_torch_values("normal_cache_across_calls", cat({a, b}));
}

TEST(TorchCpuRng, RandintNarrowAndWideRanges) {
  {
    Generator g = torch_generator("randint_i64");
    expect_torch_values("randint_i64", randint(0, 10, {10}, {.dtype = DType::int64}, &g));
  }
  {
    Generator g = torch_generator("randint_wide");  // range >= 2^32: 64-bit draws
    expect_torch_values("randint_wide",
                        randint(-5, int64_t{1} << 33, {8}, {.dtype = DType::int64}, &g));
  }
  {
    Generator g = torch_generator("randint_f32");
    expect_torch_values("randint_f32", randint(-3, 3, {12}, {.dtype = DType::float32}, &g));
  }
}

// torch: torch.manual_seed(seed); torch.empty(shape, dtype=dt).exponential_(lambd) (the rows'
// cases exponential_*; non-MKL build: one float64 draw per element, rounded to the dtype).
TEST(TorchCpuRng, Exponential) {
  struct Case {
    const char* row;
    Shape shape;
    DType dtype;
    double lambd;
  };
  for (const Case& c : {Case{"exponential_f64", {300}, DType::float64, 1.0},
                        Case{"exponential_f32", {1000}, DType::float32, 2.5},
                        Case{"exponential_bf16", {300}, DType::bfloat16, 0.5},
                        Case{"exponential_f16", {300}, DType::float16, 3.0}}) {
    Generator g = torch_generator(c.row);
    Tensor t = filled(c.shape, c.dtype);
    exponential_(t, c.lambd, &g);
    expect_torch_values(c.row, t);
  }
  Generator g = torch_generator("exponential_transposed");
  Tensor t = filled({5, 7}, DType::float32).t();  // drawn in memory order
  exponential_(t, 1.0, &g);
  expect_torch_values("exponential_transposed", t);
}

// torch 1.13: empty(3).exponential_(-1) -> "exponential_ expects lambda >= 0.0, but found
// lambda=-1"; empty(3, dtype=long).exponential_() -> "exponential_cpu" not implemented for 'Long';
// exponential_(0) gives inf. A Philox generator draws its own numbers: positive, mean ~1/lambd.
TEST(Exponential, ChecksAndPhilox) {
  Tensor t = filled({3}, DType::float32);
  EXPECT_THROW(exponential_(t, -1.0), ValueError);
  EXPECT_THROW(exponential_(t, std::nan("")), ValueError);
  Tensor i = filled({3}, DType::int64);
  EXPECT_THROW(exponential_(i), DTypeError);
  Generator torch_gen(3, RngAlgorithm::torch_cpu);
  exponential_(t, 0.0, &torch_gen);
  for (float v : t.to_vector<float>()) EXPECT_TRUE(std::isinf(v) && v > 0);
  Generator philox(5);
  Tensor big = filled({100000}, DType::float64);
  exponential_(big, 4.0, &philox);
  const std::vector<double> v = big.to_vector<double>();
  double sum = 0;
  for (double x : v) {
    EXPECT_GE(x, 0.0);
    sum += x;
  }
  EXPECT_NEAR(sum / static_cast<double>(v.size()), 0.25, 0.005);
}

TEST(TorchCpuRng, BernoulliAndDropout) {
  {
    Generator g = torch_generator("bernoulli_f32");
    Tensor t = filled({40}, DType::float32);
    bernoulli_(t, 0.3, &g);
    expect_torch_values("bernoulli_f32", t);
  }
  {
    Generator g = torch_generator("dropout_f32");
    expect_torch_values("dropout_f32", dropout(full({6, 5}, 1.5), 0.2, true, &g));
  }
  {
    // torch's dropout noise is made contiguous (LEGACY_CONTIGUOUS_MEMORY_FORMAT): the mask is
    // drawn in row-major order whatever the input's layout.
    Generator g = torch_generator("dropout_transposed");
    const Tensor x = arange(0.0, 30.0, 1.0, DType::float32).reshape({5, 6}).t();
    expect_torch_values("dropout_transposed", dropout(x, 0.4, true, &g));
  }
  {
    Generator g = torch_generator("dropout_bf16");
    expect_torch_values("dropout_bf16",
                        dropout(ones({40}, {.dtype = DType::bfloat16}), 0.1, true, &g));
  }
}

TEST(TorchCpuRng, RandpermIsTorchsAndLeavesTheStreamWhereTorchDoes) {
  {
    Generator g = torch_generator("randperm_1000");
    expect_torch_values("randperm_1000", randperm(1000, {.dtype = DType::int64}, &g));
  }
  {
    Generator g = torch_generator("randperm_f32_then_rand");
    const Tensor p = randperm(5, {.dtype = DType::float32}, &g);
    expect_torch_values("randperm_f32_then_rand", cat({p, rand({2}, {}, &g)}));
  }
}

// The weights of the multinomial rows: ((i * 37) % 101) / 16 for i in 0 .. 149, as (3, 50).
Tensor weights(DType dt) {
  std::vector<double> w(150);
  for (int64_t i = 0; i < 150; ++i)
    w[static_cast<size_t>(i)] = static_cast<double>((i * 37) % 101) / 16;
  return from_vector(w, {3, 50}).to(dt);
}

TEST(TorchCpuRng, MultinomialWithAndWithoutReplacement) {
  {
    Generator g = torch_generator("multinomial_one");
    const Tensor p =
        from_vector(std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.0f, 0.25f, 0.25f}, {2, 4});
    expect_torch_values("multinomial_one", multinomial(p, 1, false, &g));
  }
  {
    Generator g = torch_generator("multinomial_without_replacement");
    expect_torch_values("multinomial_without_replacement",
                        multinomial(weights(DType::float32), 10, false, &g));
  }
  {
    Generator g = torch_generator("multinomial_with_replacement");
    expect_torch_values("multinomial_with_replacement",
                        multinomial(weights(DType::float32), 20, true, &g));
  }
  {
    Generator g = torch_generator("multinomial_f64_with_replacement");
    expect_torch_values("multinomial_f64_with_replacement",
                        multinomial(weights(DType::float64).select(0, 0), 30, true, &g));
  }
  {
    Generator g = torch_generator("multinomial_then_rand");
    const Tensor m =
        multinomial(weights(DType::float32), 1, false, &g).reshape({-1}).to(DType::float32);
    expect_torch_values("multinomial_then_rand", cat({m, rand({2}, {}, &g)}));
  }
}

TEST(Multinomial, PhiloxDrawsAndTorchsChecks) {
  Generator a(4), b(4);
  const Tensor w = weights(DType::float32);
  const Tensor x = multinomial(w, 10, false, &a);
  EXPECT_EQ(x.sizes(), (Shape{3, 10}));
  EXPECT_EQ(x.to_vector<int64_t>(), multinomial(w, 10, false, &b).to_vector<int64_t>());
  // Without replacement each row's samples are distinct and never a zero-weight category.
  const std::vector<int64_t> v = x.to_vector<int64_t>();
  const std::vector<float> wv = w.to_vector<float>();
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<int64_t> row(v.begin() + r * 10, v.begin() + r * 10 + 10);
    for (int64_t id : row) EXPECT_GT(wv[static_cast<size_t>(r * 50 + id)], 0.0f);
    std::sort(row.begin(), row.end());
    EXPECT_EQ(std::adjacent_find(row.begin(), row.end()), row.end());
  }
  EXPECT_EQ(multinomial(w, 7, true, &a).sizes(), (Shape{3, 7}));
  const Tensor one_hot = from_vector(std::vector<float>{0, 0, 2, 0});
  EXPECT_EQ(multinomial(one_hot, 5, true, &a).to_vector<int64_t>(), std::vector<int64_t>(5, 2));
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    multinomial(from_vector(std::vector<float>{0.5f, -1}), 1);
                  }),
                  "contains either `inf`, `nan` or element < 0");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    multinomial(zeros({2, 3}), 1);
                  }),
                  "sum of probabilities <= 0");
  EXPECT_CONTAINS(thrown<ValueError>([&] { multinomial(w, 51); }),
                  "cannot sample n_sample > prob_dist.size(-1) samples without replacement");
  EXPECT_CONTAINS(thrown<ValueError>([&] { multinomial(w, 0); }),
                  "cannot sample n_sample <= 0 samples");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    multinomial(zeros({2, 2, 2}), 1);
                  }),
                  "prob_dist must be 1 or 2 dim");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { multinomial(ones({3}, {.dtype = DType::int64}), 1); }),
                  "only supports floating-point dtypes");
}

TEST(Randperm, PhiloxPermutationsAndTorchsChecks) {
  Generator a(9), b(9);
  const Tensor p = randperm(1000, {.dtype = DType::int64}, &a);
  std::vector<int64_t> v = p.to_vector<int64_t>();
  EXPECT_EQ(v, randperm(1000, {.dtype = DType::int64}, &b).to_vector<int64_t>());  // seeded
  std::vector<int64_t> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_NE(v, sorted);  // 1000! orders: not the identity
  EXPECT_EQ(randperm(0).numel(), 0);
  EXPECT_EQ(randperm(1).to_vector<int64_t>(), std::vector<int64_t>{0});
  EXPECT_CONTAINS(thrown<ValueError>([] { randperm(-1); }), "n must be non-negative, got -1");
  EXPECT_CONTAINS(thrown<ValueError>([] { randperm(2050, {.dtype = DType::float16}); }),
                  "n cannot be greater than 2049 for Half type");
  EXPECT_CONTAINS(thrown<ValueError>([] { randperm(257, {.dtype = DType::uint8}); }),
                  "cannot be converted to type uint8 without overflow");
  EXPECT_CONTAINS(thrown<DTypeError>([] { randperm(3, {.dtype = DType::bool_}); }),
                  "not implemented for bool");
  EXPECT_EQ(randperm(256, {.dtype = DType::uint8}).numel(), 256);
  EXPECT_EQ(randperm(2049, {.dtype = DType::float16}).numel(), 2049);
}

TEST(TorchCpuRng, StateSnapshotsReplayAndSeedingRestarts) {
  Generator g(5, RngAlgorithm::torch_cpu);
  EXPECT_EQ(g.algorithm(), RngAlgorithm::torch_cpu);
  randn({3}, {.dtype = DType::float64}, &g);  // leaves a cached normal
  const GeneratorState saved = g.state();
  const Tensor first = cat({randn({1}, {.dtype = DType::float64}, &g), rand({20}, {}, &g)});
  EXPECT_FALSE(g.state() == saved);
  g.set_state(saved);
  EXPECT_TRUE(g.state() == saved);
  const Tensor again = cat({randn({1}, {.dtype = DType::float64}, &g), rand({20}, {}, &g)});
  EXPECT_TRUE(same(first, again));

  // manual_seed restarts the stream and drops the cached normal, as torch's.
  g.manual_seed(5);
  const Tensor a = randn({3}, {.dtype = DType::float64}, &g);
  g.manual_seed(5);
  EXPECT_TRUE(same(a, randn({3}, {.dtype = DType::float64}, &g)));

  // A Philox state makes the generator a Philox one again.
  g.set_state(GeneratorState{7, 0, nullptr});
  EXPECT_EQ(g.algorithm(), RngAlgorithm::philox);
  EXPECT_EQ(g.torch_cpu(), nullptr);
}

TEST(TorchCpuRng, BernoulliChecksItsProbability) {
  Tensor t = filled({4}, DType::float32);
  EXPECT_CONTAINS(thrown<ValueError>([&] { bernoulli_(t, 1.5); }),
                  "bernoulli_ expects p to be in [0, 1], but got p=1.5");
  // Philox generators draw too: 0 and 1 are exact.
  Generator g(3);
  bernoulli_(t, 1.0, &g);
  EXPECT_TRUE(same(t, ones({4})));
  bernoulli_(t, 0.0, &g);
  EXPECT_TRUE(same(t, zeros({4})));
}

}  // namespace
}  // namespace fabric
