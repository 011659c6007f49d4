// Layers and init: torch's initialisation bounds and statistics, layer outputs against direct op
// calls, option validation, losses and attention.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::nn {
namespace {

struct Stats {
  double mean = 0, std = 0, max_abs = 0;
};
Stats stats_of(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) {
    s.std += (x - s.mean) * (x - s.mean);
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  s.std = std::sqrt(s.std / static_cast<double>(v.size() - 1));
  return s;
}

TEST(Init, FansAndGains) {
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(empty({8, 3})), (std::pair<int64_t, int64_t>{3, 8}));
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(empty({16, 4, 5, 5})),
            (std::pair<int64_t, int64_t>{100, 400}));
  EXPECT_THROW(init::calculate_fan_in_and_fan_out(empty({8})), ValueError);
  EXPECT_DOUBLE_EQ(init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain("leaky_relu"), std::sqrt(2.0 / (1 + 0.01 * 0.01)));
  EXPECT_DOUBLE_EQ(init::calculate_gain("conv2d"), 1.0);
  EXPECT_THROW(init::calculate_gain("swish"), ValueError);
}

TEST(Init, KaimingXavierTruncNormal) {
  Generator gen(1234);
  Tensor w = empty({256, 400});
  init::kaiming_uniform_(w, 0.0, init::FanMode::fan_in, "relu", &gen);
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 400.0);
  Stats s = stats_of(w);
  EXPECT_LE(s.max_abs, bound);
  EXPECT_GT(s.max_abs, 0.99 * bound);
  EXPECT_NEAR(s.std, bound / std::sqrt(3.0), 0.01 * bound);
  init::kaiming_uniform_(w, 0.0, init::FanMode::fan_out, "relu", &gen);
  EXPECT_LE(stats_of(w).max_abs, std::sqrt(2.0) * std::sqrt(3.0 / 256.0));
  EXPECT_GT(stats_of(w).max_abs,
            std::sqrt(3.0 / 400.0) * std::sqrt(2.0));  // wider than the fan_in bound
  init::kaiming_normal_(w, 0.0, init::FanMode::fan_in, "relu", &gen);
  EXPECT_NEAR(stats_of(w).std, std::sqrt(2.0 / 400.0), 0.02 * std::sqrt(2.0 / 400.0));
  init::xavier_uniform_(w, 1.0, &gen);
  const double xb = std::sqrt(6.0 / (256 + 400));
  EXPECT_LE(stats_of(w).max_abs, xb);
  EXPECT_GT(stats_of(w).max_abs, 0.99 * xb);
  init::xavier_normal_(w, 2.0, &gen);
  EXPECT_NEAR(stats_of(w).std, 2.0 * std::sqrt(2.0 / 656.0), 0.03 * std::sqrt(2.0 / 656.0) * 2.0);
  init::trunc_normal_(w, 0.5, 1.0, -1.0, 1.5, &gen);
  s = stats_of(w);
  std::vector<float> v = w.to_vector<float>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), -1.0f);
  EXPECT_LE(*std::max_element(v.begin(), v.end()), 1.5f);
  // Mean of N(0.5, 1) truncated to [-1, 1.5]: mu + sigma (phi(a') - phi(b')) / (Phi(b') - Phi(a')).
  auto phi = [](double x) { return std::exp(-x * x / 2) / std::sqrt(2 * M_PI); };
  auto Phi = [](double x) { return 0.5 * (1 + std::erf(x / std::sqrt(2.0))); };
  const double expect_mean = 0.5 + (phi(-1.5) - phi(1.0)) / (Phi(1.0) - Phi(-1.5));
  EXPECT_NEAR(s.mean, expect_mean, 0.01);
  // An empty interval a == b fills with a, as torch's clamp_ leaves it.
  init::trunc_normal_(w, 0.0, 1.0, 1.0, 1.0, &gen);
  EXPECT_EQ(stats_of(w).mean, 1.0);
  EXPECT_EQ(stats_of(w).max_abs, 1.0);
  init::constant_(w, 3.0);
  EXPECT_EQ(stats_of(w).max_abs, 3.0);
  // The same seed gives the same values.
  Generator g1(7), g2(7);
  Tensor a = empty({10, 10}), b = empty({10, 10});
  init::kaiming_uniform_(a, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", &g1);
  init::kaiming_uniform_(b, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", &g2);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_THROW(init::normal_(empty({2}, {.dtype = DType::int64})), DTypeError);
}

TEST(Linear, TorchInitBoundsAndForward) {
  Linear fc({.in_features = 64, .out_features = 300});
  EXPECT_EQ(fc.weight.sizes(), (Shape{300, 64}));
  EXPECT_EQ(fc.bias.sizes(), (Shape{300}));
  // kaiming_uniform_(a = sqrt(5)): bound = sqrt(1/3) * sqrt(3 / fan_in) = 1/sqrt(fan_in).
  const double bound = 1.0 / 8.0;
  Stats w = stats_of(fc.weight), b = stats_of(fc.bias);
  EXPECT_LE(w.max_abs, bound);
  EXPECT_GT(w.max_abs, 0.99 * bound);
  EXPECT_NEAR(w.mean, 0.0, 0.01 * bound);
  EXPECT_NEAR(w.std, bound / std::sqrt(3.0), 0.02 * bound);
  EXPECT_LE(b.max_abs, bound);
  EXPECT_GT(b.max_abs, 0.9 * bound);
  Tensor x = randn({2, 5, 64});
  Tensor y = fc(x);
  EXPECT_EQ(y.sizes(), (Shape{2, 5, 300}));
  std::vector<float> got = y.to_vector<float>(),
                     want = linear(x, fc.weight, fc.bias).to_vector<float>();
  EXPECT_EQ(got, want);
  Linear nob({.in_features = 4, .out_features = 2, .bias = false});
  EXPECT_FALSE(nob.bias.defined());
  EXPECT_EQ(nob.named_parameters().size(), 1u);
  EXPECT_THROW(Linear({.in_features = -1, .out_features = 2}), ValueError);
  EXPECT_THROW(fc(randn({3, 63})), ShapeError);
}

TEST(Conv2d, TorchInitAndShapes) {
  Conv2d conv({.in_channels = 4, .out_channels = 8, .kernel_size = {3, 5}, .padding = {1, 2}});
  EXPECT_EQ(conv.weight.sizes(), (Shape{8, 4, 3, 5}));
  const double bound = 1.0 / std::sqrt(4.0 * 15.0);
  EXPECT_LE(stats_of(conv.weight).max_abs, bound);
  EXPECT_GT(stats_of(conv.weight).max_abs, 0.95 * bound);
  EXPECT_LE(stats_of(conv.bias).max_abs, bound);
  Tensor y = conv(randn({2, 4, 9, 11}));
  EXPECT_EQ(y.sizes(), (Shape{2, 8, 9, 11}));
  Conv2d grouped({.in_channels = 4,
                  .out_channels = 6,
                  .kernel_size = 1,
                  .stride = 2,
                  .groups = 2,
                  .bias = false});
  EXPECT_EQ(grouped.weight.sizes(), (Shape{6, 2, 1, 1}));
  EXPECT_EQ(grouped(randn({1, 4, 8, 8})).sizes(), (Shape{1, 6, 4, 4}));
  EXPECT_THROW(Conv2d({.in_channels = 3, .out_channels = 6, .kernel_size = 3, .groups = 2}),
               ValueError);
  MaxPool2d pool({.kernel_size = 2});
  EXPECT_EQ(pool(randn({2, 3, 8, 6})).sizes(), (Shape{2, 3, 4, 3}));
  MaxPool2d pool3({.kernel_size = 3, .stride = 1, .padding = 1});
  EXPECT_EQ(pool3(randn({1, 1, 5, 5})).sizes(), (Shape{1, 1, 5, 5}));
}

// Conv1d, ConvTranspose2d, Conv3d, ConvTranspose1d and ConvTranspose3d as torch 1.13 makes them:
// weight layout, init bounds from torch's fan_in of the stored weight (dim 1 times the kernel:
// out/groups * k for a transposed conv), reprs, state_dict keys, output shapes (batched and
// unbatched), and the functional op's values.
TEST(ConvLayers, Conv1dAndConvTranspose2dInitShapesReprAndKeys) {
  struct Row {
    std::shared_ptr<Module> layer;
    std::string repr;
    Shape weight;
    int64_t fan_in;
    std::vector<std::string> keys;
    Shape x, want;
    std::function<Tensor(const Tensor& x, const Tensor& w, const Tensor& b)> functional;
  };
  const std::vector<Row> rows = {
      {make<Conv1d>({.in_channels = 4,
                     .out_channels = 6,
                     .kernel_size = 3,
                     .stride = 2,
                     .padding = 1,
                     .groups = 2,
                     .bias = false}),
       "Conv1d(4, 6, kernel_size=(3,), stride=(2,), padding=(1,), groups=2, bias=False)",
       {6, 2, 3},
       6,
       {"weight"},
       {2, 4, 9},
       {2, 6, 5},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv1d(x, w, b, 2, 1, 1, 2);
       }},
      {make<Conv1d>({.in_channels = 3, .out_channels = 8, .kernel_size = 5, .dilation = 2}),
       "Conv1d(3, 8, kernel_size=(5,), stride=(1,), dilation=(2,))",
       {8, 3, 5},
       15,
       {"weight", "bias"},
       {3, 20},
       {8, 12},
       [](const Tensor& x, const Tensor& w, const Tensor& b) { return conv1d(x, w, b, 1, 0, 2); }},
      {make<ConvTranspose2d>({.in_channels = 4,
                              .out_channels = 6,
                              .kernel_size = {3, 5},
                              .stride = 2,
                              .padding = {1, 2},
                              .output_padding = 1,
                              .groups = 2}),
       "ConvTranspose2d(4, 6, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), "
       "output_padding=(1, 1), groups=2)",
       {4, 3, 3, 5},
       45,
       {"weight", "bias"},
       {2, 4, 5, 6},
       {2, 6, 10, 12},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose2d(x, w, b, {2}, {1, 2}, {1}, 2);
       }},
      {make<ConvTranspose2d>(
           {.in_channels = 3, .out_channels = 2, .kernel_size = 2, .stride = 2, .bias = false}),
       "ConvTranspose2d(3, 2, kernel_size=(2, 2), stride=(2, 2), bias=False)",
       {3, 2, 2, 2},
       8,
       {"weight"},
       {3, 4, 4},
       {2, 8, 8},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose2d(x, w, b, {2});
       }},
      {make<ConvTranspose2d>({.in_channels = 2,
                              .out_channels = 4,
                              .kernel_size = 3,
                              .output_padding = 1,
                              .dilation = 2}),
       "ConvTranspose2d(2, 4, kernel_size=(3, 3), stride=(1, 1), dilation=(2, 2), "
       "output_padding=(1, 1))",
       {2, 4, 3, 3},
       36,
       {"weight", "bias"},
       {1, 2, 5, 5},
       {1, 4, 10, 10},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose2d(x, w, b, {1}, {0}, {1}, 1, {2});
       }},
      {make<Conv3d>({.in_channels = 2, .out_channels = 4, .kernel_size = 3}),
       "Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1))",
       {4, 2, 3, 3, 3},
       54,
       {"weight", "bias"},
       {2, 2, 5, 4, 6},
       {2, 4, 3, 2, 4},
       [](const Tensor& x, const Tensor& w, const Tensor& b) { return conv3d(x, w, b); }},
      {make<Conv3d>({.in_channels = 4,
                     .out_channels = 6,
                     .kernel_size = {1, 3, 2},
                     .stride = {1, 2, 2},
                     .padding = {0, 1, 1},
                     .dilation = {2, 1, 1},
                     .groups = 2,
                     .bias = false}),
       "Conv3d(4, 6, kernel_size=(1, 3, 2), stride=(1, 2, 2), padding=(0, 1, 1), "
       "dilation=(2, 1, 1), groups=2, bias=False)",
       {6, 2, 1, 3, 2},
       12,
       {"weight"},
       {4, 3, 5, 5},
       {6, 3, 3, 3},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv3d(x, w, b, {1, 2, 2}, {0, 1, 1}, {2, 1, 1}, 2);
       }},
      {make<ConvTranspose1d>({.in_channels = 2,
                              .out_channels = 3,
                              .kernel_size = 3,
                              .stride = 2,
                              .output_padding = 1}),
       "ConvTranspose1d(2, 3, kernel_size=(3,), stride=(2,), output_padding=(1,))",
       {2, 3, 3},
       9,
       {"weight", "bias"},
       {2, 2, 5},
       {2, 3, 12},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose1d(x, w, b, 2, 0, 1);
       }},
      {make<ConvTranspose1d>({.in_channels = 4,
                              .out_channels = 2,
                              .kernel_size = 2,
                              .padding = 1,
                              .groups = 2,
                              .bias = false,
                              .dilation = 3}),
       "ConvTranspose1d(4, 2, kernel_size=(2,), stride=(1,), padding=(1,), dilation=(3,), "
       "groups=2, bias=False)",
       {4, 1, 2},
       2,
       {"weight"},
       {4, 6},
       {2, 7},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose1d(x, w, b, 1, 1, 0, 2, 3);
       }},
      {make<ConvTranspose3d>({.in_channels = 4,
                              .out_channels = 6,
                              .kernel_size = {2, 3, 3},
                              .stride = 2,
                              .padding = {0, 1, 1},
                              .output_padding = {1, 0, 1},
                              .groups = 2}),
       "ConvTranspose3d(4, 6, kernel_size=(2, 3, 3), stride=(2, 2, 2), padding=(0, 1, 1), "
       "output_padding=(1, 0, 1), groups=2)",
       {4, 3, 2, 3, 3},
       54,
       {"weight", "bias"},
       {1, 4, 2, 3, 3},
       {1, 6, 5, 5, 6},
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return conv_transpose3d(x, w, b, {2}, {0, 1, 1}, {1, 0, 1}, 2);
       }},
      {make<ConvTranspose3d>({.in_channels = 2, .out_channels = 2, .kernel_size = 2}),
       "ConvTranspose3d(2, 2, kernel_size=(2, 2, 2), stride=(1, 1, 1))",
       {2, 2, 2, 2, 2},
       16,
       {"weight", "bias"},
       {2, 3, 2, 2},
       {2, 4, 3, 3},
       [](const Tensor& x, const Tensor& w, const Tensor& b) { return conv_transpose3d(x, w, b); }},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    EXPECT_EQ(r.layer->str(), r.repr);
    const StateDict state = r.layer->state_dict();
    EXPECT_EQ(state.keys(), r.keys);
    const Tensor& w = state.at("weight");
    EXPECT_EQ(w.sizes(), r.weight);
    // kaiming_uniform_(a = sqrt(5)) and the bias both give U(+-1/sqrt(fan_in)).
    const double bound = 1.0 / std::sqrt(static_cast<double>(r.fan_in));
    EXPECT_LE(stats_of(w).max_abs, bound);
    EXPECT_GT(stats_of(w).max_abs, 0.5 * bound);
    const Tensor b = state.contains("bias") ? state.at("bias") : Tensor();
    if (b.defined()) EXPECT_LE(stats_of(b).max_abs, bound);
    Tensor x = randn(r.x);
    Tensor y = (*r.layer)(x);
    EXPECT_EQ(y.sizes(), r.want);
    EXPECT_EQ(y.to_vector<float>(), r.functional(x, w, b).to_vector<float>());
  }
  EXPECT_THROW(Conv1d({.in_channels = 3, .out_channels = 6, .kernel_size = 3, .groups = 2}),
               ValueError);
  EXPECT_THROW(Conv1d({.in_channels = 3, .out_channels = 6, .kernel_size = 0}), ValueError);
  // output_padding must be below stride or dilation (torch finds this only in forward).
  EXPECT_THROW(ConvTranspose2d({.in_channels = 2,
                                .out_channels = 2,
                                .kernel_size = 3,
                                .stride = 2,
                                .output_padding = {0, 2}}),
               ValueError);
  EXPECT_THROW(
      ConvTranspose2d({.in_channels = 4, .out_channels = 3, .kernel_size = 3, .groups = 2}),
      ValueError);
  EXPECT_THROW(Conv3d({.in_channels = 3, .out_channels = 4, .kernel_size = 3, .groups = 2}),
               ValueError);
  EXPECT_THROW(Conv3d({.in_channels = 2, .out_channels = 4, .kernel_size = {3, 0, 3}}), ValueError);
  EXPECT_THROW(ConvTranspose1d({.in_channels = 2,
                                .out_channels = 2,
                                .kernel_size = 3,
                                .stride = 2,
                                .output_padding = 2}),
               ValueError);
  EXPECT_THROW(ConvTranspose3d({.in_channels = 2,
                                .out_channels = 2,
                                .kernel_size = 3,
                                .stride = {2, 1, 2},
                                .output_padding = {1, 1, 0}}),
               ValueError);
}

