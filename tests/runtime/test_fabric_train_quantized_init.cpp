// fabric-train with the weights of a quantized (bitsandbytes) or FP8 (transformer-engine) run:
// model.init of such a run's export starts a new run under the same precision (the file loads into
// the converted layers, which read their own statistics), a file saved under another precision is
// refused naming the precision it was saved under, and a resume under a precision whose weight
// layout is not the checkpoint's says that the precision is the cause.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/ops.h"
#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

class FabricTrainQuantizedInit : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_quantized_init");
    if (IsSkipped()) return;
    cfg_ = write_tiny_gpt_config("unused");
  }

  // A 2-step run under `sets` into dir_/<name>, exported to dir_/<name>.safetensors.
  fs::path exported_run(const std::string& sets, const std::string& name) {
    const Result r = fit(sets, name);
    EXPECT_EQ(r.status, 0) << sets << "\n" << r.output;
    const fs::path out = dir_ / (name + ".safetensors");
    const Result e =
        run("export " + (dir_ / name / "checkpoints/last").string() + " " + out.string());
    EXPECT_EQ(e.status, 0) << e.output;
    return out;
  }
};

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), size_t(ca.nbytes())) == 0;
}

// Each precision's export starts a new run of the same precision: with no step trained, the new
// run's checkpoint holds the file's tensors as they are (packed 4-bit weights and statistics,
// int8 weights and scales, FP8 layers' scales; LoRA adapters over a quantized base). Before, the
// file loaded into the unconverted model: a "tied tensor" error for bitsandbytes' files, unexpected
// `_extra_state` keys for transformer-engine's.
TEST_F(FabricTrainQuantizedInit, AnExportStartsANewRunOfItsPrecision) {
  const std::vector<std::string> cases = {"fabric.precision=nf4", "fabric.precision=int8",
                                          "fabric.precision=transformer-engine",
                                          "fabric.precision=nf4-dq lora.rank=4"};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string name = "r" + std::to_string(i);
    const fs::path init = exported_run(cases[i], name);
    const Result r =
        fit(cases[i] + " trainer.max_steps=0 model.init=" + init.string(), name + "-from-init");
    EXPECT_EQ(r.status, 0) << cases[i] << "\n" << r.output;
    if (r.status != 0) continue;
    const SafetensorsFile want = load_safetensors(init.string());
    const SafetensorsFile got = load_safetensors(
        (dir_ / (name + "-from-init") / "checkpoints/last/model.safetensors").string());
    ASSERT_EQ(got.tensors.size(), want.tensors.size()) << cases[i];
    for (const auto& [key, t] : want.tensors) {
      // FP8 layers record the amax of the forward that checks the model against the data before
      // the run: their history moves, their scales and weights do not.
      if (key.find("_extra_state.amax_history") != std::string::npos) continue;
      auto it = got.tensors.find(key);
      ASSERT_NE(it, got.tensors.end()) << cases[i] << ": " << key;
      EXPECT_TRUE(same_bytes(it->second, t)) << cases[i] << ": " << key;
    }
  }
}

// A float file still loads before the precision plugin converts the model, which quantizes it.
TEST_F(FabricTrainQuantizedInit, AFloatFileIsQuantizedAsItLoads) {
  const fs::path init = exported_run("fabric.precision=32-true", "float");
  for (const char* precision : {"nf4", "int8", "transformer-engine"}) {
    const Result r = fit(std::string("fabric.precision=") + precision +
                             " trainer.max_steps=1 model.init=" + init.string(),
                         std::string("from-float-") + precision);
    EXPECT_EQ(r.status, 0) << precision << "\n" << r.output;
  }
}

// A quantized or FP8 file under another precision is a config error naming the precision the file
// was saved under and the --set that loads it (before: the misleading tied-tensor message, or the
// unexpected keys alone).
TEST_F(FabricTrainQuantizedInit, AFileOfAnotherPrecisionNamesItsPrecision) {
  struct Case {
    std::string saved, used;
  };
  const std::vector<Case> cases = {{"nf4", "32-true"},
                                   {"nf4", "fp4"},
                                   {"nf4", "nf4-dq"},
                                   {"int8", "int8-training"},
                                   {"transformer-engine", "bf16-mixed"}};
  for (const Case& c : cases) {
    const fs::path init = exported_run("fabric.precision=" + c.saved, "saved-" + c.saved);
    const Result r = fit("fabric.precision=" + c.used + " model.init=" + init.string(),
                         "used-" + c.saved + "-" + c.used);
    EXPECT_EQ(r.status, 2) << c.saved << " -> " << c.used << "\n" << r.output;
    for (const std::string& m :
         {"config error: model.init: " + init.string() + " was saved under fabric.precision " +
              c.saved + ", whose weight layout a model under fabric.precision " + c.used +
              " cannot load",
          "fit with --set fabric.precision=" + c.saved + " "})
      EXPECT_NE(r.output.find(m), std::string::npos)
          << c.saved << " -> " << c.used << ": " << m << "\n"
          << r.output;
  }
}

// A LoRA file into a model without adapters says which lora.rank loads it.
TEST_F(FabricTrainQuantizedInit, AFileWithAdaptersNamesTheirRank) {
  const fs::path init = exported_run("fabric.precision=nf4 lora.rank=4", "lora");
  const Result r = fit("fabric.precision=nf4 model.init=" + init.string(), "no-lora");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("the file holds LoRA adapters of rank 4: fit with --set lora.rank=4"),
            std::string::npos)
      << r.output;
}

// `resume --set fabric.precision=` of a precision whose weight layout is not the run's blames the
// precision and says what can be done, instead of "no --set changed model.*: ... damaged?".
TEST_F(FabricTrainQuantizedInit, AResumeUnderAnotherWeightLayoutBlamesThePrecision) {
  struct Case {
    std::string trained, resumed;
  };
  for (const Case& c : std::vector<Case>{{"nf4", "fp4"}, {"transformer-engine", "bf16-mixed"}}) {
    const std::string name = "run-" + c.trained;
    const Result f = fit("fabric.precision=" + c.trained, name);
    ASSERT_EQ(f.status, 0) << f.output;
    const std::string run_dir = (dir_ / name).string();
    const Result r =
        run("resume " + run_dir + " --set fabric.precision=" + c.resumed + " trainer.max_steps=3");
    EXPECT_EQ(r.status, 2) << r.output;
    for (const std::string& m :
         {"fabric.precision " + c.resumed + " is not the run's " + c.trained,
          "the checkpoint's weights are stored in " + c.trained + "'s layout",
          "resume with fabric.precision " + c.trained,
          "fabric-train fit " + run_dir + "/config.yaml --set model.init=" + run_dir +
              "/checkpoints/last/model.safetensors"})
      EXPECT_NE(r.output.find(m), std::string::npos) << m << "\n" << r.output;
    EXPECT_EQ(r.output.find("no --set changed"), std::string::npos) << r.output;
    // The run is as it was: a resume under its own precision continues it.
    const Result again = run("resume " + run_dir + " --set trainer.max_steps=3");
    EXPECT_EQ(again.status, 0) << again.output;
  }
}

}  // namespace
}  // namespace fabric
