// A resume that names another scheduler: the checkpoint holds no state the new one takes
// (constant: none; plateau: its own kind), which failed with exit 1 ("key 'scheduler.last_epoch'
// is missing"). The new schedule now takes effect from the resumed step as if it had run from the
// first: its lrs there are those of a run that used it throughout. Switching from plateau, its
// own keys (mode) are the new scheduler's to check, not the checkpoint's.
#include <gtest/gtest.h>

#include <string>

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
using namespace train_test;

TEST_F(FabricTrain, ResumeUnderAnotherSchedulerFollowsItsCurveFromTheResumedStep) {
  const std::string cfg = write_contract();
  const std::string sets =
      " --set optimizer.name=sgd optimizer.lr=0.1 model.sizes=[784,16,10] trainer.batch_size=8 ";
  for (const std::string from : {"constant", "step", "plateau"}) {
    SCOPED_TRACE(from);
    const std::string part = (dir_ / ("part_" + from)).string();
    const std::string extra = from == "plateau" ? "trainer.val_every=1 data.val_fraction=0.2 " : "";
    const Result fit = run("fit " + cfg + sets + extra + "scheduler.name=" + from +
                           " trainer.max_steps=2 trainer.run_dir=" + part);
    ASSERT_EQ(fit.status, 0) << fit.output;
    const Result resumed =
        run("resume " + part +
            " --set trainer.max_steps=5 scheduler.name=cosine scheduler.warmup_steps=2");
    ASSERT_EQ(resumed.status, 0) << resumed.output;
    const std::string whole = (dir_ / ("whole_" + from)).string();
    const Result straight =
        run("fit " + cfg + sets + extra +
            "scheduler.name=cosine scheduler.warmup_steps=2 trainer.max_steps=5 trainer.run_dir=" +
            whole);
    ASSERT_EQ(straight.status, 0) << straight.output;
    const auto a = column(part + "/metrics.csv", "lr"), b = column(whole + "/metrics.csv", "lr");
    const auto sa = column(part + "/metrics.csv", "step"),
               sb = column(whole + "/metrics.csv", "step");
    ASSERT_EQ(sa, sb);
    for (size_t row = 0; row < a.size(); ++row)
      if (sa[row] >= "3" && !a[row].empty()) EXPECT_EQ(a[row], b[row]) << "step " << sa[row];
  }
}

TEST_F(FabricTrain, ResumeFromPlateauToCyclicTakesTheGivenMode) {
  const std::string cfg = write_contract();
  const std::string part = (dir_ / "part").string();
  const Result fit = run("fit " + cfg +
                         " --set scheduler.name=plateau trainer.val_every=1 data.val_fraction=0.2 "
                         "trainer.max_steps=2 trainer.run_dir=" +
                         part);
  ASSERT_EQ(fit.status, 0) << fit.output;
  const Result resumed =
      run("resume " + part +
          " --set trainer.max_steps=4 scheduler.name=cyclic scheduler.max_lr=0.2 "
          "scheduler.mode=triangular");
  EXPECT_EQ(resumed.status, 0) << resumed.output;
}

// To plateau from another scheduler: the checkpoint holds no plateau state, so plateau's arguments
// are the --set values (they were dropped as "restored", and a cyclic run's mode could not be
// given: "'triangular' is not a mode of plateau").
TEST_F(FabricTrain, ResumeToPlateauTakesTheGivenArguments) {
  const std::string cfg = write_contract();
  const std::string part = (dir_ / "cyc").string();
  const Result fit = run("fit " + cfg +
                         " --set scheduler.name=cyclic scheduler.max_lr=0.2 trainer.val_every=1 "
                         "data.val_fraction=0.2 trainer.max_steps=2 trainer.run_dir=" +
                         part);
  ASSERT_EQ(fit.status, 0) << fit.output;
  const Result resumed = run("resume " + part +
                             " --set trainer.max_steps=4 scheduler.name=plateau scheduler.mode=min "
                             "scheduler.factor=0.5 scheduler.patience=0");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(resumed.output.find("restored from the checkpoint"), std::string::npos)
      << resumed.output;
  const std::string config = slurp(part + "/config.yaml");
  EXPECT_NE(config.find("  factor: 0.5\n"), std::string::npos) << config;
  EXPECT_NE(config.find("  patience: 0\n"), std::string::npos) << config;
}

}  // namespace
}  // namespace fabric
