// fabric-train end to end, through the binary, on the contract config: the run directory it
// writes (config, checkpoints, metrics.csv, export), overrides and max_steps 0, the step and epoch
// limits, and the progress lines and final summary.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

TEST_F(FabricTrain, ContractRunWritesTheRunDirectory) {
  const Result r = run("fit " + write_contract());
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path run_dir = dir_ / "run";
  ASSERT_TRUE(fs::exists(run_dir / "config.yaml"));
  ASSERT_TRUE(fs::exists(run_dir / "checkpoints/last/model.safetensors")) << r.output;
  SafetensorsFile m = load_safetensors((run_dir / "checkpoints/last/model.safetensors").string());
  for (const char* k : {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"})
    EXPECT_TRUE(m.tensors.count(k)) << k;
  EXPECT_EQ(m.tensors.at("layers.0.weight").sizes(), (Shape{256, 784}));
  const auto csv = lines((run_dir / "metrics.csv").string());
  ASSERT_EQ(csv.size(), 6u);  // header + 5 steps
  EXPECT_EQ(csv[0], "lr,step,train_loss");  // Lightning's CSVLogger sorts the keys
  EXPECT_EQ(cell(csv, 5, "step"), "5") << csv[5];
  // The resolved config reads back and validates.
  EXPECT_EQ(run("validate " + (run_dir / "config.yaml").string()).status, 0);
  // Export writes the weights alone.
  const Result e = run("export " + (run_dir / "checkpoints/last").string() + " " + (dir_ / "w.safetensors").string());
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_EQ(load_safetensors((dir_ / "w.safetensors").string()).tensors.size(), 4u);
}

TEST_F(FabricTrain, OverridesAndMaxStepsZero) {
  const Result r = run("fit " + write_contract() + " --set trainer.max_steps=0 model.sizes=[784,10]");
  ASSERT_EQ(r.status, 0) << r.output;
  SafetensorsFile m = load_safetensors((dir_ / "run/checkpoints/last/model.safetensors").string());
  EXPECT_EQ(m.tensors.at("layers.0.weight").sizes(), (Shape{10, 784}));
  EXPECT_EQ(r.output.find("nan"), std::string::npos) << "no step ran: no final loss to report\n" << r.output;
  // metrics.csv exists from the start: its header alone (val_loss too when validation is set up).
  EXPECT_EQ(lines((dir_ / "run/metrics.csv").string()), std::vector<std::string>{"lr,step,train_loss"});
  const Result v = run("fit " + write_contract() + " --set trainer.max_steps=0 data.val_fraction=0.25 trainer.val_every=2");
  ASSERT_EQ(v.status, 0) << v.output;
  EXPECT_EQ(lines((dir_ / "run/metrics.csv").string()), std::vector<std::string>{"lr,step,train_loss,val_loss"});
}

// max_steps and max_epochs together: the run stops at whichever comes first, as Lightning's Trainer.
TEST_F(FabricTrain, MaxStepsAndMaxEpochsStopAtTheFirstLimit) {
  // 64 examples in batches of 32: 2 batches per epoch.
  struct Case {
    std::string sets;
    size_t steps;
  };
  for (const Case& c :
       {Case{"trainer.max_steps=1 trainer.max_epochs=1", 1},
        Case{"trainer.max_steps=5 trainer.max_epochs=1", 2},
        Case{"trainer.max_steps=3 trainer.max_epochs=4", 3},
        Case{"trainer.max_steps=-1 trainer.max_epochs=2", 4},
        Case{"trainer.max_steps=5 trainer.max_epochs=2 trainer.accumulate_grad_batches=2", 2}}) {
    const Result r = run("fit " + write_contract() + " --set " + c.sets);
    ASSERT_EQ(r.status, 0) << c.sets << "\n" << r.output;
    EXPECT_EQ(lines((dir_ / "run/metrics.csv").string()).size(), 1 + c.steps) << c.sets;
    // "1 step", not "1 steps", on the start line as in the summary.
    EXPECT_EQ(r.output.find(" 1 steps"), std::string::npos) << c.sets << "\n" << r.output;
    EXPECT_NE(r.output.find("done: " + std::to_string(c.steps) +
                            (c.steps == 1 ? " step in " : " steps in ")),
              std::string::npos)
        << c.sets << "\n"
        << r.output;
  }
}

// The progress line's epoch is the epoch of the step's batch, and the summary ends with the final
// validation loss.
TEST_F(FabricTrain, ProgressEpochAndFinalSummary) {
  // 48 training examples (val_fraction 0.25 of 64) in batches of 16: 3 batches per epoch.
  const Result r = run("fit " + write_contract() + " --set trainer.batch_size=16 trainer.max_steps=4 data.val_fraction=0.25 "
                       "trainer.val_every=2");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* expected : {"step 1/4  epoch 0 ", "step 3/4  epoch 0 ", "step 4/4  epoch 1 "})
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
  const auto csv = lines((dir_ / "run/metrics.csv").string());
  ASSERT_EQ(csv.back(), ",4,," + cell(csv, csv.size() - 1, "val_loss")) << "the validation row: step and val_loss";
  const std::string val = cell(csv, csv.size() - 1, "val_loss");
  char expected[64];
  std::snprintf(expected, sizeof expected, ", val_loss %.4f, ", std::stod(val));
  EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
  // The last validation before the end is named with its step.
  const Result three = run("fit " + write_contract() + " --set trainer.max_steps=4 data.val_fraction=0.25 trainer.val_every=3");
  ASSERT_EQ(three.status, 0) << three.output;
  EXPECT_NE(three.output.find(" (step 3), peak memory"), std::string::npos) << three.output;
}

}  // namespace
}  // namespace fabric
