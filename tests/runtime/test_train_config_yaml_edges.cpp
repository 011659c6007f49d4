// fabric-train's config on YAML that yaml-cpp reads without complaint: a key given twice in a
// mapping (the later value wins, as before, now with a warning instead of silently), a second
// document after `---` (its keys were dropped silently; now an error), and nesting past the
// parser's depth guard (reported as yaml-cpp's bare "bad file"); and what PyYAML reads that
// yaml-cpp does not: merge keys and the bool words in capitals.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/train_config.h"
#include "runtime/yaml_int.h"
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

// The resolver on its own: each value as yaml.safe_load gives it (PyYAML 6, /usr/bin/python3),
// the int64 extremes included; the texts PyYAML leaves strings give nullopt.
TEST(Yaml11Int, ResolvesAndConstructsAsPyYaml) {
  const std::pair<const char*, int64_t> cases[] = {
      {"010", 8},
      {"-010", -8},
      {"0x10", 16},
      {"-0x1_F", -31},
      {"0b11", 3},
      {"+0b1_1", 3},
      {"1_000", 1000},
      {"1__0", 10},
      {"1_", 1},
      {"1:30", 90},
      {"-1:30", -90},
      {"1:30:00", 5400},
      {"1:7", 67},
      {"1:0", 60},
      {"10:5:3", 36303},
      {"0", 0},
      {"-0", 0},
      {"00", 0},
      {"0_", 0},
      {"+5", 5},
      {"0777777777777777777777", std::numeric_limits<int64_t>::max()},
      {"-9223372036854775808", std::numeric_limits<int64_t>::min()}};
  for (const auto& [text, value] : cases) {
    const std::optional<Yaml11Int> x = yaml11_int(text);
    ASSERT_TRUE(x.has_value()) << text;
    EXPECT_TRUE(x->fits) << text;
    EXPECT_EQ(x->value, value) << text;
    EXPECT_EQ(x->approx, double(value)) << text;
  }
  // Strings to PyYAML (0b_ and 0x_ match its pattern, and its int() then fails on them).
  for (const char* text :
       {"",   "+",   "08",  "0_9",  "1:60",   "1:",  "1::0", "0:30", "0o10", "0X10",
        "0b", "0b_", "0x_", "0b12", "0x1p-3", "1e3", "1.0",  ".5",   "_1",   "1 0"})
    EXPECT_FALSE(yaml11_int(text).has_value()) << text;
  // Past int64: PyYAML's value, which fits no int64 but is a double.
  const std::optional<Yaml11Int> big = yaml11_int("9223372036854775808");
  ASSERT_TRUE(big.has_value());
  EXPECT_FALSE(big->fits);
  EXPECT_EQ(big->approx, 9223372036854775808.0);
  EXPECT_FALSE(yaml11_int("-0x8000000000000001")->fits);
}

