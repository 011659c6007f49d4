// Real DeepSpeed config blocks, through the connector (the C++ API's
// FabricOptions::deepspeed_config) and through the fabric-train binary: DeepSpeed's ordinary keys
// are accepted, those this runtime does not use named in one warning, typos refused with "did you
// mean"; the offload devices and train_batch_size act as in DeepSpeed; `deepspeed:` may be the path
// of a .json or .yaml file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "precision/deepspeed_precision.h"
#include "runtime/connector.h"
#include "tests/common/expect_error.h"
#include "tests/runtime/fabric_train_contract.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

TEST(DeepSpeedConfigConnector, OffloadBatchRuleAndIgnoredKeys) {
  struct Case {
    std::string strategy, json;
    std::optional<bool> offload;  // nullopt: a ValueError naming train_batch_size
    std::string warning;          // in Resolved::warnings ("" = none about DeepSpeed keys)
  };
  const std::vector<Case> cases = {
      {"deepspeed",
       R"({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": true}}})",
       true, "ignored: zero_optimization.offload_optimizer.pin_memory"},
      // The config's device wins over the strategy name's, as its stage does.
      {"deepspeed_stage_2_offload",
       R"({"zero_optimization": {"offload_optimizer": {"device": "none"}}})", false, ""},
      {"deepspeed_stage_2_offload", R"({"steps_per_print": 10, "wall_clock_breakdown": false})",
       true, "ignored: steps_per_print, wall_clock_breakdown"},
      {"deepspeed", R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}})",
       true, ""},
      // 2 processes: 8 = 4 x 1 x 2; 16 is not.
      {"deepspeed", R"({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 4})", false, ""},
      {"deepspeed",
       R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1})",
       std::nullopt, ""},
  };
  for (const Case& c : cases) {
    ConnectorFlags flags{.accelerator = "cpu", .strategy = c.strategy, .devices = 2};
    flags.deepspeed = precision::DeepSpeedConfig::from_json_text(c.json);
    if (!c.offload) {
      EXPECT_CONTAINS(thrown<ValueError>([&] { resolve_connector(flags); }),
                      "train_batch_size (16)")
          << c.json;
      continue;
    }
    const Resolved r = resolve_connector(flags);
    EXPECT_EQ(r.offload, *c.offload) << c.strategy << " " << c.json;
    std::string warnings;
    for (const auto& w : r.warnings) warnings += w + "\n";
    if (c.warning.empty())
      EXPECT_EQ(warnings.find("ignored:"), std::string::npos) << warnings;
    else
      EXPECT_CONTAINS(warnings, c.warning);
  }
}

// fp16.enabled "auto" follows the run's precision: under 16-mixed the block's loss-scale keys
// apply, under any other precision the block does nothing.
TEST(DeepSpeedConfigConnector, AutoFp16BlockFollowsThePrecision) {
  for (const std::string precision : {"16-mixed", "bf16-mixed", ""}) {
    ConnectorFlags flags{.accelerator = "cpu", .strategy = "deepspeed", .devices = 1};
    flags.precision = precision;
    flags.deepspeed = precision::DeepSpeedConfig::from_json_text(
        R"({"fp16": {"enabled": "auto", "initial_scale_power": 12}, "train_micro_batch_size_per_gpu": "auto"})");
    const Resolved r = resolve_connector(flags);
    EXPECT_EQ(r.precision, precision.empty() ? "32-true" : precision);
    const auto* ds = dynamic_cast<const precision::DeepSpeedPrecision*>(r.plugin.get());
    ASSERT_NE(ds, nullptr) << precision;
    EXPECT_EQ(ds->loss_scaler().cur_scale(), precision == "16-mixed" ? 4096.0 : 1.0) << precision;
  }
}

