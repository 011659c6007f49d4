// The models: GPT (nanoGPT names, parameter count, init, causal masking, sampling), MLP and CNN
// keys and shapes, and small training loops whose loss must go down.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::nn {
namespace {

std::vector<std::string> names_of(const Module::NamedTensors& v) {
  std::vector<std::string> out;
  for (const auto& [n, t] : v) out.push_back(n);
  return out;
}

GPTConfig tiny_gpt() {
  return {.vocab_size = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 16};
}

TEST(GPT, KeysMatchNanoGPT) {
  GPT gpt(tiny_gpt());
  std::vector<std::string> keys = {"transformer.wte.weight", "transformer.wpe.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    for (const char* k :
         {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
          "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
          "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}) {
      keys.push_back(p + k);
    }
  }
  keys.push_back("transformer.ln_f.weight");
  keys.push_back("transformer.ln_f.bias");
  EXPECT_EQ(names_of(gpt.named_parameters()), keys);  // lm_head.weight is wte: listed once
  keys.push_back("lm_head.weight");
  EXPECT_EQ(gpt.state_dict().keys(), keys);
  EXPECT_TRUE(gpt.lm_head->weight.is_same(gpt.wte->weight));
  EXPECT_TRUE(gpt.get_parameter("transformer.wte.weight").is_same(gpt.lm_head->weight));
  EXPECT_EQ(gpt.get_parameter("transformer.h.1.attn.c_attn.weight").sizes(), (Shape{48, 16}));
  EXPECT_EQ(gpt.get_parameter("transformer.h.0.mlp.c_fc.weight").sizes(), (Shape{64, 16}));
  EXPECT_EQ(gpt.get_parameter("transformer.h.0.mlp.c_proj.weight").sizes(), (Shape{16, 64}));
  EXPECT_EQ(gpt.get_parameter("transformer.wpe.weight").sizes(), (Shape{8, 16}));

  GPTConfig nb = tiny_gpt();
  nb.bias = false;
  GPT nobias(nb);
  for (const auto& k : nobias.state_dict().keys()) EXPECT_FALSE(k.ends_with(".bias")) << k;
  EXPECT_EQ(nobias.state_dict().size(), 2u + 2u * 6u + 1u + 1u);
}

TEST(GPT, ParameterCountMatchesNanoGPTFormula) {
  for (bool bias : {true, false}) {
    GPTConfig c{
        .vocab_size = 65, .block_size = 32, .n_layer = 3, .n_head = 4, .n_embd = 24, .bias = bias};
    GPT gpt(c);
    const int64_t C = c.n_embd, L = c.n_layer;
    const int64_t per_layer = bias ? 12 * C * C + 13 * C : 12 * C * C + 2 * C;
    const int64_t total = c.vocab_size * C + c.block_size * C + L * per_layer + (bias ? 2 : 1) * C;
    EXPECT_EQ(gpt.num_parameters(), total);
    EXPECT_EQ(gpt.get_num_params(), total - c.block_size * C);
    EXPECT_EQ(gpt.get_num_params(false), total);
  }
}

TEST(GPT, InitFollowsNanoGPT) {
  GPTConfig c{.vocab_size = 512, .block_size = 64, .n_layer = 4, .n_head = 4, .n_embd = 64};
  GPT gpt(c);
  auto std_of = [](const Tensor& t) {
    std::vector<double> v = t.to_vector<double>();
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / static_cast<double>(v.size()));
  };
  EXPECT_NEAR(std_of(gpt.wte->weight), 0.02, 0.001);
  EXPECT_NEAR(std_of(gpt.wpe->weight), 0.02, 0.002);
  EXPECT_NEAR(std_of(gpt.blocks[0]->attn->c_attn->weight), 0.02, 0.001);
  EXPECT_NEAR(std_of(gpt.blocks[0]->mlp->c_fc->weight), 0.02, 0.001);
  const double proj = 0.02 / std::sqrt(8.0);
  EXPECT_NEAR(std_of(gpt.blocks[3]->mlp->c_proj->weight), proj, 0.05 * proj);
  EXPECT_NEAR(std_of(gpt.blocks[1]->attn->c_proj->weight), proj, 0.08 * proj);
  for (const auto& [n, p] : gpt.named_parameters()) {
    if (n.find("ln_") != std::string::npos) {
      const float want = n.ends_with("weight") ? 1.0f : 0.0f;
      EXPECT_EQ(p.to_vector<float>(), std::vector<float>(static_cast<size_t>(p.numel()), want))
          << n;
    } else if (n.ends_with(".bias")) {
      EXPECT_EQ(p.to_vector<float>(), std::vector<float>(static_cast<size_t>(p.numel()), 0.0f))
          << n;
    }
  }
}

