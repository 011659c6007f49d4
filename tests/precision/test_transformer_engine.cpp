// TransformerEnginePrecision and FP8Linear: layer replacement, the FP8 forward under the plugin,
// the delayed-scaling update points (spec §8, its 6-step table through the plugin), the recipe
// checks, meta state round trips (module state_dict and Fabric save/load), amax histories resized
// to another amax_history_len as Transformer Engine does, and a GPT run under HYBRID FP8 tracking
// bf16-mixed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "nn/gpt.h"
#include "nn/linear.h"
#include "nn/mlp.h"
#include "nn/normalization.h"
#include "optim/optim.h"
#include "precision/fp8_linear.h"
#include "precision/fp8_ops.h"
#include "precision/transformer_engine_precision.h"
#include "runtime/fabric.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/capture_warnings.h"

namespace fabric {
namespace {

using precision::DelayedScaling;
using precision::FP8Linear;
using precision::FP8Meta;
using precision::Fp8Direction;
using precision::Fp8Format;
using precision::TransformerEnginePrecision;

constexpr int64_t kIn = static_cast<int64_t>(precision::Fp8ForwardSlot::input);
constexpr int64_t kW = static_cast<int64_t>(precision::Fp8ForwardSlot::weight);
constexpr int64_t kOut = static_cast<int64_t>(precision::Fp8ForwardSlot::output);
constexpr int64_t kGradOut = static_cast<int64_t>(precision::Fp8BackwardSlot::grad_output);
constexpr int64_t kGradIn = static_cast<int64_t>(precision::Fp8BackwardSlot::grad_input);

// A model with one eligible Linear, two ineligible ones and a LayerNorm, calling its layers
// through child() so that replacements take effect.
class Mixed : public nn::Module {
 public:
  Mixed() {
    register_module<nn::Linear>("fc", {.in_features = 16, .out_features = 32});
    register_module<nn::LayerNorm>("ln", {.normalized_shape = {32}});
    register_module<nn::Linear>("odd_in", {.in_features = 12, .out_features = 16});
    register_module<nn::Linear>("head", {.in_features = 32, .out_features = 10});
  }
  Tensor forward(const Tensor& x) override { return child("head")(child("ln")(child("fc")(x))); }
};

class One : public nn::Module {
 public:
  explicit One(bool bias = true) {
    register_module<nn::Linear>("fc", {.in_features = 16, .out_features = 32, .bias = bias});
  }
  Tensor forward(const Tensor& x) override { return child("fc")(x); }
};

float max_abs(const Tensor& t) { return amax(abs(t.to(DType::float32))).item<float>(); }

TEST(TransformerEnginePrecision, ConvertModuleReplacesExactlyTheEligibleLinears) {
  manual_seed(0);
  auto mlp = nn::make<nn::MLP>({.sizes = {16, 32, 16, 10}});
  const Tensor w0 = mlp->get_parameter("layers.0.weight");
  const Tensor w2 = mlp->get_parameter("layers.2.weight");
  TransformerEnginePrecision te;
  EXPECT_EQ(te.name(), "transformer-engine");
  te.convert_module(*mlp);
  EXPECT_NE(std::dynamic_pointer_cast<FP8Linear>(mlp->get_submodule("layers.0")), nullptr);
  EXPECT_NE(std::dynamic_pointer_cast<FP8Linear>(mlp->get_submodule("layers.1")), nullptr);
  EXPECT_EQ(std::dynamic_pointer_cast<FP8Linear>(mlp->get_submodule("layers.2")), nullptr);
  EXPECT_NE(std::dynamic_pointer_cast<nn::Linear>(mlp->get_submodule("layers.2")), nullptr);
  ASSERT_EQ(te.fp8_layers().size(), 2u);
  ASSERT_EQ(te.warnings().size(), 1u);
  EXPECT_NE(te.warnings()[0].find("layers.2"), std::string::npos) << te.warnings()[0];
  // The same parameter tensors (optimizers built before setup keep working), now bf16.
  EXPECT_TRUE(mlp->get_parameter("layers.0.weight").is_same(w0));
  EXPECT_TRUE(mlp->get_parameter("layers.2.weight").is_same(w2));
  for (const Tensor& p : mlp->parameters()) EXPECT_EQ(p.dtype(), DType::bfloat16);
  // The metas stay float32 and appear as _extra_state entries.
  const nn::StateDict sd = mlp->state_dict();
  for (const char* k : {"layers.0._extra_state.scale_fwd", "layers.0._extra_state.amax_history_fwd",
                        "layers.1._extra_state.scale_bwd", "layers.1._extra_state.amax_history_bwd"}) {
    ASSERT_TRUE(sd.contains(k)) << k;
    EXPECT_EQ(sd.at(k).dtype(), DType::float32) << k;
  }
  EXPECT_FALSE(sd.contains("layers.2._extra_state.scale_fwd"));
  EXPECT_EQ(sd.at("layers.0._extra_state.amax_history_fwd").shape(), (Shape{1024, 3}));

  auto mixed = std::make_shared<Mixed>();
  TransformerEnginePrecision te16(DType::float16);
  EXPECT_EQ(te16.name(), "transformer-engine-float16");
  te16.convert_module(*mixed);
  EXPECT_EQ(mixed->get_submodule("fc")->type_name(), "FP8Linear");
  EXPECT_EQ(mixed->get_submodule("ln")->type_name(), "LayerNorm");
  EXPECT_EQ(mixed->get_submodule("odd_in")->type_name(), "Linear");
  EXPECT_EQ(mixed->get_submodule("head")->type_name(), "Linear");
  EXPECT_EQ(te16.warnings().size(), 2u);
  EXPECT_EQ(mixed->get_parameter("ln.weight").dtype(), DType::float16);

  // replace_layers = false only casts.
  auto keep = std::make_shared<One>();
  TransformerEnginePrecision no_replace(DType::bfloat16, {}, false);
  no_replace.convert_module(*keep);
  EXPECT_EQ(keep->get_submodule("fc")->type_name(), "Linear");
  EXPECT_EQ(keep->get_parameter("fc.weight").dtype(), DType::bfloat16);
}

TEST(TransformerEnginePrecision, RejectsE5M2AndBadDtypes) {
  EXPECT_THROW(TransformerEnginePrecision(DType::bfloat16, DelayedScaling{.fp8_format = Fp8Format::E5M2}),
               ValueError);
  EXPECT_THROW(TransformerEnginePrecision(DType::int64), DTypeError);
  EXPECT_NO_THROW(TransformerEnginePrecision(DType::bfloat16, DelayedScaling{.fp8_format = Fp8Format::E4M3}));
}

// float32 weights, or a float32 fallback under bf16 weights: the fallback region runs with autocast
// off (torch's CPU autocast turns itself off for float32); the forward used to raise from autocast.
TEST(TransformerEnginePrecision, AFloat32FallbackRunsWithAutocastOff) {
  for (const auto& [weights, fallback] :
       {std::pair{DType::float32, DType::float32}, std::pair{DType::bfloat16, DType::float32}}) {
    manual_seed(4);
    auto m = std::make_shared<One>();
    TransformerEnginePrecision te(weights, {}, true, fallback);
    te.convert_module(*m);
    const Tensor x = randn({4, 16});
    precision::ContextGuard ctx = te.forward_context();
    EXPECT_FALSE(autocast_enabled(DeviceType::cpu));
    const Tensor y = (*m)(te.convert_input(x));
    EXPECT_EQ(y.dtype(), fallback);  // an FP8 layer returns its fallback dtype
    EXPECT_EQ(y.shape(), (Shape{4, 32}));
  }
}

// With a float32 fallback under bf16 weights, a Linear left unconverted (10 outputs, not a
// multiple of 16) takes the FP8 layer's float32 output: it keeps its weights in float32, as its
// warning says ("it runs in float32"); it got a float32 input against bf16 weights before.
TEST(TransformerEnginePrecision, AFloat32FallbackKeepsUnconvertedLinearsInFloat32) {
  manual_seed(5);
  auto m = nn::make<nn::MLP>(nn::MLPConfig{.sizes = {16, 32, 10}});
  TransformerEnginePrecision te(DType::bfloat16, {}, true, DType::float32);
  te.convert_module(*m);
  ASSERT_EQ(te.warnings().size(), 1u);
  EXPECT_NE(te.warnings()[0].find("it runs in float32"), std::string::npos) << te.warnings()[0];
  precision::ContextGuard ctx = te.forward_context();
  const Tensor y = (*m)(te.convert_input(randn({4, 16})));
  EXPECT_EQ(y.dtype(), DType::float32);
  EXPECT_EQ(y.shape(), (Shape{4, 10}));
}

TEST(TransformerEnginePrecision, ForwardUnderThePluginIsFp8Linear) {
  manual_seed(1);
  auto m = std::make_shared<One>();
  TransformerEnginePrecision te;
  te.convert_module(*m);
  auto layer = std::dynamic_pointer_cast<FP8Linear>(m->get_submodule("fc"));
  ASSERT_NE(layer, nullptr);
  Generator gen(3);
  const Tensor x = randn({4, 5, 16}, {.dtype = DType::float32}, &gen);
  FP8Meta ref_meta(1, DelayedScaling{});
  const Tensor expected = precision::fp8_linear(ref_meta, 0, x.to(DType::bfloat16), layer->weight, layer->bias);
  Tensor y;
  {
    NoGradGuard no_grad;  // keep the metas at scale 1 for the second comparison
    precision::ContextGuard ctx = te.forward_context();
    EXPECT_TRUE(precision::fp8_enabled());
    y = (*m)(te.convert_input(x));
  }
  EXPECT_FALSE(precision::fp8_enabled());
  ASSERT_EQ(y.dtype(), DType::bfloat16);
  ASSERT_EQ(y.shape(), (Shape{4, 5, 32}));
  EXPECT_EQ(y.to(DType::float32).to_vector<float>(), expected.to(DType::float32).to_vector<float>());
  // Outside the region the layer is a plain bf16 linear, which differs from the FP8 result.
  const Tensor plain = linear(x.to(DType::bfloat16), layer->weight, layer->bias);
  const Tensor outside = (*m)(x.to(DType::bfloat16));
  EXPECT_EQ(outside.to(DType::float32).to_vector<float>(), plain.to(DType::float32).to_vector<float>());
  EXPECT_NE(outside.to(DType::float32).to_vector<float>(), y.to(DType::float32).to_vector<float>());
  // A disabled inner region turns FP8 off.
  precision::ContextGuard outer = precision::fp8_autocast(true);
  {
    precision::ContextGuard inner = precision::fp8_autocast(false);
    EXPECT_FALSE(precision::fp8_enabled());
  }
  EXPECT_TRUE(precision::fp8_enabled());
}

TEST(TransformerEnginePrecision, MetasUpdateAfterForwardWithGradAndAfterBackward) {
  manual_seed(2);
  auto m = std::make_shared<One>();
  TransformerEnginePrecision te;  // HYBRID: forward E4M3 (448), backward E5M2 (57344)
  te.convert_module(*m);
  FP8Meta& meta = std::dynamic_pointer_cast<FP8Linear>(m->get_submodule("fc"))->fp8_meta();
  Generator gen(4);
  const Tensor x1 = randn({8, 16}, {.dtype = DType::float32}, &gen);
  const Tensor x2 = mul(randn({8, 16}, {.dtype = DType::float32}, &gen), 0.25);
  {  // Grad mode off: amaxes recorded, no update.
    NoGradGuard no_grad;
    precision::ContextGuard ctx = te.forward_context();
    (*m)(te.convert_input(x1));
  }
  const float a1 = max_abs(x1.to(DType::bfloat16));
  EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), 1.0f);
  EXPECT_EQ(meta.amax_at(Fp8Direction::forward, 0, kIn), a1);
  Tensor y;
  {
    precision::ContextGuard ctx = te.forward_context();
    y = (*m)(te.convert_input(x2));
    EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), 1.0f) << "updated only when the region exits";
  }
  // x2 is smaller: the history max is still x1's amax, which the no-grad pass left in row 0.
  EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), 448.0f / a1);
  const float aw = max_abs(m->get_parameter("fc.weight"));
  EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kW), 448.0f / aw);
  EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kOut), 1.0f) << "the output is never cast";
  EXPECT_EQ(meta.amax_at(Fp8Direction::forward, 0, kIn), 0.0f);
  EXPECT_EQ(meta.amax_at(Fp8Direction::forward, 1023, kIn), a1);
  // Backward: d(sum(0.75 * y))/dy = 0.75 everywhere.
  const Tensor loss = sum(mul(y.to(DType::float32), 0.75));
  EXPECT_EQ(meta.scale_at(Fp8Direction::backward, kGradOut), 1.0f);
  te.backward(loss, nullptr);
  EXPECT_EQ(meta.scale_at(Fp8Direction::backward, kGradOut), 57344.0f / 0.75f);
  EXPECT_EQ(meta.scale_at(Fp8Direction::backward, kGradIn), 1.0f);
  EXPECT_TRUE(m->get_parameter("fc.weight").grad().defined());
  // A second backward with nothing new queued changes nothing.
  EXPECT_EQ(precision::fp8_update_backward_metas(), 0);
}