// A config of the test's own: the contract's MLP under `strategy` on 2 cpu processes, `trainer`
// extra keys, and the `deepspeed` section's text (after "deepspeed:").
std::string write_ds(const fs::path& dir, const std::string& name, const std::string& deepspeed,
                     const std::string& trainer = "batch_size: 16") {
  const fs::path p = dir / name;
  std::ofstream(p) << "fabric: {accelerator: cpu, strategy: deepspeed, devices: 2}\n"
                      "model: {name: mlp, sizes: [784, 16, 10]}\n"
                      "data: {kind: tensors, path: "
                   << (dir / "data.safetensors").string()
                   << "}\n"
                      "optimizer: {name: adamw, lr: 0.001}\n"
                      "trainer: {max_steps: 2, "
                   << trainer << ", run_dir: " << (dir / "run").string()
                   << "}\n"
                      "deepspeed:"
                   << deepspeed << "\n";
  return p.string();
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(FabricTrain, DeepSpeedSectionsOfRealConfigsValidate) {
  fs::create_directories(dir_ / "cfg");
  std::ofstream(dir_ / "cfg/ds.json")
      << "{\n\t\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": true,\n"
         "\t\t\"stage3_prefetch_bucket_size\": \"auto\"},\n\t\"bf16\": {\"enabled\": true}\n}\n";
  std::ofstream(dir_ / "cfg/ds.yaml") << "zero_optimization: {stage: 1}\nsteps_per_print: 100\n";
  std::ofstream(dir_ / "cfg/typo.json")
      << "{\n  \"zero_optimization\": {\n    \"stage\": 2, \"overlap_com\": true}\n}\n";
  struct Case {
    std::string name, deepspeed, trainer;
    int status;
    std::vector<std::string> output;  // each in the output
  };
  const std::vector<Case> cases = {
      {"ordinary_keys.yaml",
       "\n  zero_optimization: {stage: 2, overlap_comm: true, contiguous_gradients: true, "
       "reduce_bucket_size: 5.0e8}\n"
       "  steps_per_print: 10\n  bf16: {enabled: true}\n  optimizer: {type: AdamW, params: {lr: "
       "auto}}",
       "batch_size: 16",
       0,
       {"warning: ",
        "DeepSpeed config: ignored: optimizer, steps_per_print, "
        "zero_optimization.contiguous_gradients, "
        "zero_optimization.overlap_comm, zero_optimization.reduce_bucket_size",
        "precision: bf16-mixed"}},
      // Relative to the config's folder (the test runs from another directory), JSON with tabs.
      {"cfg/json_path.yaml",
       " ds.json",
       "batch_size: 16",
       0,
       {"ignored: zero_optimization.overlap_comm, zero_optimization.stage3_prefetch_bucket_size",
        "stage: 3", "precision: bf16-mixed"}},
      {"cfg/yaml_path.yaml",
       " ds.yaml",
       "batch_size: 16",
       0,
       {"ignored: steps_per_print", "stage: 1"}},
      {"missing_path.yaml",
       " absent.json",
       "batch_size: 16",
       2,
       {"deepspeed: no such file 'absent.json'"}},
      {"typo.yaml",
       "\n  zero_optimization: {stage: 2, overlap_com: true}",
       "batch_size: 16",
       2,
       {"typo.yaml:7:",
        "deepspeed.zero_optimization.overlap_com: unknown key; did you mean 'overlap_comm'?"}},
      {"cfg/typo_in_file.yaml",
       " typo.json",
       "batch_size: 16",
       2,
       {"typo.json:3:",
        "deepspeed.zero_optimization.overlap_com: unknown key; did you mean 'overlap_comm'?"}},
      // DeepSpeed's train_batch_size: checked against batch_size x accumulation x 2 processes, and
      // the trainer value not given derived from it.
      {"batch_ok.yaml",
       "\n  train_batch_size: 64",
       "batch_size: 16, accumulate_grad_batches: 2",
       0,
       {"batch_size: 16", "accumulate_grad_batches: 2"}},
      {"batch_derived_accumulation.yaml",
       "\n  train_batch_size: 64",
       "batch_size: 16",
       0,
       {"batch_size: 16", "accumulate_grad_batches: 2"}},
      {"batch_bad.yaml",
       "\n  train_batch_size: 64",
       "batch_size: 16, accumulate_grad_batches: 1",
       2,
       {"deepspeed.train_batch_size: ", "train_batch_size (64) must equal", "16 x 1 x 2 = 32"}},
      {"batch_derived.yaml",
       "\n  train_batch_size: 64\n  gradient_accumulation_steps: 4",
       "seed: 0",
       0,
       {"batch_size: 8", "accumulate_grad_batches: 4"}},
      // Hugging Face's "auto" values: taken from the trainer and the strategy; fp16 follows
      // fabric.precision (32-true here, so no loss scaling).
      {"hf_auto.yaml",
       "\n  fp16: {enabled: auto, initial_scale_power: 12}\n  train_micro_batch_size_per_gpu: auto\n"
       "  gradient_accumulation_steps: auto\n  gradient_clipping: auto\n  zero_optimization: {stage: auto}",
       "batch_size: 16",
       0,
       {"batch_size: 16", "precision: 32-true", "enabled: auto", "strategy: deepspeed"}},
      {"offload.yaml",
       "\n  zero_optimization: {stage: 2, offload_optimizer: {device: cpu, pin_memory: true}}",
       "batch_size: 16",
       0,
       {"offload_optimizer:", "device: cpu",
        "ignored: zero_optimization.offload_optimizer.pin_memory"}},
  };
  for (const Case& c : cases) {
    const std::string cfg = write_ds(dir_, c.name, c.deepspeed, c.trainer);
    const Result r = run("validate " + cfg, "cd / &&");
    EXPECT_EQ(r.status, c.status) << c.name << "\n" << r.output;
    for (const std::string& m : c.output) EXPECT_CONTAINS(r.output, m) << c.name;
    EXPECT_LE(count(r.output, "ignored:"), 1u) << c.name << ": one warning\n" << r.output;
  }
}

// The audit's config: ordinary DeepSpeed keys from a JSON file next to the config, trained over
// two processes.
TEST_F(FabricTrain, DeepSpeedConfigFileWithOrdinaryKeysTrains) {
  std::ofstream(dir_ / "ds.json")
      << R"({"zero_optimization": {"stage": 2, "overlap_comm": true, "reduce_bucket_size": 5e8},
    "steps_per_print": 10, "wall_clock_breakdown": false, "train_batch_size": 32, "gradient_clipping": 1.0})";
  const Result r = run("fit " + write_ds(dir_, "fit.yaml", " ds.json"),
                       "cd / && env -u MASTER_PORT timeout 300");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "deepspeed over 2 processes");
  EXPECT_EQ(count(r.output,
                  "ignored: steps_per_print, wall_clock_breakdown, zero_optimization.overlap_comm, "
                  "zero_optimization.reduce_bucket_size"),
            1u)
      << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints/last")) << r.output;
}

}  // namespace
}  // namespace fabric
