// fabric-train with the precision plugin's options (fabric.scaler, fabric.transformer_engine,
// fabric.bitsandbytes) through the binary: the run trains with them, its checkpoint holds the
// plugin state they give, resume carries on from it, and sample/export rebuild the same layers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace train_test;

nlohmann::json precision_state(const fs::path& checkpoint) {
  std::ifstream in(checkpoint / "state.json");
  return nlohmann::json::parse(in)["entries"]["precision"];
}

class FabricTrainPluginOptions : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_plugin_options");
    if (IsSkipped()) return;
    Generator gen(3);
    save_classification_data(dir_ / "data.safetensors", 32, 8, 3, gen);
    cfg_ = (dir_ / "mlp.yaml").string();
    std::ofstream(cfg_)
        << "fabric:\n  precision: 16-mixed\n  scaler: {init_scale: 1024, growth_interval: 3}\n"
           "model: {name: mlp, sizes: [8, 16, 3]}\n"
           "data: {kind: tensors, path: "
        << (dir_ / "data.safetensors").string()
        << "}\noptimizer: {name: sgd, lr: 0.1}\ntrainer: {max_steps: 8, batch_size: 4}\n";
  }
};

// 8 clean steps with growth_interval 3 double the scale twice (after steps 3 and 6); a resume to
// step 12 doubles it twice more (steps 9 and 12), from the checkpoint's state.
TEST_F(FabricTrainPluginOptions, TheScalerTrainsWithItsOptionsAndResumes) {
  Result r = fit("trainer.log_every=4", "s");
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json p = precision_state(dir_ / "s/checkpoints/last");
  EXPECT_EQ(p["name"], "16-mixed");
  EXPECT_EQ(p["state"]["scale"], 4096.0) << p.dump();
  EXPECT_EQ(p["state"]["growth_interval"], 3);
  EXPECT_EQ(p["state"]["_growth_tracker"], 2);
  EXPECT_NE(slurp(dir_ / "s/config.yaml").find("  scaler:\n    init_scale: 1024.0\n"),
            std::string::npos);
  r = run("resume " + (dir_ / "s").string() + " --set trainer.max_steps=12");
  ASSERT_EQ(r.status, 0) << r.output;
  p = precision_state(dir_ / "s/checkpoints/last");
  EXPECT_EQ(p["state"]["scale"], 16384.0) << p.dump();
  EXPECT_EQ(p["state"]["_growth_tracker"], 0);
  // A resume's --set of a key the scaler's state restores is said and left out: config.yaml keeps
  // the value in effect.
  r = run("resume " + (dir_ / "s").string() +
          " --set trainer.max_steps=13 fabric.scaler.growth_interval=1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(
      r.output.find("--set fabric.scaler.growth_interval=1 (in effect: 3): the GradScaler's scale"),
      std::string::npos)
      << r.output;
  EXPECT_NE(slurp(dir_ / "s/config.yaml").find("    growth_interval: 3\n"), std::string::npos);
  EXPECT_EQ(precision_state(dir_ / "s/checkpoints/last")["state"]["growth_interval"], 3);
  // The same through the whole block (a mapping, or null: every key back to its default).
  for (const char* block : {"'fabric.scaler={growth_interval: 1}'", "fabric.scaler=null"}) {
    r = run("resume " + (dir_ / "s").string() + " --set trainer.max_steps=13 " + block);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("(in effect: 3): the GradScaler's scale"), std::string::npos)
        << block << r.output;
    EXPECT_NE(slurp(dir_ / "s/config.yaml").find("    growth_interval: 3\n"), std::string::npos)
        << block;
  }
  // enabled: false trains without loss scaling (the state says scale 1, as a disabled GradScaler).
  r = fit("fabric.scaler.enabled=false", "off");
  ASSERT_EQ(r.status, 0) << r.output;
  // LT_PRECISION (as `fabric run` sets it) naming the block's precision agrees with its plugin.
  r = run("fit " + cfg_ + " --set trainer.run_dir=" + (dir_ / "env").string(),
          "LT_PRECISION=16-mixed");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(precision_state(dir_ / "env/checkpoints/last")["state"]["scale"], 4096.0);
}

