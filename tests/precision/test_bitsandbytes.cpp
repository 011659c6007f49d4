// BitsandbytesPrecision, Linear4bit and LoRA: the layer against a float reference, frozen
// weights with input gradients, bitsandbytes' key layout, convert_module rules, and QLoRA
// (nf4-dq GPT + LoRA) through Fabric lowering the loss, with the quantized bytes per weight.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/autograd.h"
#include "nn/gpt.h"
#include "nn/lora.h"
#include "nn/mlp.h"
#include "optim/optim.h"
#include "precision/bitsandbytes_precision.h"
#include "precision/linear_4bit.h"
#include "precision/linear_8bit.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using precision::BitsandbytesPrecision;
using precision::Linear4bit;

TEST(Linear4bitTest, ForwardMatchesDequantizedFloatReference) {
  manual_seed(3);
  nn::Linear lin({.in_features = 64, .out_features = 32});
  for (const char* qt : {"nf4", "fp4"}) {
    auto q = Linear4bit::from_linear(lin, qt, true, DType::bfloat16);
    Generator gen(4);
    const Tensor x = randn({3, 5, 64}, {.dtype = DType::float32}, &gen);
    const Tensor y = q->forward(x);
    EXPECT_EQ(y.dtype(), DType::float32);
    ASSERT_EQ(y.sizes(), Shape({3, 5, 32}));
    // Reference: the dequantized weight (bf16) in float32, input rounded to bf16, fp32 math.
    const Tensor w = q->dequantized_weight().to(DType::float32);
    const Tensor ref = linear(x.to(DType::bfloat16).to(DType::float32), w, lin.bias.detach());
    const auto a = y.to_vector<float>(), b = ref.to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 0.02 + 0.01 * std::fabs(b[i])) << qt << " " << i;
    // The quantized weight is close to the original (4-bit error bound per block).
    const auto w0 = lin.weight.to_vector<float>(), w1 = w.to_vector<float>();
    double max_err = 0;
    for (size_t i = 0; i < w0.size(); ++i) max_err = std::max(max_err, double(std::fabs(w0[i] - w1[i])));
    EXPECT_LT(max_err, 0.125 / std::sqrt(64.0) * 1.5) << qt;  // absmax <= 1/8, half the widest code gap < 0.2
    EXPECT_GT(max_err, 0.0) << qt << ": quantization must change something";
  }
}

TEST(Linear4bitTest, WeightsFrozenInputGetsGradient) {
  manual_seed(5);
  nn::Linear lin({.in_features = 32, .out_features = 16});
  auto q = Linear4bit::from_linear(lin, "nf4", false, DType::bfloat16);
  EXPECT_FALSE(q->weight.requires_grad());
  EXPECT_EQ(q->weight.dtype(), DType::uint8);
  Generator gen(6);
  Tensor x = randn({4, 32}, {.dtype = DType::float32}, &gen);
  x.set_requires_grad(true);
  sum(q->forward(x)).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_FALSE(q->weight.grad().defined());
  // d sum(x W^T) / dx = column sums of W, in the compute dtype.
  const auto g = x.grad().to_vector<float>();
  const auto colsum = sum(q->dequantized_weight().to(DType::float32), {0}).to_vector<float>();
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 32; ++c) ASSERT_NEAR(g[size_t(r * 32 + c)], colsum[size_t(c)], 0.05);
}

TEST(Linear4bitTest, StateDictHasBitsandbytesKeyLayoutAndRoundTrips) {
  manual_seed(7);
  auto mlp = nn::make<nn::MLP>({.sizes = {64, 48, 10}, .activation = "relu"});
  BitsandbytesPrecision("nf4-dq").convert_module(*mlp);
  const nn::StateDict sd = precision::bnb_state_dict(*mlp);
  std::string first;
  for (const auto& [k, v] : sd) {
    if (k.find("weight.quant_state") != std::string::npos) { first = k.substr(0, k.find("weight.")); break; }
  }
  ASSERT_FALSE(first.empty());
  for (const char* suffix : {"weight", "bias", "weight.absmax", "weight.quant_map", "weight.nested_absmax",
                             "weight.nested_quant_map", "weight.quant_state.bitsandbytes__nf4"}) {
    EXPECT_TRUE(sd.contains(first + suffix)) << first + suffix;
  }
  EXPECT_EQ(sd.at(first + "weight").dtype(), DType::uint8);
  EXPECT_EQ(sd.at(first + "weight").sizes(), Shape({48 * 64 / 2, 1}));
  EXPECT_EQ(sd.at(first + "weight.absmax").dtype(), DType::uint8);  // nested: 8-bit codes
  EXPECT_EQ(sd.at(first + "weight.quant_map").numel(), 16);
  EXPECT_EQ(sd.at(first + "weight.nested_quant_map").numel(), 256);
  const auto js = sd.at(first + "weight.quant_state.bitsandbytes__nf4").to_vector<uint8_t>();
  const std::string json(js.begin(), js.end());
  EXPECT_NE(json.find("\"quant_type\":\"nf4\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"dtype\":\"float16\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"shape\":[48,64]"), std::string::npos) << json;
  EXPECT_NE(json.find("nested_offset"), std::string::npos) << json;

  // Load into a differently initialised converted model: outputs then agree exactly.
  manual_seed(8);
  auto other = nn::make<nn::MLP>({.sizes = {64, 48, 10}, .activation = "relu"});
  BitsandbytesPrecision("nf4-dq").convert_module(*other);
  Generator gen(9);
  const Tensor x = randn({2, 64}, {.dtype = DType::float32}, &gen);
  EXPECT_NE(other->forward(x).to_vector<float>(), mlp->forward(x).to_vector<float>());
  precision::load_bnb_state_dict(*other, sd);
  EXPECT_EQ(other->forward(x).to_vector<float>(), mlp->forward(x).to_vector<float>());
}