// YAML 1.1's integers as PyYAML reads them (yaml.safe_load, checked with PyYAML 6): `010` was
// 10 (PyYAML: 8), and 0x10, 0b11, 1_000, 1:30 were refused. Integer and number keys alike, in the
// file and in a --set.
TEST_F(TrainConfigYamlEdges, IntegersAreReadAsPyYamlReadsThem) {
  const auto seed = [&](const std::string& text) {
    return parse_train_config(head() + "trainer: {seed: " + text + "}\n", "cfg.yaml").trainer.seed;
  };
  const auto lr = [&](const std::string& text) {
    return parse_train_config(head() + "optimizer: {lr: " + text + "}\n", "cfg.yaml").optimizer.lr;
  };
  const std::pair<const char*, int64_t> cases[] = {
      {"010", 8}, {"0x10", 16}, {"0b11", 3}, {"1_000", 1000}, {"1:30", 90}, {"+5", 5}, {"00", 0}};
  for (const auto& [text, value] : cases) {
    EXPECT_EQ(seed(text), value) << text;
    EXPECT_EQ(lr(text), double(value)) << text;
  }
  EXPECT_EQ(
      parse_train_config(head() + "trainer: {max_steps: -0b1}\n", "cfg.yaml").trainer.max_steps,
      -1);
  EXPECT_EQ(parse_train_config(head(), "cfg.yaml", {"trainer.max_steps=010"}).trainer.max_steps, 8);
  EXPECT_EQ(
      parse_train_config(head() + "model: {name: mlp, sizes: [0x10, 0b10, 1_0, 012]}\n", "cfg.yaml")
          .model.sizes,
      (std::vector<int64_t>{16, 2, 10, 10}));
  // -010 is -8, which max_steps (>= -1) refuses as such.
  EXPECT_CONTAINS(error_of(head() + "trainer: {max_steps: -010}\n"),
                  "trainer.max_steps: must be >= -1, got -8");
  // Strings to PyYAML: refused, a leading 0 before 8 or 9 saying why.
  for (const char* text : {"1:60", "0o10", "0X10", "0b", "0b_", "0x_", "0b12", "1e3", "1.0"})
    EXPECT_CONTAINS(error_of(head() + "trainer: {seed: " + text + "}\n"),
                    "trainer.seed: expected integer, got '" + std::string(text) + "'");
  EXPECT_CONTAINS(error_of(head() + "trainer: {seed: 08}\n"),
                  "trainer.seed: '08' is a string to PyYAML (YAML 1.1), not an integer: a "
                  "leading 0 makes an integer octal (digits 0-7; 010 is 8)");
  EXPECT_CONTAINS(error_of(head() + "trainer: {seed: 01000000000000000000000}\n"),
                  "trainer.seed: '01000000000000000000000' is past the range of a 64-bit integer");
  // deepspeed.stage, read apart from the key table.
  const std::string deepspeed = "fabric: {accelerator: cpu, devices: 2, strategy: deepspeed}\n";
  EXPECT_EQ(parse_train_config(head() + deepspeed + "deepspeed: {stage: 0b11}\n", "cfg.yaml")
                .fabric.stage,
            3);
  EXPECT_CONTAINS(error_of(head() + deepspeed + "deepspeed: {stage: 010}\n"),
                  "deepspeed.stage: must be between 1 and 3, got 8");
  // The rest of the deepspeed section too.
  const TrainConfig ds = parse_train_config(
      head() + deepspeed +
          "deepspeed: {zero_optimization: {stage: 0x2}, gradient_accumulation_steps: 1_0}\n",
      "cfg.yaml");
  EXPECT_CONTAINS(ds.deepspeed, "\"stage\":2");
  EXPECT_EQ(ds.trainer.accumulate_grad_batches, 10);
}

// Number keys: integers as above first, then the decimal forms they took before (1e-3 and 1e5,
// which PyYAML leaves strings, are the numbers they mean, as the README says); a hexadecimal
// float, which strtod read (0x1p-3 was 0.125) and PyYAML does not, is refused, naming its value.
TEST_F(TrainConfigYamlEdges, NumberKeysTakeYaml11IntegersAndRefuseHexadecimalFloats) {
  const auto lr = [&](const std::string& text) {
    return parse_train_config(head() + "optimizer: {lr: " + text + "}\n", "cfg.yaml").optimizer.lr;
  };
  EXPECT_EQ(lr("1e-3"), 1e-3);
  EXPECT_EQ(lr("1e5"), 1e5);
  EXPECT_EQ(lr(".5"), 0.5);
  EXPECT_EQ(lr("0.25"), 0.25);
  EXPECT_EQ(lr("18446744073709551616"), 18446744073709551616.0);  // past int64: still a number
  EXPECT_CONTAINS(error_of(head() + "optimizer: {lr: 0x1p-3}\n"),
                  "cfg.yaml:2:13: optimizer.lr: '0x1p-3' is a string to PyYAML (YAML 1.1), not a "
                  "number: it reads hexadecimal only as an integer written with 0x (0x10), not as "
                  "a float (0x1p-3) or with 0X; write it in decimal (0.125)");
  EXPECT_CONTAINS(error_of(head() + "optimizer: {lr: 0X10}\n"), "write it in decimal (16)");
  EXPECT_CONTAINS(error_of(head() + "optimizer: {lr: 09}\n"),
                  "optimizer.lr: '09' is a string to PyYAML (YAML 1.1), not a number: a leading 0");
  EXPECT_CONTAINS(error_of(head() + "optimizer: {lr: 1:60}\n"),
                  "optimizer.lr: expected number, got '1:60'");
  EXPECT_CONTAINS(error_of(head() + "optimizer: {lr: 1" + std::string(400, '0') + "}\n"),
                  "is past the largest magnitude a double holds");
}

}  // namespace
}  // namespace fabric
