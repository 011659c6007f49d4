// Fabric::init_module(empty_init), the reference's init_module(empty_init=True): modules built in
// the scope skip nn::init (no generator draws), load a state dict and then train exactly as a
// normally initialised model that loaded it; the precision plugin's context still applies, and
// init_module() without an argument is unchanged.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "nn/nn.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

const nn::GPTConfig kGpt{.vocab_size = 13, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8};

std::vector<std::vector<float>> values_of(const nn::Module& m) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.to(DType::float32).to_vector<float>());
  return out;
}

// Two AdamW steps on fixed data (the second one uses the first's moments); the parameters after.
std::vector<std::vector<float>> train_gpt(Fabric& fab, nn::GPT& model) {
  optim::AdamW opt(model.parameters(), {.lr = 1e-2});
  std::vector<int64_t> ids(16);
  for (int64_t i = 0; i < 16; ++i) ids[size_t(i)] = (5 * i + 3) % kGpt.vocab_size;
  const Tensor idx = from_vector<int64_t>(ids, {2, 8});
  const Tensor targets = remainder(add(idx, Scalar(int64_t(1))), Scalar(kGpt.vocab_size));
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    fab.backward(model.loss(idx, targets));
    opt.step();
  }
  return values_of(model);
}

std::vector<std::vector<float>> train_linear(Fabric& fab, nn::Linear& model) {
  optim::SGD opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  const Tensor x = from_vector<float>({1, -2, 3, 0.5f, 4, -1}, {2, 3});
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    fab.backward(sum(mul(model(x), model(x))));
    opt.step();
  }
  return values_of(model);
}

TEST(FabricInitModule, EmptyInitDrawsNothingAndEndsWithTheScope) {
  Fabric fab({.accelerator = "cpu"});
  manual_seed(5);
  const GeneratorState before = default_generator().state();
  {
    auto guard = fab.init_module(/*empty_init=*/true);
    EXPECT_TRUE(nn::init::empty_init_enabled());
    auto gpt = nn::make<nn::GPT>(kGpt);
    auto lin = nn::make<nn::Linear>({.in_features = 6, .out_features = 4});
  }
  EXPECT_FALSE(nn::init::empty_init_enabled());
  EXPECT_EQ(default_generator().state(), before);
  {
    auto guard = fab.init_module(/*empty_init=*/false);
    EXPECT_FALSE(nn::init::empty_init_enabled());
  }
  {
    auto guard = fab.init_module();  // as before this parameter existed: a normal init
    EXPECT_FALSE(nn::init::empty_init_enabled());
    auto lin = nn::make<nn::Linear>({.in_features = 6, .out_features = 4});
  }
  EXPECT_NE(default_generator().state(), before);
}

// The checkpoint-loading workflow the reference's empty_init is for: build without init, load,
// train. Everything after the load matches a normally initialised model that loaded the same
// state, bit for bit.
TEST(FabricInitModule, EmptyInitThenLoadTrainsAsNormalInitThenLoad) {
  Fabric fab({.accelerator = "cpu"});
  manual_seed(1);
  auto source_gpt = nn::make<nn::GPT>(kGpt);
  auto source_lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  const nn::StateDict gpt_state = source_gpt->state_dict();
  const nn::StateDict lin_state = source_lin->state_dict();

  manual_seed(2);
  auto normal_gpt = nn::make<nn::GPT>(kGpt);
  auto normal_lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  std::shared_ptr<nn::GPT> empty_gpt;
  std::shared_ptr<nn::Linear> empty_lin;
  {
    auto guard = fab.init_module(true);
    empty_gpt = nn::make<nn::GPT>(kGpt);
    empty_lin = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  }
  normal_gpt->load_state_dict(gpt_state);
  empty_gpt->load_state_dict(gpt_state);
  normal_lin->load_state_dict(lin_state);
  empty_lin->load_state_dict(lin_state);
  ASSERT_EQ(values_of(*empty_gpt), values_of(*source_gpt));

  const auto trained_gpt = train_gpt(fab, *normal_gpt);
  EXPECT_NE(trained_gpt, values_of(*source_gpt));  // the steps moved the weights
  EXPECT_EQ(train_gpt(fab, *empty_gpt), trained_gpt);
  EXPECT_EQ(train_linear(fab, *empty_lin), train_linear(fab, *normal_lin));
}

// The precision plugin's context still applies under empty init (64-true: float64 parameters),
// and BatchNorm's running statistics are set (torch sets them without torch.nn.init).
TEST(FabricInitModule, EmptyInitKeepsThePluginDtypeAndBatchNormStatistics) {
  Fabric fab({.precision = "64-true"});
  const GeneratorState before = default_generator().state();
  std::shared_ptr<nn::Linear> lin;
  std::shared_ptr<nn::BatchNorm1d> bn;
  {
    auto guard = fab.init_module(true);
    EXPECT_EQ(zeros({1}).dtype(), DType::float64);
    lin = nn::make<nn::Linear>({.in_features = 2, .out_features = 2});
    bn = nn::make<nn::BatchNorm1d>({.num_features = 4});
  }
  EXPECT_EQ(zeros({1}).dtype(), DType::float32);
  EXPECT_EQ(default_generator().state(), before);
  EXPECT_EQ(lin->weight.dtype(), DType::float64);
  EXPECT_EQ(bn->running_var.dtype(), DType::float64);
  EXPECT_EQ(bn->running_var.to_vector<double>(), (std::vector<double>{1, 1, 1, 1}));
  EXPECT_EQ(bn->running_mean.to_vector<double>(), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 0);
}

// Scopes nest as the contexts they are made of: an inner init_module(false) inside an empty one
// still skips init (as a disabled _EmptyInit inside an enabled one), and leaving the inner scope
// keeps the outer's.
TEST(FabricInitModule, ScopesNest) {
  Fabric fab({.accelerator = "cpu"});
  auto outer = fab.init_module(true);
  {
    auto inner = fab.init_module(false);
    EXPECT_TRUE(nn::init::empty_init_enabled());
  }
  { auto inner = fab.init_module(true); }
  EXPECT_TRUE(nn::init::empty_init_enabled());
  outer.exit();
  EXPECT_FALSE(nn::init::empty_init_enabled());
}

}  // namespace
}  // namespace fabric