// Reprs as torch 1.13 prints them (one size stays one number); any input size pools to the output
// size; the module is the functional op.
TEST(AdaptiveAvgPool2d, ReprShapesAndFunctional) {
  struct Row {
    std::vector<int64_t> output_size;
    Shape x, want;
    std::string repr;
  };
  const std::vector<Row> rows = {
      {{1, 1}, {2, 8, 7, 5}, {2, 8, 1, 1}, "AdaptiveAvgPool2d(output_size=(1, 1))"},
      {{5}, {2, 3, 9, 4}, {2, 3, 5, 5}, "AdaptiveAvgPool2d(output_size=5)"},
      {{2, 3}, {4, 7, 7}, {4, 2, 3}, "AdaptiveAvgPool2d(output_size=(2, 3))"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    auto pool = make<AdaptiveAvgPool2d>({.output_size = r.output_size});
    EXPECT_EQ(pool->str(), r.repr);
    Tensor x = randn(r.x);
    Tensor y = (*pool)(x);
    EXPECT_EQ(y.sizes(), r.want);
    EXPECT_EQ(y.to_vector<float>(),
              nn::functional::adaptive_avg_pool2d(x, r.output_size).to_vector<float>());
    EXPECT_TRUE(pool->named_parameters().empty());
  }
  EXPECT_THROW(AdaptiveAvgPool2d({.output_size = {1, 1, 1}}), ValueError);
  EXPECT_THROW(AdaptiveAvgPool2d({.output_size = {-1}}), ValueError);
  EXPECT_THROW(AdaptiveAvgPool2d({.output_size = {}}), ValueError);
}

TEST(Embedding, LookupInitAndPadding) {
  Embedding emb({.num_embeddings = 1000, .embedding_dim = 16});
  Stats s = stats_of(emb.weight);
  EXPECT_NEAR(s.mean, 0.0, 0.03);
  EXPECT_NEAR(s.std, 1.0, 0.03);
  Tensor idx = from_vector<int64_t>({3, 999, 3, 0}, {2, 2});
  Tensor y = emb(idx);
  EXPECT_EQ(y.sizes(), (Shape{2, 2, 16}));
  EXPECT_EQ(y.select(0, 0).select(0, 0).to_vector<float>(),
            emb.weight.select(0, 3).to_vector<float>());

  Embedding pad({.num_embeddings = 5, .embedding_dim = 3, .padding_idx = -1});
  EXPECT_EQ(pad.weight.select(0, 4).to_vector<float>(), std::vector<float>(3, 0.0f));
  Tensor ids = from_vector<int64_t>({4, 1, 4, 2});
  sum(pad(ids)).backward();
  std::vector<float> g = pad.weight.grad().to_vector<float>();
  EXPECT_EQ(std::vector<float>(g.begin() + 12, g.end()),
            std::vector<float>(3, 0.0f));  // no gradient to the pad row
  EXPECT_EQ(std::vector<float>(g.begin() + 3, g.begin() + 6), std::vector<float>(3, 1.0f));
  EXPECT_THROW(Embedding({.num_embeddings = 5, .embedding_dim = 3, .padding_idx = 5}), IndexError);
}

TEST(Norms, LayerNormAndRMSNorm) {
  LayerNorm ln({.normalized_shape = {8}});
  EXPECT_EQ(ln.weight.to_vector<float>(), std::vector<float>(8, 1.0f));
  EXPECT_EQ(ln.bias.to_vector<float>(), std::vector<float>(8, 0.0f));
  Tensor x = randn({3, 8});
  std::vector<float> y = ln(x).to_vector<float>(), xv = x.to_vector<float>();
  for (int r = 0; r < 3; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < 8; ++c) m += xv[r * 8 + c];
    m /= 8;
    for (int c = 0; c < 8; ++c) v += (xv[r * 8 + c] - m) * (xv[r * 8 + c] - m);
    v /= 8;
    for (int c = 0; c < 8; ++c)
      EXPECT_NEAR(y[r * 8 + c], (xv[r * 8 + c] - m) / std::sqrt(v + 1e-5), 1e-4);
  }
  LayerNorm nobias({.normalized_shape = {8}, .bias = false});
  EXPECT_EQ(nobias.named_parameters().size(), 1u);
  LayerNorm noaffine({.normalized_shape = {8}, .elementwise_affine = false});
  EXPECT_TRUE(noaffine.named_parameters().empty());
  EXPECT_EQ(noaffine(x).to_vector<float>(), y);

  RMSNorm rms({.normalized_shape = {8}, .eps = 1e-6});
  std::vector<float> r = rms(x).to_vector<float>();
  for (int row = 0; row < 3; ++row) {
    double ms = 0;
    for (int c = 0; c < 8; ++c) ms += xv[row * 8 + c] * xv[row * 8 + c];
    ms /= 8;
    for (int c = 0; c < 8; ++c)
      EXPECT_NEAR(r[row * 8 + c], xv[row * 8 + c] / std::sqrt(ms + 1e-6), 1e-4);
  }
  EXPECT_THROW(LayerNorm({.normalized_shape = {}}), ValueError);
}

