// fabric-train end to end, through the binary: what is checked before anything is written. Config
// errors found only while setting up (optimizer options, token ids, the loss against the targets)
// exit 2 and write nothing; validate and fit --print-config run the same checks; a resume whose
// checkpoint does not fit the config leaves the run as it was; relative paths resolve from the
// current directory, the config's directory and fabric's home; sample refuses what it cannot do.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

class FabricTrainSetup : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_setup");
    if (IsSkipped()) return;
    // 100 examples of 8 features, 3 classes.
    Generator gen(7);
    save_classification_data(dir_ / "cls.safetensors", 100, 8, 3, gen);
  }

  // An MLP on cls.safetensors, AdamW, checkpoints every 2 steps.
  std::string write_config(const std::string& name = "base.yaml") {
    const std::string cfg = (dir_ / name).string();
    std::ofstream(cfg) << "model:     {name: mlp, sizes: [8, 16, 3]}\n"
                          "data:      {kind: tensors, path: " << (dir_ / "cls.safetensors").string() << "}\n"
                          "optimizer: {name: adamw, lr: 0.01}\n"
                          "trainer:   {max_steps: 4, batch_size: 16, checkpoint_every: 2, run_dir: "
                       << (dir_ / "run").string() << "}\n";
    return cfg;
  }
};

// A --set that changes the model: exit 2 naming the key and the run's value (before anything
// loads), and the run directory (config.yaml first of all) as it was, so that the run still
// resumes.
TEST_F(FabricTrainSetup, ResumeThatDoesNotFitTheCheckpointExits2AndLeavesTheRun) {
  ASSERT_EQ(run("fit " + write_config()).status, 0);
  const fs::path run_dir = dir_ / "run";
  const std::string config = slurp(run_dir / "config.yaml"), metrics = slurp(run_dir / "metrics.csv");
  const Result bad = run("resume " + run_dir.string() + " --set model.sizes=[8,32,3] trainer.max_steps=6");
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("config error: resume: "), std::string::npos) << bad.output;
  EXPECT_NE(
      bad.output.find(
          "--set model.sizes=[8,32,3]: the run's model was trained with model.sizes [8, 16, 3]"),
      std::string::npos)
      << bad.output;
  EXPECT_EQ(slurp(run_dir / "config.yaml"), config);
  EXPECT_EQ(slurp(run_dir / "metrics.csv"), metrics);
  const Result good = run("resume " + run_dir.string() + " --set trainer.max_steps=6");
  EXPECT_EQ(good.status, 0) << good.output;
}

// float64 inputs (numpy's default) under 32-true, which casts no input: the message names the data
// and its dtype (it named model.name), and the remedies; 64-true trains on them.
TEST_F(FabricTrainSetup, Float64InputsUnder32TrueNameTheData) {
  Generator gen(3);
  save_safetensors((dir_ / "f64.safetensors").string(),
                   {{"inputs", randn({20, 8}, {.dtype = DType::float64}, &gen)},
                    {"targets", randint(0, 3, {20}, {.dtype = DType::int64}, &gen)}});
  const std::string cfg = write_config();
  const std::string data = " data.path=" + (dir_ / "f64.safetensors").string();
  const Result bad =
      run("fit " + cfg + " --set" + data + " trainer.run_dir=" + (dir_ / "f64").string());
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(
      bad.output.find(
          "config error: data.path: its float64 inputs (fabric.precision 32-true casts no input, "
          "as Lightning's: save them as float32, or train under 64-true) does not fit data.kind "
          "tensors"),
      std::string::npos)
      << bad.output;
  EXPECT_FALSE(fs::exists(dir_ / "f64"));
  const Result ok = run("fit " + cfg + " --set" + data +
                        " fabric.precision=64-true trainer.run_dir=" + (dir_ / "f64ok").string());
  EXPECT_EQ(ok.status, 0) << ok.output;
}

