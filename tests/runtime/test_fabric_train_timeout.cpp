// fabric.timeout: the seconds a collective or the rendezvous waits for the other ranks (Lightning's
// DDPStrategy(timeout=...), PyTorch's 30 minutes when not given): the key's checks, its place in
// config.yaml, the schema and a resume, and a fit whose rank stalls failing at the timeout instead
// of hanging.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "runtime/train_builders.h"
#include "runtime/train_config.h"
#include "tests/common/expect_error.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using train_test::Result;
using train_test::run;

// The tests that run the binary skip when it was not built.
#define SKIP_WITHOUT_FABRIC_TRAIN() \
  if (std::string(FABRIC_TRAIN_EXE).empty()) GTEST_SKIP() << "fabric-train was not built"

class FabricTrainTimeout : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    dir_ = train_test::fresh_test_dir("fabric_timeout");
    Generator gen(5);
    train_test::save_classification_data(dir_ / "data.safetensors", 64, 784, 10, gen);
    cfg_ = (dir_ / "config.yaml").string();
    std::ofstream(cfg_) << config_text("");
  }
  // The contract's MLP (small) on this test's data; `fabric` is added to the fabric section.
  std::string config_text(const std::string& fabric) const {
    return "fabric:  {accelerator: cpu, devices: 1" + fabric + "}\n" +
           "model:   {name: mlp, sizes: [784, 16, 10]}\n"
           "data:    {kind: tensors, path: " +
           (dir_ / "data.safetensors").string() + "}\n" +
           "trainer: {max_steps: 2, batch_size: 8, run_dir: " + (dir_ / "run").string() + "}\n";
  }
  TrainConfig parse(const std::string& fabric, const std::vector<std::string>& sets = {}) const {
    return parse_train_config(config_text(fabric), "cfg.yaml", sets);
  }
  std::string error_of(const std::string& fabric, const std::vector<std::string>& sets = {}) const {
    return thrown<ConfigError>([&] { parse(fabric, sets); });
  }
  // "cfg.yaml:1:C: " for the fabric section's `key`.
  std::string at_key(const std::string& fabric, const std::string& key) const {
    return "cfg.yaml:1:" + std::to_string(config_text(fabric).find(key + ":") + 1) + ": ";
  }
};

// Not given: null, PyTorch's 30 minutes, and config.yaml leaves it out; given, it reaches
// FabricOptions::timeout in milliseconds and config.yaml keeps it (a number PyYAML reads back).
TEST_F(FabricTrainTimeout, SecondsBecomeTheFabricsTimeout) {
  const TrainConfig plain = parse("");
  EXPECT_FALSE(plain.fabric.timeout.has_value());
  EXPECT_EQ(distributed_timeout(plain), std::chrono::milliseconds(std::chrono::minutes(30)));
  EXPECT_EQ(dump_train_config(plain).find("  timeout:"), std::string::npos)
      << dump_train_config(plain);

  const TrainConfig given = parse(", timeout: 2.5");
  ASSERT_TRUE(given.fabric.timeout.has_value());
  EXPECT_EQ(*given.fabric.timeout, 2.5);
  EXPECT_EQ(distributed_timeout(given), 2500ms);
  const std::string dumped = dump_train_config(given);
  EXPECT_CONTAINS(dumped, "  timeout: 2.5\n");
  EXPECT_EQ(*parse_train_config(dumped, "config.yaml").fabric.timeout, 2.5);

  EXPECT_EQ(distributed_timeout(parse("", {"fabric.timeout=120"})), 120000ms);
  EXPECT_EQ(distributed_timeout(parse(", timeout: 0.001")), 1ms);  // the least: a millisecond
  // An explicit null is the default, on the command line too.
  EXPECT_FALSE(parse(", timeout: 5", {"fabric.timeout=null"}).fabric.timeout.has_value());
}

// A timeout that is not a positive number of seconds is a config error at the key, in the file
// (location: key: message) and on the command line (--set key: message).
TEST_F(FabricTrainTimeout, ValuesThatAreNotAPositiveNumberOfSecondsAreConfigErrors) {
  EXPECT_EQ(error_of(", timeout: 0"),
            at_key(", timeout: 0", "timeout") +
                "fabric.timeout: must be between 0.001 and 31536000, got 0");
  EXPECT_CONTAINS(error_of(", timeout: -3"),
                  "fabric.timeout: must be between 0.001 and 31536000, got -3");
  EXPECT_CONTAINS(error_of(", timeout: 1e12"), "got 1000000000000");
  EXPECT_EQ(error_of(", timeout: 30min"),
            at_key(", timeout: 30min", "timeout") + "fabric.timeout: expected number, got '30min'");
  EXPECT_CONTAINS(error_of(", timeout: [1]"), "fabric.timeout: expected number, got a list");
  EXPECT_CONTAINS(error_of(", timeout: .nan"), "fabric.timeout: expected number, got '.nan'");
  EXPECT_EQ(error_of("", {"fabric.timeout=0"}),
            "--set fabric.timeout: must be between 0.001 and 31536000, got 0");
  EXPECT_EQ(error_of("", {"fabric.timeout=soon"}),
            "--set fabric.timeout: expected number, got 'soon'");
  EXPECT_CONTAINS(error_of(", timout: 5"), "did you mean 'timeout'");
}

