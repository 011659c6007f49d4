// The run directory helpers of fabric-train (runtime/run_directory.h) on hand-made folders: which
// step-N checkpoints a run wrote (by the run id each records) and the advice that starts a new run
// from a checkpoint's weights.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
