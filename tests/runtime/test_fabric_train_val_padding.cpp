// val_loss is the mean over the validation examples for any number of processes, also when the
// processes do not divide the examples: DistributedSampler pads the ranks' shares by repeating
// examples, and those repeats must not count twice.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/runtime/fabric_train_metrics.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

class FabricTrainValPadding : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_val_padding");
    if (IsSkipped()) return;
    Generator gen(11);
    // 13 examples, val_fraction 0.4: 5 validation examples, which 2 and 3 processes share unevenly.
    save_classification_data(dir_ / "data.safetensors", 13, 4, 3, gen);
    cfg_ = (dir_ / "mlp.yaml").string();
    std::ofstream(cfg_) << "model: {name: mlp, sizes: [4, 5, 3]}\n"
                           "data: {kind: tensors, path: "
                        << (dir_ / "data.safetensors").string()
                        << ", val_fraction: 0.4}\n"
                           "optimizer: {name: sgd, lr: 0.0}\n"
                           "trainer: {max_steps: 1, val_every: 1, val_batches: 4, seed: 2}\n";
  }
  // The val_loss of a one-step run (lr 0: the initial weights) on `devices` processes with
  // `batch_size` per process.
  double val_loss(int devices, int batch_size) {
    const fs::path run_dir = dir_ / ("run" + std::to_string(devices));
    const Result r = run("fit " + cfg_ + " --set fabric.devices=" + std::to_string(devices) +
                             " trainer.batch_size=" + std::to_string(batch_size) +
                             " trainer.run_dir=" + run_dir.string(),
                         "timeout 60");
    EXPECT_EQ(r.status, 0) << r.output;
    const auto v = column(run_dir / "metrics.csv", "val_loss");
    for (const auto& cell : v)
      if (!cell.empty()) return std::stod(cell);
    ADD_FAILURE() << "no val_loss in " << (run_dir / "metrics.csv") << "\n" << r.output;
    return std::nan("");
  }
};

TEST_F(FabricTrainValPadding, RepeatedExamplesOfTheSamplerCountOnce) {
  const double one = val_loss(1, 2);
  EXPECT_NEAR(val_loss(2, 1), one, 1e-6 * std::abs(one));  // rank 1 repeats example 0
  EXPECT_NEAR(val_loss(3, 1), one, 1e-6 * std::abs(one));  // rank 2 repeats example 0
}

}  // namespace
}  // namespace fabric
