// The text fabric writes and reads back as PyYAML and TensorBoard do: config.yaml and hparams.yaml
// strings that YAML 1.1 would read as other types are quoted (controls escaped), paths given to
// resume/sample stay strings however they look, a config that is not UTF-8 is a config error
// before anything is written, metric names must be UTF-8, and a resumed TensorBoard log starts
// with a SessionLog START (TensorBoard then drops the interrupted run's later points).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "precision/pyyaml_compat.h"
#include "runtime/loggers.h"
#include "runtime/tensorboard_logger.h"
#include "runtime/train_config.h"
#include "tests/common/expect_error.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace train_test;

std::string slurp_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(WrittenTextFiles, StringsPyYamlWouldReadAsOtherTypesAreQuoted) {
  for (const char* s : {"2024-06-01", "1:30", "1_000", ".inf", ".NaN", "=", "<<", "010", "0x1F",
                        "yes", "Off", "null", "~", "", "1e5", "-1.5"})
    EXPECT_TRUE(precision::yaml11_reads_as_non_string(s)) << s;
  for (const char* s : {"runs/example", "a b", "2024-06-01x", "1:3a", "yes please", "x=1", "<"})
    EXPECT_FALSE(precision::yaml11_reads_as_non_string(s)) << s;
}

// A text config whose data file exists (a config is checked whole).
std::string text_config(const std::string& trainer) {
  const fs::path data = fs::temp_directory_path() / "fabric_written_text_files.txt";
  std::ofstream(data) << "hello world, hello fabric.";
  return "model: {name: gpt, block_size: 4, n_layer: 1, n_head: 1, n_embd: 8}\n"
         "data: {kind: text, path: " +
         data.string() + "}\ntrainer: " + trainer + "\n";
}

TEST(WrittenTextFiles, ConfigYamlQuotesThemAndReadsThemBack) {
  const std::string yaml = text_config("{run_dir: \"1:30\", sample_prompt: \"=\"}");
  const TrainConfig c = parse_train_config(yaml, "c.yaml");
  const std::string dumped = dump_train_config(c);
  EXPECT_NE(dumped.find("run_dir: \"1:30\""), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("sample_prompt: \"=\""), std::string::npos) << dumped;
  const TrainConfig back = parse_train_config(dumped, "config.yaml");
  EXPECT_EQ(back.trainer.run_dir, "1:30");
  EXPECT_EQ(back.trainer.sample_prompt, "=");
}

TEST(WrittenTextFiles, StringOverridesAreNotReadAsYaml) {
  const std::string yaml = text_config("{max_steps: 1}");
  for (const std::string dir : {"null", "runs/exp #2", "runs/lr: 0.1", "[a]"}) {
    const TrainConfig c =
        parse_train_config(yaml, "c.yaml", {string_override("trainer.run_dir", dir)});
    EXPECT_EQ(c.trainer.run_dir, dir);
  }
}

TEST(WrittenTextFiles, AConfigThatIsNotUtf8IsAConfigError) {
  const std::string msg =
      thrown<ConfigError>([] { parse_train_config("trainer:\n  run_dir: run\xe9\n", "c.yaml"); });
  EXPECT_CONTAINS(msg, "c.yaml:2:15: not valid UTF-8 (byte 0xE9)");
  EXPECT_CONTAINS(thrown<ConfigError>([] {
                    parse_train_config("trainer: {max_steps: 1}\n", "c.yaml",
                                       {"trainer.run_dir=run\xe9"});
                  }),
                  "--set trainer.run_dir: not valid UTF-8 (byte 0xE9)");
}

class WrittenTextFilesDir : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("fabric_written_text"); }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(WrittenTextFilesDir, HparamsYamlQuotesStringsPyYamlWouldRetype) {
  TensorBoardLogger tb((dir_ / "tb").string());
  tb.log_hyperparams({{"op", "="},
                      {"yes", "2024-06-01"},
                      {"lr", "0.1"},
                      {"name", "gpt"},
                      {"sep",
                       "a\xe2\x80\xa8"
                       "b\x7f"}});  // U+2028 and DEL: escaped
  const std::string text = slurp_file(dir_ / "tb/hparams.yaml");
  EXPECT_NE(text.find("op: \"=\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"yes\": \"2024-06-01\""), std::string::npos) << text;
  EXPECT_NE(text.find("lr: 0.1"), std::string::npos) << text;  // a number, as Lightning writes it
  EXPECT_NE(text.find("name: gpt"), std::string::npos) << text;
  EXPECT_NE(text.find("sep: \"a\\u2028b\\x7f\""), std::string::npos) << text;
}

TEST_F(WrittenTextFilesDir, MetricNamesMustBeUtf8) {
  TensorBoardLogger tb((dir_ / "tb").string());
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    tb.log_metrics({{"d\xe9j\xe0", 1.0}}, 1);
                  }),
                  "is not valid UTF-8");
  CSVLogger csv((dir_ / "metrics.csv").string());
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    csv.log_metrics({{"d\xe9j\xe0", 1.0}}, 1);
                  }),
                  "is not valid UTF-8");
}

// Event { step = 7, session_log (7) = { status (1) = START (1) } }: the bytes 0x10 0x07 (step)
// and 0x3A 0x02 0x08 0x01 (the session log: field 7, length-delimited) in the file. Field 6 is
// event.proto's deprecated LogMessage, which TensorBoard's purge does not look at.
TEST_F(WrittenTextFilesDir, ASessionStartIsAnEventTensorBoardPurgesOn) {
  TensorBoardLogger tb((dir_ / "tb").string());
  tb.log_session_start(7);
  tb.finalize();
  const std::string text = slurp_file(tb.file_path());
  EXPECT_NE(text.find(std::string("\x10\x07\x3A\x02\x08\x01", 6)), std::string::npos);
}

}  // namespace
}  // namespace fabric