// Which scaler keys a resume restores depends on what the checkpoint holds: under a precision
// given by LT_PRECISION (as by --set) they take effect; a scaler that was disabled has no state, so
// a re-enabling resume takes its init_scale; the defaults block fabric-train writes for every
// 16-mixed run does not stop a resume under deepspeed, whose scaler is its own.
TEST_F(FabricTrainPluginOptions, TheScalerKeysOnResumeFollowWhatTheCheckpointHolds) {
  Result r = fit("fabric.precision=32-true", "p32");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(
      "resume " + (dir_ / "p32").string() +
          " --set trainer.max_steps=10 fabric.scaler.init_scale=8 fabric.scaler.growth_interval=1",
      "LT_PRECISION=16-mixed");
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json p = precision_state(dir_ / "p32/checkpoints/last");
  EXPECT_EQ(p["name"], "16-mixed") << p.dump();
  EXPECT_EQ(p["state"]["growth_interval"], 1) << p.dump();
  EXPECT_EQ(p["state"]["scale"], 32.0) << p.dump();  // 8, grown after each of the 2 steps

  r = fit("fabric.scaler.enabled=false", "off");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("resume " + (dir_ / "off").string() +
          " --set trainer.max_steps=10 fabric.scaler.enabled=true fabric.scaler.init_scale=8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("restored from the checkpoint"), std::string::npos) << r.output;
  EXPECT_EQ(precision_state(dir_ / "off/checkpoints/last")["state"]["scale"], 8.0);

  r = fit("fabric.scaler=null", "defaults");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("resume " + (dir_ / "defaults").string() +
          " --set trainer.max_steps=10 fabric.strategy=deepspeed");
  EXPECT_EQ(r.status, 0) << r.output;
  // Its checkpoint now holds DeepSpeed's scaler, not a GradScaler's: back under ddp, the scaler's
  // keys take effect.
  r = run("resume " + (dir_ / "defaults").string() +
          " --set trainer.max_steps=12 fabric.strategy=ddp fabric.scaler.growth_interval=1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("restored from the checkpoint"), std::string::npos) << r.output;
  EXPECT_EQ(precision_state(dir_ / "defaults/checkpoints/last")["state"]["growth_interval"], 1);
}

// ignore_modules keeps the gpt's lm_head unquantized (fit builds the model under the tensor
// context, since the module one refuses ignore_modules); sample and export rebuild the same layout.
TEST_F(FabricTrainPluginOptions, BitsandbytesIgnoreModulesFitSampleExport) {
  const std::string cfg = write_tiny_gpt_config("g");
  const Result r =
      run("fit " + cfg +
          " --set fabric.precision=nf4 'fabric.bitsandbytes={ignore_modules: [lm_head]}'");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto weights =
      load_safetensors((dir_ / "g/checkpoints/last/model.safetensors").string()).tensors;
  ASSERT_TRUE(weights.count("lm_head.weight") || weights.count("transformer.wte.weight"));
  for (const auto& [k, t] : weights) {
    if (k.find("c_fc.weight") != std::string::npos &&
        k.find('.', k.find("c_fc.weight") + 5) == std::string::npos)
      EXPECT_EQ(t.dtype(), DType::uint8) << k;  // quantized
    if (k == "lm_head.weight" || k == "transformer.wte.weight")
      EXPECT_EQ(t.dtype(), DType::bfloat16) << k;  // kept in the compute dtype, not quantized
  }
  const Result s =
      run("sample " + (dir_ / "g/checkpoints/last").string() + " --prompt the --tokens 4");
  EXPECT_EQ(s.status, 0) << s.output;
  const Result e = run("export " + (dir_ / "g/checkpoints/last").string() + " " +
                       (dir_ / "out.safetensors").string());
  EXPECT_EQ(e.status, 0) << e.output;
  // Which layers are quantized is the checkpoint's: a resume cannot change it.
  const Result changed =
      run("resume " + (dir_ / "g").string() + " --set 'fabric.bitsandbytes.ignore_modules=[]'");
  EXPECT_EQ(changed.status, 2) << changed.output;
  EXPECT_NE(changed.output.find(
                "resume: --set fabric.bitsandbytes.ignore_modules=[]: the run's model was trained "
                "with fabric.bitsandbytes.ignore_modules [lm_head]"),
            std::string::npos)
      << changed.output;
  const Result block =
      run("resume " + (dir_ / "g").string() + " --set 'fabric.bitsandbytes={ignore_modules: []}'");
  EXPECT_EQ(block.status, 2) << block.output;
  EXPECT_NE(block.output.find(
                "the run's model was trained with fabric.bitsandbytes.ignore_modules [lm_head]"),
            std::string::npos)
      << block.output;
}

// The recipe's options reach the FP8 plugin and its saved state; replace_layers false leaves the
// Linear layers as they are (float weights in the checkpoint).
TEST_F(FabricTrainPluginOptions, TransformerEngineRecipe) {
  const std::string cfg = write_tiny_gpt_config("te");
  Result r =
      run("fit " + cfg +
          " --set fabric.precision=transformer-engine fabric.transformer_engine.fp8_format=E4M3 "
          "fabric.transformer_engine.amax_history_len=4 fabric.transformer_engine.margin=1");
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json p = precision_state(dir_ / "te/checkpoints/last");
  EXPECT_EQ(p["state"]["fp8_format"], "E4M3") << p.dump();
  EXPECT_EQ(p["state"]["amax_history_len"], 4);
  EXPECT_EQ(p["state"]["margin"], 1);
  r = run(
      "fit " + cfg +
      " --set fabric.precision=transformer-engine fabric.transformer_engine.replace_layers=false "
      "trainer.run_dir=" +
      (dir_ / "te2").string());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const auto& [k, t] :
       load_safetensors((dir_ / "te2/checkpoints/last/model.safetensors").string()).tensors)
    EXPECT_EQ(k.find("fp8"), std::string::npos) << k;  // no FP8 layer state
  const Result s =
      run("sample " + (dir_ / "te2/checkpoints/last").string() + " --prompt the --tokens 4");
  EXPECT_EQ(s.status, 0) << s.output;
}

}  // namespace
}  // namespace fabric