// Spec §6 Checkpoint: the quant_state blob holds exactly bitsandbytes' non-tensor fields
// ({quant_type, blocksize, dtype, shape} plus, nested, {nested_blocksize: 256, nested_dtype:
// "float32", nested_offset}); quant_map is the 16-value table, nested_quant_map the 256-value
// dynamic code; absmax is float32, or uint8 codes when nested. 200 x 96 weights: 300 blocks of 64,
// two nested blocks of 256 (the second partial).
TEST(Linear4bitTest, QuantStateJsonHoldsTheSpecFields) {
  manual_seed(12);
  nn::Linear lin({.in_features = 96, .out_features = 200});
  for (const std::string qt : {"nf4", "fp4"}) {
    for (bool dq : {false, true}) {
      SCOPED_TRACE(qt + (dq ? "-dq" : ""));
      auto q = Linear4bit::from_linear(lin, qt, dq, DType::bfloat16);
      const nn::StateDict sd = q->state_dict();
      const std::string key = "weight.quant_state.bitsandbytes__" + qt;
      ASSERT_TRUE(sd.contains(key));
      const auto bytes = sd.at(key).to_vector<uint8_t>();
      const auto j = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
      std::set<std::string> keys;
      for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
      std::set<std::string> want = {"quant_type", "blocksize", "dtype", "shape"};
      if (dq) want.insert({"nested_blocksize", "nested_dtype", "nested_offset"});
      EXPECT_EQ(keys, want);
      EXPECT_EQ(j.at("quant_type").get<std::string>(), qt);
      EXPECT_EQ(j.at("blocksize").get<int64_t>(), 64);
      EXPECT_EQ(j.at("dtype").get<std::string>(), "float16");  // cast to fp16 before quantizing
      EXPECT_EQ(j.at("shape").get<std::vector<int64_t>>(), (std::vector<int64_t>{200, 96}));
      const auto& table = qt == "nf4" ? kNF4Code : kFP4Code;
      EXPECT_EQ(sd.at("weight.quant_map").to_vector<float>(),
                std::vector<float>(table.begin(), table.end()));
      EXPECT_EQ(sd.at("weight.absmax").numel(), 300);
      if (!dq) {
        EXPECT_EQ(sd.at("weight.absmax").dtype(), DType::float32);
        EXPECT_FALSE(sd.contains("weight.nested_absmax"));
        EXPECT_FALSE(sd.contains("weight.nested_quant_map"));
        continue;
      }
      EXPECT_EQ(j.at("nested_blocksize").get<int64_t>(), 256);
      EXPECT_EQ(j.at("nested_dtype").get<std::string>(), "float32");
      EXPECT_EQ(sd.at("weight.absmax").dtype(), DType::uint8);
      EXPECT_EQ(sd.at("weight.nested_absmax").dtype(), DType::float32);
      EXPECT_EQ(sd.at("weight.nested_absmax").numel(), 2);
      const auto& dyn = precision::dynamic_code_8bit();
      EXPECT_EQ(sd.at("weight.nested_quant_map").to_vector<float>(),
                std::vector<float>(dyn.begin(), dyn.end()));
      // nested_offset: the mean of the plain per-block absmax.
      const std::vector<float> plain =
          precision::quantize_4bit(lin.weight.detach().to(DType::float16), 64, qt, false)
              .state.absmax.to_vector<float>();
      double mean = 0;
      for (float a : plain) mean += a;
      mean /= static_cast<double>(plain.size());
      EXPECT_NEAR(j.at("nested_offset").get<double>(), mean, 1e-6 * mean);
    }
  }
}