// Problems found while building the run: exit 2 with the key named, and no run directory.
TEST_F(FabricTrainSetup, OptimizerTokenAndLossProblemsExit2AndWriteNothing) {
  // uint16 ids below 23, but one 40 far past the first window (block_size 8).
  std::vector<uint16_t> ids(600);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint16_t((i * 7) % 23);
  ids[500] = 40;
  std::ofstream(dir_ / "tokens.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
  Generator gen(3);
  save_safetensors((dir_ / "tok.safetensors").string(),
                   {{"inputs", randint(0, 20, {16, 8}, {.dtype = DType::int64}, &gen)},
                    {"targets", randint(0, 20, {16, 8}, {.dtype = DType::int64}, &gen)}});
  const std::string good = write_config();
  const std::string gpt = (dir_ / "gpt.yaml").string();
  std::ofstream(gpt) << "model: {name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
                        "data: {kind: tokens, path: " << (dir_ / "tokens.bin").string() << "}\n"
                        "trainer: {max_steps: 2, batch_size: 4, run_dir: " << (dir_ / "run").string() << "}\n";
  struct Case {
    std::string config, sets, message;
  };
  const std::vector<Case> cases = {
      {good, "optimizer.betas=[1.0,0.999]", "optimizer.betas: each beta must be in [0, 1)"},
      {good, "optimizer.betas=[0.9,1.0]", "optimizer.betas: each beta must be in [0, 1)"},
      {good, "optimizer.name=sgd optimizer.nesterov=true",
       "optimizer.nesterov: Nesterov momentum needs optimizer.momentum > 0"},
      {good, "optimizer.name=sgd optimizer.nesterov=true optimizer.momentum=0.9 optimizer.dampening=0.1",
       "optimizer.nesterov: "},
      {gpt, "model.vocab_size=30", "model.vocab_size: 30 is too small for data.path"},
      {gpt, "data.kind=tensors model.vocab_size=10 data.path=" + (dir_ / "tok.safetensors").string(),
       "model.vocab_size: 10 is too small for data.path"},
      {good, "loss=mse", "loss: mse needs one target per output value, got targets (1,) for the model's output (1, 3)"},
      {good, "trainer.run_dir=", "trainer.run_dir: must not be empty"},  // was: the run went into /
  };
  for (const auto& [config, sets, message] : cases) {
    const Result r = run("fit " + config + " --set " + sets);
    EXPECT_EQ(r.status, 2) << sets << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << sets << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "run")) << sets << ": the run directory must not be created";
  }
  // mse with one target per output value trains, whatever the targets' shape ((N,) for (N, 1)).
  save_safetensors((dir_ / "reg.safetensors").string(),
                   {{"inputs", randn({32, 8}, {}, &gen)}, {"targets", randn({32}, {}, &gen)}});
  const Result mse = run("fit " + good + " --set loss=mse model.sizes=[8,4,1] data.path=" + (dir_ / "reg.safetensors").string());
  EXPECT_EQ(mse.status, 0) << mse.output;
}

// validate and fit --print-config check what fit checks before writing anything: exit 2 for a
// model that does not fit the data and for a file that is not of the data's kind, 0 otherwise.
TEST_F(FabricTrainSetup, ValidateAndPrintConfigRunFitsChecks) {
  const std::string cfg = write_config();
  std::ofstream(dir_ / "text.txt") << "It is a truth universally acknowledged, that a single man in possession.\n";
  for (const std::string command : {"validate " + cfg, "fit " + cfg + " --print-config"}) {
    const Result sizes = run(command + " --set model.sizes=[9,16,3]");
    EXPECT_EQ(sizes.status, 2) << command << "\n" << sizes.output;
    EXPECT_NE(
        sizes.output.find(
            "config error: model.sizes: the first size, 9 input features (the data's have 8), "
            "does not fit data.kind tensors"),
        std::string::npos)
        << sizes.output;
    const Result text = run(command + " --set data.path=" + (dir_ / "text.txt").string());
    EXPECT_EQ(text.status, 2) << command << "\n" << text.output;
    EXPECT_NE(text.output.find("config error: data.path: "), std::string::npos) << text.output;
    const Result ok = run(command);
    EXPECT_EQ(ok.status, 0) << command << "\n" << ok.output;
    EXPECT_NE(ok.output.find("sizes: [8, 16, 3]"), std::string::npos) << ok.output;
    EXPECT_FALSE(fs::exists(dir_ / "run")) << command << " writes nothing";
  }
}

