// With the default generator switched to torch_cpu and seeded as torch.manual_seed(seed), layers
// initialise to torch 1.13's very values (their draws in torch's order), and the channel and
// alpha dropouts draw torch's masks. Expected values: tests/tensor/torch_cpu_rng_rows.h.
#include <gtest/gtest.h>

#include "nn/alpha_dropout.h"
#include "nn/channel_dropout.h"
#include "nn/conv.h"
#include "nn/gpt.h"
#include "nn/gpt_sampling.h"
#include "nn/linear.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/tensor/torch_cpu_rng_check.h"

namespace fabric {
namespace {

using testing::expect_torch_values;
using testing::torch_cpu_rng_row;
using testing::TorchDefaultGenerator;

TEST(TorchCpuRngInit, LinearEmbeddingAndConv2dMatchTorchAfterTheSameSeed) {
  {
    TorchDefaultGenerator seeded(torch_cpu_rng_row("linear_init").seed);
    nn::Linear m({.in_features = 5, .out_features = 3});
    expect_torch_values("linear_init", cat({m.weight.detach().reshape({-1}), m.bias.detach()}));
  }
  {
    TorchDefaultGenerator seeded(torch_cpu_rng_row("embedding_init").seed);
    nn::Embedding m({.num_embeddings = 7, .embedding_dim = 3});
    expect_torch_values("embedding_init", m.weight.detach());
  }
  {
    TorchDefaultGenerator seeded(torch_cpu_rng_row("conv2d_init").seed);
    nn::Conv2d m({.in_channels = 2, .out_channels = 3, .kernel_size = 3});
    expect_torch_values("conv2d_init", cat({m.weight.detach().reshape({-1}), m.bias.detach()}));
  }
}

TEST(TorchCpuRngInit, ChannelAndAlphaDropoutDrawTorchsMasks) {
  {
    TorchDefaultGenerator seeded(torch_cpu_rng_row("dropout2d").seed);
    nn::Dropout2d m({.p = 0.5});
    expect_torch_values("dropout2d", m.forward(ones({2, 3, 2, 2})));
  }
  {
    TorchDefaultGenerator seeded(torch_cpu_rng_row("alpha_dropout").seed);
    expect_torch_values("alpha_dropout", nn::alpha_dropout(ones({20}), 0.3, /*training=*/true));
  }
}

// The logits of the nanoGPT rows: ((i * 29) % 97 - 48) / 8 for i in 0 .. 99, as (2, 50).
Tensor step_logits() {
  std::vector<float> l(100);
  for (int64_t i = 0; i < 100; ++i)
    l[static_cast<size_t>(i)] = static_cast<float>((i * 29) % 97 - 48) / 8;
  return from_vector(l, {2, 50});
}

TEST(TorchCpuRngInit, SamplingStepDrawsNanoGptsIds) {
  {
    Generator g(torch_cpu_rng_row("nanogpt_step_top_k").seed, RngAlgorithm::torch_cpu);
    expect_torch_values("nanogpt_step_top_k", nn::sample_next_token(step_logits(), 0.8, 10, &g));
  }
  {
    Generator g(torch_cpu_rng_row("nanogpt_step").seed, RngAlgorithm::torch_cpu);
    std::vector<Tensor> steps;
    for (int i = 0; i < 4; ++i)
      steps.push_back(nn::sample_next_token(step_logits(), 1.0, std::nullopt, &g));
    expect_torch_values("nanogpt_step", cat(steps, 1));
  }
}

// GPT::generate with a torch_cpu generator takes nanoGPT's step on its own logits.
TEST(TorchCpuRngInit, GenerateSamplesAsNanoGptWithATorchGenerator) {
  TorchDefaultGenerator seeded(5);
  nn::GPT model({.vocab_size = 20, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 8});
  model.eval();
  const Tensor context = from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  Generator a(11, RngAlgorithm::torch_cpu), b(11, RngAlgorithm::torch_cpu);
  const Tensor generated = model.generate(context, 4, 0.9, 5, &a);
  Tensor idx = context;
  for (int step = 0; step < 4; ++step) {
    Tensor logits = model.forward(idx);  // (B, T, V)
    logits = logits.narrow(1, logits.size(1) - 1, 1).reshape({2, 20}).to(DType::float32);
    idx = cat({idx, nn::sample_next_token(logits, 0.9, 5, &b)}, 1);
  }
  EXPECT_EQ(generated.to_vector<int64_t>(), idx.to_vector<int64_t>());
}

}  // namespace
}  // namespace fabric