// The plain state_dict (what Fabric::save and fabric-train checkpoints write) already has
// bitsandbytes' keys, and a plain load_state_dict restores the quantized weights exactly.
TEST(Linear4bitTest, PlainStateDictAndFabricCheckpointUseBitsandbytesKeys) {
  manual_seed(3);
  auto a = nn::make<nn::MLP>({.sizes = {64, 48, 10}, .activation = "relu"});
  BitsandbytesPrecision("nf4-dq").convert_module(*a);
  const nn::StateDict sd = a->state_dict();
  for (const char* k : {"layers.0.weight.absmax", "layers.0.weight.quant_map", "layers.0.weight.nested_absmax",
                        "layers.0.weight.nested_quant_map", "layers.0.weight.quant_state.bitsandbytes__nf4"})
    EXPECT_TRUE(sd.contains(k)) << k;
  EXPECT_FALSE(sd.contains("layers.0.weight_absmax"));
  manual_seed(4);
  auto b = nn::make<nn::MLP>({.sizes = {64, 48, 10}, .activation = "relu"});
  BitsandbytesPrecision("nf4-dq").convert_module(*b);
  Generator gen(5);
  const Tensor x = randn({3, 64}, {.dtype = DType::float32}, &gen);
  ASSERT_NE(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());
  const std::string dir = testing::TempDir() + "bnb_ckpt_" + std::to_string(::getpid());
  Fabric fab;
  fab.save(dir, {{"model", a}});
  fab.load(dir, {{"model", b}});
  EXPECT_EQ(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());
  std::filesystem::remove_all(dir);
}

// bitsandbytes writes the quant_state JSON unpadded (its length varies with the shape and the
// offsets): a plain load_state_dict and Fabric::load take such a checkpoint too, and the layer
// re-reads the new blob; a later load of our padded one goes back to the padded length.
TEST(Linear4bitTest, LoadsBitsandbytesUnpaddedQuantState) {
  manual_seed(3);
  auto a = nn::make<nn::MLP>({.sizes = {64, 48, 10}, .activation = "relu"});
  BitsandbytesPrecision("nf4-dq").convert_module(*a);
  nn::StateDict bnb = a->state_dict();
  for (const std::string key : {"layers.0.weight.quant_state.bitsandbytes__nf4",
                                "layers.1.weight.quant_state.bitsandbytes__nf4"}) {
    const auto bytes = bnb.at(key).to_vector<uint8_t>();
    std::string json(bytes.begin(), bytes.end());
    json.erase(json.find_last_not_of(' ') + 1);
    ASSERT_LT(json.size(), precision::kQuantStateJsonBytes);
    bnb.insert(key, from_vector(std::vector<uint8_t>(json.begin(), json.end()), {int64_t(json.size())}));
  }
  Generator gen(5);
  const Tensor x = randn({3, 64}, {.dtype = DType::float32}, &gen);
  auto fresh = [] {
    manual_seed(4);
    auto b = nn::make<nn::MLP>({.sizes = {64, 48, 10}, .activation = "relu"});
    BitsandbytesPrecision("nf4-dq").convert_module(*b);
    return b;
  };
  auto b = fresh();
  ASSERT_NE(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());
  b->load_state_dict(bnb);
  EXPECT_EQ(b->state_dict().at("layers.0.weight.quant_state.bitsandbytes__nf4").numel(),
            bnb.at("layers.0.weight.quant_state.bitsandbytes__nf4").numel());
  EXPECT_EQ(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());
  b->load_state_dict(a->state_dict());
  EXPECT_EQ(b->state_dict().at("layers.0.weight.quant_state.bitsandbytes__nf4").numel(),
            int64_t(precision::kQuantStateJsonBytes));
  EXPECT_EQ(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());

  // A Fabric checkpoint whose model file bitsandbytes wrote.
  const std::string dir = testing::TempDir() + "bnb_unpadded_" + std::to_string(::getpid());
  Fabric fab;
  fab.save(dir, {{"model", a}});
  save_safetensors(dir + "/model.safetensors", {bnb.begin(), bnb.end()});
  auto c = fresh();
  fab.load(dir, {{"model", c}});
  EXPECT_EQ(a->forward(x).to_vector<float>(), c->forward(x).to_vector<float>());
  std::filesystem::remove_all(dir);

  // A malformed blob of another length fails at the load through load_bnb_state_dict.
  nn::StateDict bad = bnb;
  const std::string junk = "{\"quant_type\": 7}";
  bad.insert("layers.0.weight.quant_state.bitsandbytes__nf4",
             from_vector(std::vector<uint8_t>(junk.begin(), junk.end()), {int64_t(junk.size())}));
  EXPECT_THROW(precision::load_bnb_state_dict(*fresh(), bad), ValueError);
}