// A relative path is used as it is from the current directory (first), else found beside the
// config, else in fabric's home (FABRIC_HOME here): the bundled configs work from any directory.
TEST_F(FabricTrainSetup, RelativePathsResolveFromTheConfigsDirectoryAndFabricHome) {
  fs::create_directories(dir_ / "configs");
  fs::create_directories(dir_ / "elsewhere");
  fs::copy_file(dir_ / "cls.safetensors", dir_ / "configs/beside.safetensors");
  std::ofstream(dir_ / "configs/c.yaml") << "model: {name: mlp, sizes: [8, 16, 3]}\n"
                                            "data: {kind: tensors, path: beside.safetensors}\n"
                                            "trainer: {max_steps: 1, batch_size: 16, run_dir: run}\n";
  const std::string in_elsewhere = "cd '" + (dir_ / "elsewhere").string() + "' &&";
  const Result beside = run("validate ../configs/c.yaml", in_elsewhere);
  EXPECT_EQ(beside.status, 0) << beside.output;
  EXPECT_NE(beside.output.find("path: ../configs/beside.safetensors"), std::string::npos) << beside.output;
  // The current directory comes first: its own file of that name wins (an MLP of 5 features does
  // not fit the 8 beside the config, so the check shows which file was read).
  Generator gen(1);
  save_classification_data(dir_ / "elsewhere/beside.safetensors", 20, 5, 3, gen);
  const Result own = run("fit ../configs/c.yaml --set model.sizes=[5,4,3]", in_elsewhere);
  EXPECT_EQ(own.status, 0) << own.output;
  EXPECT_TRUE(fs::exists(dir_ / "elsewhere/run/checkpoints/last"));
  // Nowhere: the message says where it looked.
  const Result none = run("validate ../configs/c.yaml --set data.path=absent.safetensors", in_elsewhere);
  EXPECT_EQ(none.status, 2) << none.output;
  EXPECT_NE(none.output.find("no such file 'absent.safetensors' (relative paths are looked up in the current "
                             "directory, then in ../configs"),
            std::string::npos)
      << none.output;
#ifdef FABRIC_CONFIG_DIR
  // The bundled default names data/austen.txt: found in fabric's home from anywhere.
  fs::create_directories(dir_ / "home/data");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "It is a truth universally acknowledged, that a single man. ";
  std::ofstream(dir_ / "home/data/austen.txt") << text;
  const Result austen = run("validate " + std::string(FABRIC_CONFIG_DIR) + "/gpt-austen.yaml",
                            in_elsewhere + " env FABRIC_HOME='" + (dir_ / "home").string() + "'");
  EXPECT_EQ(austen.status, 0) << austen.output;
  EXPECT_NE(austen.output.find("path: " + (dir_ / "home/data/austen.txt").string()), std::string::npos) << austen.output;
  // And the contract example trains on the small data.safetensors beside it.
  const Result tensors = run("fit " + std::string(FABRIC_CONFIG_DIR) + "/mlp-tensors.yaml --set trainer.max_steps=2",
                             in_elsewhere);
  EXPECT_EQ(tensors.status, 0) << tensors.output;
#endif
}

