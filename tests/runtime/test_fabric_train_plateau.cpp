// fabric-train end to end with scheduler.name plateau (PyTorch's ReduceLROnPlateau on the
// validation loss, as Lightning's monitor: val_loss): it steps once per validation, and a resumed
// run continues its patience and cooldown counts as the uninterrupted run does.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// The non-empty cells of a metrics.csv column (val_loss is logged in rows of its own).
std::vector<std::string> logged(const fs::path& csv, const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& c : column(csv, name))
    if (!c.empty()) out.push_back(c);
  return out;
}

// Validation after every step on a quarter of the data. The abs threshold 10 makes every
// validation after the first a bad one whatever the losses: the lr sequence follows from patience
// 1 and cooldown 1 alone.
const std::string kPlateau =
    " --set data.val_fraction=0.25 trainer.val_every=1 trainer.max_steps=8 scheduler.name=plateau "
    "scheduler.patience=1 scheduler.cooldown=1 scheduler.factor=0.5 scheduler.threshold=10 "
    "scheduler.threshold_mode=abs scheduler.min_lr=0.03";

TEST_F(FabricTrain, PlateauReducesTheLrOnValidationLoss) {
  const std::string cfg = write_contract();
  const Result r = run("fit " + cfg + kPlateau);
  ASSERT_EQ(r.status, 0) << r.output;
  // Validation 1 sets best; 2 is bad; 3 is the second bad one (> patience): 0.1 * 0.5; 4 falls in
  // the cooldown; 5 and 6 are bad: 0.05 * 0.5 floored at min_lr; 7 cooldown, 8 bad.
  const std::vector<double> expected = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.03, 0.03};
  const std::vector<std::string> got = logged(dir_ / "run/metrics.csv", "lr");
  ASSERT_EQ(got.size(), expected.size()) << r.output;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(std::stod(got[i]), expected[i], 1e-15) << "step " << i + 1;
  EXPECT_EQ(logged(dir_ / "run/metrics.csv", "val_loss").size(), 8u);
}

// A warm-up is cosine's and constant's: given to plateau it is said and left out, and the lr
// follows the plateau alone (a warm-up that set the base lr at every step undid its reductions).
TEST_F(FabricTrain, PlateauLeavesOutAWarmUpAndSaysSo) {
  const std::string cfg = write_contract();
  const Result r = run("fit " + cfg + kPlateau + " scheduler.warmup_steps=2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("scheduler.warmup_steps is ignored: scheduler.name plateau has no "
                          "warm-up (cosine and constant have one)"),
            std::string::npos)
      << r.output;
  const std::vector<double> expected = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.03, 0.03};
  const std::vector<std::string> got = logged(dir_ / "run/metrics.csv", "lr");
  ASSERT_EQ(got.size(), expected.size()) << r.output;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(std::stod(got[i]), expected[i], 1e-15) << "step " << i + 1;
}