// A checkpoint's nested_quant_map is the code its statistics dequantize with (bitsandbytes'
// state2.code; a torch with other CPU kernels builds another dynamic table), through
// load_bnb_state_dict and through a plain load_state_dict (what Fabric.load does).
TEST(Linear4bitTest, LoadedNestedQuantMapIsTheCodeUsed) {
  manual_seed(6);
  auto layer = [] {
    return Linear4bit::from_linear(nn::Linear({.in_features = 64, .out_features = 64, .bias = false}), "nf4", true,
                                   DType::float32);
  };
  const auto q = layer();
  nn::StateDict halved;
  for (const auto& [k, t] : precision::bnb_state_dict(*q))
    halved.insert(k, k == "weight.nested_quant_map" ? mul(t, 0.5) : t.clone());
  precision::QuantState4bit st = q->quant_state();
  st.nested_code = halved.at("weight.nested_quant_map");
  const std::vector<float> want = precision::dequantize_4bit(q->weight, st).to_vector<float>();
  ASSERT_NE(want, q->dequantized_weight().to_vector<float>());

  const auto a = layer();
  precision::load_bnb_state_dict(*a, halved);
  EXPECT_EQ(a->dequantized_weight().to_vector<float>(), want);
  EXPECT_EQ(precision::bnb_state_dict(*a).at("weight.nested_quant_map").to_vector<float>(),
            halved.at("weight.nested_quant_map").to_vector<float>());
  const auto b = layer();
  b->load_state_dict(halved);
  Generator gen(7);
  const Tensor x = randn({3, 64}, {.dtype = DType::float32}, &gen);
  EXPECT_EQ(b->forward(x).to_vector<float>(), a->forward(x).to_vector<float>());
}

// After Fabric::load (a plain load_state_dict) of a checkpoint of the same layout, a Linear4bit's
// getters describe the loaded weights before any forward: the nested offset lives only in the
// quant_state blob, which the layer re-reads when asked.
TEST(Linear4bitTest, GettersSeeAFabricLoadBeforeAnyForward) {
  manual_seed(1);
  auto a = nn::make<nn::MLP>({.sizes = {300, 70}});
  BitsandbytesPrecision("nf4-dq").convert_module(*a);
  manual_seed(2);
  auto b = nn::make<nn::MLP>({.sizes = {300, 70}});
  BitsandbytesPrecision("nf4-dq").convert_module(*b);
  const auto* la = dynamic_cast<Linear4bit*>(a->get_submodule("layers.0").get());
  const auto* lb = dynamic_cast<Linear4bit*>(b->get_submodule("layers.0").get());
  ASSERT_TRUE(la != nullptr && lb != nullptr);
  ASSERT_NE(la->quant_state().nested_offset, lb->quant_state().nested_offset);
  const std::string dir = testing::TempDir() + "bnb_getters_" + std::to_string(::getpid());
  Fabric fab;
  fab.save(dir, {{"model", a}});
  fab.load(dir, {{"model", b}});
  std::filesystem::remove_all(dir);
  EXPECT_EQ(lb->dequantized_weight().to_vector<float>(),
            la->dequantized_weight().to_vector<float>());
  EXPECT_EQ(lb->quant_state().nested_offset, la->quant_state().nested_offset);
}

// load_bnb_state_dict, and a plain load_state_dict, refuse a quant state that the next forward
// could not use, naming the entry and what was expected; the refused load changes nothing.
TEST(Linear4bitTest, MalformedQuantStateFailsAtTheLoadAndChangesNothing) {
  auto json = [](const std::string& text) {
    return from_vector(std::vector<uint8_t>(text.begin(), text.end()), {int64_t(text.size())});
  };
  const std::string blob_key = "layers.0.weight.quant_state.bitsandbytes__nf4";
  // layers.0 is 33 x 70: 2310 weights, 37 blocks of 64 (73 of 32), one nested block of 256.
  auto model = [](const char* mode, uint64_t seed) {
    manual_seed(seed);
    auto m = nn::make<nn::MLP>({.sizes = {70, 33, 5}, .activation = "relu"});
    BitsandbytesPrecision(mode).convert_module(*m);
    return m;
  };
  struct Case {
    std::string name;
    const char* mode;
    std::string key;  // the entry replaced
    Tensor value;
    std::string error;  // "shape" | "value" | "dtype"
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {"blocksize 100",
       "nf4",
       blob_key,
       json(R"({"quant_type": "nf4", "blocksize": 100, "dtype": "float16", "shape": [33, 70]})"),
       "value",
       {blob_key, "blocksize 100", "power of two from 32 to 4096"}},
      {"dtype int8",
       "nf4",
       blob_key,
       json(R"({"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [33, 70]})"),
       "dtype",
       {blob_key, "dtype int8", "float32, float16 or bfloat16"}},
      {"blocksize 32 with the absmax of 64",
       "nf4",
       blob_key,
       json(R"({"quant_type": "nf4", "blocksize": 32, "dtype": "float16", "shape": [33, 70]})"),
       "shape",
       {"layers.0.weight.absmax", "holds 37 values", "blocks of 32", "needs 73"}},
      {"absmax of 1000 values",
       "nf4",
       "layers.0.weight.absmax",
       zeros({1000}),
       "shape",
       {"layers.0.weight.absmax", "holds 1000 values", "needs 37"}},
      {"empty nested absmax",
       "nf4-dq",
       "layers.0.weight.nested_absmax",
       zeros({0}),
       "shape",
       {"layers.0.weight.nested_absmax", "holds 0 values", "need 1"}},
      {"nested blocksize 32 with the nested absmax of 256",
       "nf4-dq",
       blob_key,
       json(R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [33, 70], )"
            R"("nested_blocksize": 32, "nested_dtype": "float32", "nested_offset": 0.05})"),
       "shape",
       {"layers.0.weight.nested_absmax", "holds 1 values", "nested blocks of 32", "need 2"}},
  };
  Generator gen(3);
  const Tensor x = randn({2, 70}, {.dtype = DType::float32}, &gen);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    nn::StateDict bad = model(c.mode, 1)->state_dict();
    bad.insert(c.key, c.value);
    const auto target = model(c.mode, 2);
    const nn::StateDict before = target->state_dict();
    std::vector<std::vector<double>> values;
    for (const auto& [k, t] : before) values.push_back(t.to(DType::float64).to_vector<double>());
    const std::vector<float> y = target->forward(x).to_vector<float>();
    const std::function<void()> loads[] = {
        [&] { precision::load_bnb_state_dict(*target, bad); },
        [&] { target->load_state_dict(bad); },
    };
    for (const auto& load : loads) {
      std::string msg;
      if (c.error == "shape") msg = thrown<ShapeError>(load);
      if (c.error == "value") msg = thrown<ValueError>(load);
      if (c.error == "dtype") msg = thrown<DTypeError>(load);
      for (const auto& part : c.message) EXPECT_CONTAINS(msg, part);
      // Nothing was copied: the layer holds, reports and computes what it did.
      const nn::StateDict after = target->state_dict();
      ASSERT_EQ(after.keys(), before.keys());
      size_t i = 0;
      for (const auto& [k, t] : after) {
        EXPECT_EQ(t.to(DType::float64).to_vector<double>(), values[i++]) << k;
      }
      const auto* l = dynamic_cast<Linear4bit*>(target->get_submodule("layers.0").get());
      EXPECT_EQ(l->quant_state().blocksize, 64);
      EXPECT_EQ(target->forward(x).to_vector<float>(), y);
    }
  }
}