TEST(GPT, ForwardShapesAndErrors) {
  GPT gpt(tiny_gpt());
  Tensor idx = randint(0, 11, {3, 8});
  Tensor logits = gpt(idx);
  EXPECT_EQ(logits.sizes(), (Shape{3, 8, 11}));
  EXPECT_EQ(gpt(randint(0, 11, {1, 1})).sizes(), (Shape{1, 1, 11}));
  try {
    gpt(randint(0, 11, {1, 9}));
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("block size is only 8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gpt(randint(0, 11, {8})), ShapeError);
  EXPECT_THROW(gpt(randn({1, 4})), DTypeError);
  EXPECT_THROW(GPT({.vocab_size = 11, .n_head = 5, .n_embd = 16}), ValueError);
  Tensor loss = gpt.loss(idx, randint(0, 11, {3, 8}));
  EXPECT_EQ(loss.dim(), 0);
  // Near-uniform predictions at init: loss close to ln(V).
  EXPECT_NEAR(loss.item<float>(), std::log(11.0), 0.3);
}

TEST(GPT, CausalMaskingFutureTokensDoNotChangeEarlierLogits) {
  GPT gpt(tiny_gpt());
  gpt.eval();
  NoGradGuard no_grad;
  std::vector<int64_t> toks = {1, 5, 2, 9, 3, 3, 7, 0};
  Tensor a = gpt(from_vector(toks, {1, 8}));
  toks[5] = 10;
  toks[7] = 4;
  Tensor b = gpt(from_vector(toks, {1, 8}));
  std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>();
  const int64_t V = 11;
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t v = 0; v < V; ++v)
      EXPECT_NEAR(va[t * V + v], vb[t * V + v], 1e-5) << "position " << t;
  }
  double diff = 0;
  for (int64_t i = 5 * V; i < 8 * V; ++i) diff += std::abs(va[i] - vb[i]);
  EXPECT_GT(diff, 1e-3);  // positions at and after the change do see it
  // Batch rows are independent too.
  Tensor both = gpt(cat({from_vector(std::vector<int64_t>{1, 5, 2, 9, 3, 3, 7, 0}, {1, 8}),
                         from_vector(toks, {1, 8})},
                        0));
  std::vector<float> vboth = both.to_vector<float>();
  for (size_t i = 0; i < va.size(); ++i) EXPECT_NEAR(vboth[i], va[i], 1e-5);
}

TEST(GPT, GenerateSamplesAndIsReproducible) {
  GPT gpt(tiny_gpt());
  gpt.eval();
  Tensor ctx = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  Generator g1(42), g2(42);
  Tensor a = gpt.generate(ctx, 10, 1.0, 3, &g1);
  Tensor b = gpt.generate(ctx, 10, 1.0, 3, &g2);
  EXPECT_EQ(a.sizes(), (Shape{2, 13}));  // longer than block_size: the context is cropped
  EXPECT_EQ(a.to_vector<int64_t>(), b.to_vector<int64_t>());
  std::vector<int64_t> av = a.to_vector<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(av.begin(), av.begin() + 3), (std::vector<int64_t>{1, 2, 3}));
  for (int64_t t : av) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, 11);
  }
  // top_k = 1 and temperature 0 are both greedy: the argmax of the forward logits.
  Tensor greedy = gpt.generate(ctx, 1, 0.0);
  Tensor top1 = gpt.generate(ctx, 1, 1.0, 1);
  NoGradGuard no_grad;
  Tensor want = argmax(gpt(ctx).select(1, 2), -1);
  EXPECT_EQ(greedy.select(1, 3).to_vector<int64_t>(), want.to_vector<int64_t>());
  EXPECT_EQ(top1.select(1, 3).to_vector<int64_t>(), want.to_vector<int64_t>());
  EXPECT_THROW(gpt.generate(ctx, 1, -1.0), ValueError);
}