TEST(Activations, MatchOps) {
  Tensor x = randn({4, 5});
  EXPECT_EQ(ReLU()(x).to_vector<float>(), relu(x).to_vector<float>());
  EXPECT_EQ(GELU()(x).to_vector<float>(), gelu(x).to_vector<float>());
  EXPECT_EQ(GELU({.approximate = "tanh"})(x).to_vector<float>(),
            gelu(x, "tanh").to_vector<float>());
  EXPECT_EQ(SiLU()(x).to_vector<float>(), silu(x).to_vector<float>());
  EXPECT_EQ(Tanh()(x).to_vector<float>(), tanh(x).to_vector<float>());
  EXPECT_EQ(Flatten()(randn({2, 3, 4})).sizes(), (Shape{2, 12}));
  EXPECT_EQ(Flatten({.start_dim = 0})(randn({2, 3, 4})).sizes(), (Shape{24}));
}

TEST(Losses, ModulesMatchOps) {
  Tensor logits = randn({6, 4});
  Tensor target = from_vector<int64_t>({0, 3, -100, 2, 1, 1});
  CrossEntropyLoss ce;
  EXPECT_FLOAT_EQ(ce(logits, target).item<float>(), cross_entropy(logits, target).item<float>());
  CrossEntropyLoss ce_sum({.reduction = "sum", .label_smoothing = 0.1});
  EXPECT_FLOAT_EQ(ce_sum(logits, target).item<float>(),
                  cross_entropy(logits, target, -100, "sum", 0.1).item<float>());
  NLLLoss nll({.ignore_index = 1});
  Tensor lp = log_softmax(logits, 1);
  EXPECT_FLOAT_EQ(nll(lp, target.clone().fill_(2)).item<float>(),
                  nll_loss(lp, full({6}, 2, {.dtype = DType::int64}), 1).item<float>());
  MSELoss mse({.reduction = "none"});
  Tensor a = randn({3}), b = randn({3});
  EXPECT_EQ(mse(a, b).to_vector<float>(), mse_loss(a, b, "none").to_vector<float>());
  EXPECT_THROW(CrossEntropyLoss({.reduction = "avg"}), ValueError);
  EXPECT_THROW(CrossEntropyLoss({.label_smoothing = 2.0}), ValueError);
  // nn::cross_entropy and nn::functional::cross_entropy are the op.
  EXPECT_FLOAT_EQ(nn::cross_entropy(logits, target).item<float>(),
                  nn::functional::cross_entropy(logits, target).item<float>());
}