// Transformer Engine updates the forward metas when the outermost region exits only if that
// region is enabled: GEMMs run by an enabled region nested in a disabled one leave their amaxes in
// row 0 for the next update.
TEST(TransformerEnginePrecision, ADisabledOutermostRegionDefersTheForwardUpdate) {
  manual_seed(5);
  auto m = std::make_shared<One>();
  TransformerEnginePrecision te;
  te.convert_module(*m);
  FP8Meta& meta = std::dynamic_pointer_cast<FP8Linear>(m->get_submodule("fc"))->fp8_meta();
  Generator gen(6);
  const Tensor x1 = randn({8, 16}, {.dtype = DType::float32}, &gen);
  const Tensor x2 = mul(randn({8, 16}, {.dtype = DType::float32}, &gen), 0.25);
  {
    precision::ContextGuard outer = precision::fp8_autocast(false);
    precision::ContextGuard inner = precision::fp8_autocast(true);
    (*m)(te.convert_input(x1));
  }
  const float a1 = max_abs(x1.to(DType::bfloat16));
  EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), 1.0f);
  EXPECT_EQ(meta.amax_at(Fp8Direction::forward, 0, kIn), a1);
  {
    precision::ContextGuard ctx = te.forward_context();
    (*m)(te.convert_input(x2));
  }
  EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), 448.0f / a1);
}

