// fabric-train's trainer.sync_batchnorm (Lightning Trainer's sync_batchnorm) on the CNN with
// BatchNorm2d: over two DDP processes the BatchNorm layers normalise with the statistics of the
// global batch, so the run trains what one process trains on that batch, running statistics
// included; on one process the key changes nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// n IDX images of 28x28 (MNIST's format) and their labels, as test_fabric_train_models writes.
void write_images(const fs::path& dir, int n) {
  auto be32 = [](std::ofstream& f, uint32_t v) {
    const unsigned char b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    f.write(reinterpret_cast<const char*>(b), 4);
  };
  std::ofstream img(dir / "train-images-idx3-ubyte", std::ios::binary);
  std::ofstream lab(dir / "train-labels-idx1-ubyte", std::ios::binary);
  be32(img, 0x803), be32(img, uint32_t(n)), be32(img, 28), be32(img, 28);
  be32(lab, 0x801), be32(lab, uint32_t(n));
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 28 * 28; ++p) img.put(char((i * 37 + p * 13 + (p * i) % 91) % 256));
    lab.put(char(i % 10));
  }
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return amax(abs(sub(a.to(DType::float64), b.to(DType::float64)))).item<double>();
}

// 16 images in `dir` and dir/cnn.yaml training a small CNN with BatchNorm2d on them; `data` and
// `trainer` are the extra entries of those sections. Returns the config's path.
std::string write_cnn_config(const fs::path& dir, const std::string& data,
                             const std::string& trainer) {
  write_images(dir, 16);
  const std::string cfg = (dir / "cnn.yaml").string();
  std::ofstream(cfg) << "model: {name: cnn, batch_norm: true, channels1: 4, channels2: 8}\n"
                        "data: {kind: images, "
                     << data << "path: " << (dir / "train-images-idx3-ubyte").string()
                     << "}\n"
                        "optimizer: {name: sgd, lr: 0.05}\n"
                        "trainer: {"
                     << trainer << "}\n";
  return cfg;
}

TEST_F(FabricTrain, SyncBatchnormOverTwoProcessesTrainsWhatOneProcessTrains) {
  const std::string cfg = write_cnn_config(dir_, "shuffle: true, ", "max_steps: 3");
  auto fit = [&](const std::string& name, const std::string& sets) {
    const Result r = run("fit " + cfg + " --set trainer.run_dir=" + (dir_ / name).string() + sets);
    EXPECT_EQ(r.status, 0) << r.output;
    return load_safetensors((dir_ / name / "checkpoints/last/model.safetensors").string()).tensors;
  };
  const std::string two = " fabric.devices=2 fabric.strategy=ddp trainer.batch_size=8";
  const auto one = fit("one", " trainer.batch_size=16");
  const auto one_sync = fit("one_sync", " trainer.batch_size=16 trainer.sync_batchnorm=true");
  const auto synced = fit("synced", two + " trainer.sync_batchnorm=true");
  const auto local = fit("local", two);
  ASSERT_FALSE(one.empty());
  ASSERT_EQ(synced.size(), one.size());
  double local_stats_diff = 0;
  for (const auto& [key, t] : one) {
    SCOPED_TRACE(key);
    EXPECT_EQ(one_sync.at(key).to_vector<double>(), t.to_vector<double>()) << "one process: no-op";
    const double scale = std::max(1.0, amax(abs(t.to(DType::float64))).item<double>());
    EXPECT_LE(max_abs_diff(synced.at(key), t), 1e-5 * scale);
    if (key.find("running") != std::string::npos)
      local_stats_diff = std::max(local_stats_diff, max_abs_diff(local.at(key), t) / scale);
  }
  EXPECT_EQ(synced.at("features.5.num_batches_tracked").item<int64_t>(), 3);
  // Without the key each rank normalises with its own half batch: other statistics.
  EXPECT_GT(local_stats_diff, 1e-3);
}

// Under FSDP an auto_wrap_policy may name the batch norms as BatchNorm2d or as SyncBatchNorm, on
// one process (no conversion) and on two (converted) alike: each form stands for the other (one of
// them was refused, depending on the number of processes).
TEST_F(FabricTrain, SyncBatchnormFsdpPolicyNamesEitherFormOnAnyNumberOfProcesses) {
  const std::string cfg =
      write_cnn_config(dir_, "", "max_steps: 1, batch_size: 8, sync_batchnorm: true");
  for (const char* policy : {"BatchNorm2d", "SyncBatchNorm"}) {
    for (const char* devices : {"1", "2"}) {
      const std::string name = std::string(policy) + "-" + devices;
      const Result r =
          run("fit " + cfg + " --set fabric.strategy=fsdp fabric.devices=" + devices +
              " fsdp.auto_wrap_policy=[" + policy + "] trainer.run_dir=" + (dir_ / name).string());
      EXPECT_EQ(r.status, 0) << name << "\n" << r.output;
    }
  }
}

}  // namespace
}  // namespace fabric
