// fabric-train end to end, through the binary, on input a robustness audit found mishandled: keys
// that are lists or mappings, device and node counts past any machine, config and data files that
// are not regular files (a FIFO, /dev/zero, a directory), and sampling from a GPT whose
// vocab_size exceeds its text's characters. Each is a config error (exit 2, nothing written) or,
// for the last, works.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// What the config errors run under: a hang (a FIFO read) ends at the timeout (exit 124), an endless
// or huge allocation (/dev/zero read whole, 2^32 device ids) fails at the address-space limit. Not
// for the runs that train: CUDA's initialisation may reserve more address space than that.
const std::string kGuard = "ulimit -v 16000000; timeout 60";

class FabricTrainRobustness : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_robustness");
    if (IsSkipped()) return;
    cfg_ = write_tiny_gpt_config("run");
  }

  // `args` exits 2 with `message` in its output and writes no run directory.
  void expect_config_error(const std::string& args, const std::string& message) {
    const Result r = run(args, kGuard);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("fabric-train: config error: " + message), std::string::npos) << args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "run")) << args << ": the run directory must not be created";
  }
};

TEST_F(FabricTrainRobustness, KeysThatAreListsOrMappingsAreConfigErrors) {
  const std::string in_section = (dir_ / "list_key.yaml").string();
  std::ofstream(in_section) << "trainer:\n  max_steps: 1\n  ? [a, b]\n  : 1\n";
  expect_config_error("fit " + in_section, in_section + ":3:5: trainer: a key must be a name, got a list");
  const std::string top = (dir_ / "map_key.yaml").string();
  std::ofstream(top) << "{a: 1}: x\n";
  expect_config_error("validate " + top, top + ":1:1: a key must be a name, got a mapping");
}

TEST_F(FabricTrainRobustness, HugeDeviceAndNodeCountsAreConfigErrors) {
  expect_config_error("fit " + cfg_ + " --set fabric.devices=1000000000000",
                      "--set fabric.devices: devices='1000000000000' is invalid: too many devices");
  expect_config_error("fit " + cfg_ + " --devices 4294967297", "--set fabric.devices: devices='4294967297'");
  expect_config_error("fit " + cfg_ + " --set fabric.devices=0,4294967296", "--set fabric.devices: ");
  expect_config_error("fit " + cfg_ + " --num-nodes 4294967297",
                      "--set fabric.num_nodes: must be between 1 and 1048576, got 4294967297");
}

// A FIFO blocked the read forever, /dev/zero read until memory ran out, and a directory as the
// config read as an empty config: each is refused before it is opened.
TEST_F(FabricTrainRobustness, ConfigAndDataFilesMustBeRegularFiles) {
  const std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string folder = (dir_ / "folder").string();
  fs::create_directories(folder);
  expect_config_error("fit " + fifo, fifo + ": cannot read the config file: it is a FIFO, expected a regular file");
  expect_config_error("validate /dev/zero", "/dev/zero: cannot read the config file: it is a character device");
  expect_config_error("fit " + folder, folder + ": cannot read the config file: it is a directory");
  expect_config_error("fit " + cfg_ + " --set data.path=" + fifo,
                      "--set data.path: '" + fifo + "' is a FIFO, expected a regular file");
  expect_config_error("fit " + cfg_ + " --set data.path=/dev/zero", "--set data.path: '/dev/zero' is a character device");
  expect_config_error("fit " + cfg_ + " --set data.path=" + folder, "--set data.path: '" + folder + "' is a directory");
  expect_config_error("fit " + cfg_ + " --set model.init=" + fifo, "--set model.init: '" + fifo + "' is a FIFO");
}

// model.vocab_size above the text's characters: the ids past them name no character; sample and
// fit's end-of-run sample draw from the characters alone (they failed decoding the output).
TEST_F(FabricTrainRobustness, SampleWithAVocabularyLargerThanTheTextsCharacters) {
  const std::set<char> chars = {'t', 'h', 'e', ' ', 'c', 'a', 's', 'o', 'n', 'm', '.'};
  auto only_text_chars = [&](const std::string& s) {
    for (char ch : s)
      if (!chars.count(ch)) return false;
    return true;
  };
  const Result fit = run("fit " + cfg_ + " --set model.vocab_size=500 trainer.sample_tokens=50", "timeout 300");
  ASSERT_EQ(fit.status, 0) << fit.output;
  const size_t begin = fit.output.find("--- sample ---\n"), end = fit.output.find("\n--------------");
  ASSERT_NE(begin, std::string::npos) << fit.output;
  ASSERT_NE(end, std::string::npos) << fit.output;
  EXPECT_TRUE(only_text_chars(fit.output.substr(begin + 15, end - begin - 15))) << fit.output;
  const std::string last = (dir_ / "run/checkpoints/last").string();
  for (const std::string options : {"--temperature 1.5", "--temperature 0", "--top-k 20", "--prompt 'the ' --top-k 3"}) {
    const Result r = run("sample " + last + " --tokens 100 " + options, "timeout 300");
    ASSERT_EQ(r.status, 0) << options << "\n" << r.output;
    ASSERT_FALSE(r.output.empty());
    EXPECT_EQ(r.output.back(), '\n');
    EXPECT_GE(r.output.size(), 101u) << r.output;
    EXPECT_TRUE(only_text_chars(r.output.substr(0, r.output.size() - 1))) << options << "\n" << r.output;
  }
}

}  // namespace
}  // namespace fabric
