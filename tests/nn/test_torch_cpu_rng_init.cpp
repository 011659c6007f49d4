// With the default generator switched to torch_cpu and seeded as torch.manual_seed(seed), layers
// initialise to torch 1.13's very values (their draws in torch's order), and the channel and
// alpha dropouts draw torch's masks. Expected values: tests/tensor/torch_cpu_rng_rows.h.
#include <gtest/gtest.h>

#include "nn/alpha_dropout.h"
#include "nn/channel_dropout.h"
#include "nn/conv.h"
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

}  // namespace
}  // namespace fabric
