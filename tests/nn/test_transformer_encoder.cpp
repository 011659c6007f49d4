// nn::TransformerEncoderLayer and nn::TransformerEncoder against torch 1.13
// (tests/nn/mha_fixture.h, from tools/fixtures/make_mha_rows.py): outputs and every gradient in
// float64; plus torch's keys, independent layer copies, the printout, errors, and a training step
// through Fabric in 32-true and bf16-mixed.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "nn/transformer_encoder.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/nn/mha_fixture.h"
#include "tests/nn/mha_test_helpers.h"

namespace fabric::nn {
namespace {

using namespace mha_testing;
using testing::EncoderFixture;

TransformerEncoderLayerOptions layer_options(const EncoderFixture& f) {
  return {.d_model = f.d_model,
          .nhead = f.nhead,
          .dim_feedforward = f.dim_feedforward,
          .dropout = 0.0,
          .activation = f.activation,
          .batch_first = f.batch_first,
          .norm_first = f.norm_first};
}

TEST(TransformerEncoder, MatchesTorch) {
  for (const EncoderFixture& f : testing::encoder_fixtures()) {
    SCOPED_TRACE(f.name);
    std::shared_ptr<Module> module;
    std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)> run;
    if (f.num_layers == 0) {
      auto layer = make<TransformerEncoderLayer>(layer_options(f));
      run = [layer](const Tensor& x, const Tensor& m, const Tensor& p) {
        return layer->forward(x, m, p);
      };
      module = layer;
    } else {
      std::shared_ptr<Module> norm;
      if (f.final_norm) norm = make<LayerNorm>({.normalized_shape = {f.d_model}});
      auto encoder = make<TransformerEncoder>(
          {.layer = layer_options(f), .num_layers = f.num_layers, .norm = norm});
      run = [encoder](const Tensor& x, const Tensor& m, const Tensor& p) {
        return encoder->forward(x, m, p);
      };
      module = encoder;
    }
    load_params(*module, f.param_names, f.params);
    Tensor src = f64(f.src, f.src_shape).set_requires_grad(true);
    Tensor out = run(src, mask_of(f.src_mask), mask_of(f.key_padding_mask));
    expect_close(out, f.out, "output");
    backward(sum(mul(out, f64(f.g_out, out.sizes()))));
    expect_close(src.grad(), f.src_grad, "src grad");
    const Module::NamedTensors params = module->named_parameters();
    for (size_t i = 0; i < params.size(); ++i)
      expect_close(params[i].second.grad(), f.param_grads[i], params[i].first + " grad");
  }
}

TEST(TransformerEncoderLayer, KeysShapesAndRepr) {
  auto layer = make<TransformerEncoderLayer>({.d_model = 8, .nhead = 2, .dim_feedforward = 16});
  EXPECT_EQ(layer->state_dict().keys(),
            (std::vector<std::string>{
                "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"}));
  // torch 1.13's printout, character for character.
  EXPECT_EQ(layer->str(),
            "TransformerEncoderLayer(\n"
            "  (self_attn): MultiheadAttention(\n"
            "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
            "bias=True)\n"
            "  )\n"
            "  (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
            "  (dropout): Dropout(p=0.1, inplace=False)\n"
            "  (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
            "  (norm1): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
            "  (norm2): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
            "  (dropout1): Dropout(p=0.1, inplace=False)\n"
            "  (dropout2): Dropout(p=0.1, inplace=False)\n"
            ")");
  struct Row {
    const char* name;
    TransformerEncoderLayerOptions options;
    Shape src;
  };
  const std::vector<Row> rows = {
      {"seq_first", {.d_model = 8, .nhead = 2, .dim_feedforward = 16}, {5, 3, 8}},
      {"batch_first",
       {.d_model = 8, .nhead = 4, .dim_feedforward = 16, .batch_first = true},
       {3, 5, 8}},
      {"unbatched", {.d_model = 8, .nhead = 2, .dim_feedforward = 16, .norm_first = true}, {5, 8}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    auto l = make<TransformerEncoderLayer>(r.options);
    EXPECT_EQ((*l)(randn(r.src)).sizes(), r.src);
  }
}

// A child replaced under its name (as precision and LoRA conversions do) is the one forward
// runs, and the typed handle follows it.
TEST(TransformerEncoderLayer, ForwardCallsReplacedChildren) {
  auto layer = make<TransformerEncoderLayer>({.d_model = 4, .nhead = 2, .dim_feedforward = 8});
  auto linear1 = layer->register_module<Linear>("linear1", {.in_features = 4, .out_features = 8});
  auto norm2 = layer->register_module<LayerNorm>("norm2", {.normalized_shape = {4}});
  EXPECT_EQ(layer->linear1, linear1);
  EXPECT_EQ(layer->norm2, norm2);
  backward(sum(layer->forward(randn({3, 2, 4}), Tensor())));
  EXPECT_TRUE(linear1->weight.grad().defined());
  EXPECT_TRUE(norm2->weight.grad().defined());
  layer->register_module("linear2", std::make_shared<Identity>());
  EXPECT_EQ(layer->linear2, nullptr);
  layer->register_module("self_attn", std::make_shared<Identity>());
  EXPECT_CONTAINS(thrown<ValueError>([&] { layer->forward(randn({3, 2, 4})); }),
                  "child self_attn is a Identity, expected a MultiheadAttention");
}

TEST(TransformerEncoder, KeysAndIndependentCopies) {
  auto encoder =
      make<TransformerEncoder>({.layer = {.d_model = 4, .nhead = 2, .dim_feedforward = 8},
                                .num_layers = 2,
                                .norm = make<LayerNorm>({.normalized_shape = {4}})});
  const std::vector<std::string> keys = encoder->state_dict().keys();
  ASSERT_EQ(keys.size(), 2u * 12u + 2u);
  EXPECT_EQ(keys.front(), "layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(keys[12], "layers.1.self_attn.in_proj_weight");
  EXPECT_EQ(keys.back(), "norm.bias");
  EXPECT_EQ(encoder->str().substr(0, 46), "TransformerEncoder(\n  (layers): ModuleList(\n  ");
  // torch deep-copies the layer: equal starting values, separate tensors.
  Tensor w0 = encoder->get_parameter("layers.0.linear1.weight");
  Tensor w1 = encoder->get_parameter("layers.1.linear1.weight");
  EXPECT_EQ(w0.to_vector<float>(), w1.to_vector<float>());
  {
    NoGradGuard no_grad;
    w0.copy_(zeros(w0.sizes()));
  }
  EXPECT_NE(w0.to_vector<float>(), w1.to_vector<float>());
  EXPECT_EQ(encoder->num_parameters(),
            2 * make<TransformerEncoderLayer>({.d_model = 4, .nhead = 2, .dim_feedforward = 8})
                        ->num_parameters() +
                8);
}

TEST(TransformerEncoder, Errors) {
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    TransformerEncoderLayer l({.d_model = 4, .nhead = 2, .activation = "tanh"});
                  }),
                  "activation should be relu or gelu, not tanh");
  EXPECT_CONTAINS(thrown<ValueError>([] { TransformerEncoderLayer l({.d_model = 6, .nhead = 4}); }),
                  "embed_dim (6) must be divisible by num_heads (4)");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    TransformerEncoder e({.layer = {.d_model = 4, .nhead = 2}, .num_layers = 0});
                  }),
                  "num_layers must be positive, got 0");
  auto encoder = make<TransformerEncoder>(
      {.layer = {.d_model = 4, .nhead = 2, .dim_feedforward = 8}, .num_layers = 1});
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] {
        encoder->forward(randn({3, 2, 4}), Tensor(), zeros({2, 3}, {.dtype = DType::int64}));
      }),
      "src_key_padding_mask must be bool or floating, got int64");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    encoder->forward(randn({3, 2, 4}), zeros({3, 4}, {.dtype = DType::bool_}));
                  }),
                  "2-D attn_mask is (3, 4), but should be (3, 3)");
}