TEST(TransformerEnginePrecision, SpecSixStepTableThroughThePlugin) {
  // E4M3, len 4, margin 0, "max"; per-step input amax 2, 4, 1, 0.5, 0.5, 0.5 (spec §8).
  auto m = std::make_shared<One>(false);
  TransformerEnginePrecision te(DType::bfloat16,
                                DelayedScaling{.fp8_format = Fp8Format::E4M3, .amax_history_len = 4});
  te.convert_module(*m);
  FP8Meta& meta = std::dynamic_pointer_cast<FP8Linear>(m->get_submodule("fc"))->fp8_meta();
  const float amaxes[6] = {2, 4, 1, 0.5, 0.5, 0.5};
  const float used[6] = {1, 224, 112, 112, 112, 112};
  const float next[6] = {224, 112, 112, 112, 112, 448};
  const std::vector<std::vector<float>> hist_after = {
      {0, 0, 0, 2}, {0, 0, 2, 4}, {0, 2, 4, 1}, {0, 4, 1, 0.5}, {0, 1, 0.5, 0.5}, {0, 0.5, 0.5, 0.5}};
  for (int s = 0; s < 6; ++s) {
    SCOPED_TRACE("step " + std::to_string(s + 1));
    std::vector<float> v(16, 0.0f);
    v[3] = -amaxes[s];  // exactly representable in bf16
    v[5] = amaxes[s] / 2;
    EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), used[s]);
    {
      precision::ContextGuard ctx = te.forward_context();
      (*m)(from_vector(v, {1, 16}));
    }
    EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), next[s]);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(meta.amax_at(Fp8Direction::forward, r, kIn), hist_after[s][r]) << r;
  }
}