TEST(BitsandbytesPrecisionTest, ConvertModuleIgnoreModulesAndErrors) {
  manual_seed(11);
  auto gpt = nn::make<nn::GPT>({.vocab_size = 16, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 32});
  BitsandbytesPrecision p("fp4", std::nullopt, {"transformer.h.1", "lm_head"});
  EXPECT_EQ(p.name(), "fp4");
  EXPECT_EQ(p.dtype(), DType::bfloat16);
  p.convert_module(*gpt);
  EXPECT_EQ(gpt->get_submodule("transformer.h.0.attn.c_attn")->type_name(), "Linear4bit");
  EXPECT_EQ(gpt->get_submodule("transformer.h.0.mlp.c_fc")->type_name(), "Linear4bit");
  EXPECT_EQ(gpt->get_submodule("transformer.h.1.attn.c_attn")->type_name(), "Linear");
  EXPECT_EQ(gpt->get_submodule("lm_head")->type_name(), "Linear");
  const Tensor idx = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {1, 6});
  EXPECT_EQ(gpt->forward(idx).sizes(), Shape({1, 6, 16}));

  auto no_linear = nn::make<nn::Embedding>({.num_embeddings = 4, .embedding_dim = 3});
  EXPECT_THROW(BitsandbytesPrecision("nf4").convert_module(*no_linear), DTypeError);
  EXPECT_THROW(BitsandbytesPrecision("nf5"), ValueError);
  EXPECT_THROW(BitsandbytesPrecision("int8", DType::bfloat16), ValueError);
  EXPECT_THROW(BitsandbytesPrecision("int8-training", DType::float32), ValueError);
}

TEST(LoRATest, StartsAsTheBaseAndHasPeftKeys) {
  manual_seed(13);
  auto gpt = nn::make<nn::GPT>({.vocab_size = 16, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 32});
  const Tensor idx = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {1, 6});
  const auto before = gpt->forward(idx).to_vector<float>();
  const auto wrapped = nn::apply_lora(*gpt, {.rank = 4, .alpha = 8, .target = {"c_fc"}});
  ASSERT_EQ(wrapped, std::vector<std::string>({"transformer.h.0.mlp.c_fc"}));
  EXPECT_EQ(gpt->forward(idx).to_vector<float>(), before);  // B = 0: the base's output exactly
  const nn::StateDict sd = gpt->state_dict();
  EXPECT_TRUE(sd.contains("transformer.h.0.mlp.c_fc.base_layer.weight"));
  EXPECT_TRUE(sd.contains("transformer.h.0.mlp.c_fc.base_layer.bias"));
  EXPECT_EQ(sd.at("transformer.h.0.mlp.c_fc.lora_A.weight").sizes(), Shape({4, 32}));
  EXPECT_EQ(sd.at("transformer.h.0.mlp.c_fc.lora_B.weight").sizes(), Shape({128, 4}));
  int64_t trainable = 0;
  for (const auto& [n, p] : gpt->named_parameters())
    if (p.requires_grad()) {
      ++trainable;
      EXPECT_NE(n.find("lora_"), std::string::npos) << n;
    }
  EXPECT_EQ(trainable, 2);
  EXPECT_THROW(nn::apply_lora(*gpt, {.target = {"nope"}}), ValueError);
  // A second call keeps the first's adapters trainable (PEFT freezes only non-lora_ parameters);
  // one that throws (a LayerNorm is no linear layer) leaves the model as it was.
  nn::apply_lora(*gpt, {.rank = 2, .target = {"c_proj"}});
  trainable = 0;
  for (const auto& [n, p] : gpt->named_parameters()) trainable += p.requires_grad() ? 1 : 0;
  EXPECT_EQ(trainable, 6);  // c_fc's two, attn.c_proj's and mlp.c_proj's two each
  const nn::StateDict kept = gpt->state_dict();
  EXPECT_THROW(nn::apply_lora(*gpt, {.target = {"c_attn", "ln_1"}}), ValueError);
  EXPECT_EQ(gpt->state_dict().size(), kept.size());
  EXPECT_FALSE(gpt->state_dict().contains("transformer.h.0.attn.c_attn.lora_A.weight"));
}

