// fabric-train end to end, through the binary: the training loop's counting. The validation loss is
// the mean over the examples whatever the batch size and process count; an epoch ends with a
// (possibly partial) accumulation step, and such runs resume bit for bit; a resume's summary
// counts its own steps; a rank killed mid-run ends the launch with that rank's status.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_metrics.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// The last non-empty cell of a column.
std::string last_of(const fs::path& csv, const std::string& name) {
  std::string last;
  for (const auto& c : column(csv, name))
    if (!c.empty()) last = c;
  return last;
}

class FabricTrainLoop : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_loop");
    if (IsSkipped()) return;
    // 120 examples of 8 features, 3 classes.
    Generator gen(11);
    save_classification_data(dir_ / "cls.safetensors", 120, 8, 3, gen);
    cfg_ = (dir_ / "c.yaml").string();
    std::ofstream(cfg_) << "model:     {name: mlp, sizes: [8, 16, 3]}\n"
                           "data:      {kind: tensors, path: " << (dir_ / "cls.safetensors").string() << "}\n"
                           "optimizer: {name: adamw, lr: 0.01}\n"
                           "trainer:   {max_steps: 4, batch_size: 16, run_dir: run}\n";
  }
};

// 20 validation examples: batches of 4, 8 (8 + 8 + 4) and 20 on one process, and of 4 on each of two
// processes (2 x 4 per step of the sampler), all give the mean over the same 20 examples. The
// learning rate is 0 so that the training step before the validation changes nothing.
TEST_F(FabricTrainLoop, ValidationLossIsTheMeanOverTheExamples) {
  const std::string common = "optimizer.lr=0 trainer.max_steps=1 data.val_fraction=0.2 trainer.val_every=1 "
                             "data.path=" + (dir_ / "val.safetensors").string();
  Generator gen(2);
  save_classification_data(dir_ / "val.safetensors", 100, 8, 3, gen);
  std::vector<double> losses;
  for (const std::string sets : {"trainer.batch_size=4", "trainer.batch_size=8", "trainer.batch_size=20",
                                 "trainer.batch_size=4 fabric.devices=2"}) {
    const std::string run_dir = "v" + std::to_string(losses.size());
    const Result r = fit(common + " " + sets, run_dir);
    ASSERT_EQ(r.status, 0) << sets << "\n" << r.output;
    losses.push_back(std::stod(last_of(dir_ / run_dir / "metrics.csv", "val_loss")));
  }
  for (size_t i = 1; i < losses.size(); ++i) EXPECT_NEAR(losses[i], losses[0], 1e-6 * losses[0]) << "case " << i;
}

// 120 examples in batches of 16: 8 batches per epoch, the last of 8 examples. Accumulating 3, an
// epoch is 3 optimizer steps (3 + 3 + 2 batches), as in Lightning; two epochs are 6 steps and the
// second starts at step 4 on the epoch's first batch. Resumed from the partial window's end (step
// 3) and from inside an epoch (step 4), the run ends bit for bit as the uninterrupted one.
TEST_F(FabricTrainLoop, AnEpochEndsWithAPartialAccumulationStepAndResumesExactly) {
  const std::string common = "trainer.max_steps=-1 trainer.accumulate_grad_batches=3 data.shuffle=true "
                             "trainer.checkpoint_every=1";
  const Result one = fit(common + " trainer.max_epochs=1", "one");
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_NE(one.output.find(", 3 steps"), std::string::npos) << one.output;
  EXPECT_EQ(column(dir_ / "one/metrics.csv", "step"), (std::vector<std::string>{"1", "2", "3"}));
  const Result two = fit(common + " trainer.max_epochs=2", "two");
  ASSERT_EQ(two.status, 0) << two.output;
  for (const char* expected : {"step 3/6  epoch 0 ", "step 4/6  epoch 1 ", "step 6/6  epoch 1 "})
    EXPECT_NE(two.output.find(expected), std::string::npos) << expected << "\n" << two.output;
  // The first epoch of both runs is the same.
  const auto a = column(dir_ / "one/metrics.csv", "train_loss"), b = column(dir_ / "two/metrics.csv", "train_loss");
  ASSERT_EQ(b.size(), 6u);
  EXPECT_EQ(std::vector<std::string>(b.begin(), b.begin() + 3), a);

  const fs::path run_dir = dir_ / "two";
  const auto full = lines(run_dir / "metrics.csv");
  const auto weights = load_safetensors((run_dir / "checkpoints/last/model.safetensors").string());
  for (int step : {3, 4}) {
    fs::remove_all(run_dir / "checkpoints/last");
    fs::copy(run_dir / ("checkpoints/step-" + std::to_string(step)), run_dir / "checkpoints/last",
             fs::copy_options::recursive);
    const Result res = run("resume " + run_dir.string());
    ASSERT_EQ(res.status, 0) << res.output;
    EXPECT_EQ(lines(run_dir / "metrics.csv"), full) << "resumed from step " << step;
    const auto resumed = load_safetensors((run_dir / "checkpoints/last/model.safetensors").string());
    for (const auto& [k, t] : weights.tensors)
      EXPECT_EQ(amax(abs(t - resumed.tensors.at(k))).item<double>(), 0.0) << k << ", resumed from step " << step;
    // The summary counts this invocation's steps.
    EXPECT_NE(res.output.find("done: " + std::to_string(6 - step) + " steps in "), std::string::npos) << res.output;
    EXPECT_NE(res.output.find("(resumed at step " + std::to_string(step) + ", now at step 6)"), std::string::npos)
        << res.output;
  }
}

// A local rank killed while the run trains: the launch exits with that rank's status (137), not
// with the error rank 0 gets from the collective the death broke. Three runs: which of the two
// rank 0 notices first is a race.
TEST_F(FabricTrainLoop, KillingALocalRankEndsTheRunWithItsStatus) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const fs::path run_dir = dir_ / ("kill" + std::to_string(attempt));
    const pid_t pid = fork();
    if (pid == 0) {
      execl(FABRIC_TRAIN_EXE, FABRIC_TRAIN_EXE, "fit", cfg_.c_str(), "--set", "trainer.max_steps=1000000",
            "fabric.devices=2", ("trainer.run_dir=" + run_dir.string()).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait until it trains (a few metrics rows), then SIGKILL local rank 1.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (lines(run_dir / "metrics.csv").size() < 4 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    pid_t child = 0;
    children >> child;
    ::kill(child > 0 ? child : pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_GT(child, 0) << "attempt " << attempt << ": no local rank 1 found (not training within 60 s?)";
    ASSERT_TRUE(WIFEXITED(status)) << "attempt " << attempt;
    EXPECT_EQ(WEXITSTATUS(status), 137) << "attempt " << attempt;
  }
}

}  // namespace
}  // namespace fabric