// Fabric passes the plugin's warning for each Linear it leaves unconverted on (warned by rank 0
// through fabric::warn, and in fab.warnings()), as the reference's rank_zero_warn.
TEST(TransformerEnginePrecision, FabricWarnsAboutUnconvertedLayers) {
  Fabric fab({.accelerator = "cpu", .plugins = {std::make_shared<TransformerEnginePrecision>()}});
  auto mlp = nn::make<nn::MLP>({.sizes = {16, 32, 10}});
  test::CapturedWarnings warned;
  fab.setup(mlp);
  ASSERT_EQ(fab.warnings().size(), 1u);
  EXPECT_NE(fab.warnings()[0].find("layers.1"), std::string::npos) << fab.warnings()[0];
  EXPECT_EQ(warned.messages(), fab.warnings());
}

TEST(TransformerEnginePrecision, MetaStateRoundTripsThroughStateDictAndFabricCheckpoints) {
  const DelayedScaling recipe{.margin = 1, .amax_history_len = 8};
  auto run = [&](const std::string& load_dir, const std::string& save_dir, int steps) {
    auto te = std::make_shared<TransformerEnginePrecision>(DType::bfloat16, recipe);
    Fabric fab({.accelerator = "cpu", .plugins = {te}});
    manual_seed(7);
    auto mlp = nn::make<nn::MLP>({.sizes = {16, 32, 16}});
    optim::SGD sgd(mlp->parameters(), {.lr = 0.05});
    auto [model, opt] = fab.setup(mlp, sgd);
    if (!load_dir.empty()) {
      State state{{"model", model}, {"optimizer", opt}};
      fab.load(load_dir, state);
    }
    std::vector<double> losses;
    for (int s = 0; s < steps; ++s) {
      Generator gen(100 + uint64_t(s));
      const Tensor x = randn({8, 16}, {}, &gen);
      opt.zero_grad();
      Tensor loss = sum(mul(model(x), model(x)));
      fab.backward(loss);
      opt.step();
      losses.push_back(loss.item<double>());
    }
    if (!save_dir.empty()) fab.save(save_dir, {{"model", model}, {"optimizer", opt}});
    EXPECT_EQ(te->state_dict(), recipe.to_state());
    return std::make_pair(mlp->state_dict(), losses);
  };
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fabric_te_ckpt_" + std::to_string(::getpid()))).string();
  auto [saved, l1] = run("", dir, 3);
  const Tensor scale = saved.at("layers.0._extra_state.scale_fwd");
  EXPECT_NE(scale.to_vector<float>()[0], 1.0f) << "three steps moved the input scale";
  EXPECT_NE(saved.at("layers.1._extra_state.scale_bwd").to_vector<float>()[0], 1.0f);
  auto [restored, l2] = run(dir, "", 0);
  for (const std::string& k : saved.keys()) {
    if (k.find("_extra_state") == std::string::npos) continue;
    EXPECT_EQ(restored.at(k).to_vector<float>(), saved.at(k).to_vector<float>()) << k;
  }
  std::filesystem::remove_all(dir);

  // Module-level: load_state_dict writes into the live metas; the plugin state restores a recipe.
  auto a = std::make_shared<One>(), b = std::make_shared<One>();
  TransformerEnginePrecision ta(DType::bfloat16, recipe), tb(DType::bfloat16, DelayedScaling{.amax_history_len = 8});
  ta.convert_module(*a);
  tb.convert_module(*b);
  {
    precision::ContextGuard ctx = ta.forward_context();
    (*a)(ones({2, 16}, {.dtype = DType::bfloat16}));
  }
  b->load_state_dict(a->state_dict());
  tb.load_state_dict(ta.state_dict());
  EXPECT_EQ(tb.recipe(), recipe);
  FP8Meta& mb = std::dynamic_pointer_cast<FP8Linear>(b->get_submodule("fc"))->fp8_meta();
  FP8Meta& ma = std::dynamic_pointer_cast<FP8Linear>(a->get_submodule("fc"))->fp8_meta();
  EXPECT_EQ(mb.recipe(), recipe);
  EXPECT_EQ(mb.scale_at(Fp8Direction::forward, kIn), 224.0f) << "448 * 2^-1 / 1";
  EXPECT_EQ(mb.scale_at(Fp8Direction::forward, kW), ma.scale_at(Fp8Direction::forward, kW));
  // A plugin state of another history length resizes the layers' histories (as Transformer
  // Engine does), so the module state saved with it loads after it, as Fabric::load orders them.
  TransformerEnginePrecision tc(DType::bfloat16, DelayedScaling{.amax_history_len = 16});
  auto c = std::make_shared<One>();
  tc.convert_module(*c);
  tc.load_state_dict(ta.state_dict());
  FP8Meta& mc = std::dynamic_pointer_cast<FP8Linear>(c->get_submodule("fc"))->fp8_meta();
  EXPECT_EQ(mc.recipe(), recipe);
  EXPECT_EQ(mc.amax_history(Fp8Direction::backward).shape(), (Shape{8, 2}));
  c->load_state_dict(a->state_dict());
  EXPECT_EQ(mc.amax_history(Fp8Direction::forward).to_vector<float>(),
            ma.amax_history(Fp8Direction::forward).to_vector<float>());
  EXPECT_EQ(mc.scale_at(Fp8Direction::forward, kW), ma.scale_at(Fp8Direction::forward, kW));
}