// (N, S, 3) -> linear -> encoder layer (padding masked) -> mean over S -> linear -> (N, 2)
class TinyEncoderClassifier : public Module {
 public:
  TinyEncoderClassifier() {
    register_module<Linear>("embed", {.in_features = 3, .out_features = 8});
    register_module<TransformerEncoderLayer>(
        "encoder", {.d_model = 8, .nhead = 2, .dim_feedforward = 16, .batch_first = true});
    register_module<Linear>("head", {.in_features = 8, .out_features = 2});
  }
  Tensor forward(const Tensor& x) override {
    // The last position of every sequence is padding.
    Tensor padding = zeros({x.size(0), x.size(1)}, {.dtype = DType::bool_});
    padding.narrow(1, x.size(1) - 1, 1).fill_(Scalar(true));
    auto& encoder = dynamic_cast<TransformerEncoderLayer&>(child("encoder"));
    Tensor h = encoder.forward(child("embed")(x), Tensor(), padding);
    return child("head")(mean(h, {1}));
  }
};

TEST(TransformerEncoder, TrainsThroughFabric) {
  for (const char* precision : {"32-true", "bf16-mixed"}) {
    SCOPED_TRACE(precision);
    Fabric fab({.accelerator = "cpu", .devices = 1, .precision = precision});
    manual_seed(0);
    auto net = std::make_shared<TinyEncoderClassifier>();
    optim::AdamW adamw(net->parameters(), {.lr = 1e-2});
    auto [model, opt] = fab.setup(net, adamw);
    Generator g(7);
    const Tensor x = randn({4, 5, 3}, {}, &g);
    const Tensor y = from_vector<int64_t>({0, 1, 1, 0}, {4});
    const Tensor before = net->get_parameter("encoder.self_attn.in_proj_weight").clone();
    double first = 0, last = 0;
    for (int step = 0; step < 5; ++step) {
      opt.zero_grad();
      Tensor loss = cross_entropy(model(x), y);
      fab.backward(loss);
      for (const auto& [name, p] : net->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
      opt.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_TRUE(std::isfinite(last));
    EXPECT_LT(last, first);
    EXPECT_NE(net->get_parameter("encoder.self_attn.in_proj_weight").to_vector<float>(),
              before.to_vector<float>());
  }
}

}  // namespace
}  // namespace fabric::nn
