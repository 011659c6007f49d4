// nn::init::EmptyInitGuard, Lightning's _EmptyInit: inside it every nn::init fill writes nothing
// and draws nothing; modules' reset_parameters become no-ops for their parameters, while the
// buffers they set without nn::init (BatchNorm's running statistics) are still set. Nesting and
// thread-locality.
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/random.h"

namespace fabric::nn {
namespace {

constexpr double kSentinel = 7.0;

Tensor sentinel(const Shape& shape) { return full(shape, kSentinel); }

bool all_sentinel(const Tensor& t) {
  for (double v : t.to(DType::float64).contiguous().to_vector<double>())
    if (v != kSentinel) return false;
  return true;
}

// Every fill function, on a tensor of a shape it accepts.
std::vector<std::pair<std::string, std::function<void(const Tensor&)>>> fills() {
  return {
      {"uniform_", [](const Tensor& t) { init::uniform_(t, -1, 1); }},
      {"normal_", [](const Tensor& t) { init::normal_(t); }},
      {"constant_", [](const Tensor& t) { init::constant_(t, 0.5); }},
      {"zeros_", [](const Tensor& t) { init::zeros_(t); }},
      {"ones_", [](const Tensor& t) { init::ones_(t); }},
      {"kaiming_uniform_", [](const Tensor& t) { init::kaiming_uniform_(t); }},
      {"kaiming_normal_", [](const Tensor& t) { init::kaiming_normal_(t); }},
      {"xavier_uniform_", [](const Tensor& t) { init::xavier_uniform_(t); }},
      {"xavier_normal_", [](const Tensor& t) { init::xavier_normal_(t); }},
      {"trunc_normal_", [](const Tensor& t) { init::trunc_normal_(t); }},
      {"orthogonal_", [](const Tensor& t) { init::orthogonal_(t); }},
      {"dirac_",
       [](const Tensor& t) {
         init::dirac_(t.view({4, 4, 1}));
       }},
      {"eye_", [](const Tensor& t) { init::eye_(t); }},
      {"sparse_", [](const Tensor& t) { init::sparse_(t, 0.5); }},
  };
}

TEST(EmptyInit, EveryFillLeavesItsTensorAndTheGeneratorAlone) {
  manual_seed(3);
  for (const auto& [name, fill] : fills()) {
    const Tensor t = sentinel({4, 4});
    const GeneratorState before = default_generator().state();
    {
      init::EmptyInitGuard guard;
      EXPECT_TRUE(init::empty_init_enabled());
      fill(t);
    }
    EXPECT_TRUE(all_sentinel(t)) << name;
    EXPECT_EQ(default_generator().state(), before) << name;
    fill(t);  // outside the guard the fill writes again
    EXPECT_FALSE(all_sentinel(t)) << name;
  }
  EXPECT_FALSE(init::empty_init_enabled());
}

// Drawing after the skipped fills gives what drawing gives without them.
TEST(EmptyInit, DrawsAfterTheScopeAreThoseOfNoScope) {
  manual_seed(11);
  const std::vector<float> plain = randn({8}).to_vector<float>();
  manual_seed(11);
  {
    init::EmptyInitGuard guard;
    auto gpt =
        make<GPT>({.vocab_size = 13, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8});
    auto lin = make<Linear>({.in_features = 5, .out_features = 3});
  }
  EXPECT_EQ(randn({8}).to_vector<float>(), plain);
}

// Sentinel parameters survive reset_parameters() under the guard (random and constant inits
// alike), and change without it (so the check can fail).
TEST(EmptyInit, ResetParametersOfEveryLayerIsSkipped) {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> mods;
  std::vector<std::function<void()>> resets;
  auto add = [&](const std::string& name, auto m) {
    mods.emplace_back(name, m);
    resets.push_back([m] { m->reset_parameters(); });
  };
  add("Linear", make<Linear>({.in_features = 4, .out_features = 3}));
  add("Conv2d", make<Conv2d>({.in_channels = 2, .out_channels = 3, .kernel_size = 3}));
  add("Embedding", make<Embedding>({.num_embeddings = 5, .embedding_dim = 3, .padding_idx = 1}));
  add("EmbeddingBag", make<EmbeddingBag>({.num_embeddings = 5, .embedding_dim = 3}));
  add("Bilinear", make<Bilinear>({.in1_features = 2, .in2_features = 3, .out_features = 2}));
  add("PReLU", make<PReLU>({.num_parameters = 3}));
  add("LayerNorm", make<LayerNorm>({.normalized_shape = {4}}));
  add("RMSNorm", make<RMSNorm>({.normalized_shape = {4}}));
  add("GroupNorm", make<GroupNorm>({.num_groups = 2, .num_channels = 4}));
  add("BatchNorm", make<BatchNorm1d>({.num_features = 3}));
  add("MultiheadAttention", make<MultiheadAttention>({.embed_dim = 4, .num_heads = 2}));
  add("LSTM", make<LSTM>({.input_size = 3, .hidden_size = 4}));
  add("GRUCell", make<GRUCell>({.input_size = 3, .hidden_size = 4}));
  add("Transformer", make<Transformer>({.d_model = 4,
                                        .nhead = 2,
                                        .num_encoder_layers = 1,
                                        .num_decoder_layers = 1,
                                        .dim_feedforward = 8}));
  auto set_sentinels = [&](Module& m) {
    NoGradGuard no_grad;
    for (const Tensor& p : m.parameters()) {
      Tensor h = p;
      h.fill_(kSentinel);
    }
  };
  for (size_t i = 0; i < mods.size(); ++i) {
    const auto& [name, m] = mods[i];
    set_sentinels(*m);
    const GeneratorState before = default_generator().state();
    {
      init::EmptyInitGuard guard;
      resets[i]();
    }
    EXPECT_EQ(default_generator().state(), before) << name;
    for (const auto& [pname, p] : m->named_parameters())
      EXPECT_TRUE(all_sentinel(p)) << name << "." << pname;
    resets[i]();
    bool changed = false;
    for (const Tensor& p : m->parameters()) changed = changed || !all_sentinel(p);
    EXPECT_TRUE(changed) << name;
  }
}

// torch's BatchNorm sets its running statistics with fill_/zero_, not torch.nn.init, so
// _EmptyInit leaves them meaningful: so does the guard, at construction and on reset.
TEST(EmptyInit, BatchNormRunningStatisticsAreStillSet) {
  std::shared_ptr<BatchNorm1d> bn;
  {
    init::EmptyInitGuard guard;
    bn = make<BatchNorm1d>({.num_features = 3});
  }
  EXPECT_EQ(bn->running_mean.to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(bn->running_var.to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 0);
  {
    NoGradGuard no_grad;
    bn->running_var.fill_(kSentinel);
    bn->running_mean.fill_(kSentinel);
  }
  {
    init::EmptyInitGuard guard;
    bn->reset_parameters();
  }
  EXPECT_EQ(bn->running_mean.to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(bn->running_var.to_vector<float>(), (std::vector<float>{1, 1, 1}));
}

// A disabled guard changes nothing: inside an enabled one fills stay skipped (as a disabled
// _EmptyInit inside an enabled one); leaving an inner enabled guard keeps the outer's.
TEST(EmptyInit, GuardsNest) {
  const Tensor t = sentinel({2, 2});
  {
    init::EmptyInitGuard off(false);
    EXPECT_FALSE(init::empty_init_enabled());
  }
  {
    init::EmptyInitGuard outer;
    {
      init::EmptyInitGuard off(false);
      EXPECT_TRUE(init::empty_init_enabled());
      init::ones_(t);
      EXPECT_TRUE(all_sentinel(t));
    }
    { init::EmptyInitGuard inner; }
    EXPECT_TRUE(init::empty_init_enabled());
    init::normal_(t);
    EXPECT_TRUE(all_sentinel(t));
  }
  EXPECT_FALSE(init::empty_init_enabled());
  init::ones_(t);
  EXPECT_FALSE(all_sentinel(t));
}

// The switch belongs to the thread that set it: another thread initialises normally, and a
// guard on another thread does not reach this one.
TEST(EmptyInit, IsThreadLocal) {
  const Tensor here = sentinel({2, 2}), there = sentinel({2, 2});
  {
    init::EmptyInitGuard guard;
    bool enabled_there = true;
    std::thread([&] {
      enabled_there = init::empty_init_enabled();
      init::ones_(there);
    }).join();
    EXPECT_FALSE(enabled_there);
    EXPECT_EQ(there.to_vector<float>(), (std::vector<float>{1, 1, 1, 1}));
    init::ones_(here);
    EXPECT_TRUE(all_sentinel(here));
  }
  // A guard held on another thread, checked here while it is alive.
  std::promise<void> entered, checked;
  std::thread other([&] {
    init::EmptyInitGuard guard;
    entered.set_value();
    checked.get_future().wait();
  });
  entered.get_future().wait();
  const bool enabled_here = init::empty_init_enabled();
  init::ones_(here);
  checked.set_value();
  other.join();
  EXPECT_FALSE(enabled_here);
  EXPECT_EQ(here.to_vector<float>(), (std::vector<float>{1, 1, 1, 1}));
}

}  // namespace
}  // namespace fabric::nn