// Transformer Engine's adjust_amax_history_length: a recipe with another amax_history_len keeps
// the scales and cuts the histories to their first rows or pads them with zero rows at the end;
// the next update then runs on the resized history. Rows are top (row 0, the current step) down.
TEST(FP8Linear, SetRecipeCutsOrZeroPadsTheAmaxHistories) {
  struct Case {
    int64_t len;
    std::vector<float> input_rows, weight_rows;  // right after set_recipe
    float input_scale, weight_scale;             // after the next update (E4M3: 448 / amax)
    std::vector<float> input_rows_updated;       // rolled, row 0 zeroed
  };
  const std::vector<Case> cases = {
      {2, {3, 2}, {1, 2}, 448.0f / 3, 448.0f / 2, {0, 3}},
      {3, {3, 2, 1}, {1, 2, 4}, 448.0f / 3, 448.0f / 4, {0, 1, 3}},
      {5, {3, 2, 1, 0, 0}, {1, 2, 4, 0, 0}, 448.0f / 3, 448.0f / 4, {0, 1, 0, 0, 3}},
  };
  const auto column = [](const FP8Meta& m, int64_t slot) {
    std::vector<float> rows;
    for (int64_t r = 0; r < m.recipe().amax_history_len; ++r)
      rows.push_back(m.amax_at(Fp8Direction::forward, r, slot));
    return rows;
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("amax_history_len 3 -> " + std::to_string(c.len));
    const DelayedScaling len3{.fp8_format = Fp8Format::E4M3, .amax_history_len = 3};
    FP8Linear layer({.in_features = 16, .out_features = 16, .recipe = len3});
    FP8Meta& meta = layer.fp8_meta();
    // Two updated steps and a recorded third: input rows [3, 2, 1], weight rows [1, 2, 4].
    const float input_amax[3] = {2, 1, 3}, weight_amax[3] = {2, 4, 1};
    for (int step = 0; step < 3; ++step) {
      meta.record_amax_value(Fp8Direction::forward, kIn, input_amax[step]);
      meta.record_amax_value(Fp8Direction::forward, kW, weight_amax[step]);
      if (step < 2) meta.update(Fp8Direction::forward);
    }
    meta.record_amax_value(Fp8Direction::backward, kGradOut, 5.0f);
    ASSERT_EQ(column(meta, kIn), (std::vector<float>{3, 2, 1}));
    const std::vector<float> scales = meta.scale(Fp8Direction::forward).to_vector<float>();

    DelayedScaling resized = len3;
    resized.amax_history_len = c.len;
    layer.set_recipe(resized);
    EXPECT_EQ(meta.recipe(), resized);
    EXPECT_EQ(layer.options().recipe, resized);
    EXPECT_EQ(column(meta, kIn), c.input_rows);
    EXPECT_EQ(column(meta, kW), c.weight_rows);
    EXPECT_EQ(meta.amax_history(Fp8Direction::backward).shape(), (Shape{c.len, 2}));
    EXPECT_EQ(meta.amax_at(Fp8Direction::backward, 0, kGradOut), 5.0f);
    EXPECT_EQ(meta.scale(Fp8Direction::forward).to_vector<float>(), scales) << "scales kept";
    // The module state still aliases the live (resized) history.
    const nn::StateDict sd = layer.state_dict();
    EXPECT_EQ(sd.at("_extra_state.amax_history_fwd").shape(), (Shape{c.len, 3}));
    EXPECT_EQ(sd.at("_extra_state.amax_history_fwd").to_vector<float>(),
              meta.amax_history(Fp8Direction::forward).to_vector<float>());

    meta.update(Fp8Direction::forward);
    EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn), c.input_scale);
    EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kW), c.weight_scale);
    EXPECT_EQ(column(meta, kIn), c.input_rows_updated);
  }
  // Every other recipe check stays.
  FP8Linear layer({.in_features = 16, .out_features = 16});
  EXPECT_THROW(layer.set_recipe({.amax_history_len = 0}), ValueError);
  EXPECT_THROW(layer.set_recipe({.fp8_format = Fp8Format::E5M2}), ValueError);
  EXPECT_EQ(layer.fp8_meta().amax_history(Fp8Direction::forward).shape(), (Shape{1024, 3}));
}

