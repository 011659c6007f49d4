// AlphaDropout, FeatureAlphaDropout, Dropout3d and the functionals dropout3d, alpha_dropout and
// feature_alpha_dropout against torch 1.13: given torch's keep mask, outputs and input gradients
// bit for bit in float32, float64 and bfloat16 (tests/nn/alpha_dropout_torch_rows.h, from
// tools/fixtures/make_alpha_dropout_rows.py); fabric's own draw (float32 uniforms of its Philox
// generator below 1 - p, so not torch's mask for a seed) composed the same way over a seed
// sequence; eval, p = 0 and p = 1, ranks and warnings, in place, reprs and errors as torch's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "nn/alpha_dropout.h"
#include "nn/channel_dropout.h"
#include "tensor/factory.h"
#include "tensor/float_formats.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/expect_error.h"
#include "tests/nn/alpha_dropout_torch_rows.h"

namespace fabric::nn {
namespace {

constexpr double kAlpha = 1.7580993408473766;

DType dtype_named(const std::string& name) {
  if (name == "float32") return DType::float32;
  if (name == "bfloat16") return DType::bfloat16;
  return DType::float64;
}

// Bit patterns of a tensor's values widened to float64 (exact for every floating dtype), so -0
// and NaN payloads count.
std::vector<uint64_t> bits_of(const std::vector<double>& values) {
  std::vector<uint64_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(&out[i], &values[i], sizeof(double));
  return out;
}
std::vector<uint64_t> bits_of(const Tensor& t) {
  return bits_of(t.detach().to(DType::float64).to_vector<double>());
}

Tensor tensor_of(const std::vector<double>& values, const std::vector<int64_t>& shape, DType dt) {
  return from_vector(values, Shape(shape.begin(), shape.end())).to(dt);
}

// a = 1 / sqrt((alpha^2 p + 1)(1 - p)), the kept elements' scale.
double alpha_a(double p) { return 1.0 / std::sqrt((kAlpha * kAlpha * p + 1.0) * (1.0 - p)); }

// A double rounded to `dt` as ATen rounds a scalar operand (through float for bfloat16).
double in_dtype(DType dt, double v) {
  if (dt == DType::float32) return static_cast<float>(v);
  if (dt == DType::bfloat16) return static_cast<float>(BFloat16(static_cast<float>(v)));
  return v;
}

bool is_alpha(const std::string& kind) { return kind.find("alpha") != std::string::npos; }

TEST(AlphaDropoutTorch, ComposesTorchsMaskToTorchsBits) {
  for (const AlphaDropoutTorchRow& r : alpha_dropout_torch_rows()) {
    SCOPED_TRACE(std::string(r.kind) + " " + r.dtype + " p=" + std::to_string(r.p));
    const DType dt = dtype_named(r.dtype);
    const bool alpha = is_alpha(r.kind);
    const Tensor keep = tensor_of(r.keep, r.noise_shape, DType::float64);
    const Tensor grad_out = tensor_of(r.grad_out, r.shape, dt);

    Tensor x = tensor_of(r.x, r.shape, dt);
    x.set_requires_grad(true);
    Tensor y = dropout_internal::apply_dropout_noise(x, keep, r.p, alpha, /*inplace=*/false);
    ASSERT_EQ(y.dtype(), dt);
    EXPECT_EQ(bits_of(y), bits_of(r.y));
    y.backward(grad_out);
    EXPECT_EQ(bits_of(x.grad()), bits_of(r.grad_x));  // grad * (keep * a), or keep / (1 - p)

    // In place on a copy of x: the same tensor comes back, with the same bits and gradient.
    Tensor leaf = tensor_of(r.x, r.shape, dt);
    leaf.set_requires_grad(true);
    Tensor z = leaf.clone();
    Tensor w = dropout_internal::apply_dropout_noise(z, keep, r.p, alpha, /*inplace=*/true);
    EXPECT_TRUE(w.is_same(z));
    EXPECT_EQ(bits_of(w), bits_of(r.y));
    w.backward(grad_out);
    EXPECT_EQ(bits_of(leaf.grad()), bits_of(r.grad_x));
  }
}

// One layer or functional under test: what it calls, and the mask shape it draws for x.
struct DrawCase {
  std::string name;
  std::function<Tensor(const Tensor&, Generator*)> call;
  Shape x_shape, noise_shape;
  bool alpha;
  double p;
};

std::vector<DrawCase> draw_cases() {
  return {
      {"AlphaDropout",
       [](const Tensor& x, Generator* g) {
         return (*make<AlphaDropout>({.p = 0.3, .generator = g}))(x);
       },
       {4, 6},
       {4, 6},
       true,
       0.3},
      {"FeatureAlphaDropout",
       [](const Tensor& x, Generator* g) {
         return (*make<FeatureAlphaDropout>({.p = 0.5, .generator = g}))(x);
       },
       {3, 5, 2, 2},
       {3, 5, 1, 1},
       true,
       0.5},
      {"Dropout3d batched",
       [](const Tensor& x, Generator* g) {
         return (*make<Dropout3d>({.p = 0.3, .generator = g}))(x);
       },
       {2, 6, 2, 1, 3},
       {2, 6, 1, 1, 1},
       false,
       0.3},
      {"Dropout3d unbatched",
       [](const Tensor& x, Generator* g) {
         return (*make<Dropout3d>({.p = 0.5, .generator = g}))(x);
       },
       {8, 2, 1, 3},
       {8, 1, 1, 1},
       false,
       0.5},
      {"alpha_dropout",
       [](const Tensor& x, Generator* g) { return alpha_dropout(x, 0.1, true, false, g); },
       {30},
       {30},
       true,
       0.1},
      {"feature_alpha_dropout unbatched-looking 4-D",
       [](const Tensor& x, Generator* g) { return feature_alpha_dropout(x, 0.3, true, false, g); },
       {5, 4, 2, 2},
       {5, 4, 1, 1},  // torch 1.13 has no unbatched form here: (C, D) per draw
       true,
       0.3},
      {"dropout3d",
       [](const Tensor& x, Generator* g) { return dropout3d(x, 0.9, true, false, g); },
       {3, 7, 1, 2, 2},
       {3, 7, 1, 1, 1},
       false,
       0.9},
  };
}

// fabric's masks come from its own generator (torch's mt19937 stream is not reproduced), drawn
// as Dropout1d/2d draw theirs: keep iff a float32 uniform of the noise shape is below 1 - p.
// Over a sequence of calls on one seeded generator, each output is that mask composed as torch
// composes it, and the gradient is the mask times a (or 1 / (1 - p)).
TEST(AlphaDropoutTorch, LayersComposeTheirSeededDrawAsTorch) {
  test::CapturedWarnings quiet;
  for (const DrawCase& c : draw_cases()) {
    for (DType dt : {DType::float32, DType::float64, DType::bfloat16}) {
      SCOPED_TRACE(c.name + " " + std::string(dtype_name(dt)));
      Generator gen(20240607), ref(20240607);
      const Tensor x0 = (randn(c.x_shape, {.dtype = DType::float64}) * Scalar(2.0)).to(dt);
      for (int call = 0; call < 3; ++call) {
        Tensor x = x0.detach().clone();
        x.set_requires_grad(true);
        Tensor y = c.call(x, &gen);
        const Tensor keep =
            lt(rand(c.noise_shape, {.dtype = DType::float32}, &ref), Scalar(1.0 - c.p));
        const Tensor expected =
            dropout_internal::apply_dropout_noise(x0, keep, c.p, c.alpha, false);
        EXPECT_EQ(bits_of(y), bits_of(expected)) << "call " << call;
        // The gradient is the mask scaled as torch scales it, in x's dtype.
        sum(y).backward();
        const Tensor m = c.alpha ? keep.to(dt) * Scalar(in_dtype(dt, alpha_a(c.p)))
                                 : keep.to(dt) / Scalar(in_dtype(dt, 1.0 - c.p));
        EXPECT_EQ(bits_of(x.grad()), bits_of(m.expand(c.x_shape).contiguous()));
        const auto g = x.grad().to(DType::float64).to_vector<double>();
        const auto k = keep.to(DType::float64).expand(c.x_shape).contiguous().to_vector<double>();
        for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i] == 0.0, k[i] == 0.0) << i;
      }
    }
  }
}