// The elementwise loss modules: forward is the functional with the module's options (a BCE
// weight is a buffer, as in torch), the printout names the options, bad options raise.
TEST(Losses, ElementwiseModulesMatchOpsAndPrint) {
  const Tensor x = randn({4, 3}), y = randn({4, 3});
  const Tensor p = sigmoid(x), q = sigmoid(y), w = rand({3}), pw = rand({3});
  const Tensor lp = log_softmax(x, 1), lq = log_softmax(y, 1);
  auto same = [](const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.sizes(), b.sizes());
    EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  };
  struct Row {
    std::shared_ptr<LossModule> module;
    Tensor got_input, got_target;
    Tensor want;
    std::string repr;
  };
  const std::vector<Row> rows = {
      {std::make_shared<L1Loss>(), x, y, l1_loss(x, y), "L1Loss()"},
      {std::make_shared<L1Loss>(L1LossOptions{.reduction = "none"}), x, y, l1_loss(x, y, "none"),
       "L1Loss()"},  // torch's losses print no options
      {std::make_shared<SmoothL1Loss>(SmoothL1LossOptions{.reduction = "sum", .beta = 0.5}), x, y,
       smooth_l1_loss(x, y, "sum", 0.5), "SmoothL1Loss()"},
      {std::make_shared<HuberLoss>(HuberLossOptions{.delta = 2.5}), x, y,
       huber_loss(x, y, "mean", 2.5), "HuberLoss()"},
      {std::make_shared<BCELoss>(BCELossOptions{.weight = w, .reduction = "sum"}), p, q,
       binary_cross_entropy(p, q, w, "sum"), "BCELoss()"},
      {std::make_shared<BCEWithLogitsLoss>(
           BCEWithLogitsLossOptions{.weight = w, .reduction = "none", .pos_weight = pw}),
       x, q, binary_cross_entropy_with_logits(x, q, w, pw, "none"), "BCEWithLogitsLoss()"},
      {std::make_shared<KLDivLoss>(KLDivLossOptions{.reduction = "batchmean"}), lp, q,
       kl_div(lp, q, "batchmean"), "KLDivLoss()"},
      {std::make_shared<KLDivLoss>(KLDivLossOptions{.reduction = "sum", .log_target = true}), lp,
       lq, kl_div(lp, lq, "sum", true), "KLDivLoss()"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    same((*r.module)(r.got_input, r.got_target), r.want);
    EXPECT_EQ(r.module->str(), r.repr);
  }
  // nn::functional exposes the ops.
  same(nn::functional::kl_div(lp, q, "batchmean"), kl_div(lp, q, "batchmean"));
  same(nn::binary_cross_entropy_with_logits(x, q), binary_cross_entropy_with_logits(x, q));
  // Weights are buffers (so they follow to()); without one there is none.
  BCEWithLogitsLoss weighted({.weight = w, .pos_weight = pw});
  EXPECT_EQ(weighted.named_buffers().size(), 2u);
  EXPECT_EQ(BCELoss().named_buffers().size(), 0u);
  EXPECT_THROW(L1Loss({.reduction = "avg"}), ValueError);
  EXPECT_THROW(SmoothL1Loss({.beta = -1}), ValueError);
  EXPECT_THROW(HuberLoss({.delta = 0}), ValueError);
  EXPECT_THROW(BCELoss({.reduction = "batchmean"}), ValueError);
  EXPECT_THROW(BCELoss({.weight = ones({3}, {.dtype = DType::int64})}), DTypeError);
  EXPECT_THROW(KLDivLoss({.reduction = "avg"}), ValueError);
  EXPECT_NO_THROW(KLDivLoss({.reduction = "batchmean"}));
}

