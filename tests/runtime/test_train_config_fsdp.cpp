// fabric-train's `fsdp:` section: its keys and defaults (the gpt's [Block] units), the checks that
// name the key, the strategy it needs, the dumped config reading back, and the schema rows.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/train_config.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class FsdpConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_cfg_fsdp_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = (dir_ / "data.safetensors").string();
    std::ofstream(data_) << "x";  // existence is all the config checks
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A config with `strategy` and `model`, plus `extra` (e.g. an fsdp section).
  std::string config(const std::string& strategy, const std::string& extra = "",
                     const std::string& model =
                         "{name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}") const {
    return "fabric: {accelerator: cpu, strategy: " + strategy +
           ", devices: 2}\n"
           "model: " +
           model +
           "\n"
           "data: {kind: tensors, path: " +
           data_ +
           "}\n"
           "trainer: {max_steps: 5}\n" +
           extra;
  }
  std::string error_of(const std::string& yaml,
                       const std::vector<std::string>& overrides = {}) const {
    return thrown<ConfigError>([&] { parse_train_config(yaml, "cfg.yaml", overrides); });
  }
  fs::path dir_;
  std::string data_;
};

TEST_F(FsdpConfigTest, SectionKeysParseAndReadBack) {
  const TrainConfig c = parse_train_config(config("fsdp",
                                                  "fsdp:\n"
                                                  "  sharding_strategy: shard_grad_op\n"
                                                  "  auto_wrap_policy: [Block, Linear]\n"
                                                  "  activation_checkpointing_policy: [Block]\n"
                                                  "  cpu_offload: true\n"
                                                  "  state_dict_type: full\n"),
                                           "cfg.yaml");
  EXPECT_EQ(c.fsdp.sharding_strategy, "SHARD_GRAD_OP") << "any case, stored upper-case";
  EXPECT_EQ(c.fsdp.auto_wrap_policy, (std::vector<std::string>{"Block", "Linear"}));
  EXPECT_EQ(c.fsdp.activation_checkpointing_policy, (std::vector<std::string>{"Block"}));
  EXPECT_TRUE(c.fsdp.cpu_offload);
  EXPECT_EQ(c.fsdp.state_dict_type, "full");
  // The dump holds the section and reads back to the same config.
  const std::string dumped = dump_train_config(c);
  EXPECT_CONTAINS(dumped, "\nfsdp:");
  const TrainConfig back = parse_train_config(dumped, "dumped.yaml");
  EXPECT_EQ(dump_train_config(back), dumped);
  EXPECT_EQ(back.fsdp.auto_wrap_policy, c.fsdp.auto_wrap_policy);
  // --set reaches the keys like any other.
  const TrainConfig o =
      parse_train_config(config("fsdp"), "cfg.yaml",
                         {"fsdp.sharding_strategy=NO_SHARD", "fsdp.auto_wrap_policy=[Block]"});
  EXPECT_EQ(o.fsdp.sharding_strategy, "NO_SHARD");
}

TEST_F(FsdpConfigTest, DefaultsAndTheGptBlockPolicy) {
  // No section under fsdp: defaults, and the gpt's blocks become the units.
  const TrainConfig gpt = parse_train_config(config("fsdp"), "cfg.yaml");
  EXPECT_EQ(gpt.fsdp.sharding_strategy, "FULL_SHARD");
  EXPECT_EQ(gpt.fsdp.auto_wrap_policy, (std::vector<std::string>{"Block"}));
  EXPECT_TRUE(gpt.fsdp.activation_checkpointing_policy.empty());
  EXPECT_FALSE(gpt.fsdp.cpu_offload);
  EXPECT_EQ(gpt.fsdp.state_dict_type, "sharded");
  // An explicit empty list keeps the whole model as one unit, and stays empty through the dump.
  const TrainConfig root =
      parse_train_config(config("fsdp", "fsdp: {auto_wrap_policy: []}\n"), "cfg.yaml");
  EXPECT_TRUE(root.fsdp.auto_wrap_policy.empty());
  EXPECT_TRUE(
      parse_train_config(dump_train_config(root), "dumped.yaml").fsdp.auto_wrap_policy.empty());
  // Other models get no default policy.
  const TrainConfig mlp =
      parse_train_config(config("fsdp", "", "{name: mlp, sizes: [4, 3]}"), "cfg.yaml");
  EXPECT_TRUE(mlp.fsdp.auto_wrap_policy.empty());
  // fsdp_cpu_offload turns cpu_offload on; FSDP is case-insensitive like the connector.
  EXPECT_TRUE(parse_train_config(config("fsdp_cpu_offload"), "cfg.yaml").fsdp.cpu_offload);
  EXPECT_EQ(parse_train_config(config("FSDP"), "cfg.yaml").fsdp.auto_wrap_policy,
            gpt.fsdp.auto_wrap_policy);
  // Without fsdp the dump has no section (it would not read back under ddp).
  const TrainConfig ddp = parse_train_config(config("ddp"), "cfg.yaml");
  EXPECT_EQ(dump_train_config(ddp).find("\nfsdp:"), std::string::npos);
  EXPECT_TRUE(ddp.fsdp.auto_wrap_policy.empty());
}