// QLoRA: GPT (2 layers, C=64) quantized nf4-dq, LoRA rank 8 / alpha 16 on c_attn, c_proj, c_fc,
// AdamW on the adapters only, through Fabric with the plugin; the loss must fall.
TEST(BitsandbytesQLoRATest, Nf4DqGptWithLoRALowersTheLoss) {
  manual_seed(21);
  constexpr int64_t V = 32, T = 32, B = 8;
  auto gpt = nn::make<nn::GPT>({.vocab_size = V, .block_size = T, .n_layer = 2, .n_head = 4, .n_embd = 64});
  const int64_t bf16_bytes = 2 * [&] {
    int64_t n = 0;
    for (const auto& [name, m] : gpt->named_modules())
      if (auto* l = dynamic_cast<nn::Linear*>(m.get())) n += l->weight.numel();
    return n;
  }();
  auto plugin = std::make_shared<BitsandbytesPrecision>("nf4-dq");
  plugin->convert_module(*gpt);
  const auto wrapped = nn::apply_lora(*gpt, {.rank = 8, .alpha = 16, .dropout = 0.0, .target = {"c_attn", "c_proj", "c_fc"}});
  EXPECT_EQ(wrapped.size(), 8u);  // per block: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj
  std::vector<Tensor> trainable;
  for (const Tensor& p : gpt->parameters())
    if (p.requires_grad()) trainable.push_back(p);
  ASSERT_EQ(trainable.size(), 16u);
  Fabric fab({.accelerator = "cpu", .plugins = {plugin}});
  optim::AdamW adamw(trainable, {.lr = 1e-2, .weight_decay = 0.0});
  auto [model, opt] = fab.setup(gpt, adamw);  // convert_module again: already quantized, a no-op
  EXPECT_EQ(gpt->get_submodule("transformer.h.0.attn.c_attn.base_layer")->type_name(), "Linear4bit");

  // Text-like data: a fixed repeating "sentence" of tokens, windows at random offsets.
  const std::vector<int64_t> text = {3, 7, 1, 9, 4, 4, 12, 0, 5, 21, 8, 2, 30, 17, 6, 11, 3, 7, 1, 25};
  Generator gen(22);
  std::vector<double> losses;
  for (int s = 0; s < 30; ++s) {
    const auto off = randint(0, int64_t(text.size()), {B}, {.dtype = DType::int64}, &gen).to_vector<int64_t>();
    std::vector<int64_t> in, out;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        in.push_back(text[size_t((off[size_t(b)] + t) % int64_t(text.size()))]);
        out.push_back(text[size_t((off[size_t(b)] + t + 1) % int64_t(text.size()))]);
      }
    opt.zero_grad();
    Tensor logits = model(from_vector(in, {B, T}));
    Tensor loss = cross_entropy(logits.reshape({B * T, V}), from_vector(out, {B * T}));
    fab.backward(loss);
    opt.step();
    losses.push_back(loss.item<double>());
    ASSERT_TRUE(std::isfinite(losses.back())) << "step " << s;
  }
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += losses[size_t(i)] / 5, last += losses[losses.size() - 1 - size_t(i)] / 5;
  std::printf("QLoRA nf4-dq GPT: loss %.4f (first 5 steps) -> %.4f (last 5 steps)\n", first, last);
  EXPECT_LT(last, first - 0.5);
  // Frozen base weights stayed frozen.
  for (const auto& [n, p] : gpt->named_parameters())
    if (n.find("lora_") == std::string::npos) EXPECT_FALSE(p.grad().defined()) << n;

  // Bytes per weight of the quantized GPT next to bf16.
  const auto fp = precision::quantized_footprint(*gpt);
  std::printf("quantized GPT linears: %lld weights, nf4-dq %lld bytes = %.3f bits/weight; bf16 %lld bytes = 16 bits/weight\n",
              (long long)fp.weights, (long long)fp.bytes, fp.bits_per_weight(), (long long)bf16_bytes);
  EXPECT_EQ(fp.weights * 2, bf16_bytes);
  // Per layer of n weights: n/2 packed bytes, one uint8 absmax code per 64, one fp32 absmax2 per
  // 64·256, plus the 16- and 256-entry fp32 code tables (which dominate on layers this small).
  int64_t want = 0;
  for (const auto& [name, m] : gpt->named_modules())
    if (auto* l = dynamic_cast<Linear4bit*>(m.get())) {
      const int64_t n = l->options().in_features * l->options().out_features, blocks = (n + 63) / 64;
      want += (n + 1) / 2 + blocks + 4 * ((blocks + 255) / 256) + 16 * 4 + 256 * 4;
    }
  EXPECT_EQ(fp.bytes, want);
}

