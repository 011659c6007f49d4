// FP8 (transformer-engine) under DDP resumes exactly right after a validation step. Validation runs
// without grad, so its amaxes wait in row 0 of each rank's history for the next update's MAX
// reduction; the checkpoint (rank 0's) held only rank 0's, so the resumed run's next scales
// differed from the uninterrupted run's. Fabric::save now reduces them first.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_metrics.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
using namespace train_test;

class FabricTrainFp8Resume : public RunDirTest {};

TEST_F(FabricTrainFp8Resume, DDPResumedAfterAValidationStepEqualsTheUninterruptedRun) {
  start("fabric_train_fp8_resume");
  if (IsSkipped()) return;
  // Varied words (an LCG's picks): the repeated sentence of the tiny config leaves validation's
  // amaxes below training's, where the missing rank's amax changes nothing.
  const std::vector<std::string> words = {
      "the",    "cat",   "sat",         "on",        "a",      "mat",
      "while",  "Emma",  "Woodhouse",   "handsome",  "clever", "and",
      "rich",   "with",  "comfortable", "home",      "happy",  "disposition",
      "seemed", "unite", "best",        "blessings", "of",     "existence"};
  std::ostringstream text;
  uint64_t x = 12345;
  for (int i = 0; i < 600; ++i) {
    x = (x * 1103515245u + 12345u) % (uint64_t(1) << 31);
    text << (i ? " " : "") << words[x % words.size()];
  }
  const std::string cfg = write_tiny_gpt_config("unused");
  std::ofstream(dir_ / "t.txt") << text.str();
  const std::string sets =
      " --set fabric.devices=2 fabric.strategy=ddp fabric.precision=transformer-engine "
      "model.block_size=16 "
      "optimizer.lr=0.05 data.val_fraction=0.2 trainer.val_every=2 trainer.sample_tokens=0 ";
  const std::string whole = (dir_ / "whole").string(), part = (dir_ / "part").string();
  const Result a = run("fit " + cfg + sets + "trainer.max_steps=6 trainer.run_dir=" + whole);
  ASSERT_EQ(a.status, 0) << a.output;
  const Result b = run("fit " + cfg + sets + "trainer.max_steps=2 trainer.run_dir=" + part);
  ASSERT_EQ(b.status, 0) << b.output;
  const Result resumed = run("resume " + part + " --set trainer.max_steps=6");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  const auto uninterrupted = lines(whole + "/metrics.csv");
  ASSERT_EQ(uninterrupted.size(), 10u);  // header, 6 train rows, 3 validation rows
  EXPECT_EQ(lines(part + "/metrics.csv"), uninterrupted);
}

// Before the first step fabric-train runs one example through the model to check it fits the
// data. Under FP8 that forward recorded its amaxes in row 0 of every history, where they joined
// the first step's scale update (Transformer Engine runs no such forward): after max_steps=0 every
// history is still zero and every scale one.
TEST_F(FabricTrainFp8Resume, TheFitCheckLeavesTheFp8MetasAlone) {
  start("fabric_train_fp8_fit_check");
  if (IsSkipped()) return;
  const std::string cfg = write_tiny_gpt_config("run");
  const Result r = run("fit " + cfg +
                       " --set fabric.precision=transformer-engine trainer.max_steps=0 "
                       "trainer.sample_tokens=0");
  ASSERT_EQ(r.status, 0) << r.output;
  const SafetensorsFile m =
      load_safetensors((dir_ / "run/checkpoints/last/model.safetensors").string());
  int histories = 0;
  for (const auto& [key, t] : m.tensors) {
    const bool history = key.ends_with("amax_history_fwd") || key.ends_with("amax_history_bwd");
    const bool scale = key.ends_with("scale_fwd") || key.ends_with("scale_bwd");
    if (!history && !scale) continue;
    histories += history;
    for (float v : t.to(DType::float32).to_vector<float>())
      EXPECT_EQ(v, history ? 0.0f : 1.0f) << key;
  }
  EXPECT_GT(histories, 0) << "no FP8 layer in the checkpoint";
}

}  // namespace
}  // namespace fabric
