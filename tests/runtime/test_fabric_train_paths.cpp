// fabric-train's relative paths, end to end: a config's data file found beside the config is
// recorded absolute in the run directory, so `resume` started from another directory trains on
// the same file.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tensor/random.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace train_test;

class FabricTrainPaths : public train_test::RunDirTest {
 protected:
  void SetUp() override { start("fabric_train_paths"); }
};

TEST_F(FabricTrainPaths, ResumeFromAnotherDirectoryReadsTheFilesTheFitRead) {
  fs::create_directories(dir_ / "configs");
  fs::create_directories(dir_ / "elsewhere");
  Generator gen(3);
  save_classification_data(dir_ / "configs/cls.safetensors", 64, 8, 3, gen);
  // A decoy of the same name where the resume starts: a relative path would pick it up.
  save_classification_data(dir_ / "elsewhere/cls.safetensors", 64, 5, 3, gen);
  std::ofstream(dir_ / "configs/cfg.yaml") << "model:     {name: mlp, sizes: [8, 16, 3]}\n"
                                             "data:      {kind: tensors, path: cls.safetensors}\n"
                                             "trainer:   {max_steps: 2, batch_size: 16, run_dir: run}\n";
  // Started from `dir_` with a relative config path: the data is found beside the config, the run
  // directory lands in `dir_` (relative to where fabric-train started).
  const Result fit = run("fit configs/cfg.yaml", "cd '" + dir_.string() + "' &&");
  ASSERT_EQ(fit.status, 0) << fit.output;
  const std::string config = slurp(dir_ / "run/config.yaml");
  EXPECT_NE(config.find((dir_ / "configs/cls.safetensors").string()), std::string::npos) << config;

  const Result resumed = run("resume ../run --set trainer.max_steps=4", "cd '" + (dir_ / "elsewhere").string() + "' &&");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  const std::string metrics = slurp(dir_ / "run/metrics.csv");
  EXPECT_NE(metrics.find("\n"), std::string::npos);
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 5) << metrics;  // header + steps 1..4
}

}  // namespace
}  // namespace fabric