// The functionals draw from the default generator when given none: manual_seed replays them.
TEST(AlphaDropoutTorch, DefaultGeneratorReplaysAfterManualSeed) {
  const Tensor x = randn({6, 4, 3});
  manual_seed(77);
  const Tensor a1 = alpha_dropout(x, 0.4, true);
  const Tensor f1 = feature_alpha_dropout(x, 0.4, true);
  const Tensor d1 = dropout3d(x.unsqueeze(0).unsqueeze(0), 0.4);  // training by default
  manual_seed(77);
  EXPECT_EQ(bits_of(alpha_dropout(x, 0.4, true)), bits_of(a1));
  EXPECT_EQ(bits_of(feature_alpha_dropout(x, 0.4, true)), bits_of(f1));
  EXPECT_EQ(bits_of(dropout3d(x.unsqueeze(0).unsqueeze(0), 0.4)), bits_of(d1));
  manual_seed(77);
  const Tensor keep = lt(rand({6, 4, 3}), Scalar(0.6));
  EXPECT_EQ(bits_of(a1), bits_of(dropout_internal::apply_dropout_noise(x, keep, 0.4, true, false)));
}

// Alpha dropout keeps a standard normal input's mean 0 and variance 1 (its point), at the
// keep rate 1 - p.
TEST(AlphaDropoutTorch, KeepsMeanAndVarianceOfANormalInput) {
  Generator gen(5);
  const Tensor x = randn({200000}, {.dtype = DType::float64}, &gen);
  for (double p : {0.1, 0.3, 0.5}) {
    SCOPED_TRACE(p);
    const Tensor y = alpha_dropout(x, p, true, false, &gen);
    EXPECT_NEAR(mean(y).item<double>(), 0.0, 0.01);
    EXPECT_NEAR(std(y).item<double>(), 1.0, 0.01);
  }
}