TEST_F(FabricTrainTimeout, TheSchemaListsIt) {
  SKIP_WITHOUT_FABRIC_TRAIN();
  EXPECT_CONTAINS(train_config_schema(),
                  "| `fabric.timeout` | number | `(1800 s)` | seconds a collective");
  const Result r = run("schema");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "| `fabric.timeout` | number | `(1800 s)` |");
}

// `validate` and --print-config show it; a bad one exits 2 naming the key, writing nothing.
TEST_F(FabricTrainTimeout, ValidateShowsItAndRefusesABadOne) {
  SKIP_WITHOUT_FABRIC_TRAIN();
  Result r = run("validate " + cfg_ + " --set fabric.timeout=2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "  timeout: 2.0\n");
  r = run("fit " + cfg_ + " --print-config --set fabric.timeout=7.5");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "  timeout: 7.5\n");
  r = run("fit " + cfg_ + " --set fabric.timeout=-1");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_CONTAINS(r.output,
                  "fabric-train: config error: --set fabric.timeout: must be between 0.001 and "
                  "31536000, got -1");
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

// As the other fabric keys, config.yaml carries it into a resume, and a resume's --set changes it:
// Lightning's timeout is the strategy's argument, never part of a checkpoint, so a resumed script
// may pass another one (a --set that changes nothing would be said, as for the keys a checkpoint
// restores).
TEST_F(FabricTrainTimeout, AResumeKeepsItAndMayChangeIt) {
  SKIP_WITHOUT_FABRIC_TRAIN();
  Result r = run("fit " + cfg_ + " --set fabric.timeout=2");
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path config = dir_ / "run/config.yaml";
  EXPECT_CONTAINS(train_test::slurp(config), "  timeout: 2.0\n");
  r = run("resume " + (dir_ / "run").string() + " --set trainer.max_steps=3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(train_test::slurp(config), "  timeout: 2.0\n");
  r = run("resume " + (dir_ / "run").string() + " --set trainer.max_steps=4 fabric.timeout=60");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("no effect on a resume"), std::string::npos) << r.output;
  EXPECT_CONTAINS(train_test::slurp(config), "  timeout: 60.0\n");
}

// Two processes, local rank 1 stopped (SIGSTOP) while they train: rank 0's next collective fails
// with the timeout error after fabric.timeout (2 s), and the launcher ends the run, instead of the
// run hanging for PyTorch's 30 minutes.
TEST_F(FabricTrainTimeout, AStalledRankFailsTheRunAtTheTimeout) {
  SKIP_WITHOUT_FABRIC_TRAIN();
  const fs::path out = dir_ / "out.txt";
  const fs::path run_dir = dir_ / "stall";
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    execl(FABRIC_TRAIN_EXE, FABRIC_TRAIN_EXE, "fit", cfg_.c_str(), "--set", "fabric.devices=2",
          "fabric.timeout=2", "trainer.max_steps=100000000", "trainer.log_every=50",
          ("trainer.run_dir=" + run_dir.string()).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Once it trains (a few metrics rows), stop local rank 1.
  const auto rows = [&] {
    std::ifstream f(run_dir / "metrics.csv");
    return std::count(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>(), '\n');
  };
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (rows() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  pid_t child = 0;
  std::ifstream("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children") >>
      child;
  if (child > 0) ::kill(child, SIGSTOP);
  const auto stopped = std::chrono::steady_clock::now();
  // 2 s of timeout, the launcher's 1 s grace for the other ranks, and slack for a loaded machine.
  deadline = stopped + 20s;
  int status = 0;
  bool ended = false;
  while (!(ended = ::waitpid(pid, &status, WNOHANG) == pid) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count();
  if (!ended) {
    ::kill(pid, SIGKILL);  // its ranks die with it (parent-death signal)
    ::waitpid(pid, &status, 0);
  }
  const std::string output = train_test::slurp(out);
  ASSERT_GT(child, 0) << "no local rank 1 found (not training within 60 s?)\n" << output;
  ASSERT_TRUE(ended)
      << "still running 20 s after rank 1 stopped: fabric.timeout did not reach the Fabric\n"
      << output;
  EXPECT_GE(seconds, 1.9) << output;
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_CONTAINS(output, "fabric-train: error: ");
  EXPECT_CONTAINS(output, "timed out after 2000 ms");
}

}  // namespace
}  // namespace fabric