// A module state_dict carries no recipe: histories of another length are cut or zero-padded to
// the layer's own amax_history_len on load (the state Transformer Engine reaches at the next
// forward under the layer's recipe); scales load as they are.
TEST(FP8Linear, LoadStateDictResizesHistoriesOfAnotherLength) {
  FP8Linear src({.in_features = 16,
                 .out_features = 16,
                 .recipe = {.fp8_format = Fp8Format::E4M3, .amax_history_len = 4}});
  const float input_amax[4] = {2, 4, 1, 8};  // rows after three updates: [8, 2, 4, 1]
  for (int step = 0; step < 4; ++step) {
    src.fp8_meta().record_amax_value(Fp8Direction::forward, kIn, input_amax[step]);
    if (step < 3) src.fp8_meta().update(Fp8Direction::forward);
  }
  const nn::StateDict saved = src.state_dict();
  struct Case {
    int64_t len;
    std::vector<float> input_rows;
  };
  const std::vector<Case> cases = {{2, {8, 2}}, {4, {8, 2, 4, 1}}, {6, {8, 2, 4, 1, 0, 0}}};
  for (const Case& c : cases) {
    SCOPED_TRACE("saved 4 rows, layer amax_history_len " + std::to_string(c.len));
    FP8Linear dst({.in_features = 16,
                   .out_features = 16,
                   .recipe = {.fp8_format = Fp8Format::E4M3, .amax_history_len = c.len}});
    dst.load_state_dict(saved);
    const FP8Meta& meta = dst.fp8_meta();
    EXPECT_EQ(meta.recipe().amax_history_len, c.len);
    std::vector<float> rows;
    for (int64_t r = 0; r < c.len; ++r) rows.push_back(meta.amax_at(Fp8Direction::forward, r, kIn));
    EXPECT_EQ(rows, c.input_rows);
    EXPECT_EQ(meta.amax_history(Fp8Direction::backward).shape(), (Shape{c.len, 2}));
    EXPECT_EQ(meta.scale_at(Fp8Direction::forward, kIn),
              src.fp8_meta().scale_at(Fp8Direction::forward, kIn));
    EXPECT_EQ(dst.state_dict().at("_extra_state.amax_history_fwd").to_vector<float>(),
              meta.amax_history(Fp8Direction::forward).to_vector<float>());
  }
  // A history with another number of slots is still a size mismatch.
  nn::StateDict wrong = saved;
  wrong.insert("_extra_state.amax_history_fwd", zeros({4, 5}));
  FP8Linear dst({.in_features = 16,
                 .out_features = 16,
                 .recipe = {.fp8_format = Fp8Format::E4M3, .amax_history_len = 4}});
  EXPECT_THROW(dst.load_state_dict(wrong), ValueError);
}

