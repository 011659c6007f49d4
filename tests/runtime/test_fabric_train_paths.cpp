// fabric-train's relative paths, end to end: a config's data file found beside the config is
// recorded absolute in the run directory, so `resume` started from another directory trains on
// the same file.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using train_test::fresh_test_dir;
using train_test::Result;
using train_test::run;
using train_test::slurp;


TEST(FabricTrainPaths, ResumeFromAnotherDirectoryReadsTheFilesTheFitRead) {
  if (std::string(FABRIC_TRAIN_EXE).empty()) GTEST_SKIP() << "fabric-train was not built";
  const fs::path dir = fresh_test_dir("fabric_train_paths");
  fs::create_directories(dir / "configs");
  fs::create_directories(dir / "elsewhere");
  Generator gen(3);
  save_safetensors((dir / "configs/cls.safetensors").string(),
                   {{"inputs", randn({64, 8}, {}, &gen)},
                    {"targets", randint(0, 3, {64}, {.dtype = DType::int64}, &gen)}});
  // A decoy of the same name where the resume starts: a relative path would pick it up.
  save_safetensors((dir / "elsewhere/cls.safetensors").string(),
                   {{"inputs", randn({64, 5}, {}, &gen)},
                    {"targets", randint(0, 3, {64}, {.dtype = DType::int64}, &gen)}});
  std::ofstream(dir / "configs/cfg.yaml") << "model:     {name: mlp, sizes: [8, 16, 3]}\n"
                                             "data:      {kind: tensors, path: cls.safetensors}\n"
                                             "trainer:   {max_steps: 2, batch_size: 16, run_dir: run}\n";
  // Started from `dir` with a relative config path: the data is found beside the config, the run
  // directory lands in `dir` (relative to where fabric-train started).
  const Result fit = run("fit configs/cfg.yaml", "cd '" + dir.string() + "' &&");
  ASSERT_EQ(fit.status, 0) << fit.output;
  const std::string config = slurp(dir / "run/config.yaml");
  EXPECT_NE(config.find((dir / "configs/cls.safetensors").string()), std::string::npos) << config;

  const Result resumed = run("resume ../run --set trainer.max_steps=4", "cd '" + (dir / "elsewhere").string() + "' &&");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  const std::string metrics = slurp(dir / "run/metrics.csv");
  EXPECT_NE(metrics.find("\n"), std::string::npos);
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 5) << metrics;  // header + steps 1..4
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fabric