TEST(Attention, SdpaMatchesNaiveAndMasksTheFuture) {
  const int64_t B = 2, H = 3, T = 5, E = 4;
  Tensor q = randn({B, H, T, E}, {.dtype = DType::float64});
  Tensor k = randn({B, H, T, E}, {.dtype = DType::float64});
  Tensor v = randn({B, H, T, E}, {.dtype = DType::float64});
  std::vector<double> y =
      scaled_dot_product_attention(q, k, v, Tensor(), 0.0, true).to_vector<double>();
  std::vector<double> qv = q.to_vector<double>(), kv = k.to_vector<double>(),
                      vv = v.to_vector<double>();
  for (int64_t bh = 0; bh < B * H; ++bh) {
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> w(static_cast<size_t>(i + 1));
      double mx = -1e300, tot = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0;
        for (int64_t e = 0; e < E; ++e) s += qv[(bh * T + i) * E + e] * kv[(bh * T + j) * E + e];
        w[j] = s / 2.0;  // 1/sqrt(E)
        mx = std::max(mx, w[j]);
      }
      for (auto& x : w) tot += (x = std::exp(x - mx));
      for (int64_t e = 0; e < E; ++e) {
        double out = 0;
        for (int64_t j = 0; j <= i; ++j) out += w[j] / tot * vv[(bh * T + j) * E + e];
        EXPECT_NEAR(y[(bh * T + i) * E + e], out, 1e-12);
      }
    }
  }
  // An explicit bool mask gives the same as is_causal.
  std::vector<double> y2 =
      scaled_dot_product_attention(q, k, v, causal_mask(T, T)).to_vector<double>();
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], y2[i], 1e-12);
  EXPECT_THROW(scaled_dot_product_attention(q, k.narrow(3, 0, 3), v), ShapeError);
}

