// Shared by the tests that run the fabric-train binary (test_fabric_train*.cpp).
#pragma once
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

#ifndef FABRIC_TRAIN_EXE
#define FABRIC_TRAIN_EXE ""  // built without tools/: the tests skip
#endif

namespace fabric::train_test {

struct Result {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs the shell command `cmd` (its stderr joined to stdout by the caller) and collects its exit
// status and output.
inline Result run_command(const std::string& cmd) {
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.output += buf;
  const int rc = pclose(p);
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

// Runs `fabric-train ARGS` (a shell-quoted argument string) and collects its exit status and output.
// `prefix` goes before the program (e.g. "env -u MASTER_PORT timeout 60").
inline Result run(const std::string& args, const std::string& prefix = "") {
  return run_command(prefix + " '" + FABRIC_TRAIN_EXE + "' " + args + " 2>&1");
}

// An empty directory of its own for the running test (`stem`_PID_TEST under the temp directory).
inline std::filesystem::path fresh_test_dir(const std::string& stem) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / (stem + "_" + std::to_string(::getpid()) + "_" +
                                                    testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A file's whole content ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A classification data set for the `tensors` kind at `file`: `n` examples of `features`
// standard-normal values and `n` targets in [0, classes), drawn from `gen` in that order.
inline void save_classification_data(const std::filesystem::path& file, int64_t n, int64_t features,
                                     int64_t classes, Generator& gen) {
  save_safetensors(file.string(),
                   {{"inputs", randn({n, features}, {}, &gen)},
                    {"targets", randint(0, classes, {n}, {.dtype = DType::int64}, &gen)}});
}

// A test that runs fabric-train on files of its own: skipped when the binary was not built, an
// empty directory `dir_` (fresh_test_dir) removed afterwards, and the config `cfg_` the subclass
// writes there. Subclasses begin their SetUp with `start(stem); if (IsSkipped()) return;`.
class RunDirTest : public testing::Test {
 protected:
  void start(const std::string& stem) {
    if (std::string(FABRIC_TRAIN_EXE).empty()) GTEST_SKIP() << "fabric-train was not built";
    dir_ = fresh_test_dir(stem);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  // `fit cfg_ --set <sets> trainer.run_dir=dir_/<run_dir>`.
  Result fit(const std::string& sets, const std::string& run_dir) {
    return run("fit " + cfg_ + " --set " + sets + " trainer.run_dir=" + (dir_ / run_dir).string());
  }
  // The smallest GPT run: dir_/t.txt (a sentence repeated) and dir_/gpt.yaml training a
  // one-layer character GPT on it for 2 steps into dir_/<run_dir>; returns the config's path.
  std::string write_tiny_gpt_config(const std::string& run_dir) {
    std::string text;
    for (int i = 0; i < 20; ++i) text += "the cat sat on the mat. ";
    std::ofstream(dir_ / "t.txt") << text;
    const std::string cfg = (dir_ / "gpt.yaml").string();
    std::ofstream(cfg) << "model: {name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
                          "data: {kind: text, path: "
                       << (dir_ / "t.txt").string()
                       << "}\n"
                          "optimizer: {name: adamw, lr: 0.01}\n"
                          "trainer: {max_steps: 2, batch_size: 4, run_dir: "
                       << (dir_ / run_dir).string() << "}\n";
    return cfg;
  }
  std::filesystem::path dir_;
  std::string cfg_;
};

}  // namespace fabric::train_test
