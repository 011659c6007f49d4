// fabric-train with quantized (bitsandbytes), FP8 (transformer-engine) and LoRA models, through the
// binary: fit's end-of-run sample, `sample` and `export` of their checkpoints, LoRA adapters that
// DDP all-reduces and FSDP shards, and precisions a strategy cannot run refused as config errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_metrics.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

std::vector<std::string> keys_of(const fs::path& file) {
  std::vector<std::string> keys;
  for (const auto& [k, t] : load_safetensors(file.string()).tensors) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

class FabricTrainQuantized : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_quantized");
    if (IsSkipped()) return;
    std::string text;
    for (int i = 0; i < 40; ++i)
      text += "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
              "must be in want of a wife. ";
    std::ofstream(dir_ / "text.txt") << text;
    cfg_ = (dir_ / "gpt.yaml").string();
    std::ofstream(cfg_) << "model: {name: gpt, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32}\n"
                           "data: {kind: text, path: " << (dir_ / "text.txt").string() << "}\n"
                           "optimizer: {name: adamw, lr: 0.01}\n"
                           "trainer: {max_steps: 2, batch_size: 8, seed: 1}\n";
  }
};

// The QLoRA example: the bundled gpt-austen config (smaller, on a generated text) under
// nf4-dq with LoRA adapters ends with its sample; `sample` reads the checkpoint and `export` writes
// the stored keys (bitsandbytes' layout under the adapters' base_layer).
TEST_F(FabricTrainQuantized, QLoRAOnTheBundledConfigSamplesAndExports) {
#ifdef FABRIC_CONFIG_DIR
  const std::string run_dir = (dir_ / "qlora").string();
  const Result r = run("fit " + std::string(FABRIC_CONFIG_DIR) + "/gpt-austen.yaml --set data.path=" +
                       (dir_ / "text.txt").string() +
                       " fabric.precision=nf4-dq lora.rank=8 lora.alpha=16 model.n_layer=2 model.n_embd=64"
                       " model.block_size=32 trainer.max_steps=4 trainer.val_every=2 trainer.val_batches=2"
                       " trainer.checkpoint_every=2 trainer.sample_tokens=40 trainer.run_dir=" + run_dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("--- sample ---\nIt is a truth universally acknowledged"), std::string::npos) << r.output;
  const std::string last = run_dir + "/checkpoints/last";
  const Result s = run("sample " + last + " --prompt 'It is a truth' --tokens 30");
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_EQ(s.output.rfind("It is a truth", 0), 0u) << s.output;
  EXPECT_GE(s.output.size(), 43u) << s.output;
  const std::string out = (dir_ / "qlora.safetensors").string();
  const Result e = run("export " + last + " " + out);
  ASSERT_EQ(e.status, 0) << e.output;
  const auto keys = keys_of(out);
  EXPECT_EQ(keys, keys_of(last + "/model.safetensors"));
  for (const char* k : {"transformer.h.0.attn.c_attn.base_layer.weight.quant_state.bitsandbytes__nf4",
                        "transformer.h.0.attn.c_attn.base_layer.weight.nested_absmax",
                        "transformer.h.1.mlp.c_fc.lora_A.weight", "transformer.h.1.mlp.c_fc.lora_B.weight"})
    EXPECT_TRUE(std::binary_search(keys.begin(), keys.end(), k)) << k;
#else
  GTEST_SKIP() << "FABRIC_CONFIG_DIR not set";
#endif
}

// Every kind of converted model (FP8, int8, 4-bit, a true dtype) with and without adapters: fit
// samples at its end, and `sample` and `export` read its checkpoint.
TEST_F(FabricTrainQuantized, EveryConvertedModelSamplesAndExports) {
  const std::vector<std::string> cases = {
      "fabric.precision=transformer-engine", "fabric.precision=transformer-engine lora.rank=4",
      "fabric.precision=32-true lora.rank=4", "fabric.precision=bf16-true lora.rank=4",
      "fabric.precision=int8",                "fabric.precision=int8-training lora.rank=4",
      "fabric.precision=fp4 lora.rank=4"};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string run_dir = "r" + std::to_string(i);
    const Result r = fit(cases[i] + " trainer.sample_tokens=8 trainer.sample_prompt=It", run_dir);
    ASSERT_EQ(r.status, 0) << cases[i] << "\n" << r.output;
    EXPECT_NE(r.output.find("--- sample ---\nIt"), std::string::npos) << cases[i] << "\n" << r.output;
    const fs::path last = dir_ / run_dir / "checkpoints/last";
    const Result s = run("sample " + last.string() + " --prompt It --tokens 8");
    EXPECT_EQ(s.status, 0) << cases[i] << "\n" << s.output;
    EXPECT_EQ(s.output.rfind("It", 0), 0u) << cases[i] << "\n" << s.output;
    const fs::path out = dir_ / (run_dir + ".safetensors");
    const Result e = run("export " + last.string() + " " + out.string());
    ASSERT_EQ(e.status, 0) << cases[i] << "\n" << e.output;
    EXPECT_EQ(keys_of(out), keys_of(last / "model.safetensors")) << cases[i];
  }
}