// Fused where it may be, the composition where a mask or dropout asks for it or the switch is off;
// both give the same values and gradients.
TEST(Attention, FusedWhereAllowedAndTheSwitchTurnsItOff) {
  Tensor q = randn({2, 3, 6, 4}, {.dtype = DType::float64}).set_requires_grad(true);
  Tensor k = randn({2, 3, 7, 4}, {.dtype = DType::float64}).set_requires_grad(true);
  Tensor v = randn({2, 3, 7, 5}, {.dtype = DType::float64}).set_requires_grad(true);
  const Tensor g = randn({2, 3, 6, 5}, {.dtype = DType::float64});
  auto run = [&] {
    Tensor y = scaled_dot_product_attention(q, k, v, Tensor(), 0.0, true);
    const std::string fn = grad_fn_name(y);
    y.backward(g);
    std::vector<std::vector<double>> r{y.to_vector<double>()};
    for (const Tensor* t : {&q, &k, &v}) {
      r.push_back(t->grad().to_vector<double>());
      zero_grad(*t);
    }
    return std::make_pair(fn, r);
  };
  ASSERT_TRUE(fused_attention_enabled());
  const auto [fused_fn, fused] = run();
  EXPECT_EQ(fused_fn, "ScaledDotProductAttentionBackward0");
  set_fused_attention(false);
  const auto [composed_fn, composed] = run();
  set_fused_attention(true);
  // The composition ends with a batched matmul, whose node torch 1.13 names UnsafeViewBackward0.
  EXPECT_EQ(composed_fn, "UnsafeViewBackward0");
  for (size_t i = 0; i < fused.size(); ++i)
    for (size_t j = 0; j < fused[i].size(); ++j) EXPECT_NEAR(fused[i][j], composed[i][j], 1e-12);
  // A mask takes the composition; so does dropout_p = 1 (everything dropped).
  EXPECT_EQ(grad_fn_name(scaled_dot_product_attention(q, k, v, causal_mask(6, 7))),
            "UnsafeViewBackward0");
  EXPECT_EQ(grad_fn_name(scaled_dot_product_attention(q, k, v, Tensor(), 1.0)),
            "UnsafeViewBackward0");
}

