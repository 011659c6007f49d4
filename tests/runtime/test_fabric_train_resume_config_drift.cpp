// A resume whose config.yaml differs from the config its checkpoint was saved with says so, key by
// key: a hand-edited config.yaml, or a fit into the run directory that died before its first save
// (its config.yaml beside the earlier run's checkpoint), went on silently. A plain resume says
// nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
using namespace train_test;

class FabricTrainResumeConfigDrift : public RunDirTest {};

TEST_F(FabricTrainResumeConfigDrift, ADifferingConfigYamlIsNamedKeyByKey) {
  start("fabric_train_resume_drift");
  if (IsSkipped()) return;
  const std::string cfg = write_tiny_gpt_config("run");
  const std::string run_dir = (dir_ / "run").string(), other = (dir_ / "other").string();
  ASSERT_EQ(run("fit " + cfg + " --set trainer.max_steps=2").status, 0);
  const Result plain = run("resume " + run_dir + " --set trainer.max_steps=3");
  ASSERT_EQ(plain.status, 0) << plain.output;
  EXPECT_EQ(plain.output.find("differs from the config"), std::string::npos) << plain.output;

  // A second fit with another lr and batch size "died before its first save": its config.yaml
  // lies beside the first run's checkpoint.
  const Result second = run(
      "fit " + cfg +
      " --set trainer.max_steps=2 optimizer.lr=0.5 trainer.batch_size=2 trainer.run_dir=" + other);
  ASSERT_EQ(second.status, 0) << second.output;
  std::filesystem::copy_file(other + "/config.yaml", run_dir + "/config.yaml",
                             std::filesystem::copy_options::overwrite_existing);
  const Result drifted = run("resume " + run_dir + " --set trainer.max_steps=4");
  ASSERT_EQ(drifted.status, 0) << drifted.output;
  EXPECT_NE(
      drifted.output.find("fabric-train: warning: resume: " + run_dir +
                          "/config.yaml differs from the config " + run_dir +
                          "/checkpoints/last was saved with: optimizer.lr (config.yaml: 0.5, "
                          "checkpoint: 0.01), trainer.batch_size (config.yaml: 2, checkpoint: 4)"),
      std::string::npos)
      << drifted.output;
}

}  // namespace
}  // namespace fabric
