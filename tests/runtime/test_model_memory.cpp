// A model whose parameters alone cannot fit this machine's memory is a config error before it is
// built: building a gpt of n_layer 1e8 ran for minutes and then died in std::terminate (a
// std::bad_alloc while unwinding) or at the OOM killer.
#include <gtest/gtest.h>

#include "runtime/model_memory.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

TrainConfig::Model gpt(int64_t n_layer, int64_t n_embd) {
  TrainConfig::Model m;
  m.name = "gpt";
  m.n_layer = n_layer;
  m.n_embd = n_embd;
  m.block_size = 8;
  return m;
}

TEST(ModelMemory, LowerBoundCountsTheLargestWeights) {
  // 12 C^2 per block, V x C and T x C embeddings: nanoGPT's gpt2 (124M) less its biases and norms.
  TrainConfig::Model m = gpt(12, 768);
  m.block_size = 1024;
  const double n = model_parameter_lower_bound(m, 50257);
  EXPECT_DOUBLE_EQ(n, 50257.0 * 768 + 1024.0 * 768 + 12 * 12.0 * 768 * 768);
  EXPECT_GT(n, 123e6);
  EXPECT_LT(n, 124.5e6);  // torch counts 124,439,808 with biases and norms
  TrainConfig::Model mlp;
  mlp.name = "mlp";
  mlp.sizes = {784, 256, 10};
  EXPECT_DOUBLE_EQ(model_parameter_lower_bound(mlp, 0), 784.0 * 256 + 256.0 * 10);
}

TEST(ModelMemory, AModelPastMemoryIsAConfigErrorNamingItsSize) {
  const std::string msg = thrown<ConfigError>(
      [] { check_model_fits_memory(gpt(100000000, 16), 12, 16.0 * (1 << 30)); });
  EXPECT_CONTAINS(
      msg, "model (gpt): at least 3.07e+11 parameters (sized by model.n_layer, model.n_embd");
  EXPECT_CONTAINS(msg, "more than this machine's 16 GiB of memory");
  // No overflow past int64: the bound is a double.
  EXPECT_CONTAINS(thrown<ConfigError>([] {
                    check_model_fits_memory(gpt(int64_t(1) << 62, int64_t(1) << 40), 12, 1e12);
                  }),
                  "model (gpt): at least ");
}

TEST(ModelMemory, AModelThatFitsPasses) {
  EXPECT_NO_THROW(check_model_fits_memory(gpt(4, 256), 65, 1e9));
  // 4 bytes each: exactly the memory passes.
  TrainConfig::Model mlp;
  mlp.name = "mlp";
  mlp.sizes = {1000, 1000};
  EXPECT_NO_THROW(check_model_fits_memory(mlp, 0, 4e6));
  EXPECT_THROW(check_model_fits_memory(mlp, 0, 4e6 - 1), ConfigError);
  EXPECT_GT(usable_memory_bytes(), 1e8);
}

}  // namespace
}  // namespace fabric