TEST_F(FsdpConfigTest, BadValuesNameTheKey) {
  auto err = [&](const std::string& section) { return error_of(config("fsdp", section)); };
  std::string e = err("fsdp: {sharding_strategy: FULL_SHRD}\n");
  EXPECT_CONTAINS(e, "cfg.yaml:5:");
  EXPECT_CONTAINS(e, "fsdp.sharding_strategy");
  EXPECT_CONTAINS(e, "HYBRID_SHARD");
  EXPECT_CONTAINS(e, "did you mean 'FULL_SHARD'");
  e = err("fsdp: {state_dict_type: local}\n");
  EXPECT_CONTAINS(e, "fsdp.state_dict_type");
  EXPECT_CONTAINS(e, "sharded, full");
  EXPECT_CONTAINS(err("fsdp: {cpu_offload: maybe}\n"), "fsdp.cpu_offload: expected bool");
  EXPECT_CONTAINS(err("fsdp: {auto_wrap_policy: Block}\n"),
                  "fsdp.auto_wrap_policy: expected list of strings");
  EXPECT_CONTAINS(err("fsdp: {auto_wrap_policy: [Block, Block]}\n"), "'Block' is listed twice");
  EXPECT_CONTAINS(err("fsdp: {activation_checkpointing_policy: ['']}\n"),
                  "fsdp.activation_checkpointing_policy");
  e = err("fsdp: {auto_wrap_polcy: [Block]}\n");
  EXPECT_CONTAINS(e, "fsdp.auto_wrap_polcy: unknown key");
  EXPECT_CONTAINS(e, "did you mean 'auto_wrap_policy'");
  e = err("fsdp: [Block]\n");
  EXPECT_CONTAINS(e, "fsdp: expected a mapping");
  // HYBRID_SHARD needs units (the strategy refuses it otherwise).
  e = error_of(
      config("fsdp", "fsdp: {sharding_strategy: HYBRID_SHARD}\n", "{name: mlp, sizes: [4, 3]}"));
  EXPECT_CONTAINS(e, "fsdp.auto_wrap_policy");
  EXPECT_CONTAINS(e, "HYBRID_SHARD");
  EXPECT_NO_THROW(
      parse_train_config(config("fsdp", "fsdp: {sharding_strategy: HYBRID_SHARD}\n"), "cfg.yaml"));
  // cpu_offload: false contradicts fsdp_cpu_offload.
  EXPECT_CONTAINS(error_of(config("fsdp_cpu_offload", "fsdp: {cpu_offload: false}\n")),
                  "fsdp.cpu_offload");
}

TEST_F(FsdpConfigTest, SectionNeedsAnFsdpStrategy) {
  for (const char* strategy : {"ddp", "auto", "deepspeed_stage_3"}) {
    const std::string e = error_of(config(strategy, "fsdp: {cpu_offload: true}\n"));
    EXPECT_CONTAINS(e, "cfg.yaml:5:");
    EXPECT_CONTAINS(e, "fsdp: an fsdp section needs fabric.strategy fsdp");
    EXPECT_CONTAINS(e, strategy);
  }
  // An empty section, and a --set of one of its keys, count as given.
  EXPECT_CONTAINS(error_of(config("ddp", "fsdp:\n")), "fabric.strategy fsdp");
  EXPECT_CONTAINS(error_of(config("ddp"), {"fsdp.state_dict_type=full"}),
                  "--set fsdp.state_dict_type");
}

// The saved config of an FSDP run carries its fsdp section; resuming it under another strategy
// given on the command line (`resume RUN --set fabric.strategy=auto fabric.devices=1`) drops the
// section with a warning instead of refusing the run.
TEST_F(FsdpConfigTest, CommandLineStrategyDropsTheFilesSection) {
  const std::string saved = dump_train_config(
      parse_train_config(config("fsdp", "fsdp: {cpu_offload: true}\n"), "cfg.yaml"));
  ASSERT_NE(saved.find("\nfsdp:"), std::string::npos);
  const TrainConfig c =
      parse_train_config(saved, "run/config.yaml", {"fabric.strategy=auto", "fabric.devices=1"});
  EXPECT_EQ(c.fabric.strategy, "auto");
  EXPECT_FALSE(c.fsdp.cpu_offload) << "the section's values are gone";
  EXPECT_TRUE(c.fsdp.auto_wrap_policy.empty());
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_CONTAINS(c.warnings[0], "run/config.yaml:");
  EXPECT_CONTAINS(c.warnings[0], "the fsdp section is ignored: fabric.strategy 'auto'");
  EXPECT_EQ(dump_train_config(c).find("\nfsdp:"), std::string::npos);
  // Back under fsdp the saved section applies, with no warning.
  const TrainConfig again = parse_train_config(saved, "run/config.yaml", {"fabric.strategy=fsdp"});
  EXPECT_TRUE(again.fsdp.cpu_offload);
  EXPECT_TRUE(again.warnings.empty());
  // An fsdp key on the same command line contradicts the strategy: still an error.
  EXPECT_CONTAINS(error_of(saved, {"fabric.strategy=ddp", "fsdp.cpu_offload=true"}),
                  "an fsdp section needs fabric.strategy fsdp");
}

TEST_F(FsdpConfigTest, SchemaListsTheKeys) {
  const std::string s = train_config_schema();
  for (const char* key :
       {"fsdp.sharding_strategy", "fsdp.auto_wrap_policy", "fsdp.activation_checkpointing_policy",
        "fsdp.cpu_offload", "fsdp.state_dict_type"})
    EXPECT_CONTAINS(s, std::string("| `") + key + "` |");
  EXPECT_CONTAINS(s, "`FULL_SHARD`");
  EXPECT_CONTAINS(s, "`sharded`");
}

}  // namespace
}  // namespace fabric