TEST(AlphaDropoutTorch, IdentityInEvalAndAtPZeroTimesZeroAtPOne) {
  test::CapturedWarnings quiet;  // dropout3d warns about the 3-D input, in eval too
  const Tensor x = randn({3, 4, 2});
  auto layer = make<AlphaDropout>();
  layer->eval();
  EXPECT_TRUE((*layer)(x).is_same(x));
  EXPECT_TRUE((*make<FeatureAlphaDropout>({.p = 0.0}))(x).is_same(x));
  EXPECT_TRUE(alpha_dropout(x).is_same(x));  // torch's functional default: training=False
  EXPECT_TRUE(feature_alpha_dropout(x, 0.7).is_same(x));
  EXPECT_TRUE(dropout3d(x, 0.5, /*training=*/false).is_same(x));
  // Empty: returned before any rank or dtype check, as torch.
  const Tensor empty1d = zeros({0});
  EXPECT_TRUE(feature_alpha_dropout(empty1d, 0.5, true).is_same(empty1d));
  const Tensor ints = full({2, 3}, Scalar(int64_t{4}), {.dtype = DType::int64});
  EXPECT_TRUE(alpha_dropout(ints, 0.5, false).is_same(ints));

  // p == 1: the input times 0 (torch 1.13's multiply by zeros({})), so -x gives -0 and inf/NaN
  // give NaN; the gradient is 0. No rank check first: a 1-D input to the feature form is fine.
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor v = from_vector<double>({-1.5, 2.0, inf, -inf, std::nan(""), -0.0, 0.0}).to(dt);
    v.set_requires_grad(true);
    const double nan = std::nan("");
    const std::vector<double> want = {-0.0, 0.0, nan, nan, nan, -0.0, 0.0};
    for (const Tensor& y : {alpha_dropout(v, 1.0, true), feature_alpha_dropout(v, 1.0, true),
                            (*make<AlphaDropout>({.p = 1.0}))(v)}) {
      ASSERT_EQ(y.dtype(), dt);
      const auto got = y.to(DType::float64).to_vector<double>();
      for (size_t i = 0; i < want.size(); ++i) {
        if (std::isnan(want[i])) {
          EXPECT_TRUE(std::isnan(got[i])) << i;
        } else {
          EXPECT_EQ(bits_of({got[i]}), bits_of({want[i]})) << i;
        }
      }
    }
  }
  // Integers at p == 1: zeros of the input's dtype, as torch.
  const Tensor z = alpha_dropout(ints, 1.0, true);
  EXPECT_EQ(z.dtype(), DType::int64);
  EXPECT_EQ(z.to_vector<int64_t>(), std::vector<int64_t>(6, 0));
  EXPECT_EQ(dropout3d(ints.reshape({1, 2, 3, 1, 1}), 1.0).to_vector<int64_t>(),
            std::vector<int64_t>(6, 0));
}