// allowed_ids: a model whose vocab_size exceeds its tokenizer's draws only ids below it, greedy,
// top_k and full sampling alike, and draws them as the logits of those ids alone give them.
TEST(GPT, GenerateDrawsOnlyAllowedIds) {
  GPT gpt(tiny_gpt());
  gpt.eval();
  Tensor ctx = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  for (const std::optional<int64_t> top_k : {std::optional<int64_t>(), std::optional<int64_t>(2), std::optional<int64_t>(8)})
    for (double temperature : {0.0, 1.0, 5.0}) {
      Generator g(7);
      const std::vector<int64_t> out = gpt.generate(ctx, 40, temperature, top_k, &g, 3).to_vector<int64_t>();
      for (size_t i = 0; i < out.size(); ++i) {
        if (i % 43 < 3) continue;  // the context
        EXPECT_LT(out[i], 3) << "temperature " << temperature << ", top_k " << top_k.value_or(0);
      }
    }
  // Greedy: the argmax over the allowed ids' logits.
  NoGradGuard no_grad;
  Tensor want = argmax(gpt(ctx).select(1, 2).narrow(1, 0, 3), -1);
  EXPECT_EQ(gpt.generate(ctx, 1, 0.0, std::nullopt, nullptr, 3).select(1, 3).to_vector<int64_t>(), want.to_vector<int64_t>());
  // Every id allowed (the vocabulary's size) draws as without the argument.
  Generator g1(5), g2(5);
  EXPECT_EQ(gpt.generate(ctx, 10, 1.0, std::nullopt, &g1, gpt.config().vocab_size).to_vector<int64_t>(),
            gpt.generate(ctx, 10, 1.0, std::nullopt, &g2).to_vector<int64_t>());
  EXPECT_THROW(gpt.generate(ctx, 1, 1.0, std::nullopt, nullptr, gpt.config().vocab_size + 1), ValueError);
  EXPECT_THROW(gpt.generate(ctx, 1, 1.0, std::nullopt, nullptr, -1), ValueError);
}

TEST(GPT, TrainingReducesLossAndTiedGradientsAreShared) {
  manual_seed(3);
  GPT gpt({.vocab_size = 7, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 16});
  Tensor x = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 0, 3, 2, 1, 0, 6, 5, 4, 3}, {2, 8});
  Tensor y = from_vector<int64_t>({1, 2, 3, 4, 5, 6, 0, 1, 2, 1, 0, 6, 5, 4, 3, 2}, {2, 8});
  std::vector<Tensor> params = gpt.parameters();
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    gpt.zero_grad();
    Tensor loss = gpt.loss(x, y);
    if (step == 0) first = loss.item<float>();
    last = loss.item<float>();
    loss.backward();
    if (step == 0) {
      for (const auto& [n, p] : gpt.named_parameters()) ASSERT_TRUE(p.grad().defined()) << n;
    }
    NoGradGuard no_grad;
    for (Tensor& p : params) sub_(p, p.grad(), 0.1);
  }
  EXPECT_LT(last, 0.5f * first) << "first " << first << ", last " << last;
}

TEST(MLP, KeysShapesAndActivations) {
  MLP mlp({.sizes = {4, 8, 8, 3}, .activation = "gelu"});
  EXPECT_EQ(names_of(mlp.named_parameters()),
            (std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.1.weight",
                                      "layers.1.bias", "layers.2.weight", "layers.2.bias"}));
  EXPECT_EQ(mlp.get_parameter("layers.1.weight").sizes(), (Shape{8, 8}));
  Tensor x = randn({5, 4});
  Tensor y = mlp(x);
  EXPECT_EQ(y.sizes(), (Shape{5, 3}));
  auto l = [&](int i) { return mlp.layers->at<Linear>(i); };
  Tensor want = l(2)->forward(gelu(l(1)->forward(gelu(l(0)->forward(x)))));
  EXPECT_EQ(y.to_vector<float>(), want.to_vector<float>());
  MLP nob({.sizes = {2, 3}, .activation = "tanh", .bias = false});
  EXPECT_EQ(names_of(nob.named_parameters()), (std::vector<std::string>{"layers.0.weight"}));
  EXPECT_THROW(MLP({.sizes = {4}}), ValueError);
  EXPECT_THROW(MLP({.sizes = {4, 2}, .activation = "swish"}), ValueError);
}

