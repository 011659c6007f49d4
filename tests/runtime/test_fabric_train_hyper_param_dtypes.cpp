// fabric-train resume of a checkpoint whose optimizer.safetensors holds a hyper-parameter in
// another dtype: another tool's F32 lr resumes as that number; a float64 lr whose header dtype was
// edited to I64 (its bytes kept: 0.01 read as the integer 4576918229304087675) is a damaged file,
// exit 1 with the optimizer, the key, the stored dtype and what was expected, instead of training
// with lr 4.6e18.
#include <gtest/gtest.h>

#include <bit>
#include <filesystem>
#include <string>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace train_test;

class FabricTrainHyperParamDtypes : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_hyper_dtypes");
    if (IsSkipped()) return;
    const Result fit = run("fit " + write_tiny_gpt_config("run"));
    ASSERT_EQ(fit.status, 0) << fit.output;
  }
  fs::path optimizer_file() const { return dir_ / "run/checkpoints/last/optimizer.safetensors"; }
  // Rewrites the lr (AdamW's, 0.01 as saved) as `stored`, the rest of the file as it was.
  void rewrite_lr(const Tensor& stored) {
    SafetensorsFile f = load_safetensors(optimizer_file().string());
    ASSERT_EQ(f.tensors.at("param_groups.0.lr").item<double>(), 0.01);
    f.tensors["param_groups.0.lr"] = stored;
    save_safetensors(optimizer_file().string(), {f.tensors.begin(), f.tensors.end()}, f.metadata);
  }
  Result resume() {
    return run("resume " + (dir_ / "run").string() + " --set trainer.max_steps=3");
  }
};

TEST_F(FabricTrainHyperParamDtypes, Float64LrEditedToInt64ExitsOne) {
  const int64_t bits = std::bit_cast<int64_t>(0.01);
  rewrite_lr(from_vector<int64_t>({bits}, {1}).reshape({}));
  const std::string metrics = slurp(dir_ / "run/metrics.csv");
  const Result r = resume();
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(
      r.output.find(
          "fabric-train: error: AdamW: hyper-parameter 'lr' holds " + std::to_string(bits) +
          " (stored as I64 under 'param_groups.0.lr'), an integer a float64 cannot hold exactly "
          "(expected a number: a float, or an integer within +-2^53"),
      std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("lr 4.58e+18"), std::string::npos) << r.output;
  EXPECT_EQ(slurp(dir_ / "run/metrics.csv"), metrics);
}

TEST_F(FabricTrainHyperParamDtypes, Float32LrResumesAsItsValue) {
  rewrite_lr(scalar_tensor(0.25, {.dtype = DType::float32}));
  const Result r = resume();
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 3/3  epoch 0  loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  lr 0.25  "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace fabric