// Dropout inside the fused kernel draws the mask the composition's dropout op draws from the same
// generator state (tensor/attention_kernels.h), so the two agree to rounding, gradients included,
// in float64 and float32, causal or not, across the kernel's 64-row blocks and with S not a
// multiple of the 4 values of a Philox block; the generator advances by the same draw.
TEST(Attention, FusedDropoutDrawsTheCompositionsMask) {
  for (const DType dt : {DType::float64, DType::float32}) {
    for (const bool causal : {true, false}) {
      const int64_t L = 70, S = causal ? 70 : 45;
      Tensor q = randn({2, 3, L, 8}, {.dtype = dt}).set_requires_grad(true);
      Tensor k = randn({2, 3, S, 8}, {.dtype = dt}).set_requires_grad(true);
      Tensor v = randn({2, 3, S, 5}, {.dtype = dt}).set_requires_grad(true);
      const Tensor g = randn({2, 3, L, 5}, {.dtype = dt});
      auto run = [&](bool fused) {
        Generator gen(1234);
        const Tensor mask = fused ? Tensor() : (causal ? causal_mask(L, S) : ones({L, S}, {.dtype = DType::bool_}));
        Tensor y = scaled_dot_product_attention(q, k, v, mask, 0.3, fused && causal, std::nullopt, &gen);
        EXPECT_EQ(grad_fn_name(y),
                  fused ? "ScaledDotProductAttentionBackward0" : "UnsafeViewBackward0");
        y.backward(g);
        std::vector<std::vector<double>> r{y.to_vector<double>()};
        for (const Tensor* t : {&q, &k, &v}) {
          r.push_back(t->grad().to_vector<double>());
          zero_grad(*t);
        }
        return std::make_pair(gen.offset(), r);
      };
      const auto [fused_offset, fused] = run(true);
      const auto [composed_offset, composed] = run(false);
      EXPECT_EQ(fused_offset, composed_offset);
      const double tol = dt == DType::float64 ? 1e-12 : 2e-5;
      for (size_t i = 0; i < fused.size(); ++i)
        for (size_t j = 0; j < fused[i].size(); ++j)
          ASSERT_NEAR(fused[i][j], composed[i][j], tol * std::max(1.0, std::abs(composed[i][j])))
              << dtype_name(dt) << (causal ? " causal" : "") << " tensor " << i << " element " << j;
      // Something was dropped: the output is not the dropout-free one.
      NoGradGuard no_grad;
      const std::vector<double> plain = scaled_dot_product_attention(q, k, v, Tensor(), 0.0, causal).to_vector<double>();
      double moved = 0;
      for (size_t j = 0; j < plain.size(); ++j) moved = std::max(moved, std::abs(plain[j] - fused[0][j]));
      EXPECT_GT(moved, 0.1);
    }
  }
}

