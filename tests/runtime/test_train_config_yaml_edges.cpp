// fabric-train's config on YAML that yaml-cpp reads without complaint: a key given twice in a
// mapping (the later value wins, as before, now with a warning instead of silently), a second
// document after `---` (its keys were dropped silently; now an error), and nesting past the
// parser's depth guard (reported as yaml-cpp's bare "bad file"); and what PyYAML reads that
// yaml-cpp does not: merge keys and the bool words in capitals.
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

class TrainConfigYamlEdges : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_cfg_edges_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = (dir_ / "data.safetensors").string();
    std::ofstream(data_) << "x";  // existence is all the config checks
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Line 1 names the data; the tests' own lines follow from line 2.
  std::string head() const { return "data: {kind: tensors, path: " + data_ + "}\n"; }
  std::string error_of(const std::string& yaml) const {
    return thrown<ConfigError>([&] { parse_train_config(yaml, "cfg.yaml"); });
  }
  static std::string joined(const TrainConfig& c) {
    std::string all;
    for (const std::string& w : c.warnings) all += w + "\n";
    return all;
  }
  static int warning_count(const TrainConfig& c, const std::string& part) {
    int n = 0;
    for (const std::string& w : c.warnings) n += w.find(part) != std::string::npos;
    return n;
  }
  fs::path dir_;
  std::string data_;
};

// The later value wins, as before (and as PyYAML's loader does; configs repeat a key to override
// one above it), but no longer silently.
TEST_F(TrainConfigYamlEdges, AKeyGivenTwiceInASectionIsAWarningNamingBothPlaces) {
  const TrainConfig c =
      parse_train_config(head() + "trainer:\n  max_steps: 1\n  max_steps: 2\n", "cfg.yaml");
  EXPECT_EQ(c.trainer.max_steps, 2);
  ASSERT_EQ(warning_count(c, "given twice"), 1) << joined(c);
  EXPECT_CONTAINS(joined(c),
                  "cfg.yaml:4:3: trainer.max_steps is given twice in the same mapping (first at "
                  "cfg.yaml:3:3); the later value is used (YAML expects each key once)");
  const TrainConfig flow = parse_train_config(
      head() + "trainer: {max_steps: 1, max_steps: 3}\nloss: mse\nloss: l1\n", "cfg.yaml");
  EXPECT_EQ(flow.trainer.max_steps, 3);
  EXPECT_EQ(flow.loss, "l1");
  EXPECT_CONTAINS(joined(flow),
                  "cfg.yaml:2:25: trainer.max_steps is given twice in the same mapping (first at "
                  "cfg.yaml:2:11)");
  EXPECT_CONTAINS(joined(flow), "cfg.yaml:4:1: loss is given twice");
}

TEST_F(TrainConfigYamlEdges, ASectionGivenTwiceMergesAndSaysSo) {
  const TrainConfig c = parse_train_config(
      head() + "trainer: {max_steps: 2, batch_size: 4}\ntrainer: {max_steps: 7}\n", "cfg.yaml");
  EXPECT_EQ(c.trainer.max_steps, 7);
  EXPECT_EQ(c.trainer.batch_size, 4);
  EXPECT_CONTAINS(
      joined(c),
      "cfg.yaml:3:1: trainer is given twice in the same mapping (first at cfg.yaml:2:1); their "
      "keys are merged, a key in both taking the later value");
}

TEST_F(TrainConfigYamlEdges, ADeepSpeedKeyGivenTwiceIsNamed) {
  const TrainConfig c = parse_train_config(
      head() +
          "fabric: {strategy: deepspeed}\ndeepspeed: {zero_optimization: {stage: 2, stage: 3}}\n",
      "cfg.yaml");
  EXPECT_CONTAINS(joined(c), "deepspeed.zero_optimization.stage is given twice");
}

TEST_F(TrainConfigYamlEdges, TheSameKeyInDifferentSectionsIsFine) {
  const TrainConfig c = parse_train_config(
      head() + "trainer: {seed: 3}\nlora: {alpha: 8}\noptimizer: {alpha: 0.9}\n", "cfg.yaml");
  EXPECT_EQ(c.trainer.seed, 3);
  EXPECT_DOUBLE_EQ(c.optimizer.alpha, 0.9);
}

TEST_F(TrainConfigYamlEdges, ASecondDocumentIsAnError) {
  EXPECT_CONTAINS(error_of(head() + "trainer: {max_steps: 2}\n---\ntrainer: {max_steps: 9}\n"),
                  "cfg.yaml:4:1: a second YAML document (after a '---'); expected one document");
  // An empty document after a trailing `---` holds nothing to lose.
  const TrainConfig c = parse_train_config(head() + "trainer: {max_steps: 2}\n---\n", "cfg.yaml");
  EXPECT_EQ(c.trainer.max_steps, 2);
}

