// nn::TransformerDecoderLayer, nn::TransformerDecoder and nn::Transformer against torch 1.13
// (tests/nn/decoder_fixture.h, from tools/fixtures/make_decoder_rows.py): outputs and the
// gradients of tgt, memory (src) and every parameter in float64; plus torch's keys, init,
// printouts, causal mask and errors, and a seq2seq copy task trained through Fabric in 32-true and
// bf16-mixed.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "nn/transformer_decoder.h"
#include "nn/transformer_model.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/nn/decoder_fixture.h"
#include "tests/nn/mha_test_helpers.h"

namespace fabric::nn {
namespace {

using namespace mha_testing;
using testing::DecoderFixture;

TransformerDecoderLayerOptions layer_options(const DecoderFixture& f) {
  return {.d_model = f.d_model,
          .nhead = f.nhead,
          .dim_feedforward = f.dim_feedforward,
          .dropout = 0.0,
          .activation = f.activation,
          .layer_norm_eps = f.layer_norm_eps,
          .batch_first = f.batch_first,
          .norm_first = f.norm_first};
}

// The module a fixture row describes, and how to call it with (tgt, memory, masks).
struct Built {
  std::shared_ptr<Module> module;
  std::function<Tensor(const Tensor&, const Tensor&, const std::vector<Tensor>&)> run;
};

Built build(const DecoderFixture& f) {
  const std::string kind = f.kind;
  if (kind == "layer") {
    auto layer = make<TransformerDecoderLayer>(layer_options(f));
    return {layer, [layer](const Tensor& tgt, const Tensor& memory, const std::vector<Tensor>& m) {
              return layer->forward(tgt, memory, m[1], m[2], m[4], m[5]);
            }};
  }
  if (kind == "decoder") {
    std::shared_ptr<Module> norm;
    if (f.final_norm)
      norm = make<LayerNorm>({.normalized_shape = {f.d_model}, .eps = f.layer_norm_eps});
    auto decoder = make<TransformerDecoder>(
        {.layer = layer_options(f), .num_layers = f.num_layers, .norm = norm});
    return {decoder,
            [decoder](const Tensor& tgt, const Tensor& memory, const std::vector<Tensor>& m) {
              return decoder->forward(tgt, memory, m[1], m[2], m[4], m[5]);
            }};
  }
  auto transformer = make<Transformer>({.d_model = f.d_model,
                                        .nhead = f.nhead,
                                        .num_encoder_layers = f.num_encoder_layers,
                                        .num_decoder_layers = f.num_layers,
                                        .dim_feedforward = f.dim_feedforward,
                                        .dropout = 0.0,
                                        .activation = f.activation,
                                        .layer_norm_eps = f.layer_norm_eps,
                                        .batch_first = f.batch_first,
                                        .norm_first = f.norm_first});
  return {transformer,
          [transformer](const Tensor& tgt, const Tensor& src, const std::vector<Tensor>& m) {
            return transformer->forward(src, tgt, m[0], m[1], m[2], m[3], m[4], m[5]);
          }};
}

TEST(TransformerDecoder, MatchesTorch) {
  for (const DecoderFixture& f : testing::decoder_fixtures()) {
    SCOPED_TRACE(f.name);
    Built built = build(f);
    load_params(*built.module, f.param_names, f.params);
    Tensor tgt = f64(f.tgt, f.tgt_shape).set_requires_grad(true);
    Tensor memory = f64(f.memory, f.memory_shape).set_requires_grad(true);
    std::vector<Tensor> masks;
    for (const testing::MaskFixture& m : f.masks) masks.push_back(mask_of(m));
    Tensor out = built.run(tgt, memory, masks);
    expect_close(out, f.out, "output");
    backward(sum(mul(out, f64(f.g_out, out.sizes()))));
    expect_close(tgt.grad(), f.tgt_grad, "tgt grad");
    expect_close(memory.grad(), f.memory_grad, "memory grad");
    const Module::NamedTensors params = built.module->named_parameters();
    for (size_t i = 0; i < params.size(); ++i)
      expect_close(params[i].second.grad(), f.param_grads[i], params[i].first + " grad");
  }
}

TEST(TransformerDecoderLayer, KeysShapesAndRepr) {
  auto layer = make<TransformerDecoderLayer>({.d_model = 8, .nhead = 2, .dim_feedforward = 16});
  EXPECT_EQ(
      layer->state_dict().keys(),
      (std::vector<std::string>{
          "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
          "self_attn.out_proj.bias", "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias",
          "multihead_attn.out_proj.weight", "multihead_attn.out_proj.bias", "linear1.weight",
          "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias",
          "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias"}));
  // torch 1.13's printout, character for character.
  EXPECT_EQ(layer->str(),
            "TransformerDecoderLayer(\n"
            "  (self_attn): MultiheadAttention(\n"
            "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
            "bias=True)\n"
            "  )\n"
            "  (multihead_attn): MultiheadAttention(\n"
            "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
            "bias=True)\n"
            "  )\n"
            "  (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
            "  (dropout): Dropout(p=0.1, inplace=False)\n"
            "  (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
            "  (norm1): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
            "  (norm2): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
            "  (norm3): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
            "  (dropout1): Dropout(p=0.1, inplace=False)\n"
            "  (dropout2): Dropout(p=0.1, inplace=False)\n"
            "  (dropout3): Dropout(p=0.1, inplace=False)\n"
            ")");
  struct Row {
    const char* name;
    TransformerDecoderLayerOptions options;
    Shape tgt, memory;
  };
  const std::vector<Row> rows = {
      {"seq_first", {.d_model = 8, .nhead = 2, .dim_feedforward = 16}, {5, 3, 8}, {7, 3, 8}},
      {"batch_first",
       {.d_model = 8, .nhead = 4, .dim_feedforward = 16, .batch_first = true},
       {3, 5, 8},
       {3, 2, 8}},
      {"unbatched",
       {.d_model = 8, .nhead = 2, .dim_feedforward = 16, .norm_first = true},
       {5, 8},
       {4, 8}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    auto l = make<TransformerDecoderLayer>(r.options);
    EXPECT_EQ(l->forward(randn(r.tgt), randn(r.memory)).sizes(), r.tgt);
  }
}

TEST(TransformerDecoder, KeysAndIndependentCopies) {
  auto decoder =
      make<TransformerDecoder>({.layer = {.d_model = 4, .nhead = 2, .dim_feedforward = 8},
                                .num_layers = 2,
                                .norm = make<LayerNorm>({.normalized_shape = {4}})});
  const std::vector<std::string> keys = decoder->state_dict().keys();
  ASSERT_EQ(keys.size(), 2u * 18u + 2u);
  EXPECT_EQ(keys.front(), "layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(keys[4], "layers.0.multihead_attn.in_proj_weight");
  EXPECT_EQ(keys[18], "layers.1.self_attn.in_proj_weight");
  EXPECT_EQ(keys.back(), "norm.bias");
  EXPECT_TRUE(decoder->str().starts_with(
      "TransformerDecoder(\n  (layers): ModuleList(\n    (0): TransformerDecoderLayer(\n"));
  // torch deep-copies the layer: equal starting values, separate tensors.
  Tensor w0 = decoder->get_parameter("layers.0.multihead_attn.in_proj_weight");
  Tensor w1 = decoder->get_parameter("layers.1.multihead_attn.in_proj_weight");
  EXPECT_EQ(w0.to_vector<float>(), w1.to_vector<float>());
  {
    NoGradGuard no_grad;
    w0.copy_(zeros(w0.sizes()));
  }
  EXPECT_NE(w0.to_vector<float>(), w1.to_vector<float>());
}

// A child replaced after construction (a quantized, LoRA or FP8 layer) is the one forward calls,
// and the typed handle follows it.
TEST(TransformerDecoderLayer, ForwardCallsReplacedChildren) {
  auto layer = make<TransformerDecoderLayer>({.d_model = 4, .nhead = 2, .dim_feedforward = 8});
  auto linear1 = layer->register_module<Linear>("linear1", {.in_features = 4, .out_features = 8});
  auto norm3 = layer->register_module<LayerNorm>("norm3", {.normalized_shape = {4}});
  EXPECT_EQ(layer->linear1, linear1);
  EXPECT_EQ(layer->norm3, norm3);
  backward(sum(layer->forward(randn({3, 2, 4}), randn({5, 2, 4}))));
  EXPECT_TRUE(linear1->weight.grad().defined());
  EXPECT_TRUE(norm3->weight.grad().defined());
  layer->register_module("linear2", std::make_shared<Identity>());
  EXPECT_EQ(layer->linear2, nullptr);
}

// The full printout of a 1 + 1 layer Transformer, as torch 1.13 prints nn.Transformer(8, 2, 1, 1, 16).
const char* const kTransformerRepr =
    "Transformer(\n"
    "  (encoder): TransformerEncoder(\n"
    "    (layers): ModuleList(\n"
    "      (0): TransformerEncoderLayer(\n"
    "        (self_attn): MultiheadAttention(\n"
    "          (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
    "bias=True)\n"
    "        )\n"
    "        (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
    "        (dropout): Dropout(p=0.1, inplace=False)\n"
    "        (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
    "        (norm1): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
    "        (norm2): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
    "        (dropout1): Dropout(p=0.1, inplace=False)\n"
    "        (dropout2): Dropout(p=0.1, inplace=False)\n"
    "      )\n"
    "    )\n"
    "    (norm): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
    "  )\n"
    "  (decoder): TransformerDecoder(\n"
    "    (layers): ModuleList(\n"
    "      (0): TransformerDecoderLayer(\n"
    "        (self_attn): MultiheadAttention(\n"
    "          (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
    "bias=True)\n"
    "        )\n"
    "        (multihead_attn): MultiheadAttention(\n"
    "          (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
    "bias=True)\n"
    "        )\n"
    "        (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
    "        (dropout): Dropout(p=0.1, inplace=False)\n"
    "        (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
    "        (norm1): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
    "        (norm2): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
    "        (norm3): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
    "        (dropout1): Dropout(p=0.1, inplace=False)\n"
    "        (dropout2): Dropout(p=0.1, inplace=False)\n"
    "        (dropout3): Dropout(p=0.1, inplace=False)\n"
    "      )\n"
    "    )\n"
    "    (norm): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
    "  )\n"
    ")";

TEST(Transformer, KeysReprAndShapes) {
  auto small = make<Transformer>({.d_model = 8,
                                  .nhead = 2,
                                  .num_encoder_layers = 1,
                                  .num_decoder_layers = 1,
                                  .dim_feedforward = 16});
  EXPECT_EQ(small->str(), kTransformerRepr);
  auto t = make<Transformer>({.d_model = 8,
                              .nhead = 2,
                              .num_encoder_layers = 2,
                              .num_decoder_layers = 3,
                              .dim_feedforward = 16});
  const std::vector<std::string> keys = t->state_dict().keys();
  ASSERT_EQ(keys.size(), 2u * 12u + 2u + 3u * 18u + 2u);
  EXPECT_EQ(keys.front(), "encoder.layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(keys[24], "encoder.norm.weight");
  EXPECT_EQ(keys[26], "decoder.layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(keys[26 + 2 * 18 + 4], "decoder.layers.2.multihead_attn.in_proj_weight");
  EXPECT_EQ(keys.back(), "decoder.norm.bias");
  struct Row {
    const char* name;
    bool batch_first;
    Shape src, tgt;
  };
  const std::vector<Row> rows = {
      {"seq_first", false, {7, 3, 8}, {5, 3, 8}},
      {"batch_first", true, {3, 7, 8}, {3, 5, 8}},
      {"unbatched", false, {7, 8}, {5, 8}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    auto m = make<Transformer>({.d_model = 8,
                                .nhead = 2,
                                .num_encoder_layers = 1,
                                .num_decoder_layers = 1,
                                .dim_feedforward = 16,
                                .batch_first = r.batch_first});
    EXPECT_EQ(m->forward(randn(r.src), randn(r.tgt)).sizes(), r.tgt);
  }
}

// torch's _reset_parameters: xavier_uniform_ on every parameter with dim > 1, after the layers'
// own init; biases and LayerNorms keep theirs.
TEST(Transformer, XavierInitOnMatrices) {
  manual_seed(0);
  // dim_feedforward 2048 makes the bounds tell the inits apart: linear2.weight (8, 2048) is
  // U(+-1/sqrt(2048) = 0.022) as a Linear, U(+-sqrt(6 / 2056) = 0.054) after xavier_uniform_.
  auto t = make<Transformer>({.d_model = 8,
                              .nhead = 2,
                              .num_encoder_layers = 1,
                              .num_decoder_layers = 1,
                              .dim_feedforward = 2048});
  for (const auto& [name, p] : t->named_parameters()) {
    SCOPED_TRACE(name);
    const std::vector<float> v = p.to_vector<float>();
    float max_abs = 0;
    for (float x : v) max_abs = std::max(max_abs, std::abs(x));
    if (p.dim() > 1) {
      const double bound = std::sqrt(6.0 / static_cast<double>(p.size(0) + p.size(1)));
      EXPECT_LE(max_abs, bound);
      EXPECT_GT(max_abs, 0.9 * bound);  // 128+ draws reach near the bound
    } else if (name.find("norm") != std::string::npos && name.ends_with(".weight")) {
      EXPECT_EQ(v, std::vector<float>(v.size(), 1.0f));
    } else if (name.find("in_proj_bias") != std::string::npos ||
               name.find("out_proj.bias") != std::string::npos) {
      EXPECT_EQ(max_abs, 0.0f);  // MultiheadAttention zeroes its biases
    }
  }
  // reset_parameters with a generator redraws the same values.
  auto u = make<Transformer>({.d_model = 8,
                              .nhead = 2,
                              .num_encoder_layers = 1,
                              .num_decoder_layers = 1,
                              .dim_feedforward = 16});
  auto v = make<Transformer>({.d_model = 8,
                              .nhead = 2,
                              .num_encoder_layers = 1,
                              .num_decoder_layers = 1,
                              .dim_feedforward = 16});
  Generator g1(5), g2(5);
  u->reset_parameters(&g1);
  v->reset_parameters(&g2);
  EXPECT_EQ(u->get_parameter("decoder.layers.0.linear1.weight").to_vector<float>(),
            v->get_parameter("decoder.layers.0.linear1.weight").to_vector<float>());
}

TEST(Transformer, GenerateSquareSubsequentMask) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  struct Row {
    int64_t sz;
    std::vector<float> want;  // torch.nn.Transformer.generate_square_subsequent_mask(sz)
  };
  const std::vector<Row> rows = {
      {0, {}},
      {1, {0.0f}},
      {3, {0.0f, -kInf, -kInf, 0.0f, 0.0f, -kInf, 0.0f, 0.0f, 0.0f}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.sz);
    Tensor m = Transformer::generate_square_subsequent_mask(r.sz);
    EXPECT_EQ(m.dtype(), DType::float32);
    EXPECT_EQ(m.sizes(), (Shape{r.sz, r.sz}));
    EXPECT_EQ(m.to_vector<float>(), r.want);
  }
}

TEST(Transformer, Errors) {
  auto layer = make<TransformerDecoderLayer>({.d_model = 4, .nhead = 2, .dim_feedforward = 8});
  auto transformer = make<Transformer>({.d_model = 4,
                                        .nhead = 2,
                                        .num_encoder_layers = 1,
                                        .num_decoder_layers = 1,
                                        .dim_feedforward = 8});
  auto batch_first = make<Transformer>({.d_model = 4,
                                        .nhead = 2,
                                        .num_encoder_layers = 1,
                                        .num_decoder_layers = 1,
                                        .dim_feedforward = 8,
                                        .batch_first = true});
  auto decoder = make<TransformerDecoder>(
      {.layer = {.d_model = 4, .nhead = 2, .dim_feedforward = 8}, .num_layers = 2});
  decoder->layers->register_module<Linear>("1", {.in_features = 4, .out_features = 4});
  struct Row {
    const char* name;
    std::function<std::string()> message;
    const char* want;
  };
  const std::vector<Row> rows = {
      {"activation",
       [] {
         return thrown<ValueError>(
             [] { TransformerDecoderLayer l({.d_model = 4, .nhead = 2, .activation = "tanh"}); });
       },
       "TransformerDecoderLayer: activation should be relu or gelu, not tanh"},
      {"heads",
       [] {
         return thrown<ValueError>([] { TransformerDecoderLayer l({.d_model = 6, .nhead = 4}); });
       },
       "embed_dim (6) must be divisible by num_heads (4)"},
      {"decoder_layers",
       [] {
         return thrown<ValueError>(
             [] { TransformerDecoder d({.layer = {.d_model = 4, .nhead = 2}, .num_layers = 0}); });
       },
       "TransformerDecoder: num_layers must be positive, got 0"},
      {"transformer_layers",
       [] {
         return thrown<ValueError>(
             [] { Transformer t({.d_model = 4, .nhead = 2, .num_decoder_layers = 0}); });
       },
       "num_encoder_layers and num_decoder_layers must be positive, got 6 and 0"},
      {"batch_sizes",
       [&] {
         return thrown<ShapeError>([&] {
           transformer->forward(randn({5, 2, 4}), randn({3, 3, 4}));
         });
       },
       "the batch number of src and tgt must be equal, got src (5, 2, 4) and tgt (3, 3, 4)"},
      {"batch_sizes_batch_first",
       [&] {
         return thrown<ShapeError>([&] {
           batch_first->forward(randn({2, 5, 4}), randn({3, 2, 4}));
         });
       },
       "the batch number of src and tgt must be equal"},
      {"d_model",
       [&] {
         return thrown<ShapeError>([&] {
           transformer->forward(randn({5, 2, 4}), randn({3, 2, 6}));
         });
       },
       "the feature number of src and tgt must be equal to d_model (4), got src (5, 2, 4) and "
       "tgt (3, 2, 6)"},
      {"batched_and_unbatched",
       [&] {
         return thrown<ShapeError>([&] { transformer->forward(randn({5, 4}), randn({3, 2, 4})); });
       },
       "src and tgt must both be batched (3-D) or both unbatched (2-D), got src (5, 4)"},
      {"memory_features",
       [&] {
         return thrown<ShapeError>([&] { layer->forward(randn({3, 2, 4}), randn({5, 2, 6})); });
       },
       "expected embedding dimension 4"},
      {"memory_batch",
       [&] {
         return thrown<ShapeError>([&] { layer->forward(randn({3, 2, 4}), randn({5, 3, 4})); });
       },
       "have different batch sizes"},
      {"memory_mask_shape",
       [&] {
         return thrown<ShapeError>([&] {
           layer->forward(randn({3, 2, 4}), randn({5, 2, 4}), Tensor(),
                          zeros({3, 3}, {.dtype = DType::bool_}));
         });
       },
       "2-D attn_mask is (3, 3), but should be (3, 5)"},
      {"not_a_decoder_layer",
       [&] {
         return thrown<ValueError>([&] { decoder->forward(randn({3, 2, 4}), randn({5, 2, 4})); });
       },
       "TransformerDecoder: layers.1 is a Linear, expected a TransformerDecoderLayer"},
      {"single_input_forward",
       [&] { return thrown<NotImplementedError>([&] {
               (*layer)(randn({3, 2, 4}));
             }); },
       "TransformerDecoderLayer has no single-input forward(x)"},
      {"mask_size",
       [] { return thrown<ValueError>([] { Transformer::generate_square_subsequent_mask(-1); }); },
       "sz must be non-negative, got -1"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(r.message(), r.want);
  }
}

// A tiny seq2seq model: tokens (N, S) and the target shifted right behind a start token (N, T) ->
// logits (N, T, V), the target under a causal mask.
class TinyCopyModel : public Module {
 public:
  static constexpr int64_t kVocab = 6, kDim = 16;
  TinyCopyModel() {
    register_module<Embedding>("embed", {.num_embeddings = kVocab, .embedding_dim = kDim});
    transformer = register_module<Transformer>("transformer", {.d_model = kDim,
                                                               .nhead = 2,
                                                               .num_encoder_layers = 1,
                                                               .num_decoder_layers = 1,
                                                               .dim_feedforward = 32,
                                                               .dropout = 0.0,
                                                               .batch_first = true});
    register_module<Linear>("head", {.in_features = kDim, .out_features = kVocab});
  }
  Tensor forward(const Tensor& src, const Tensor& tgt_in) {
    Tensor causal = Transformer::generate_square_subsequent_mask(tgt_in.size(1));
    Tensor h = transformer->forward(child("embed")(src), child("embed")(tgt_in), Tensor(), causal);
    return child("head")(h);
  }
  std::shared_ptr<Transformer> transformer;
};

TEST(Transformer, LearnsToCopyThroughFabric) {
  // Tokens 1..5; 0 is the start token.
  const Tensor src =
      from_vector<int64_t>({1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 2, 2, 4, 4, 1, 3, 1, 5, 2, 4}, {4, 5});
  const Tensor tgt_in =
      from_vector<int64_t>({0, 1, 2, 3, 4, 0, 5, 4, 3, 2, 0, 2, 2, 4, 4, 0, 3, 1, 5, 2}, {4, 5});
  for (const char* precision : {"32-true", "bf16-mixed"}) {
    SCOPED_TRACE(precision);
    Fabric fab({.accelerator = "cpu", .devices = 1, .precision = precision});
    manual_seed(0);
    auto net = std::make_shared<TinyCopyModel>();
    optim::AdamW adamw(net->parameters(), {.lr = 1e-2});
    auto [model, opt] = fab.setup(net, adamw);
    double first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
      opt.zero_grad();
      Tensor logits = model.run([&] {
        return net->forward(model.convert_input(src), model.convert_input(tgt_in));
      });  // (4, 5, V)
      Tensor loss = cross_entropy(logits.reshape({-1, TinyCopyModel::kVocab}), src.reshape({-1}));
      fab.backward(loss);
      for (const auto& [name, p] : net->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
      opt.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_TRUE(std::isfinite(last));
    EXPECT_LT(last, 0.5 * first);
  }
}

}  // namespace
}  // namespace fabric::nn
