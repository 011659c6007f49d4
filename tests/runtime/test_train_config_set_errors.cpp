// The errors of a `--set key=value` name the key once ("--set fabric.precision: <message>"): the
// location already is the key, so every check that fails on a value given on the command line
// reads as one. Errors in the config file keep their form (file:line:col: key: message).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/train_config.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class TrainConfigSetErrors : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_set_errors_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = (dir_ / "data.safetensors").string();
    std::ofstream(data_) << "x";  // existence is all the config checks
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string config(const std::string& fabric = "strategy: auto") const {
    return "fabric: {" + fabric + "}\nmodel: {name: mlp, sizes: [4, 2]}\ndata: {path: " + data_ +
           "}\ntrainer: {max_steps: 1}\n";
  }
  std::string error_of(const std::string& yaml, const std::vector<std::string>& sets,
                       const std::vector<EnvironmentSetting>& environment = {}) const {
    return thrown<ConfigError>(
        [&] { parse_train_config(yaml, "cfg.yaml", sets, {}, environment); });
  }
  fs::path dir_;
  std::string data_;
};

// Each path a --set value's error takes: conversion (type, range, int64 and double limits,
// choices, refused choices, device lists), unknown keys and sections, keys of another model, the
// checks after parsing (precision, strategy, devices, files), the environment's conflicts, fabric
// and deepspeed stages and deepspeed keys.
TEST_F(TrainConfigSetErrors, EachPathNamesTheKeyOnce) {
  struct Case {
    std::string set;      // key=value
    std::string message;  // expected after "--set key: "
    std::string fabric = "strategy: auto";
    std::vector<EnvironmentSetting> environment = {};
  };
  const std::vector<Case> cases = {
      {"trainer.max_steps=abc", "expected integer, got 'abc'"},
      {"trainer.batch_size=0", "must be >= 1, got 0"},
      {"trainer.seed=99999999999999999999",
       "'99999999999999999999' is past the range of a 64-bit integer"},
      // Lightning's seed_everything range (numpy's): 0 .. 2^32 - 1.
      {"trainer.seed=4294967296", "must be between 0 and 4294967295, got 4294967296"},
      {"optimizer.lr=1e400", "'1e400' is past the largest magnitude a double holds"},
      {"model.activation=rleu", "'rleu' is not one of: relu"},
      {"optimizer.name=lbfgs", "lbfgs"},
      {"fabric.devices=[-1]", "'-1' is not a device index (expected an integer >= 0)"},
      {"fabric.devices=abc", "devices='abc'"},
      {"trainer.epochs=3", "unknown key; did you mean 'max_epochs'?"},
      {"trainers.max_steps=3", "unknown section 'trainers'; did you mean 'trainer'?"},
      {"model.n_head=2", "does not apply to model 'mlp'"},
      {"fabric.precision=bf17", "Precision 'bf17' is invalid"},
      {"fabric.strategy=dpp", "'dpp' is not a strategy name; did you mean 'ddp'?"},
      {"data.path=" + (dir_ / "missing").string(),
       "no such file '" + (dir_ / "missing").string() + "'"},
      {"fabric.timeout=0", "must be between 0.001 and 31536000, got 0"},
      {"fabric.strategy=ddp",
       "the config has 'ddp' but it conflicts with the value LT_STRATEGY=fsdp",
       "strategy: auto",
       {{"LT_STRATEGY", "fsdp"}}},
      {"fabric.stage=2",
       "the ZeRO stage needs fabric.strategy deepspeed or deepspeed_stage_N, got 'ddp'",
       "strategy: ddp"},
      {"deepspeed.stage=two", "expected integer, got 'two'", "strategy: deepspeed"},
      {"deepspeed.zero_optimization.stage=0", "stage 0 (no sharding) is not supported",
       "strategy: deepspeed"},
      {"deepspeed.bogus=1", "unknown key", "strategy: deepspeed"},
  };
  for (const Case& c : cases) {
    const std::string key = c.set.substr(0, c.set.find('='));
    const std::string e = error_of(config(c.fabric), {c.set}, c.environment);
    EXPECT_EQ(e.rfind("--set " + key + ": ", 0), 0u) << c.set << ": " << e;
    EXPECT_EQ(e.find("--set " + key + ": " + key + ":"), std::string::npos) << c.set << ": " << e;
    EXPECT_CONTAINS(e, "--set " + key + ": " + c.message);
  }
}

// A --set of a block whose inner key is wrong names that inner key after the --set's own, and the
// command line's own errors read as they did.
TEST_F(TrainConfigSetErrors, OtherKeysAndTheCommandLinesOwnErrorsStay) {
  EXPECT_EQ(
      error_of(config("strategy: deepspeed"), {"deepspeed.zero_optimization={stage: 0}"})
          .rfind("--set deepspeed.zero_optimization: deepspeed.zero_optimization.stage: stage 0",
                 0),
      0u);
  EXPECT_EQ(error_of(config(), {"trainer.max_steps"}),
            "--set trainer.max_steps: expected key.path=value, e.g. trainer.max_steps=10");
  EXPECT_EQ(error_of(config(), {"max_steps=3"}),
            "--set max_steps: expected section.key (e.g. trainer.max_steps)");
  EXPECT_CONTAINS(error_of(config(), {"trainer.max_steps=[1"}),
                  "--set trainer.max_steps: the value is not valid YAML");
}

// Errors in the file keep "file:line:col: key: message"; an environment variable keeps its key.
TEST_F(TrainConfigSetErrors, FileAndEnvironmentErrorsKeepTheKey) {
  const std::string yaml = config("strategy: dpp");
  EXPECT_CONTAINS(error_of(yaml, {}),
                  "cfg.yaml:1:10: fabric.strategy: 'dpp' is not a strategy name");
  EXPECT_CONTAINS(error_of(config("precision: bf17"), {}), "cfg.yaml:1:10: fabric.precision: ");
  EXPECT_CONTAINS(error_of(config(), {}, {{"LT_PRECISION", "bf17"}}),
                  "LT_PRECISION (environment): fabric.precision: ");
}

}  // namespace
}  // namespace fabric