TEST_F(TrainConfigYamlEdges, NestingPastTheParsersLimitSaysSo) {
  const std::string deep = "trainer: " + std::string(3000, '[') + std::string(3000, ']') + "\n";
  const std::string msg = error_of(head() + deep);
  EXPECT_CONTAINS(msg, "cfg.yaml:2:");
  EXPECT_CONTAINS(msg, "not valid YAML: lists and mappings nested too deeply for the YAML parser");
}

// Numbers past a double's or an int64's range: 1e-400 read as an lr of 0 without a word, and
// 1e400 or 2^64 were "expected number, got '1e400'", as if they were not numbers.
TEST_F(TrainConfigYamlEdges, NumbersPastTheirTypesRangeSaySo) {
  EXPECT_CONTAINS(
      error_of(head() + "optimizer: {lr: 1e-400}\n"),
      "cfg.yaml:2:13: optimizer.lr: '1e-400' is below the smallest magnitude a double holds (about "
      "4.9e-324); expected a finite number");
  EXPECT_CONTAINS(
      error_of(head() + "optimizer: {lr: 1e400}\n"),
      "optimizer.lr: '1e400' is past the largest magnitude a double holds (about 1.8e308)");
  EXPECT_CONTAINS(error_of(head() + "trainer: {seed: 18446744073709551616}\n"),
                  "trainer.seed: '18446744073709551616' is past the range of a 64-bit integer; "
                  "expected integer from "
                  "-9223372036854775808 to 9223372036854775807");
  // Small but representable values (subnormals included) are kept.
  EXPECT_DOUBLE_EQ(
      parse_train_config(head() + "optimizer: {lr: 1e-310}\n", "cfg.yaml").optimizer.lr, 1e-310);
  EXPECT_CONTAINS(error_of(head() + "optimizer: {lr: .nan}\n"),
                  "optimizer.lr: expected number, got '.nan'");
}

// fabric.devices -2 was refused as "zero devices".
TEST_F(TrainConfigYamlEdges, ANegativeDeviceCountOtherThanMinusOneIsNamed) {
  const std::string msg = error_of(head() + "fabric: {accelerator: cuda, devices: -2}\n");
  EXPECT_CONTAINS(
      msg,
      "fabric.devices: devices='-2' is invalid: a negative count (-1, all devices, is the only "
      "negative one)");
  EXPECT_EQ(msg.find("zero devices"), std::string::npos) << msg;
  EXPECT_CONTAINS(error_of(head() + "fabric: {devices: 0}\n"),
                  "devices='0' is invalid: zero devices");
}

// PyYAML's merge key, which Lightning's configs use to share a block: merged keys first, an
// earlier mapping of a list over a later one, the mapping's own keys over all (it was refused as
// an unknown key `<<`, with a "did you mean" beside the point).
TEST_F(TrainConfigYamlEdges, MergeKeysAreReadAsPyYamlReadsThem) {
  const TrainConfig c = parse_train_config(
      head() +
          "optimizer:\n"
          "  <<: [{name: sgd, lr: 0.05, momentum: 0.5}, {lr: 0.5, weight_decay: 0.25}]\n"
          "  momentum: 0.75\n"
          "trainer: {<<: {max_steps: 3, seed: 4}, seed: 5}\n",
      "cfg.yaml");
  EXPECT_EQ(c.optimizer.name, "sgd");
  EXPECT_EQ(c.optimizer.lr, 0.05);            // the earlier mapping's
  EXPECT_EQ(c.optimizer.weight_decay, 0.25);  // only in the later one
  EXPECT_EQ(c.optimizer.momentum, 0.75);      // the mapping's own key
  EXPECT_EQ(c.trainer.max_steps, 3);
  EXPECT_EQ(c.trainer.seed, 5);
  // A merged key that is wrong is named where it was written; a merge of a scalar is refused there.
  const std::string wrong =
      error_of(head() + "optimizer:\n  <<: {lr: 0.1,\n        momentm: 0.5}\n");
  EXPECT_CONTAINS(wrong, "cfg.yaml:4:9: optimizer.momentm: unknown key");
  EXPECT_CONTAINS(
      error_of(head() + "optimizer: {<<: 3}\n"),
      "cfg.yaml:2:17: not valid YAML: a merge key (<<) takes a mapping or a list of mappings");
}

// YAML 1.1's bool words in every case PyYAML reads (TRUE and Yes were refused, True and yes not).
TEST_F(TrainConfigYamlEdges, BoolWordsInEveryCasePyYamlReads) {
  const auto shuffle = [&](const std::string& word) {
    return "data: {kind: tensors, path: " + data_ + ", shuffle: " + word + "}\n";
  };
  for (const char* word : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
    EXPECT_TRUE(parse_train_config(shuffle(word), "cfg.yaml").data.shuffle) << word;
  for (const char* word : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
    EXPECT_FALSE(parse_train_config(shuffle(word), "cfg.yaml").data.shuffle) << word;
  EXPECT_CONTAINS(error_of(shuffle("tRUE")), "expected bool, got 'tRUE'");
}

}  // namespace
}  // namespace fabric