// A small GPT (2 layers, C = 64, T = 32) on a learnable token stream, AdamW.
std::vector<double> train_gpt(std::shared_ptr<precision::Precision> plugin, const std::string& precision,
                              int steps) {
  FabricOptions o{.accelerator = "cpu"};
  if (plugin) o.plugins = {plugin}; else o.precision = precision;
  Fabric fab(o);
  manual_seed(11);
  const int64_t V = 40, T = 32, B = 4;
  auto gpt = nn::make<nn::GPT>({.vocab_size = V, .block_size = T, .n_layer = 2, .n_head = 2, .n_embd = 64});
  optim::AdamW adamw(gpt->parameters(), {.lr = 3e-3, .eps = 1e-6, .weight_decay = 0.01});
  auto [model, opt] = fab.setup(gpt, adamw);
  Generator gen(29);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    const auto start = randint(0, V, {B}, {.dtype = DType::int64}, &gen).to_vector<int64_t>();
    const auto stride = randint(1, 4, {B}, {.dtype = DType::int64}, &gen).to_vector<int64_t>();
    std::vector<int64_t> in, out;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        in.push_back((start[size_t(b)] + stride[size_t(b)] * t) % V);
        out.push_back((start[size_t(b)] + stride[size_t(b)] * (t + 1)) % V);
      }
    const Tensor idx = from_vector(in, {B, T}), tgt = from_vector(out, {B, T});
    opt.zero_grad();
    Tensor loss = cross_entropy(model(idx).view({-1, V}), tgt.view({-1}));
    fab.backward(loss);
    fab.clip_gradients(model, opt, {.max_norm = 1.0});
    opt.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