// LoRA adapters go on before Fabric sets the model up, so DDP all-reduces their gradients: two
// processes with batches of 4 train what one process trains with batches of 8 (same losses, same
// adapters), for a float and for a quantized (QLoRA) base.
TEST_F(FabricTrainQuantized, DDPWithLoRAMatchesOneProcess) {
  for (const auto& [prec, tol] : std::vector<std::pair<std::string, double>>{{"32-true", 1e-5}, {"nf4-dq", 2e-4}}) {
    const std::string common = "fabric.precision=" + prec + " lora.rank=8 trainer.max_steps=4 data.shuffle=true";
    const Result one = fit(common + " trainer.batch_size=8", "one-" + prec);
    ASSERT_EQ(one.status, 0) << one.output;
    const Result two = fit(common + " trainer.batch_size=4 fabric.devices=2 fabric.strategy=ddp", "two-" + prec);
    ASSERT_EQ(two.status, 0) << two.output;
    const auto a = train_losses(dir_ / ("one-" + prec) / "metrics.csv");
    const auto b = train_losses(dir_ / ("two-" + prec) / "metrics.csv");
    ASSERT_EQ(a.size(), 4u);
    ASSERT_EQ(b.size(), 4u);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol * a[i]) << prec << " step " << i + 1;
    const SafetensorsFile ma = load_safetensors((dir_ / ("one-" + prec) / "checkpoints/last/model.safetensors").string());
    const SafetensorsFile mb = load_safetensors((dir_ / ("two-" + prec) / "checkpoints/last/model.safetensors").string());
    int adapters = 0;
    for (const auto& [k, t] : ma.tensors) {
      if (k.find("lora_") == std::string::npos) continue;
      ++adapters;
      const double diff = amax(abs(t - mb.tensors.at(k))).item<double>();
      EXPECT_LE(diff, tol * std::max(1.0, amax(abs(t)).item<double>())) << prec << " " << k;
    }
    EXPECT_EQ(adapters, 8) << "lora_A and lora_B of attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj";
  }
}

// FSDP shards the frozen base and the adapters (set up together): the run trains what one process
// does, saves, resumes exactly from a step checkpoint, and its sharded checkpoint samples.
TEST_F(FabricTrainQuantized, FSDPWithLoRASavesAndResumes) {
  const std::string common = "lora.rank=4 trainer.max_steps=4 trainer.checkpoint_every=2 trainer.log_every=1";
  const Result one = fit(common + " trainer.batch_size=8", "one");
  ASSERT_EQ(one.status, 0) << one.output;
  const Result two = fit(common + " trainer.batch_size=4 fabric.devices=2 fabric.strategy=fsdp", "fsdp");
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_NE(two.output.find("fsdp over 2 processes"), std::string::npos) << two.output;
  const auto a = train_losses(dir_ / "one/metrics.csv"), b = train_losses(dir_ / "fsdp/metrics.csv");
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * a[i]) << "step " << i + 1;

  const fs::path run_dir = dir_ / "fsdp";
  ASSERT_NO_FATAL_FAILURE(expect_resume_reproduces(run_dir.string(), 2));
  const Result s = run("sample " + (run_dir / "checkpoints/last").string() + " --prompt It --tokens 5");
  EXPECT_EQ(s.status, 0) << s.output;
}

// A precision the strategy cannot run is the config's fault: fit exits 2 naming both keys and writes
// nothing; validate finds it too (on one process, without starting the others).
TEST_F(FabricTrainQuantized, APrecisionTheStrategyCannotRunIsAConfigError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"fabric.strategy=fsdp fabric.precision=nf4-dq", "precision='nf4-dq' is not supported with strategy='fsdp'"},
      {"fabric.strategy=fsdp fabric.precision=transformer-engine",
       "precision='transformer-engine' is not supported with strategy='fsdp'"},
      {"fabric.strategy=fsdp fabric.precision=64-true", "precision='64-true' is not supported with strategy='fsdp'"},
      {"fabric.strategy=deepspeed_stage_3 fabric.devices=2 fabric.precision=nf4-dq lora.rank=4",
       "precision='nf4-dq' is not supported with strategy='deepspeed_stage_3'"}};
  for (const auto& [sets, message] : cases) {
    const Result r = fit(sets, "bad");
    EXPECT_EQ(r.status, 2) << sets << "\n" << r.output;
    EXPECT_NE(r.output.find("fabric.precision '"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("' with fabric.strategy '"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << sets;
    const Result v = run("validate " + cfg_ + " --set " + sets);
    EXPECT_EQ(v.status, 2) << sets << "\n" << v.output;
    EXPECT_NE(v.output.find(message), std::string::npos) << v.output;
  }
}

}  // namespace
}  // namespace fabric
