// The run directory helpers of fabric-train (runtime/run_directory.h) on hand-made folders: which
// step-N checkpoints a run wrote (by the run id each records) and the advice that starts a new run
// from a checkpoint's weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>

#include "runtime/checkpoint.h"
#include "runtime/run_directory.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class RunDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fabric-run-directory-" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "checkpoints");
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A full checkpoint holding only a run id (none when `id` < 0).
  void step_checkpoint(int64_t n, int64_t id) {
    State state{{"step", n}};
    if (id >= 0) state.emplace(kRunIdKey, id);
    save_checkpoint((dir_ / "checkpoints" / ("step-" + std::to_string(n))).string(), state,
                    nullptr);
  }
  fs::path dir_;
};

TEST_F(RunDirectory, AResumeOwnsOnlyTheStepCheckpointsOfItsRun) {
  step_checkpoint(1, 7);
  step_checkpoint(2, 9);  // an earlier run's
  step_checkpoint(3, 7);
  step_checkpoint(4, 7);                                // beyond the resumed step
  fs::create_directories(dir_ / "checkpoints/step-5");  // damaged: never the run's
  step_checkpoint(6, -1);
  const std::string checkpoints = (dir_ / "checkpoints").string();
  EXPECT_EQ(steps_of_run(checkpoints, 3, 7), (std::set<int64_t>{1, 3}));
  EXPECT_EQ(steps_of_run(checkpoints, 6, 9), (std::set<int64_t>{2}));
  // A checkpoint from before run ids: every step-N up to the resumed one.
  EXPECT_EQ(steps_of_run(checkpoints, 3, std::nullopt), (std::set<int64_t>{1, 2, 3}));
}

// Only <name>.tmp-<pid> directories of processes that are gone: a live process's save in progress
// (another fabric-train on the same directory), files and other names holding ".tmp-" stay.
TEST_F(RunDirectory, OnlyTheTemporariesOfEndedProcessesAreRemoved) {
  const fs::path c = dir_ / "checkpoints";
  // A pid no process has: past the kernel's largest (pid_max is at most 2^22).
  const std::string gone = std::to_string((1 << 22) + 12345);
  for (const std::string name : {"last.tmp-" + gone, "step-3.tmp-" + gone})
    fs::create_directories(c / name);
  const std::string alive = std::to_string(::getppid());  // the test runner's parent
  for (const std::string name : {"last.tmp-" + alive, std::string("mybackup.tmp-keep"),
                                 std::string(".tmp-1"), "step-2.tmp-" + gone + "x"})
    fs::create_directories(c / name);
  std::ofstream(c / ("notes.tmp-" + gone)) << "x";
  step_checkpoint(4, 7);
  remove_stale_temporaries(c.string());
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(c)) left.insert(e.path().filename().string());
  EXPECT_EQ(left,
            (std::set<std::string>{"last.tmp-" + alive, "mybackup.tmp-keep", ".tmp-1",
                                   "step-2.tmp-" + gone + "x", "notes.tmp-" + gone, "step-4"}));
}

// The run directory's own files: metrics.csv, config.yaml and vocab.json + .tmp.<pid> of a process
// that is gone (a resume killed while it cut metrics.csv back) go; a live one's, other names and
// directories stay.
TEST_F(RunDirectory, TheRunFilesTemporariesOfEndedProcessesAreRemoved) {
  const std::string gone = std::to_string((1 << 22) + 12345);
  const std::string alive = std::to_string(::getppid());
  for (const std::string name :
       {"metrics.csv.tmp." + gone, "config.yaml.tmp." + gone, "vocab.json.tmp." + gone,
        "metrics.csv.tmp." + alive, "notes.txt.tmp." + gone, std::string("metrics.csv")})
    std::ofstream(dir_ / name) << "x";
  fs::create_directories(dir_ / ("config.yaml.tmp." + gone + ".d"));
  remove_stale_file_temporaries(dir_.string());
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(dir_)) left.insert(e.path().filename().string());
  left.erase("checkpoints");
  EXPECT_EQ(left, (std::set<std::string>{"metrics.csv.tmp." + alive, "notes.txt.tmp." + gone,
                                         "metrics.csv", "config.yaml.tmp." + gone + ".d"}));
}

// A step-<number> folder past int64 (or signed) is no checkpoint of ours: skipped, as other names
// are (it was a bare "stoll" error that stopped every fit and resume of the directory).
TEST_F(RunDirectory, StepFoldersOfNoInt64AreSkipped) {
  step_checkpoint(4, 7);
  for (const char* name :
       {"step-99999999999999999999", "step--3", "step-+3", "step-9223372036854775807"})
    fs::create_directories(dir_ / "checkpoints" / name);
  const auto steps = step_checkpoints((dir_ / "checkpoints").string());
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].first, 4);
  EXPECT_EQ(steps[1].first, std::numeric_limits<int64_t>::max());
}

// A second fit or resume of a run directory in use is refused; the lock goes with its holder.
TEST_F(RunDirectory, TheRunDirectoryLockIsExclusive) {
  {
    RunDirectoryLock held(dir_.string());
    EXPECT_CONTAINS(thrown<IOError>([&] { RunDirectoryLock again(dir_.string()); }),
                    "the run directory is in use by another fabric-train fit or resume");
  }
  RunDirectoryLock after(dir_.string());
}

TEST_F(RunDirectory, ReadCheckpointValueReadsOnePlainValue) {
  step_checkpoint(1, 42);
  const std::string ckpt = (dir_ / "checkpoints/step-1").string();
  const auto id = read_checkpoint_value(ckpt, kRunIdKey);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(std::get<int64_t>(id->value()), 42);
  EXPECT_FALSE(read_checkpoint_value(ckpt, "nothing").has_value());
  EXPECT_CONTAINS(thrown<IOError>([&] { read_checkpoint_value((dir_ / "none").string(), "x"); }),
                  "none");
}

TEST_F(RunDirectory, FitFromWeightsAdviceConsolidatesAShardedCheckpointFirst) {
  const std::string run = dir_.string();
  step_checkpoint(1, 1);
  EXPECT_EQ(fit_from_weights_advice(run, run + "/checkpoints/step-1"),
            "fabric-train fit " + run + "/config.yaml --set model.init=" + run +
                "/checkpoints/step-1/model.safetensors trainer.run_dir=NEW_RUN_DIR");
  fs::create_directories(dir_ / "checkpoints/last");
  std::ofstream(dir_ / "checkpoints/last/meta.json") << "{}";
  EXPECT_EQ(fit_from_weights_advice(run, run + "/checkpoints/last"),
            "fabric-train consolidate " + run + "/checkpoints/last " + run +
                "/weights.safetensors (the checkpoint is sharded), then fabric-train fit " + run +
                "/config.yaml --set model.init=" + run +
                "/weights.safetensors trainer.run_dir=NEW_RUN_DIR");
}

}  // namespace
}  // namespace fabric