TEST(BitsandbytesPrecisionTest, BitsPerWeightNf4VersusNf4Dq) {
  manual_seed(31);
  auto big = nn::make<nn::MLP>({.sizes = {1024, 1024, 1024}, .activation = "relu"});
  auto big2 = nn::make<nn::MLP>({.sizes = {1024, 1024, 1024}, .activation = "relu"});
  BitsandbytesPrecision("nf4").convert_module(*big);
  BitsandbytesPrecision("nf4-dq").convert_module(*big2);
  const double nf4 = precision::quantized_footprint(*big).bits_per_weight();
  const double dq = precision::quantized_footprint(*big2).bits_per_weight();
  std::printf("bits/weight (1024x1024 linears): nf4 %.4f, nf4-dq %.4f, bf16 16\n", nf4, dq);
  EXPECT_NEAR(nf4, 4.5, 0.01);
  EXPECT_NEAR(dq, 4.127, 0.01);
}

// Spec §7's example through the layer: W -> (CB, SCB) at conversion, A through the int8 GEMM
// with column 3 as an outlier; then dX = dY · (CB · SCB / 127).
TEST(Linear8bitTest, SpecExampleForwardAndInputGradient) {
  nn::Linear lin({.in_features = 4, .out_features = 3, .bias = false});
  {
    NoGradGuard ng;
    lin.weight.copy_(from_vector<float>({1, 0, -1, 0.5, 0.5, 0.5, 0.5, 0.5, -1, 2, 0, 1}, {3, 4}));
  }
  auto q = precision::Linear8bitLt::from_linear(lin, false);
  EXPECT_EQ(q->weight.dtype(), DType::int8);
  EXPECT_FALSE(q->weight.requires_grad());
  EXPECT_EQ(q->weight.to_vector<int64_t>(), std::vector<int64_t>({127, 0, -127, 64, 127, 127, 127, 127, -64, 127, 0, 64}));
  EXPECT_EQ(q->SCB.to_vector<float>(), std::vector<float>({1, 0.5, 2}));
  const nn::StateDict sd = q->state_dict();
  EXPECT_EQ(sd.keys(), std::vector<std::string>({"weight", "SCB", "weight_format"}));
  Tensor x = from_vector<float>({1, -2, 0.5, 8, 0.25, 1, -0.5, 0.1}, {2, 4}).to(DType::float16);
  x.set_requires_grad(true);
  Tensor y = q->forward(x);
  ASSERT_EQ(y.dtype(), DType::float16);
  const std::vector<double> want = {4.53515625, 3.755859375, 3.046875, 0.80615234375, 0.424072265625, 1.8466796875};
  const auto got = y.to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], std::fabs(want[i]) * 1e-3 + 1e-3) << i;
  sum(y).backward();
  ASSERT_TRUE(x.grad().defined());
  const auto wdq = q->dequantized_weight().to_vector<float>();
  const auto g = x.grad().to_vector<float>();
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 4; ++k) {
      const float want_g = wdq[size_t(k)] + wdq[size_t(4 + k)] + wdq[size_t(8 + k)];
      EXPECT_NEAR(g[size_t(r * 4 + k)], want_g, 2e-3) << r << "," << k;
    }
}

// weight_format as bitsandbytes reads it: 0 (row-major) loads; its tiled GPU layouts 1-3 are not
// un-tiled here (NotImplementedError), anything else is refused (ValueError), before any load.
TEST(Linear8bitTest, WeightFormatOtherThanRowMajorIsRefused) {
  nn::Linear lin({.in_features = 4, .out_features = 3, .bias = false});
  auto q = precision::Linear8bitLt::from_linear(lin, false);
  const std::vector<int64_t> before = q->weight.to_vector<int64_t>();
  nn::StateDict sd = q->state_dict();
  sd.insert("weight", zeros({3, 4}, {.dtype = DType::int8}));
  sd.insert("weight_format", full({}, 1, {.dtype = DType::uint8}));
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] { q->load_state_dict(sd); }), "col32");
  sd.insert("weight_format", full({}, 7, {.dtype = DType::uint8}));
  EXPECT_CONTAINS(thrown<ValueError>([&] { q->load_state_dict(sd); }), "weight_format - got 7");
  EXPECT_EQ(q->weight.to_vector<int64_t>(), before) << "a refused load changes nothing";
  sd.insert("weight_format", zeros({}, {.dtype = DType::uint8}));
  q->load_state_dict(sd);
  EXPECT_EQ(q->weight.to_vector<int64_t>(), std::vector<int64_t>(12, 0));
}

