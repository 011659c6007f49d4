// The FabricTrain fixture: the contract config (an MLP on 64 examples of 784 features)
// on files of the test's own. Its tests are spread over several test_fabric_train*.cpp files, so
// the class is defined once here, outside an anonymous namespace: GoogleTest refuses one test suite
// whose tests use fixture classes of different types.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tensor/random.h"

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric::train_test {

class FabricTrain : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train");
    if (IsSkipped()) return;
    // 64 examples of 784 features, 10 classes (the contract's MLP shape).
    Generator gen(5);
    save_classification_data(dir_ / "data.safetensors", 64, 784, 10, gen);
  }

  // The contract config, pointing at this test's files.
  std::string write_contract(const std::string& extra_trainer = "") {
    const std::string cfg = (dir_ / "config.yaml").string();
    std::ofstream(cfg) << "fabric:    {accelerator: cpu, strategy: auto, devices: 1, num_nodes: 1, precision: 32-true}\n"
                          "model:     {name: mlp, sizes: [784, 256, 10], activation: relu}\n"
                          "data:      {kind: tensors, path: " << (dir_ / "data.safetensors").string()
                       << ", shuffle: false, val_fraction: 0.0}\n"
                          "loss:      cross_entropy\n"
                          "optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0}\n"
                          "scheduler: {name: constant}\n"
                          "trainer:   {max_steps: 5, batch_size: 32, accumulate_grad_batches: 1, seed: 0,\n"
                          "            checkpoint_every: 0, log_every: 1, run_dir: " << (dir_ / "run").string()
                       << extra_trainer << "}\n";
    return cfg;
  }
};

}  // namespace fabric::train_test
