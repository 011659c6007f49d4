// fabric-train end to end at the limits an outside-in audit probed: an epoch count whose steps
// overflow int64, a model larger than the machine's memory, and a full disk (a file-size limit)
// while the run directory's config.yaml is rewritten.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

class FabricTrainLimits : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_limits");
    if (IsSkipped()) return;
    cfg_ = write_tiny_gpt_config("run");
  }
};

// max_epochs x steps per epoch wrapped to a negative count: the run stopped before its first step
// and said "done" (exit 0). Past int64 it is a run without an epoch limit; max_steps still ends it.
TEST_F(FabricTrainLimits, EpochsPastInt64StepsDoNotWrapAround) {
  const Result r =
      run("fit " + cfg_ + " --set trainer.max_steps=3 trainer.max_epochs=2305843009213693952",
          "timeout 60");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(", 3 steps"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("done: 3 steps"), std::string::npos) << r.output;
}

// Built one layer at a time, it ran for minutes and died in std::terminate (exit 134) or at the
// OOM killer; now a config error before anything is built or written.
TEST_F(FabricTrainLimits, AModelPastTheMachinesMemoryIsAConfigError) {
  const Result r =
      run("fit " + cfg_ + " --set model.n_layer=100000000", "ulimit -v 8000000; timeout 60");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(
                "fabric-train: config error: model (gpt): at least 3.07e+11 parameters (sized by "
                "model.n_layer, model.n_embd"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

// LoRA adapters whose rank no memory holds: the config's error naming lora.rank (it was the
// allocator's, exit 1, or an int64 overflow of the adapter's shape).
TEST_F(FabricTrainLimits, ALoraRankPastTheMachinesMemoryIsAConfigError) {
  // A dotted target (PEFT's tail rule, as apply_lora reads it) counts as the plain one did: it
  // counted no layer and reached the allocator.
  for (const std::string rank : {"1000000000", "4611686018427387904"}) {
    for (const std::string target : {"", " lora.target=[h.0.attn.c_attn]"}) {
      const Result r =
          run("fit " + cfg_ + " --set lora.rank=" + rank + target, "ulimit -v 8000000; timeout 60");
      EXPECT_EQ(r.status, 2) << r.output;
      EXPECT_NE(
          r.output.find("fabric-train: config error: lora.rank: " + rank + " gives adapters of "),
          std::string::npos)
          << r.output;
      EXPECT_FALSE(fs::exists(dir_ / "run"));
    }
  }
}

// Text batches are batch_size random windows: 2^63-1 of them failed in the loader with "empty: a
// int64 tensor of shape (9223372036854775807,) ... overflows" (exit 1), naming no key.
TEST_F(FabricTrainLimits, ATextBatchPastTheMachinesMemoryIsAConfigError) {
  const Result r = run("fit " + cfg_ + " --set trainer.batch_size=9223372036854775807",
                       "ulimit -v 8000000; timeout 60");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(
                "fabric-train: config error: trainer.batch_size: 9223372036854775807 windows of "
                "model.block_size 8 tokens per process take, as int64 inputs and targets alone, "),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

// Out-of-range launch and sample options: CLI11's checks printed "Value -1 not in range 0.000000 to
// 17976931348623157..." (all 309 digits of DBL_MAX), and a NaN temperature passed them to fail in
// generate (exit 1). Each is a command-line error (exit 2) saying what is expected.
TEST_F(FabricTrainLimits, OutOfRangeOptionsSayWhatIsExpected) {
  ASSERT_EQ(run("fit " + cfg_, "timeout 60").status, 0);
  const std::string last = (dir_ / "run").string();
  const std::pair<std::string, std::string> cases[] = {
      {"sample " + last + " --tokens -1", "--tokens: expected an integer >= 0, got '-1'"},
      {"sample " + last + " --temperature nan",
       "--temperature: expected a finite number >= 0, got 'nan'"},
      {"sample " + last + " --temperature -0.5",
       "--temperature: expected a finite number >= 0, got '-0.5'"},
      {"--num-nodes 0", "--num-nodes: expected an integer >= 1, got '0'"},
      {"--node-rank -3", "--node-rank: expected an integer >= 0, got '-3'"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run(args, "timeout 60");
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("1797693134862315"), std::string::npos) << args << "\n" << r.output;
  }
  const Result ok = run("sample " + last + " --tokens 3 --temperature 0", "timeout 60");
  EXPECT_EQ(ok.status, 0) << ok.output;
}

// A state.json of another version (a newer fabric's layout) was read as version 1 without a word.
TEST_F(FabricTrainLimits, ACheckpointOfAnotherVersionIsRefused) {
  ASSERT_EQ(run("fit " + cfg_, "timeout 60").status, 0);
  const fs::path state = dir_ / "run/checkpoints/last/state.json";
  std::string text = slurp(state);
  const size_t at = text.find("\"version\": 1");
  ASSERT_NE(at, std::string::npos) << text.substr(0, 200);
  text.replace(at, 12, "\"version\": 2");
  std::ofstream(state) << text;
  for (const std::string command :
       {"resume " + (dir_ / "run").string() + " --set trainer.max_steps=3",
        "sample " + (dir_ / "run").string() + " --tokens 3"}) {
    const Result r = run(command, "timeout 60");
    EXPECT_EQ(r.status, 1) << command << "\n" << r.output;
    EXPECT_NE(r.output.find("state.json has version 2; this build reads version 1"),
              std::string::npos)
        << command << "\n"
        << r.output;
  }
}

// A resume whose config.yaml cannot be written (the disk is full; here a file-size limit of one
// block, with SIGXFSZ ignored so that the write fails with EFBIG) fails naming config.yaml, leaves
// the run's config.yaml and checkpoint as they were, and leaves no config.yaml.tmp behind.
TEST_F(FabricTrainLimits, AFullDiskKeepsTheRunsConfigAndCheckpoint) {
  ASSERT_EQ(run("fit " + cfg_, "timeout 60").status, 0);
  const fs::path run_dir = dir_ / "run";
  const std::string config_before = slurp(run_dir / "config.yaml");
  const std::string model_before = slurp(run_dir / "checkpoints/last/model.safetensors");
  ASSERT_GT(config_before.size(), 1024u);
  const Result r = run("resume " + run_dir.string() + " --set trainer.max_steps=4",
                       "trap '' XFSZ; ulimit -f 1; timeout 60");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(
      r.output.find("fabric-train: error: cannot write " + (run_dir / "config.yaml").string()),
      std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("the previous config.yaml, if any, is unchanged"), std::string::npos)
      << r.output;
  EXPECT_EQ(slurp(run_dir / "config.yaml"), config_before);
  EXPECT_EQ(slurp(run_dir / "checkpoints/last/model.safetensors"), model_before);
  for (const auto& e : fs::directory_iterator(run_dir))
    EXPECT_EQ(e.path().filename().string().find("config.yaml.tmp"), std::string::npos) << e.path();
}

// A run_dir below a regular file: std::filesystem's bare "cannot create directories: Not a
// directory [...]" named neither the key nor the file in the way.
TEST_F(FabricTrainLimits, ARunDirBelowAFileNamesTheKeyAndTheFile) {
  const fs::path file = dir_ / "a_file";
  std::ofstream(file) << "x";
  const Result r =
      run("fit " + cfg_ + " --set trainer.run_dir=" + (file / "run").string(), "timeout 60");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("fabric-train: error: trainer.run_dir: cannot create " +
                          (file / "run/checkpoints").string() + ": '" + file.string() +
                          "' is a file, not a directory; expected a directory"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(slurp(file), "x");
}

// A checkpoint that does not fit the run's config: the message asked "did a --set change model.*
// or optimizer.*?" of a resume given no --set at all. A --set of a key that shapes the model is
// refused before anything loads, naming it and the run's value (also one whose tensors keep their
// shapes: n_head, gelu, which would load into another model silently); with no --set, the message
// says none did.
TEST_F(FabricTrainLimits, AResumeMismatchNamesTheSetOrSaysThereWasNone) {
  ASSERT_EQ(run("fit " + cfg_, "timeout 60").status, 0);
  const std::string run_dir = (dir_ / "run").string();
  for (const auto& [set, trained] : {std::pair{"model.n_layer=2", "model.n_layer 1"},
                                     std::pair{"model.n_head=1", "model.n_head 2"},
                                     std::pair{"model.gelu=none", "model.gelu tanh"}}) {
    const Result changed = run("resume " + run_dir + " --set " + set, "timeout 60");
    EXPECT_EQ(changed.status, 2) << changed.output;
    EXPECT_NE(changed.output.find(std::string("resume: --set ") + set +
                                  ": the run's model was trained with " + trained +
                                  "; keys that shape the model"),
              std::string::npos)
        << changed.output;
  }
  // Another model is named as such (it blamed one of config.yaml's keys for not applying to it).
  const Result other = run("resume " + run_dir + " --set model.name=mlp", "timeout 60");
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_NE(other.output.find("resume: --set model.name=mlp: the run's model is a gpt"),
            std::string::npos)
      << other.output;
  // The same value, and a dropout, take effect as any other key.
  EXPECT_EQ(
      run("resume " + run_dir + " --set model.n_head=2 model.dropout=0.1", "timeout 60").status, 0);
  // The run's config.yaml edited by hand: no --set is to blame.
  std::string config = slurp(dir_ / "run/config.yaml");
  const size_t at = config.find("n_layer: 1");
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, 10, "n_layer: 2");
  std::ofstream(dir_ / "run/config.yaml") << config;
  const Result edited = run("resume " + run_dir + " --set trainer.max_steps=3", "timeout 60");
  EXPECT_EQ(edited.status, 2) << edited.output;
  EXPECT_NE(edited.output.find("does not fit the config (no --set changed model.* or data.*: was "
                               "the checkpoint or the run's "
                               "config.yaml edited, or is the checkpoint damaged?): "),
            std::string::npos)
      << edited.output;
}

}  // namespace
}  // namespace fabric