// Stopped after step 5 (bad-validation count 1, which a fresh scheduler would not have: its
// validation 6 would set best and keep the lr) and resumed to 8: the same metrics as the
// uninterrupted run, whatever a --set of the plateau's arguments says (the checkpoint's are
// restored, as torch's load_state_dict does; the resume warns). Then a finished run resumes with
// nothing to do.
TEST_F(FabricTrain, PlateauResumeContinuesItsCounts) {
  const std::string cfg = write_contract(", checkpoint_every: 5");
  const std::string full_dir = (dir_ / "full").string(), part_dir = (dir_ / "part").string();
  ASSERT_EQ(run("fit " + cfg + kPlateau + " trainer.run_dir=" + full_dir).status, 0);
  ASSERT_EQ(run("fit " + cfg + kPlateau + " trainer.run_dir=" + part_dir).status, 0);
  fs::remove_all(part_dir + "/checkpoints/last");
  fs::copy(part_dir + "/checkpoints/step-5", part_dir + "/checkpoints/last",
           fs::copy_options::recursive);
  const Result res = run("resume " + part_dir +
                         " --set scheduler.patience=4 scheduler.factor=0.9 scheduler.min_lr=0.01");
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_NE(res.output.find("fabric-train: warning: resume: --set scheduler.patience=4 (in effect: "
                            "1), scheduler.factor=0.9 (in effect: 0.5), scheduler.min_lr=0.01 (in "
                            "effect: 0.03): the plateau scheduler's arguments are restored from "
                            "the checkpoint"),
            std::string::npos)
      << res.output;
  // config.yaml keeps the values in effect.
  const auto config = lines(part_dir + "/config.yaml");
  EXPECT_NE(std::find(config.begin(), config.end(), "  min_lr: 0.03"), config.end());
  EXPECT_NE(std::find(config.begin(), config.end(), "  patience: 1"), config.end());
  const auto a = lines(full_dir + "/metrics.csv");
  ASSERT_EQ(a.size(), 17u);  // the header, 8 steps' and 8 validations' rows
  EXPECT_EQ(a, lines(part_dir + "/metrics.csv"))
      << "resumed metrics must equal the uninterrupted run's";

  const Result again = run("resume " + full_dir);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_EQ(lines(full_dir + "/metrics.csv"), a);
}

// scheduler.min_lr is also cosine's final lr, which no checkpoint holds: on a cosine run's resume
// a --set of it takes effect (the curve from the resumed step on ends at it), without a warning.
TEST_F(FabricTrain, MinLrSetOnACosineResumeTakesEffect) {
  const std::string cfg = write_contract(", checkpoint_every: 3");
  const std::string part_dir = (dir_ / "part").string();
  ASSERT_EQ(run("fit " + cfg +
                " --set trainer.max_steps=6 scheduler.name=cosine trainer.run_dir=" + part_dir)
                .status,
            0);
  fs::remove_all(part_dir + "/checkpoints/last");
  fs::copy(part_dir + "/checkpoints/step-3", part_dir + "/checkpoints/last",
           fs::copy_options::recursive);
  const Result res = run("resume " + part_dir + " --set scheduler.min_lr=0.05");
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_EQ(res.output.find("warning"), std::string::npos) << res.output;
  const auto config = lines(part_dir + "/config.yaml");
  EXPECT_NE(std::find(config.begin(), config.end(), "  min_lr: 0.05"), config.end());
  // Step 6's lr (the cosine at step 5 of 6) on the curve down to 0.05.
  const std::vector<std::string> lrs = logged(part_dir + "/metrics.csv", "lr");
  ASSERT_EQ(lrs.size(), 6u);
  EXPECT_NEAR(std::stod(lrs[5]), 0.05 + 0.05 * 0.5 * (1 + std::cos(std::numbers::pi * 5 / 6)),
              1e-12);
}

// A checkpoint of another scheduler holds no plateau state: the resume starts ReduceLROnPlateau
// with no history, from the restored lr (it was refused, exit 2, before resuming under another
// scheduler.name took effect), and the run goes on.
TEST_F(FabricTrain, PlateauResumeOfAnotherSchedulersRunStartsItAfresh) {
  const std::string cfg = write_contract();
  ASSERT_EQ(
      run("fit " + cfg + " --set data.val_fraction=0.25 trainer.val_every=1 trainer.max_steps=2")
          .status,
      0);
  const std::string run_dir = (dir_ / "run").string();
  const Result r = run("resume " + run_dir + " --set scheduler.name=plateau trainer.max_steps=4");
  EXPECT_EQ(r.status, 0) << r.output;
  const std::vector<std::string> lrs = logged(run_dir + "/metrics.csv", "lr");
  ASSERT_EQ(lrs.size(), 4u);
  EXPECT_EQ(lrs[2], lrs[1]);  // no history yet: no reduction at the first validations
}

}  // namespace
}  // namespace fabric