// bitsandbytes' MatMul8bitLt quantizes a trainable (has_fp16_weights) weight again only in
// training mode while the weight has no .grad (spec §7); otherwise it reuses the last CB and SCB.
TEST(Linear8bitTest, Int8TrainingQuantizesAgainOnlyInTrainingWithoutAGrad) {
  manual_seed(7);
  nn::Linear lin({.in_features = 8, .out_features = 4, .bias = false});
  auto q = precision::Linear8bitLt::from_linear(lin, true);
  const Tensor x = mul(randn({3, 8}), 0.5).to(DType::float16);
  auto out = [&] { return q->forward(x).to_vector<float>(); };
  auto doubled = [](std::vector<float> v) {
    for (float& e : v) e *= 2;
    return v;
  };
  const std::vector<float> y0 = out();  // the first forward quantizes
  const std::vector<float> w0 = q->dequantized_weight().to_vector<float>();
  {
    NoGradGuard ng;
    q->weight.mul_(2.0);
  }
  q->eval();
  EXPECT_EQ(out(), y0) << "eval reuses the last quantization";
  EXPECT_EQ(q->dequantized_weight().to_vector<float>(), w0);
  q->train();
  sum(q->forward(x)).backward();  // training without a grad: the doubled weight is quantized
  EXPECT_EQ(out(), doubled(y0));
  {
    NoGradGuard ng;
    q->weight.mul_(0.5);
  }
  EXPECT_EQ(out(), doubled(y0)) << "a weight with an accumulated .grad is not quantized again";
  q->zero_grad();  // set_to_none: the next training forward quantizes
  EXPECT_EQ(out(), y0);
  // A loaded state dict is quantized at the next forward, whatever the mode.
  nn::StateDict sd = q->state_dict();
  sd.insert("weight", mul(q->weight, 2.0));
  q->load_state_dict(sd);
  sum(q->forward(x)).backward();
  q->eval();
  EXPECT_EQ(out(), doubled(y0));
}

TEST(Linear8bitTest, Int8TrainingUpdatesTheFp16Weight) {
  manual_seed(41);
  auto mlp = nn::make<nn::MLP>({.sizes = {16, 32, 4}, .activation = "relu"});
  BitsandbytesPrecision p("int8-training");
  EXPECT_EQ(p.dtype(), DType::float16);
  EXPECT_EQ(p.name(), "int8-training");
  p.convert_module(*mlp);
  std::vector<Tensor> params = mlp->parameters();
  for (const auto& [n, m] : mlp->named_modules())
    if (auto* l = dynamic_cast<precision::Linear8bitLt*>(m.get())) {
      EXPECT_EQ(l->weight.dtype(), DType::float16) << n;
      EXPECT_TRUE(l->weight.requires_grad()) << n;
      // bitsandbytes' has_fp16_weights layer saves weight and bias only (it refuses an SCB).
      EXPECT_EQ(l->state_dict().keys(), std::vector<std::string>({"weight", "bias"})) << n;
    }
  Generator gen(42);
  const Tensor x = randn({32, 16}, {.dtype = DType::float32}, &gen);
  const Tensor t = randint(0, 4, {32}, {.dtype = DType::int64}, &gen);
  optim::SGD sgd(params, {.lr = 0.05});
  double first = 0, last = 0;
  for (int s = 0; s < 20; ++s) {
    sgd.zero_grad();
    Tensor loss = cross_entropy(mlp->forward(x).to(DType::float32), t);
    loss.backward();
    sgd.step();
    if (s == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  std::printf("int8-training MLP: loss %.4f -> %.4f\n", first, last);
  EXPECT_LT(last, first);

  auto frozen = nn::make<nn::MLP>({.sizes = {16, 32, 4}, .activation = "relu"});
  BitsandbytesPrecision("int8").convert_module(*frozen);
  for (const auto& [n, prm] : frozen->named_parameters())
    if (n.find("weight") != std::string::npos) EXPECT_EQ(prm.dtype(), DType::int8) << n;
  const auto fp = precision::quantized_footprint(*frozen);
  std::printf("int8 MLP: %.3f bits/weight (incl. SCB)\n", fp.bits_per_weight());
  // int8 weights (16·32 + 32·4 bytes) plus fp32 SCB per output row (4 · (32 + 4) bytes).
  EXPECT_EQ(fp.bytes, 16 * 32 + 32 * 4 + 4 * (32 + 4));
  EXPECT_EQ(fp.weights, 16 * 32 + 32 * 4);
}

}  // namespace
}  // namespace fabric
