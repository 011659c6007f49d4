// fabric-train end to end, through the binary: checkpoints and resume. Interrupted-and-resumed
// equals uninterrupted; a kill during a save leaves a loadable checkpoint; resume falls back past a
// kill's leftovers, reads a metrics.csv of the old column order, and warns about state another
// precision lacks.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// A kill can leave `<name>.tmp-<pid>` directories (removed when a run starts) and, during the first
// save of `last`, no `last` at all: resume then takes the newest complete step-N, and still
// reproduces the uninterrupted run.
TEST_F(FabricTrain, ResumeRemovesLeftoversAndFallsBackToTheNewestStep) {
  const Result full = run("fit " + write_contract(", checkpoint_every: 2") + " --set trainer.max_steps=4 data.shuffle=true");
  ASSERT_EQ(full.status, 0) << full.output;
  const fs::path ck = dir_ / "run/checkpoints";
  const auto expected = lines((dir_ / "run/metrics.csv").string());
  ASSERT_EQ(expected.size(), 5u);
  // As if killed while saving step 4: step-4 and last half written (last never committed).
  fs::remove_all(ck / "last");
  fs::rename(ck / "step-4", ck / "step-4.tmp-999999");
  fs::create_directories(ck / "last.tmp-999999");
  std::ofstream(ck / "last.tmp-999999/model.safetensors") << "partial";
  const Result res = run("resume " + (dir_ / "run").string());
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_NE(res.output.find("resuming from " + (ck / "step-2").string()), std::string::npos) << res.output;
  EXPECT_NE(res.output.find("(resuming at step 2)"), std::string::npos) << res.output;
  EXPECT_EQ(lines((dir_ / "run/metrics.csv").string()), expected);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(ck)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"last", "step-2", "step-4"}));
  // Nothing complete to resume from: an error naming last, the step-N checkpoints untouched.
  fs::remove_all(ck);
  fs::create_directories(ck / "step-2.tmp-1");
  const Result none = run("resume " + (dir_ / "run").string());
  EXPECT_EQ(none.status, 1) << none.output;
  EXPECT_NE(none.output.find("no checkpoint at " + (ck / "last").string()), std::string::npos) << none.output;
}

TEST_F(FabricTrain, InterruptedAndResumedEqualsUninterrupted) {
  // AdamW with a cosine schedule and shuffled data: every piece of state must come back.
  const std::string cfg = write_contract(", checkpoint_every: 3");
  const std::string common = " --set optimizer.name=adamw optimizer.lr=0.01 scheduler.name=cosine "
                             "scheduler.warmup_steps=2 data.shuffle=true trainer.batch_size=16 model.sizes=[784,32,10]";
  const Result full = run("fit " + cfg + common + " trainer.max_steps=8 trainer.run_dir=" + (dir_ / "full").string());
  ASSERT_EQ(full.status, 0) << full.output;
  // The same run stopped after 6 steps (its checkpoint) and resumed to 8.
  const std::string part_dir = (dir_ / "part").string();
  const Result part = run("fit " + cfg + common + " trainer.max_steps=8 trainer.run_dir=" + part_dir);
  ASSERT_EQ(part.status, 0);
  // Pretend the process died after step 7: drop checkpoints/last back to step 6.
  fs::remove_all(part_dir + "/checkpoints/last");
  fs::copy(part_dir + "/checkpoints/step-6", part_dir + "/checkpoints/last", fs::copy_options::recursive);
  const Result res = run("resume " + part_dir);
  ASSERT_EQ(res.status, 0) << res.output;
  const auto a = lines((dir_ / "full/metrics.csv").string());
  const auto b = lines(part_dir + "/metrics.csv");
  ASSERT_EQ(a.size(), 9u);
  EXPECT_EQ(a, b) << "resumed metrics must equal the uninterrupted run's, bit for bit";
  // Extending a finished run: the cosine continues on the 10-step curve (a run of 10 from the
  // start has the same lr at steps 9 and 10), not from the 8-step curve's last lr.
  const Result ext = run("resume " + part_dir + " --set trainer.max_steps=10");
  ASSERT_EQ(ext.status, 0) << ext.output;
  const auto extended = lines(part_dir + "/metrics.csv");
  ASSERT_EQ(extended.size(), 11u);
  const Result ten = run("fit " + cfg + common + " trainer.max_steps=10 trainer.run_dir=" + (dir_ / "ten").string());
  ASSERT_EQ(ten.status, 0) << ten.output;
  const auto straight = lines((dir_ / "ten/metrics.csv").string());
  ASSERT_EQ(straight.size(), 11u);
  for (size_t row = 9; row <= 10; ++row) EXPECT_EQ(cell(extended, row, "lr"), cell(straight, row, "lr")) << "step " << row;
}