TEST(AlphaDropoutTorch, GradientAtPOneIsZero) {
  Tensor x = randn({2, 3}, {.dtype = DType::float64});
  x.set_requires_grad(true);
  sum(alpha_dropout(x, 1.0, true)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>(6, 0.0));
}

TEST(AlphaDropoutTorch, ZeroDimAlphaDropoutWorks) {
  Generator gen(3);
  const Tensor x = full({}, Scalar(2.0));
  const Tensor y = alpha_dropout(x, 0.5, true, false, &gen);
  EXPECT_EQ(y.dim(), 0);
  const double a = alpha_a(0.5);
  const float kept =
      static_cast<float>(2.0f * static_cast<float>(a)) + static_cast<float>(kAlpha * a * 0.5);
  const float dropped = -static_cast<float>(kAlpha * a) + static_cast<float>(kAlpha * a * 0.5);
  const float v = y.item<float>();
  EXPECT_TRUE(v == kept || v == dropped) << v;
}

// Dropout3d as torch 1.13's F.dropout3d: 5-D batched, 4-D unbatched, any other rank warns and is
// taken as unbatched (per element of dim 0; a 1-D input per element), 0-D refused when drawing.
TEST(AlphaDropoutTorch, Dropout3dRanksAndWarnings) {
  struct Row {
    Shape shape;
    Shape noise;  // the mask's shape in x's rank
    bool warns;
  };
  const std::vector<Row> rows = {
      {{2, 3, 2, 2, 2}, {2, 3, 1, 1, 1}, false},
      {{3, 2, 2, 2}, {3, 1, 1, 1}, false},
      {{4, 3, 2}, {4, 1, 1}, true},
      {{4, 3}, {4, 1}, true},
      {{10}, {10}, true},
      {{3, 2, 2, 1, 1, 2}, {3, 1, 1, 1, 1, 1}, true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(shape_str(r.shape));
    Generator gen(11), ref(11);
    const Tensor x = randn(r.shape, {.dtype = DType::float64}) + Scalar(10.0);
    auto layer = make<Dropout3d>({.p = 0.5, .generator = &gen});
    test::CapturedWarnings warnings;
    const Tensor y = (*layer)(x);
    const Tensor keep = lt(rand(r.noise, {.dtype = DType::float32}, &ref), Scalar(0.5));
    EXPECT_EQ(bits_of(y), bits_of(x * (keep.to(DType::float64) / Scalar(0.5))));
    layer->eval();
    EXPECT_TRUE((*layer)(x).is_same(x));
    const auto messages = warnings.messages();
    if (r.warns) {
      ASSERT_EQ(messages.size(), 2u);  // the training call and the eval call
      EXPECT_CONTAINS(messages[0], "dropout3d: Received a " + std::to_string(r.shape.size()) +
                                       "-D input to dropout3d, which is deprecated");
      EXPECT_CONTAINS(messages[0], "(i.e. 4D or 5D inputs).");
    } else {
      EXPECT_TRUE(messages.empty());
    }
  }
}

TEST(AlphaDropoutTorch, InPlace) {
  Generator gen(9), ref(9);
  const Tensor x0 = randn({2, 4, 1, 2, 2});
  for (int which = 0; which < 3; ++which) {
    SCOPED_TRACE(which);
    Tensor x = x0.clone();
    Tensor y;
    if (which == 0) y = (*make<Dropout3d>({.p = 0.5, .generator = &gen, .inplace = true}))(x);
    if (which == 1) y = alpha_dropout(x, 0.5, true, /*inplace=*/true, &gen);
    if (which == 2) y = feature_alpha_dropout(x, 0.5, true, /*inplace=*/true, &gen);
    EXPECT_TRUE(y.is_same(x));
    const Shape noise = which == 1 ? Shape{2, 4, 1, 2, 2} : Shape{2, 4, 1, 1, 1};
    const Tensor keep = lt(rand(noise, {.dtype = DType::float32}, &ref), Scalar(0.5));
    EXPECT_EQ(bits_of(x),
              bits_of(dropout_internal::apply_dropout_noise(x0, keep, 0.5, which != 0, false)));
  }
  // Unbatched Dropout3d in place writes x (C, D, H, W) itself and keeps its shape.
  Tensor u = x0[0].clone();
  const Tensor v = (*make<Dropout3d>({.p = 0.5, .generator = &gen, .inplace = true}))(u);
  EXPECT_TRUE(v.is_same(u));
  EXPECT_EQ(u.sizes(), (Shape{4, 1, 2, 2}));
  // A leaf that requires grad cannot be written, as torch (p == 1 included); eval returns it.
  Tensor leaf = randn({2, 3});
  leaf.set_requires_grad(true);
  EXPECT_CONTAINS(thrown<Error>([&] { alpha_dropout(leaf, 0.5, true, true); }),
                  "a leaf Variable that requires grad is being used in an in-place operation");
  EXPECT_CONTAINS(thrown<Error>([&] { alpha_dropout(leaf, 1.0, true, true); }),
                  "a leaf Variable that requires grad is being used in an in-place operation");
  EXPECT_TRUE(alpha_dropout(leaf, 0.5, false, true).is_same(leaf));
  // torch 1.13's AlphaDropout and FeatureAlphaDropout modules ignore inplace (their forward calls
  // the functional without it): x keeps its values, and a leaf that requires grad is taken.
  for (bool feature : {false, true}) {
    SCOPED_TRACE(feature);
    Tensor x = x0.clone();
    Generator g(5);
    const Tensor y =
        feature ? (*make<FeatureAlphaDropout>({.p = 0.5, .generator = &g, .inplace = true}))(x)
                : (*make<AlphaDropout>({.p = 0.5, .generator = &g, .inplace = true}))(x);
    EXPECT_FALSE(y.is_same(x));
    EXPECT_EQ(bits_of(x), bits_of(x0));
    EXPECT_NE(bits_of(y), bits_of(x0));
    const Tensor z = (*make<AlphaDropout>({.p = 0.5, .inplace = true}))(leaf);
    EXPECT_TRUE(z.requires_grad());
  }
}

TEST(AlphaDropoutTorch, ReprAsTorch) {
  EXPECT_EQ(make<AlphaDropout>()->str(), "AlphaDropout(p=0.5, inplace=False)");
  EXPECT_EQ(make<FeatureAlphaDropout>({.p = 0.3})->str(),
            "FeatureAlphaDropout(p=0.3, inplace=False)");
  EXPECT_EQ(make<Dropout3d>({.p = 0.25, .inplace = true})->str(),
            "Dropout3d(p=0.25, inplace=True)");
  EXPECT_EQ(make<Dropout3d>()->str(), "Dropout3d(p=0.5, inplace=False)");
  EXPECT_EQ(make<AlphaDropout>({.p = 1e-7})->str(), "AlphaDropout(p=1e-07, inplace=False)");
  EXPECT_EQ(make<Dropout2d>({.p = 0.1, .inplace = true})->str(), "Dropout2d(p=0.1, inplace=True)");
  EXPECT_TRUE(make<AlphaDropout>()->state_dict().keys().empty());
}

TEST(AlphaDropoutTorch, ErrorsAsTorch) {
  const std::string range = "dropout probability has to be between 0 and 1, but got ";
  EXPECT_CONTAINS(thrown<ValueError>([] { make<AlphaDropout>({.p = 1.5}); }), range + "1.5");
  EXPECT_CONTAINS(thrown<ValueError>([] { make<FeatureAlphaDropout>({.p = -0.1}); }),
                  range + "-0.1");
  EXPECT_CONTAINS(thrown<ValueError>([] { make<Dropout3d>({.p = 2.0}); }), range + "2.0");
  EXPECT_CONTAINS(thrown<ValueError>([] { alpha_dropout(ones({2}), -0.1, true); }), range + "-0.1");
  // As torch, the probability is checked even in eval.
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    feature_alpha_dropout(ones({2, 2}), 1.5);
                  }),
                  range + "1.5");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    dropout3d(ones({1, 1, 1, 1, 1}), std::nan(""));
                  }),
                  range + "nan");
  // Feature dropout needs 2 dimensions once it draws (torch: "Feature dropout requires at least
  // 2 dimensions in the input"); dropout3d unsqueezes, so only a 0-D input fails there.
  EXPECT_CONTAINS(thrown<ShapeError>([] { feature_alpha_dropout(ones({3}), 0.5, true); }),
                  "feature_alpha_dropout: feature dropout requires at least 2 dimensions in the "
                  "input, got shape (3,)");
  {
    test::CapturedWarnings quiet;
    EXPECT_CONTAINS(thrown<ShapeError>([] { dropout3d(full({}, Scalar(1.0)), 0.5); }),
                    "feature dropout requires at least 2 dimensions");
    EXPECT_EQ(quiet.messages().size(), 1u);
  }
  // An integer input cannot take the float mask (torch: "result type Float can't be cast to the
  // desired output type Long").
  EXPECT_CONTAINS(
      thrown<DTypeError>([] { alpha_dropout(ones({2}, {.dtype = DType::int64}), 0.5, true); }),
      "alpha_dropout: expects a float64, float32, float16 or bfloat16 input, got "
      "int64");
  EXPECT_CONTAINS(thrown<DTypeError>([] {
                    (*make<FeatureAlphaDropout>())(ones({2, 2}, {.dtype = DType::bool_}));
                  }),
                  "FeatureAlphaDropout: expects a float64, float32, float16 or bfloat16 input");
  EXPECT_CONTAINS(thrown<ValueError>([] { (*make<AlphaDropout>())(Tensor()); }),
                  "AlphaDropout: got an undefined tensor");
  EXPECT_CONTAINS(thrown<ValueError>([] { dropout3d(Tensor()); }),
                  "dropout3d: got an undefined tensor");
}

// Dropout2d in eval leaves a 1-D input alone (torch warns and returns it; the rank matters only
// when a mask is drawn), and its p == 1 zeroes an integer input rather than refusing it.
TEST(AlphaDropoutTorch, ChannelDropoutChecksInTorchsOrder) {
  test::CapturedWarnings quiet;
  auto layer = make<Dropout2d>();
  layer->eval();
  const Tensor x = ones({4});
  EXPECT_TRUE((*layer)(x).is_same(x));
  const Tensor ints = ones({1, 2, 2, 2}, {.dtype = DType::int64});
  EXPECT_EQ((*make<Dropout2d>({.p = 1.0}))(ints).to_vector<int64_t>(), std::vector<int64_t>(8, 0));
}

}  // namespace
}  // namespace fabric::nn
