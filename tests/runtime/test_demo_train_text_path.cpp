// demo-train (tools/demo_train.cpp), through the binary built beside fabric-train: without a
// TEXT_FILE it finds data/austen.txt as fabric-train finds its bundled data (the current
// directory, $FABRIC_HOME, the source tree, <prefix>/share/fabric), not only from the current
// directory; a missing or bad argument is a clear error, not an abort.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using train_test::Result;

class DemoTrain : public testing::Test {
 protected:
  void SetUp() override {
    if (std::string(FABRIC_TRAIN_EXE).empty()) GTEST_SKIP() << "the tools were not built";
    exe_ = fs::path(FABRIC_TRAIN_EXE).parent_path() / "demo-train";
    if (!fs::exists(exe_)) GTEST_SKIP() << exe_ << " was not built (cmake --build: all targets)";
    dir_ = train_test::fresh_test_dir("demo_train");
    fs::create_directories(dir_ / "cwd");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // demo-train ARGS run from dir_/cwd (which holds no data/) with `env` (e.g. "FABRIC_HOME=...").
  Result demo(const std::string& args, const std::string& env = "") {
    return train_test::run_command("cd '" + (dir_ / "cwd").string() + "' && env " + env + " '" +
                                   exe_.string() + "' " + args + " 2>&1");
  }
  // A small corpus at `file` (its folders made).
  static void write_text(const fs::path& file) {
    fs::create_directories(file.parent_path());
    std::string text;
    for (int i = 0; i < 40; ++i) text += "It is a truth universally acknowledged. ";
    std::ofstream(file) << text;
  }
  fs::path exe_, dir_;
};

TEST_F(DemoTrain, FindsTheCorpusInFabricHomeFromAnotherDirectory) {
  const fs::path home = dir_ / "home";
  write_text(home / "data/austen.txt");
  const Result r = demo("--steps 1", "FABRIC_HOME='" + home.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("demo-train: " + (home / "data/austen.txt").string() + ", 1600 bytes"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--- sample ---"), std::string::npos) << r.output;
}

TEST_F(DemoTrain, TheCurrentDirectoryComesFirst) {
  const fs::path home = dir_ / "home";
  write_text(home / "data/austen.txt");
  write_text(dir_ / "cwd/data/austen.txt");
  const Result r = demo("--steps 1", "FABRIC_HOME='" + home.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("demo-train: data/austen.txt, 1600 bytes"), std::string::npos)
      << r.output;
}

// The source tree's corpus (tools/build.sh extracts it), when this build has one.
TEST_F(DemoTrain, FindsTheSourceTreesCorpus) {
  const fs::path corpus =
      fs::path(FABRIC_CONFIG_DIR).parent_path().parent_path() / "data/austen.txt";
  if (!fs::exists(corpus)) GTEST_SKIP() << corpus << " was not extracted";
  const Result r = demo("--steps 1", "-u FABRIC_HOME");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("demo-train: " + corpus.string() + ","), std::string::npos) << r.output;
}

TEST_F(DemoTrain, BadArgumentsAreErrorsNamingThem) {
  const Result missing = demo("nowhere.txt 5");
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_NE(missing.output.find("demo-train: cannot open nowhere.txt (it does not exist)"),
            std::string::npos)
      << missing.output;
  write_text(dir_ / "cwd/t.txt");
  for (const std::string steps : {"ten", "0", "-3", "99999999999"}) {
    const Result r = demo("t.txt " + steps);
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(
        r.output.find("STEPS must be a whole number from 1 to 999999999, got '" + steps + "'"),
        std::string::npos)
        << r.output;
  }
  std::ofstream(dir_ / "cwd/short.txt") << "too short";
  const Result shorter = demo("short.txt 1");
  EXPECT_EQ(shorter.status, 1) << shorter.output;
  EXPECT_NE(shorter.output.find("short.txt holds 9 bytes; training needs at least 66"),
            std::string::npos)
      << shorter.output;
  const Result unknown = demo("--stpes 3");
  EXPECT_EQ(unknown.status, 1) << unknown.output;
  EXPECT_NE(unknown.output.find("unknown option --stpes"), std::string::npos) << unknown.output;
}

}  // namespace
}  // namespace fabric
