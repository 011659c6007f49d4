// fabric-train's ZeRO stage keys, `fabric.stage` and `deepspeed.stage` (issue #9's "strategy:
// deepspeed with stage: 1|2|3", Lightning's DeepSpeedStrategy(stage=...)): the stage reaches the
// strategy through the deepspeed section's zero_optimization.stage; a bad value, a stage that
// disagrees with another key naming one, or a strategy that is not deepspeed* is an error at the
// key; the dumped config reads back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "precision/deepspeed_precision.h"
#include "runtime/connector.h"
#include "runtime/train_config.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class StageConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_cfg_stage_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = (dir_ / "data.safetensors").string();
    std::ofstream(data_) << "x";  // existence is all the config checks
  }
  void TearDown() override { fs::remove_all(dir_); }
  // `fabric` is the fabric section's inside; `extra` follows the other sections.
  std::string config(const std::string& fabric, const std::string& extra = "") const {
    return "fabric: {accelerator: cpu, devices: 2, " + fabric + "}\n" +
           "model: {name: mlp, sizes: [4, 2]}\n"
           "data: {kind: tensors, path: " + data_ + "}\n"
           "trainer: {max_steps: 5}\n" + extra;
  }
  std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) const {
    return thrown<ConfigError>([&] { parse_train_config(yaml, "cfg.yaml", overrides); });
  }
  fs::path dir_;
  std::string data_;
};

// The stage the strategy will run: the connector's resolution of the parsed config.
int zero_stage_of(const TrainConfig& c) {
  std::optional<precision::DeepSpeedConfig> ds;
  if (!c.deepspeed.empty()) ds = precision::DeepSpeedConfig::from_json_or_path(c.deepspeed);
  return resolve_connector({.accelerator = "cpu", .strategy = c.fabric.strategy, .precision = c.fabric.precision,
                            .deepspeed = ds})
      .zero_stage;
}

TEST_F(StageConfigTest, BothKeysChooseTheZeroStage) {
  const TrainConfig f = parse_train_config(config("strategy: deepspeed, stage: 3"), "cfg.yaml");
  EXPECT_EQ(f.fabric.stage, 3);
  EXPECT_EQ(zero_stage_of(f), 3);
  const TrainConfig d = parse_train_config(config("strategy: deepspeed", "deepspeed: {stage: 1}\n"), "cfg.yaml");
  EXPECT_EQ(d.fabric.stage, 1);
  EXPECT_EQ(zero_stage_of(d), 1);
  EXPECT_EQ(zero_stage_of(parse_train_config(config("strategy: deepspeed"), "cfg.yaml", {"fabric.stage=1"})), 1);
  EXPECT_EQ(zero_stage_of(parse_train_config(config("strategy: deepspeed_stage_3_offload"), "cfg.yaml",
                                             {"deepspeed.stage=3"})), 3);
  // Keys that agree are fine; the strategy name's stage stays the default.
  EXPECT_EQ(zero_stage_of(parse_train_config(config("strategy: deepspeed_stage_1, stage: 1",
                                                    "deepspeed: {stage: 1, zero_optimization: {stage: 1}}\n"),
                                             "cfg.yaml")), 1);
  const TrainConfig none = parse_train_config(config("strategy: deepspeed"), "cfg.yaml");
  EXPECT_EQ(none.fabric.stage, 0);
  EXPECT_EQ(zero_stage_of(none), 2);
}

TEST_F(StageConfigTest, AStageOutsideOneToThreeIsAnErrorAtTheKey) {
  for (const char* bad : {"0", "4", "-1"}) {
    const std::string f = error_of(config(std::string("strategy: deepspeed, stage: ") + bad));
    EXPECT_CONTAINS(f, "cfg.yaml:1:");
    EXPECT_CONTAINS(f, std::string("fabric.stage: must be between 1 and 3, got ") + bad);
    const std::string d = error_of(config("strategy: deepspeed", std::string("deepspeed: {stage: ") + bad + "}\n"));
    EXPECT_CONTAINS(d, "cfg.yaml:5:");
    EXPECT_CONTAINS(d, std::string("deepspeed.stage: must be between 1 and 3, got ") + bad);
  }
  EXPECT_CONTAINS(error_of(config("strategy: deepspeed"), {"deepspeed.stage=two"}),
                  "--set deepspeed.stage: expected integer, got 'two'");
  EXPECT_CONTAINS(error_of(config("strategy: deepspeed, stage: [3]")), "fabric.stage: expected integer");
}

TEST_F(StageConfigTest, AStageThatDisagreesNamesBothKeys) {
  EXPECT_CONTAINS(error_of(config("strategy: deepspeed, stage: 3", "deepspeed: {zero_optimization: {stage: 2}}\n")),
                  "fabric.stage: 3 disagrees with deepspeed.zero_optimization.stage (stage 2)");
  EXPECT_CONTAINS(error_of(config("strategy: deepspeed_stage_2, stage: 3")),
                  "fabric.stage: 3 disagrees with fabric.strategy 'deepspeed_stage_2' (stage 2)");
  EXPECT_CONTAINS(error_of(config("strategy: deepspeed_stage_2_offload"), {"deepspeed.stage=1"}),
                  "--set deepspeed.stage: 1 disagrees with fabric.strategy 'deepspeed_stage_2_offload'");
  EXPECT_CONTAINS(error_of(config("strategy: deepspeed, stage: 1", "deepspeed: {stage: 2}\n")),
                  "fabric.stage: 1 disagrees with deepspeed.stage (stage 2)");
}

TEST_F(StageConfigTest, TheStageNeedsADeepSpeedStrategy) {
  EXPECT_CONTAINS(error_of(config("strategy: ddp, stage: 2")),
                  "fabric.stage: the ZeRO stage needs fabric.strategy deepspeed or deepspeed_stage_N, got 'ddp'");
  EXPECT_CONTAINS(error_of(config("strategy: fsdp", "deepspeed: {stage: 2}\n")),
                  "a deepspeed section needs fabric.strategy deepspeed");
  // A file's stage gives way to a strategy from the command line (resuming a ZeRO run under ddp).
  const TrainConfig c = parse_train_config(config("strategy: deepspeed, stage: 3"), "cfg.yaml", {"fabric.strategy=ddp"});
  EXPECT_EQ(c.fabric.stage, 0);
  EXPECT_TRUE(c.deepspeed.empty());
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_CONTAINS(c.warnings[0], "fabric.stage is ignored: fabric.strategy 'ddp' (from the command line)");
}

TEST_F(StageConfigTest, TheDumpedConfigReadsBack) {
  const TrainConfig c = parse_train_config(config("strategy: deepspeed, stage: 3"), "cfg.yaml");
  const std::string dumped = dump_train_config(c);
  EXPECT_CONTAINS(dumped, "  stage: 3\n");
  const TrainConfig back = parse_train_config(dumped, "dumped.yaml");
  EXPECT_EQ(back.fabric.stage, 3);
  EXPECT_EQ(zero_stage_of(back), 3);
  EXPECT_EQ(dump_train_config(back), dumped);
  // Not given: no stage key at all.
  const std::string ddp = dump_train_config(parse_train_config(config("strategy: ddp"), "cfg.yaml"));
  EXPECT_EQ(ddp.find("  stage:"), std::string::npos);
}

}  // namespace
}  // namespace fabric