TEST(MLP, TrainingOnSeparableDataReducesLoss) {
  manual_seed(11);
  Generator gen(5);
  const int64_t N = 256;
  Tensor x = randn({N, 2}, {}, &gen);
  // Label: which side of the line x0 + 2 x1 = 0.
  Tensor side = gt(add(x.select(1, 0), mul(x.select(1, 1), 2.0)), 0.0);
  Tensor y = side.to(DType::int64);
  MLP mlp({.sizes = {2, 16, 2}, .activation = "relu"});
  std::vector<Tensor> params = mlp.parameters();
  float first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    mlp.zero_grad();
    Tensor loss = cross_entropy(mlp(x), y);
    if (step == 0) first = loss.item<float>();
    last = loss.item<float>();
    loss.backward();
    NoGradGuard no_grad;  // a hand-written SGD step
    for (Tensor& p : params) sub_(p, p.grad(), 0.5);
  }
  EXPECT_LT(last, 0.3f * first) << "first " << first << ", last " << last;
  NoGradGuard no_grad;
  Tensor pred = argmax(mlp(x), 1);
  const double acc = sum(eq(pred, y)).item<double>() / static_cast<double>(N);
  EXPECT_GT(acc, 0.95);
}

TEST(CNN, KeysAndOutputShape) {
  CNN cnn;
  EXPECT_EQ(cnn.state_dict().keys(),
            (std::vector<std::string>{"features.0.weight", "features.0.bias", "features.3.weight",
                                      "features.3.bias", "classifier.weight", "classifier.bias"}));
  EXPECT_EQ(cnn.get_parameter("features.0.weight").sizes(), (Shape{16, 1, 5, 5}));
  EXPECT_EQ(cnn.get_parameter("features.3.weight").sizes(), (Shape{32, 16, 5, 5}));
  EXPECT_EQ(cnn.get_parameter("classifier.weight").sizes(), (Shape{10, 32 * 7 * 7}));
  Tensor y = cnn(randn({3, 1, 28, 28}));
  EXPECT_EQ(y.sizes(), (Shape{3, 10}));
  EXPECT_THROW(cnn(randn({3, 1, 32, 32})), ShapeError);
  CNN rgb({.in_channels = 3, .image_size = 32, .num_classes = 5});
  EXPECT_EQ(rgb(randn({2, 3, 32, 32})).sizes(), (Shape{2, 5}));
  EXPECT_THROW(CNN({.image_size = 30}), ValueError);
}

// A precision plugin or LoRA replaces the classifier by registering another layer under its name:
// the forward runs the registered one (it ran the original through the typed member, so quantized
// or LoRA classifiers never trained), and the typed member follows (null for a non-Linear).
TEST(CNN, ForwardRunsAReplacedClassifier) {
  CNN cnn;
  auto constant = make<Linear>({.in_features = 32 * 7 * 7, .out_features = 10});
  {
    NoGradGuard no_grad;
    constant->weight.zero_();
    constant->bias.fill_(2.0);
  }
  cnn.register_module("classifier", constant);
  EXPECT_EQ(cnn(randn({2, 1, 28, 28})).to_vector<float>(), std::vector<float>(20, 2.0f));
  EXPECT_EQ(cnn.classifier, constant);
  cnn.register_module("classifier", make<Identity>());
  EXPECT_EQ(cnn.classifier, nullptr);
  EXPECT_EQ(cnn(randn({2, 1, 28, 28})).sizes(), (Shape{2, 32 * 7 * 7}));
}

// batch_norm: Conv2d → BatchNorm2d → ReLU → MaxPool2d per stage, torchvision's _bn key layout;
// train() updates the running statistics, eval() uses them.
TEST(CNN, BatchNormStagesKeysAndModes) {
  CNN cnn({.batch_norm = true});
  EXPECT_EQ(cnn.state_dict().keys(),
            (std::vector<std::string>{
                "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                "features.1.running_mean", "features.1.running_var",
                "features.1.num_batches_tracked", "features.4.weight", "features.4.bias",
                "features.5.weight", "features.5.bias", "features.5.running_mean",
                "features.5.running_var", "features.5.num_batches_tracked", "classifier.weight",
                "classifier.bias"}));
  EXPECT_EQ(cnn.get_parameter("features.4.weight").sizes(), (Shape{32, 16, 5, 5}));
  const Tensor x = randn({4, 1, 28, 28});
  EXPECT_EQ(cnn(x).sizes(), (Shape{4, 10}));
  const Tensor stats = cnn.state_dict().at("features.1.running_mean").clone();
  EXPECT_EQ(cnn.state_dict().at("features.1.num_batches_tracked").item<int64_t>(), 1);
  EXPECT_NE(stats.to_vector<float>(), std::vector<float>(16, 0.0f));
  cnn.eval();
  const Tensor a = cnn(x), b = cnn(x);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_EQ(cnn.state_dict().at("features.1.running_mean").to_vector<float>(),
            stats.to_vector<float>());
}

}  // namespace
}  // namespace fabric::nn