// sample: a prompt with characters the text never had is an error listing them (exit 2), and a GPT
// trained on token ids (no character vocabulary) is refused saying so (exit 2 too).
TEST_F(FabricTrainSetup, SampleRefusesUnknownCharactersAndTokenModels) {
  const std::string cfg = write_tiny_gpt_config("text");
  ASSERT_EQ(run("fit " + cfg).status, 0);
  const std::string last = (dir_ / "text/checkpoints/last").string();
  const Result unknown = run("sample " + last + " --prompt 'the dog, the cat' --tokens 5");
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("sample --prompt: 3 characters are not in the model's vocabulary: 'd', 'g', ','"),
            std::string::npos)
      << unknown.output;
  const Result all_unknown = run("sample " + last + " --prompt XYZ --tokens 5");
  EXPECT_EQ(all_unknown.status, 2) << all_unknown.output;
  // The default prompt, a newline the text never had, starts from the vocabulary's first character.
  EXPECT_EQ(run("sample " + last + " --tokens 5").status, 0);
  EXPECT_EQ(run("sample " + last + " --prompt 'the cat' --tokens 5").status, 0);
  // The end-of-run sample's prompt is checked before anything is written.
  const Result prompt = run("fit " + cfg + " --set trainer.sample_tokens=5 trainer.sample_prompt=Dog trainer.run_dir=" +
                            (dir_ / "prompt").string());
  EXPECT_EQ(prompt.status, 2) << prompt.output;
  EXPECT_NE(prompt.output.find("trainer.sample_prompt: 2 characters are not in"), std::string::npos) << prompt.output;
  EXPECT_FALSE(fs::exists(dir_ / "prompt"));

  std::vector<uint16_t> ids(400);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint16_t((i * 5) % 17);
  std::ofstream(dir_ / "tokens.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
  ASSERT_EQ(run("fit " + cfg + " --set data.kind=tokens data.path=" + (dir_ / "tokens.bin").string() +
                " trainer.run_dir=" + (dir_ / "tokens").string())
                .status,
            0);
  const Result tokens = run("sample " + (dir_ / "tokens/checkpoints/last").string() + " --prompt the");
  EXPECT_EQ(tokens.status, 2) << tokens.output;  // a command line naming the wrong kind of checkpoint
  EXPECT_NE(tokens.output.find("holds a GPT trained on tokens data"), std::string::npos) << tokens.output;
  EXPECT_NE(tokens.output.find("sample needs a GPT trained on text data"), std::string::npos) << tokens.output;
}

}  // namespace
}  // namespace fabric

#ifdef FABRIC_CONFIG_DIR
namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace train_test;

// `fabric-train` with no arguments in a home without data/austen.txt (the install step had not
// extracted it): exit 2 naming the missing corpus and how to get it. Before, it said
// "--set data.path: no such file", a --set the user never gave. With a --set data.path the
// default's config trains on that text instead.
TEST(FabricTrainDefault, AMissingCorpusIsNamedAndDataPathReplacesIt) {
  if (std::string(FABRIC_TRAIN_EXE).empty()) GTEST_SKIP() << "fabric-train was not built";
  const fs::path dir = fresh_test_dir("fabric_train_default");
  fs::create_directories(dir / "home/configs");
  fs::copy_file(fs::path(FABRIC_CONFIG_DIR) / "gpt-austen.yaml",
                dir / "home/configs/gpt-austen.yaml");
  const std::string env =
      "cd '" + dir.string() + "' && env FABRIC_HOME='" + (dir / "home").string() + "'";
  const Result missing = run("", env);
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find("the bundled default trains on " +
                                (dir / "home/data/austen.txt").string() +
                                ", which is missing: tools/build.sh extracts it"),
            std::string::npos)
      << missing.output;
  EXPECT_EQ(missing.output.find("--set data.path: no such file"), std::string::npos)
      << missing.output;
  EXPECT_FALSE(fs::exists(dir / "runs")) << "nothing is written";

  std::string text;
  for (int i = 0; i < 40; ++i) text += "It is a truth universally acknowledged. ";
  std::ofstream(dir / "t.txt") << text;
  const Result other =
      run("--set data.path=t.txt trainer.max_steps=1 trainer.val_every=0 trainer.sample_tokens=0 "
          "model.n_layer=1 model.n_embd=16 model.n_head=2 model.block_size=8 trainer.batch_size=2 "
          "trainer.run_dir=run",
          env);
  EXPECT_EQ(other.status, 0) << other.output;
  EXPECT_TRUE(fs::exists(dir / "run/checkpoints/last/model.safetensors")) << other.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fabric
#endif
