// fabric-train end to end, through the binary: bad configs, whether found while reading them or
// only while building the run, exit 2 naming the key and write nothing (a resume leaves its run as
// it was).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/factory.h"
#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

TEST_F(FabricTrain, BadConfigsExit2AndWriteNothing) {
  const std::string good = write_contract();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set trainer.max_step=3", "did you mean 'max_steps'"},
      {"--set trainer.max_steps=abc", "expected integer"},
      {"--set optimizer.name=adamm", "did you mean"},
      {"--set fabric.precision=fp8", "Allowed precision values"},
      {"--set data.path=/nonexistent.safetensors", "no such file"},
      {"--set optimizer.lr=-0.1", ">= 0"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run("fit " + good + " " + args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "run")) << args << ": the run directory must not be created";
  }
  std::ofstream(dir_ / "typo.yaml") << "trainer:\n  max_steps: 5\n  batchsize: 3\n";
  const Result r = run("fit " + (dir_ / "typo.yaml").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("typo.yaml:3:3: trainer.batchsize"), std::string::npos) << r.output;
  EXPECT_EQ(run("fit " + (dir_ / "absent.yaml").string()).status, 2);
  EXPECT_EQ(run("fit").status, 2);  // missing CONFIG
  EXPECT_EQ(run("frobnicate").status, 2);
}

// Errors that only building the run finds (the data, the model with its init weights, LoRA, one
// example through model and loss) are config errors too: exit 2, the key named, nothing written.
TEST_F(FabricTrain, ConfigErrorsFoundWhileSettingUpExit2AndWriteNothing) {
  std::ofstream(dir_ / "short.txt") << "It is a truth universally acknowledged, that a single man in possession. ";
  std::string text;
  for (int i = 0; i < 10; ++i) text += "It is a truth universally acknowledged, that a single man in possession. ";
  std::ofstream(dir_ / "text.txt") << text;
  save_safetensors((dir_ / "wrong_keys.safetensors").string(), {{"encoder.weight", zeros({256, 784})}});
  // A class target beyond the model's 10 outputs at example 50, in a batch the first steps never
  // reach: found before anything is written, not when its batch comes.
  Tensor late_bad = zeros({64}, {.dtype = DType::int64});
  late_bad.data<int64_t>()[50] = 12;
  save_safetensors((dir_ / "late_bad.safetensors").string(),
                   {{"inputs", zeros({64, 784})}, {"targets", late_bad}});
  const std::string good = write_contract();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set data.kind=text data.path=" + (dir_ / "text.txt").string(),
       "model.name: mlp does not fit data.kind text"},
      {"--set model.sizes=[100,10]",
       "model.sizes: the first size, 100 input features (the data's have 784), does not fit "
       "data.kind tensors"},
      {"--set trainer.max_steps=1 data.path=" + (dir_ / "late_bad.safetensors").string(),
       "model.sizes: the last size, 10 classes, is too small for data.path '" +
           (dir_ / "late_bad.safetensors").string() + "', which holds target 12 (example 50;"},
      {"--set model.name=gpt model.sizes=null model.activation=null model.vocab_size=5 "
       "model.block_size=8 model.n_layer=1 model.n_head=2 model.n_embd=8 "
       "data.kind=text data.path=" +
           (dir_ / "text.txt").string(),
       "model.vocab_size: 5 is too small for data.path '" + (dir_ / "text.txt").string() +
           "', whose characters number "},
      {"--set data.kind=text data.path=" + (dir_ / "short.txt").string(),
       "data.path: TextDataset: "},
      {"--set model.init=" + (dir_ / "wrong_keys.safetensors").string(), "model.init: "},
      {"--set lora.rank=4 lora.target=[nothing]", "lora: "},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run("fit " + good + " " + args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("config error: " + message), std::string::npos) << args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "run")) << args << ": the run directory must not be created";
  }
  // A text GPT whose train split holds windows of 101 characters and whose validation split (74
  // characters) does not: data.val_fraction's fault, and none with validation off.
  const std::string gpt = (dir_ / "gpt.yaml").string();
  std::ofstream(gpt) << "model: {name: gpt, block_size: 100, n_layer: 1, n_embd: 16, n_head: 2}\n"
                        "data: {kind: text, val_fraction: 0.1, path: "
                     << (dir_ / "text.txt").string()
                     << "}\n"
                        "trainer: {max_steps: 1, sample_tokens: 0, run_dir: "
                     << (dir_ / "gpt").string() << "}\n";
  const Result small_val = run("fit " + gpt + " --set trainer.val_every=1");
  EXPECT_EQ(small_val.status, 2) << small_val.output;
  EXPECT_NE(small_val.output.find("config error: data.val_fraction: TextDataset: the val split"),
            std::string::npos)
      << small_val.output;
  EXPECT_FALSE(fs::exists(dir_ / "gpt"));
  const Result no_val = run("fit " + gpt + " --set trainer.val_every=0");
  EXPECT_EQ(no_val.status, 0) << no_val.output;
  // Resuming with a bad override leaves the run as it was (a model.init override has no effect on a
  // resume, whose weights are the checkpoint's: test_fabric_train_cli_edges.cpp).
  ASSERT_EQ(run("fit " + good + " --set trainer.max_steps=2").status, 0);
  const auto before = lines((dir_ / "run/config.yaml").string());
  const Result r =
      run("resume " + (dir_ / "run").string() + " --set model.sizes=[784,10] trainer.max_steps=3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("config error: resume: "), std::string::npos) << r.output;
  EXPECT_EQ(lines((dir_ / "run/config.yaml").string()), before);
}

}  // namespace
}  // namespace fabric
