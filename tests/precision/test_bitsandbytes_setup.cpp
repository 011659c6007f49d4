// BitsandbytesPrecision and TransformerEnginePrecision around Fabric::setup: a float state dict (the
// unconverted model's checkpoint) quantizes on load as the reference's layers do, converting a model
// that was converted and given LoRA adapters leaves it as it is, int8-training keeps frozen weights
// frozen, and init_module refuses ignore_modules as the reference does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <typeinfo>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/gpt.h"
#include "nn/lora.h"
#include "nn/mlp.h"
#include "precision/bitsandbytes_precision.h"
#include "precision/fp8_linear.h"
#include "precision/linear_4bit.h"
#include "precision/linear_8bit.h"
#include "precision/transformer_engine_precision.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using precision::BitsandbytesPrecision;

std::shared_ptr<nn::MLP> mlp(uint64_t seed) {
  manual_seed(seed);
  return nn::make<nn::MLP>({.sizes = {64, 48, 10}});
}

// Every mode: the float model's state_dict loads into the converted model (Linear4bit's packed
// weight is (n/2, 1), Linear8bitLt's int8 one has the float shape) and gives the layers exactly
// what converting the float model gives them; a quantized state dict still loads as it was.
TEST(BitsandbytesQuantizeOnLoad, AFloatStateDictQuantizesAsConversionDoes) {
  Generator gen(2);
  const Tensor x = randn({3, 64}, {.dtype = DType::float32}, &gen);
  for (const char* mode : {"nf4", "nf4-dq", "fp4", "fp4-dq", "int8", "int8-training"}) {
    const auto source = mlp(1);
    const nn::StateDict floats = source->state_dict();
    BitsandbytesPrecision(mode).convert_module(*source);  // the reference: the source converted
    const auto target = mlp(99);                             // other init weights, converted
    BitsandbytesPrecision(mode).convert_module(*target);
    ASSERT_NE(target->forward(x).to_vector<float>(), source->forward(x).to_vector<float>()) << mode;
    const nn::LoadResult r = target->load_state_dict(floats);
    EXPECT_TRUE(r.missing_keys.empty() && r.unexpected_keys.empty()) << mode;
    EXPECT_EQ(target->forward(x).to_vector<float>(), source->forward(x).to_vector<float>()) << mode;
    const nn::StateDict got = target->state_dict(), want = source->state_dict();
    ASSERT_EQ(got.keys(), want.keys()) << mode;
    for (const auto& [k, t] : want) {
      EXPECT_EQ(got.at(k).dtype(), t.dtype()) << mode << " " << k;
      EXPECT_EQ(got.at(k).to(DType::float64).to_vector<double>(), t.to(DType::float64).to_vector<double>())
          << mode << " " << k;
    }
    // A quantized state dict (another model's) loads as before.
    const auto other = mlp(5);
    BitsandbytesPrecision(mode).convert_module(*other);
    target->load_state_dict(other->state_dict());
    EXPECT_EQ(target->forward(x).to_vector<float>(), other->forward(x).to_vector<float>()) << mode;
  }
}

// Fabric.load of a checkpoint saved from the float model, into the model Fabric set up under nf4-dq.
TEST(BitsandbytesQuantizeOnLoad, FabricLoadsAFloatCheckpointIntoAQuantizedModel) {
  const std::string dir = testing::TempDir() + "bnb_float_ckpt_" + std::to_string(::getpid());
  const auto source = mlp(3);
  {
    Fabric fab({.accelerator = "cpu"});
    fab.save(dir, {{"model", source}});
  }
  Fabric fab({.accelerator = "cpu", .precision = "nf4-dq"});
  const auto target = mlp(4);
  fab.setup_module(target);
  fab.load(dir, {{"model", target}});
  BitsandbytesPrecision("nf4-dq").convert_module(*source);
  const nn::StateDict got = target->state_dict(), want = source->state_dict();
  ASSERT_EQ(got.keys(), want.keys());
  for (const auto& [k, t] : want)
    EXPECT_EQ(got.at(k).to(DType::float64).to_vector<double>(), t.to(DType::float64).to_vector<double>()) << k;
  Generator gen(5);
  const Tensor x = randn({2, 64}, {.dtype = DType::float32}, &gen);
  EXPECT_EQ(target->forward(x).to_vector<float>(), source->forward(x).to_vector<float>());
  std::filesystem::remove_all(dir);
}