TEST(Attention, CausalSelfAttentionModule) {
  CausalSelfAttention attn({.n_embd = 12, .n_head = 3, .block_size = 8});
  EXPECT_EQ(attn.c_attn->weight.sizes(), (Shape{36, 12}));
  EXPECT_EQ(attn.state_dict().keys(), (std::vector<std::string>{"c_attn.weight", "c_attn.bias",
                                                                "c_proj.weight", "c_proj.bias"}));
  EXPECT_TRUE(attn.named_buffers().empty());  // is_causal: no mask buffer
  NoGradGuard no_grad;
  Tensor x = randn({2, 6, 12});
  Tensor y = attn(x);
  EXPECT_EQ(y.sizes(), (Shape{2, 6, 12}));
  // Reference: the same computation with explicit per-head copies.
  Tensor qkv = attn.c_attn->forward(x);
  std::vector<Tensor> parts = split(qkv, 12, 2);
  auto heads = [](const Tensor& t) {
    return t.contiguous().view({2, 6, 3, 4}).permute({0, 2, 1, 3}).contiguous();
  };
  Tensor ref = scaled_dot_product_attention(heads(parts[0]), heads(parts[1]), heads(parts[2]),
                                            Tensor(), 0.0, true);
  ref = attn.c_proj->forward(ref.permute({0, 2, 1, 3}).contiguous().view({2, 6, 12}));
  std::vector<float> a = y.to_vector<float>(), b = ref.to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
  EXPECT_THROW(attn(randn({1, 9, 12})), ValueError);
  EXPECT_THROW(attn(randn({1, 4, 10})), ShapeError);
  EXPECT_THROW(CausalSelfAttention({.n_embd = 10, .n_head = 3}), ValueError);
}

}  // namespace
}  // namespace fabric::nn