// A warm-up longer than the first run keeps its length: the run extended by a resume equals the
// run that was that long from the start, lr and losses bit for bit (it was squeezed into the first
// run, so the lr fell back mid-warm-up at the resume).
TEST_F(FabricTrain, ExtendedResumeGoesOnAlongAWarmUpLongerThanTheFirstRun) {
  const std::string cfg = write_contract("");
  const std::string common =
      " --set optimizer.lr=0.01 scheduler.name=constant scheduler.warmup_steps=6";
  const std::string part_dir = (dir_ / "part").string();
  const Result part =
      run("fit " + cfg + common + " trainer.max_steps=3 trainer.run_dir=" + part_dir);
  ASSERT_EQ(part.status, 0) << part.output;
  const Result ext = run("resume " + part_dir + " --set trainer.max_steps=8");
  ASSERT_EQ(ext.status, 0) << ext.output;
  const Result full = run("fit " + cfg + common +
                          " trainer.max_steps=8 trainer.run_dir=" + (dir_ / "full").string());
  ASSERT_EQ(full.status, 0) << full.output;
  const auto a = lines((dir_ / "full/metrics.csv").string());
  ASSERT_EQ(a.size(), 9u);
  EXPECT_EQ(lines(part_dir + "/metrics.csv"), a);
}

TEST_F(FabricTrain, KillDuringSaveLeavesALoadableCheckpoint) {
  const std::string cfg = write_contract(", checkpoint_every: 1");
  const std::string run_dir = (dir_ / "run").string();
  const fs::path last = fs::path(run_dir) / "checkpoints/last";
  // Whether this run has committed a checkpoint since `t0` (as last/ or, mid-save, last.old/).
  auto saved_since = [&](fs::file_time_type t0) {
    for (const fs::path& d : {last, fs::path(last.string() + ".old")}) {
      std::error_code ec;
      const auto t = fs::last_write_time(d / "state.json", ec);
      if (!ec && t >= t0) return true;
    }
    return false;
  };
  for (int attempt = 0; attempt < 4; ++attempt) {
    const auto t0 = fs::file_time_type::clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      execl(FABRIC_TRAIN_EXE, FABRIC_TRAIN_EXE, "fit", cfg.c_str(), "--set", "trainer.max_steps=100000",
            "model.sizes=[784,512,512,10]", static_cast<char*>(nullptr));
      _exit(127);
    }
    // Let it write its first checkpoints (however long a loaded machine takes to start it), then
    // kill it at an arbitrary moment of the saves that follow.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!saved_since(t0) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const bool started = saved_since(t0);
    if (started) std::this_thread::sleep_for(std::chrono::milliseconds(200 + 170 * attempt));
    ::kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(started) << "attempt " << attempt << ": fabric-train saved no checkpoint within 60 s";
    const fs::path usable = fs::exists(last / "state.json") ? last : fs::path(last.string() + ".old");
    ASSERT_TRUE(fs::exists(usable / "state.json")) << "attempt " << attempt;
    EXPECT_NO_THROW(load_safetensors((usable / "model.safetensors").string())) << "attempt " << attempt;
    // And a resume from it works.
    const Result r = run("resume " + run_dir + " --set trainer.max_steps=1");
    EXPECT_EQ(r.status, 0) << r.output;
  }
}

// A run directory from before metrics.csv was sorted (step first) resumes: the earlier rows stay
// under their columns and the file comes back in Lightning's order, equal to a fresh run's.
TEST_F(FabricTrain, ResumeOfAMetricsFileInTheOldColumnOrder) {
  const std::string cfg = write_contract(", checkpoint_every: 2");
  const Result full = run("fit " + cfg + " --set trainer.max_steps=4");
  ASSERT_EQ(full.status, 0) << full.output;
  const std::string csv_path = (dir_ / "run/metrics.csv").string();
  const auto expected = lines(csv_path);
  ASSERT_EQ(expected.size(), 5u);
  {  // The same rows as the old logger wrote them: step,train_loss,lr.
    std::ofstream old(csv_path);
    old << "step,train_loss,lr\n";
    for (size_t row = 1; row < expected.size(); ++row)
      old << cell(expected, row, "step") << "," << cell(expected, row, "train_loss") << "," << cell(expected, row, "lr")
          << "\n";
  }
  fs::remove_all(dir_ / "run/checkpoints/last");
  fs::copy(dir_ / "run/checkpoints/step-2", dir_ / "run/checkpoints/last", fs::copy_options::recursive);
  const Result res = run("resume " + (dir_ / "run").string());
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_EQ(lines(csv_path), expected);
}

// Resuming under another precision: the 32-true run's checkpoint has no scaler state for 16-mixed's
// GradScaler; the run continues with a warning instead of failing (the reference never saves it).
TEST_F(FabricTrain, ResumeUnderAnotherPrecisionWarnsAboutTheScalerState) {
  const Result fit = run("fit " + write_contract() + " --set trainer.max_steps=2 model.sizes=[784,16,10]");
  ASSERT_EQ(fit.status, 0) << fit.output;
  const Result res =
      run("resume " + (dir_ / "run").string() + " --set trainer.max_steps=3 fabric.precision=16-mixed");
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_NE(res.output.find("not restored"), std::string::npos) << res.output;
  EXPECT_EQ(lines((dir_ / "run/metrics.csv").string()).size(), 4u);
}

}  // namespace
}  // namespace fabric
