// fabric-train's config and Lightning's LT_* variables (`fabric run`): a variable replaces a fabric
// key the config leaves at its default, before the strategy's sections are checked; a key the
// config sets otherwise is an error naming both; agreeing spellings are no conflict.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/train_config.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class EnvironmentConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_cfg_env_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = (dir_ / "data.safetensors").string();
    std::ofstream(data_) << "x";  // existence is all the config checks
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A GPT config whose fabric section is `fabric` (a flow mapping's inside), plus `extra`.
  std::string config(const std::string& fabric, const std::string& extra = "") const {
    return "fabric: {" + fabric +
           "}\n"
           "model: {name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
           "data: {kind: tensors, path: " +
           data_ + "}\ntrainer: {max_steps: 5}\n" + extra;
  }
  TrainConfig parse(const std::string& yaml, const std::vector<EnvironmentSetting>& env,
                    const std::vector<std::string>& sets = {}) const {
    return parse_train_config(yaml, "c.yaml", sets, {}, env);
  }
  fs::path dir_;
  std::string data_;
};

TEST_F(EnvironmentConfigTest, AVariableReplacesAKeyLeftAtItsDefault) {
  // Not given, the schema's default written out (devices 1, precision 32-true), Lightning's (auto)
  // and an explicit null all give way.
  for (const std::string fabric :
       {"", "strategy: auto, devices: 1, num_nodes: 1, precision: 32-true", "devices: auto",
        "strategy: null, devices: null"}) {
    const TrainConfig c = parse(config(fabric), {{"LT_STRATEGY", "fsdp"},
                                                 {"LT_DEVICES", "2"},
                                                 {"LT_NUM_NODES", "3"},
                                                 {"LT_PRECISION", "bf16-mixed"}});
    EXPECT_EQ(c.fabric.strategy, "fsdp") << fabric;
    EXPECT_EQ(c.fabric.devices, "2") << fabric;
    EXPECT_EQ(c.fabric.num_nodes, 3) << fabric;
    EXPECT_EQ(c.fabric.precision, "bf16-mixed") << fabric;
    // The strategy's defaults follow: the gpt's Block units, and the dump says it all.
    EXPECT_EQ(c.fsdp.auto_wrap_policy, std::vector<std::string>{"Block"}) << fabric;
    const std::string dumped = dump_train_config(c);
    EXPECT_CONTAINS(dumped, "strategy: fsdp");
    EXPECT_CONTAINS(dumped, "auto_wrap_policy: [Block]");
    EXPECT_EQ(
        c.from_environment,
        (std::vector<std::string>{
            "fabric.strategy=fsdp (LT_STRATEGY)", "fabric.devices=2 (LT_DEVICES)",
            "fabric.num_nodes=3 (LT_NUM_NODES)", "fabric.precision=bf16-mixed (LT_PRECISION)"}));
  }
  // A strategy's section is checked against the strategy that runs: without the variable an fsdp
  // section under the default strategy is an error.
  const std::string with_section = config("", "fsdp: {state_dict_type: full}\n");
  EXPECT_EQ(parse(with_section, {{"LT_STRATEGY", "fsdp"}}).fsdp.state_dict_type, "full");
  EXPECT_CONTAINS(thrown<ConfigError>([&] { parse(with_section, {}); }),
                  "an fsdp section needs fabric.strategy");
  // So is the accelerator the schema defaults to cpu (Lightning: auto).
  EXPECT_EQ(parse(config("accelerator: cpu"), {{"LT_ACCELERATOR", "cuda"}}).fabric.accelerator,
            "cuda");
}

TEST_F(EnvironmentConfigTest, AConflictingValueIsAnErrorNamingBoth) {
  const std::string msg = thrown<ConfigError>([&] {
    parse(config("strategy: ddp, devices: 2"), {{"LT_STRATEGY", "fsdp"}});
  });
  EXPECT_CONTAINS(msg, "c.yaml:1:");
  EXPECT_CONTAINS(
      msg,
      "fabric.strategy: the config has 'ddp' but it conflicts with the value LT_STRATEGY=fsdp");
  // A --set is the config too; so is a value the variable's key has (devices 4 against 2).
  EXPECT_CONTAINS(thrown<ConfigError>([&] {
                    parse(config(""), {{"LT_DEVICES", "2"}}, {"fabric.devices=4"});
                  }),
                  "--set fabric.devices: the config has '4' but it conflicts with "
                  "the value LT_DEVICES=2");
  EXPECT_CONTAINS(
      thrown<ConfigError>([&] {
        parse(config("num_nodes: 2"), {{"LT_NUM_NODES", "4"}});
      }),
      "fabric.num_nodes: the config has '2' but it conflicts with the value LT_NUM_NODES=4");
  EXPECT_CONTAINS(thrown<ConfigError>([&] {
                    parse(config("precision: 16-mixed"), {{"LT_PRECISION", "bf16"}});
                  }),
                  "the config has '16-mixed' but it conflicts with the value LT_PRECISION=bf16");
  // A value the key cannot take is refused at the variable.
  EXPECT_CONTAINS(thrown<ConfigError>([&] {
                    parse(config(""), {{"LT_STRATEGY", "fsdb"}});
                  }),
                  "LT_STRATEGY (environment): fabric.strategy: 'fsdb' is not a strategy name");
  EXPECT_CONTAINS(thrown<ConfigError>([&] {
                    parse(config(""), {{"LT_NUM_NODES", "two"}});
                  }),
                  "LT_NUM_NODES (environment): fabric.num_nodes: expected");
}

TEST_F(EnvironmentConfigTest, AgreeingSpellingsAreNoConflict) {
  // The config's own value stays, and nothing is said to come from the environment.
  const TrainConfig c =
      parse(config("strategy: fsdp, devices: 2, precision: bf16-mixed"),
            {{"LT_STRATEGY", "FSDP"}, {"LT_DEVICES", "2"}, {"LT_PRECISION", "bf16"}});
  EXPECT_EQ(c.fabric.strategy, "fsdp");
  EXPECT_EQ(c.fabric.precision, "bf16-mixed");
  EXPECT_TRUE(c.from_environment.empty());
  const TrainConfig l =
      parse(config("accelerator: cuda, devices: [0, 1]"), {{"LT_DEVICES", "0,1"}});
  EXPECT_EQ(l.fabric.devices, "0,1");
}

TEST_F(EnvironmentConfigTest, TheEnvironmentIsSetToTheConfigsValues) {
  ::setenv("LT_PRECISION", "bf16", 1);
  ::unsetenv("LT_STRATEGY");
  const std::vector<EnvironmentSetting> env = lightning_environment();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].variable, "LT_PRECISION");
  const TrainConfig c = parse(config(""), env);
  EXPECT_EQ(c.fabric.precision, "bf16-mixed");
  align_lightning_environment(c);
  EXPECT_STREQ(std::getenv("LT_PRECISION"), "bf16-mixed");
  EXPECT_EQ(std::getenv("LT_STRATEGY"), nullptr);  // only the variables that are set
  ::unsetenv("LT_PRECISION");
}

}  // namespace
}  // namespace fabric
