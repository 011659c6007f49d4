// fabric-train, through the binary: a run SIGKILLed right after a checkpoints/step-N is committed
// resumes from step N, not from an older `last`. As with Lightning's
// ModelCheckpoint(save_last=True) `last` is the newest checkpoint; fabric-train writes it before
// each step-N (Lightning writes it after), so that no kill between the two saves leaves a complete
// step-N newer than `last`. (Written after, a kill between the saves lost checkpoint_every steps:
// the resume went back to the `last` of the step-N before.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "tests/runtime/fabric_train_contract.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// The step-N checkpoints of `ck` that are complete (their state.json committed).
std::set<int64_t> complete_steps(const fs::path& ck) {
  std::set<int64_t> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ck, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step-", 0) != 0 || n.find('.') != std::string::npos) continue;
    if (fs::exists(e.path() / "state.json")) steps.insert(std::stoll(n.substr(5)));
  }
  return steps;
}

TEST_F(FabricTrain, AKillRightAfterAStepCheckpointResumesFromThatStep) {
  // Weights large enough (~46 MB with SGD's momentum) that saving `last` takes a while: a kill
  // as soon as step-N appears lands between the two saves if `last` came second.
  const std::string cfg = write_contract();
  const std::string run_dir = (dir_ / "run").string();
  const fs::path ck = dir_ / "run/checkpoints";
  const Result fit =
      run("fit " + cfg + " --set trainer.max_steps=2 model.sizes=[784,2048,2048,10]");
  ASSERT_EQ(fit.status, 0) << fit.output;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::set<int64_t> before = complete_steps(ck);
    const pid_t pid = fork();
    if (pid == 0) {
      const int null = open("/dev/null", O_WRONLY);  // its progress is no part of the test's log
      dup2(null, 1);
      dup2(null, 2);
      // Lengthened far beyond what the test waits for, a checkpoint every 3 steps.
      execl(FABRIC_TRAIN_EXE, FABRIC_TRAIN_EXE, "resume", run_dir.c_str(), "--set",
            "trainer.max_steps=100000", "trainer.checkpoint_every=3", static_cast<char*>(nullptr));
      _exit(127);
    }
    // SIGKILL as soon as a new step-N is complete.
    int64_t newest = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (newest < 0 && std::chrono::steady_clock::now() < deadline) {
      for (const int64_t n : complete_steps(ck))
        if (!before.count(n)) newest = n;
      if (newest < 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_GE(newest, 0) << "attempt " << attempt
                         << ": the resume committed no step-N within 120 s";
    ASSERT_TRUE(WIFSIGNALED(status))
        << "attempt " << attempt << ": the resume ended before the kill";
    // The next resume continues from step `newest` (or a later checkpoint the kill let through),
    // from `last`: no fallback message, no step lost.
    const Result res =
        run("resume " + run_dir + " --set trainer.max_steps=" + std::to_string(newest));
    ASSERT_EQ(res.status, 0) << res.output;
    const size_t at = res.output.find("(resuming at step ");
    ASSERT_NE(at, std::string::npos) << res.output;
    const int64_t resumed = std::stoll(res.output.substr(at + 18));
    EXPECT_GE(resumed, newest) << "attempt " << attempt << ": killed after step-" << newest
                               << " was committed, the resume went back to step " << resumed << "\n"
                               << res.output;
    EXPECT_EQ(res.output.find("resuming from"), std::string::npos) << res.output;
  }
}

}  // namespace
}  // namespace fabric