TEST(TransformerEnginePrecision, GptHybridRunTracksBf16Mixed) {
  // 200 steps; the FP8 run keeps weights and AdamW state in bf16 (bf16-mixed keeps float32
  // weights) and quantizes every block GEMM to E4M3/E5M2, so the tolerance on the mean loss of
  // the last 10 steps is 15% of bf16-mixed's (+0.05 absolute).
  constexpr int kSteps = 200;
  const std::vector<double> ref = train_gpt(nullptr, "bf16-mixed", kSteps);
  auto te = std::make_shared<TransformerEnginePrecision>();
  const std::vector<double> fp8 = train_gpt(te, "", kSteps);
  EXPECT_EQ(te->fp8_layers().size(), 8u) << "c_attn, c_proj, c_fc, mlp c_proj per block";
  ASSERT_EQ(fp8.size(), ref.size());
  // The replaced layers really ran in FP8: both directions' scales moved off their initial 1.
  for (const auto& l : te->fp8_layers()) {
    EXPECT_NE(l->fp8_meta().scale_at(Fp8Direction::forward, kIn), 1.0f);
    EXPECT_NE(l->fp8_meta().scale_at(Fp8Direction::forward, kW), 1.0f);
    EXPECT_NE(l->fp8_meta().scale_at(Fp8Direction::backward, kGradOut), 1.0f);
  }
  EXPECT_EQ(te->warnings().size(), 1u) << "lm_head (64 -> 40) stays bf16";
  auto mean = [](const std::vector<double>& v, size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += v[i];
    return s / double(to - from);
  };
  double max_gap = 0;
  for (size_t i = 0; i < fp8.size(); ++i) {
    ASSERT_TRUE(std::isfinite(fp8[i])) << "step " << i;
    max_gap = std::max(max_gap, std::abs(fp8[i] - ref[i]) / ref[i]);
  }
  const double ref_end = mean(ref, kSteps - 10, kSteps), fp8_end = mean(fp8, kSteps - 10, kSteps);
  std::printf("[te] bf16-mixed loss %.4f -> %.4f, FP8 HYBRID %.4f -> %.4f, max per-step gap %.3f\n", ref[0],
              ref_end, fp8[0], fp8_end, max_gap);
  EXPECT_LT(fp8_end, 0.5 * fp8[0]) << "the FP8 run learns";
  EXPECT_LE(std::abs(fp8_end - ref_end), 0.15 * ref_end + 0.05) << "FP8 tracks bf16-mixed at the end";
}

}  // namespace
}  // namespace fabric