// As the reference (a RuntimeError there): init_module cannot leave ignore_modules out.
TEST(BitsandbytesPrecisionSetup, InitModuleRefusesIgnoreModules) {
  Fabric fab({.accelerator = "cpu", .plugins = {std::make_shared<BitsandbytesPrecision>(
                                        "nf4", std::nullopt, std::vector<std::string>{"lm_head"})}});
  try {
    auto guard = fab.init_module();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(typeid(e), typeid(Error)) << "the plain fabric::Error, as Fabric's other RuntimeErrors";
    EXPECT_CONTAINS(e.what(), "`init_module` context manager is not supported");
    EXPECT_CONTAINS(e.what(), "ignore_modules={'lm_head'}");
  }
  Fabric plain({.accelerator = "cpu", .precision = "nf4"});
  auto guard = plain.init_module();
  EXPECT_EQ(zeros({1}).dtype(), DType::bfloat16) << "the compute dtype's context";
}

// int8-training: LoRA froze the base weights before Fabric converted them; they stay frozen and get
// no gradient (bitsandbytes' layer would otherwise train them next to the adapters).
TEST(BitsandbytesPrecisionSetup, Int8TrainingKeepsFrozenWeightsFrozen) {
  manual_seed(7);
  auto gpt = nn::make<nn::GPT>({.vocab_size = 16, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 32});
  nn::apply_lora(*gpt, {.rank = 4, .alpha = 8, .target = {"c_attn", "c_fc"}});
  Fabric fab({.accelerator = "cpu", .precision = "int8-training"});
  FabricModule model = fab.setup_module(gpt);
  int converted = 0;
  for (const auto& [n, m] : gpt->named_modules())
    if (auto* l = dynamic_cast<precision::Linear8bitLt*>(m.get())) {
      ++converted;
      EXPECT_EQ(l->weight.dtype(), DType::float16) << n;
      EXPECT_FALSE(l->weight.requires_grad()) << n;
    }
  EXPECT_EQ(converted, 5);  // c_attn and c_fc (under their adapters), both c_proj, lm_head
  const Tensor idx = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {1, 6});
  fab.backward(sum(model(idx)));
  for (const auto& [n, p] : gpt->named_parameters()) {
    const bool adapter = n.find("lora_") != std::string::npos;
    EXPECT_EQ(p.requires_grad(), adapter) << n;
    EXPECT_EQ(p.grad().defined(), adapter) << n;
  }
  // A trainable Linear stays trainable: int8-training trains the fp16 weight.
  auto fresh = precision::Linear8bitLt::from_linear(nn::Linear({.in_features = 8, .out_features = 4}), true);
  EXPECT_TRUE(fresh->weight.requires_grad());
}

// Converted, then given LoRA adapters, then set up (fabric-train's order, so that DDP and FSDP see
// the adapters): the second conversion changes no layer, and leaves the adapters out of FP8.
TEST(ConvertThenLoRAThenSetup, TheSecondConversionKeepsTheLayers) {
  for (const char* prec : {"nf4-dq", "int8", "transformer-engine"}) {
    manual_seed(8);
    // vocab 17: the lm_head is no FP8 layer (out_features % 16 != 0), which TransformerEngine warns about.
    auto gpt = nn::make<nn::GPT>({.vocab_size = 17, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 32});
    Fabric fab({.accelerator = "cpu", .precision = prec});
    fab.precision().convert_module(*gpt);
    nn::apply_lora(*gpt, {.rank = 16, .alpha = 16, .target = {"c_attn", "c_proj", "c_fc"}});
    std::vector<std::pair<std::string, std::string>> before;
    for (const auto& [n, m] : gpt->named_modules()) before.emplace_back(n, m->type_name());
    fab.setup_module(gpt);
    std::vector<std::pair<std::string, std::string>> after;
    for (const auto& [n, m] : gpt->named_modules()) after.emplace_back(n, m->type_name());
    EXPECT_EQ(after, before) << prec;
    EXPECT_EQ(gpt->get_submodule("transformer.h.0.attn.c_attn.lora_B")->type_name(), "Linear") << prec;
    if (std::string(prec) == "transformer-engine") {
      EXPECT_EQ(gpt->get_submodule("transformer.h.0.attn.c_attn.base_layer")->type_name(), "FP8Linear");
      auto* te = dynamic_cast<precision::TransformerEnginePrecision*>(&fab.precision());
      ASSERT_NE(te, nullptr);
      EXPECT_EQ(te->fp8_layers().size(), 4u) << "the FP8 layers under the adapters are still the plugin's";
      ASSERT_EQ(te->warnings().size(), 1u) << "the first conversion's warning";
      EXPECT_CONTAINS(te->warnings()[0], "'lm_head'");
    }
  }
}

}  // namespace
}  // namespace fabric
