// fabric-train's errors for a fabric section Fabric cannot run name the keys the refusal is about:
// a strategy that runs on one device given two, a strategy this build lacks, devices x num_nodes
// unlike a launcher's WORLD_SIZE or a NODE_RANK past num_nodes — not fabric.precision, which has
// nothing to do with them (a precision the strategy refuses still names both: quantized tests).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

class FabricTrainFabricSectionErrors : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_fabric_section_errors");
    if (IsSkipped()) return;
    Generator gen(3);
    save_classification_data(dir_ / "data.safetensors", 8, 4, 3, gen);
    cfg_ = (dir_ / "mlp.yaml").string();
    std::ofstream(cfg_) << "model: {name: mlp, sizes: [4, 3]}\n"
                           "data: {kind: tensors, path: "
                        << (dir_ / "data.safetensors").string()
                        << "}\n"
                           "trainer: {max_steps: 1, batch_size: 4}\n";
  }
};

TEST_F(FabricTrainFabricSectionErrors, NameTheKeysTheRefusalIsAbout) {
  struct Case {
    std::string env, sets, keys, message;
  };
  // The launcher variables are cleared (a test run under torchrun must not change the cases) and
  // set where a case needs them; none of these starts a process group.
  const std::string clean =
      "env -u WORLD_SIZE -u RANK -u LOCAL_RANK -u NODE_RANK -u GROUP_RANK -u TORCHELASTIC_RUN_ID "
      "-u OMPI_COMM_WORLD_SIZE -u SLURM_NTASKS";
  const std::vector<Case> cases = {
      {"", "fabric.strategy=single_device fabric.devices=2",
       "fabric.strategy 'single_device' with fabric.devices 2: ",
       "strategy='single_device' runs on one device, but 2 devices"},
      {"", "fabric.strategy=xla",
       "fabric.strategy 'xla': ", "strategy 'xla' is not available in this build yet"},
      // An accelerator this runtime never has is refused at load, at the key (as validate does).
      {"", "fabric.accelerator=tpu", "--set fabric.accelerator: ",
       "`accelerator='tpu'` is not available: this runtime supports 'cpu' and 'cuda'"},
      {"WORLD_SIZE=2 RANK=0 LOCAL_RANK=0", "fabric.strategy=ddp fabric.devices=3",
       "fabric.devices 3 with fabric.num_nodes 1: ",
       "torchrun-style environment: WORLD_SIZE=2 but devices (3) x num_nodes (1) = 3"},
      // A one-device run under a launcher of two processes: each would train alone.
      {"WORLD_SIZE=2 RANK=0 LOCAL_RANK=0", "fabric.devices=1",
       "fabric.devices 1 with fabric.num_nodes 1: ",
       "torchrun-style environment: WORLD_SIZE=2 but devices (1) x num_nodes (1) = 1"},
      {"NODE_RANK=1", "fabric.devices=2",
       "fabric.num_nodes 1: ", "NODE_RANK/GROUP_RANK=1 is not below num_nodes=1"},
      // A precision the strategy refuses: both keys, as before.
      {"", "fabric.strategy=fsdp fabric.precision=64-true",
       "fabric.precision '64-true' with fabric.strategy 'fsdp': ",
       "precision='64-true' is not supported with strategy='fsdp'"},
  };
  for (const Case& c : cases) {
    const fs::path run_dir = dir_ / "run";
    const std::string sets = " --set " + c.sets + " trainer.run_dir=" + run_dir.string();
    const Result r = run("fit " + cfg_ + sets, clean + " " + c.env + " timeout 60");
    EXPECT_EQ(r.status, 2) << c.sets << "\n" << r.output;
    EXPECT_NE(r.output.find("config error: " + c.keys + c.message), std::string::npos)
        << c.sets << "\n"
        << r.output;
    EXPECT_FALSE(fs::exists(run_dir)) << c.sets;
  }
}

}  // namespace
}  // namespace fabric
