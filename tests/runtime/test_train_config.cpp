// fabric-train's config: defaults, the contract keys, overrides, and errors that name the file,
// line, column and key (with a suggestion for misspelt keys).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/train_config.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class TrainConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_cfg_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = (dir_ / "data.safetensors").string();
    std::ofstream(data_) << "x";  // existence is all the config checks
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string contract() const {
    return "fabric:    {accelerator: cpu, strategy: auto, devices: 1, num_nodes: 1, precision: 32-true}\n"
           "model:     {name: mlp, sizes: [784, 256, 10], activation: relu}\n"
           "data:      {kind: tensors, path: " + data_ + ", shuffle: false, val_fraction: 0.0}\n"
           "loss:      cross_entropy\n"
           "optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0}\n"
           "scheduler: {name: constant}\n"
           "trainer:   {max_steps: 5, batch_size: 32, accumulate_grad_batches: 1, seed: 0,\n"
           "            checkpoint_every: 0, log_every: 1, run_dir: runs/example}\n";
  }
  std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) const {
    try {
      parse_train_config(yaml, "cfg.yaml", overrides);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(no error)";
  }
  fs::path dir_;
  std::string data_;
};

TEST_F(TrainConfigTest, TheContractParses) {
  const TrainConfig c = parse_train_config(contract(), "cfg.yaml");
  EXPECT_EQ(c.fabric.accelerator, "cpu");
  EXPECT_EQ(c.fabric.precision, "32-true");
  EXPECT_EQ(c.model.name, "mlp");
  EXPECT_EQ(c.model.sizes, (std::vector<int64_t>{784, 256, 10}));
  EXPECT_EQ(c.data.kind, "tensors");
  EXPECT_EQ(c.loss, "cross_entropy");
  EXPECT_EQ(c.optimizer.name, "sgd");
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.9);
  EXPECT_EQ(c.trainer.max_steps, 5);
  EXPECT_EQ(c.trainer.run_dir, "runs/example");
}

TEST_F(TrainConfigTest, OverridesReplaceAnyKey) {
  const TrainConfig c = parse_train_config(
      contract(), "cfg.yaml", {"trainer.max_steps=10", "fabric.precision=bf16-mixed", "model.sizes=[4, 2]", "loss=mse"});
  EXPECT_EQ(c.trainer.max_steps, 10);
  EXPECT_EQ(c.fabric.precision, "bf16-mixed");
  EXPECT_EQ(c.model.sizes, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(c.loss, "mse");
  EXPECT_EQ(parse_train_config(contract(), "c", {"fabric.precision=16"}).fabric.precision, "16-mixed");
}

TEST_F(TrainConfigTest, DumpIsResolvedAndReadsBack) {
  const TrainConfig c = parse_train_config(contract(), "cfg.yaml", {"optimizer.name=adamw"});
  const std::string yaml = dump_train_config(c);
  EXPECT_NE(yaml.find("max_epochs: -1"), std::string::npos) << yaml;  // defaults filled in
  EXPECT_EQ(yaml.find("n_layer"), std::string::npos) << "gpt keys are not shown for an mlp";
  const TrainConfig back = parse_train_config(yaml, "dumped.yaml");
  EXPECT_EQ(dump_train_config(back), yaml);
}

TEST_F(TrainConfigTest, ErrorsNameFileLineColumnAndKey) {
  std::string e = error_of(contract() + "trainer2: {}\n");
  EXPECT_NE(e.find("cfg.yaml:9:1"), std::string::npos) << e;
  EXPECT_NE(e.find("trainer"), std::string::npos) << e;

  std::string yaml = contract();
  yaml.replace(yaml.find("max_steps: 5"), 12, "max_step: 5");
  e = error_of(yaml);
  EXPECT_NE(e.find("cfg.yaml:7:"), std::string::npos) << e;
  EXPECT_NE(e.find("trainer.max_step"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'max_steps'"), std::string::npos) << e;

  yaml = contract();
  yaml.replace(yaml.find("max_steps: 5"), 12, "max_steps: x");
  e = error_of(yaml);
  EXPECT_NE(e.find("trainer.max_steps: expected integer, got 'x'"), std::string::npos) << e;

  e = error_of(contract(), {"optimizer.lr=-1"});
  EXPECT_NE(e.find("--set optimizer.lr"), std::string::npos) << e;
  EXPECT_NE(e.find(">= 0"), std::string::npos) << e;
  e = error_of(contract(), {"optimizer.name=adamm"});
  EXPECT_NE(e.find("did you mean 'adam"), std::string::npos) << e;
  e = error_of(contract(), {"fabric.precision=fp16"});
  EXPECT_NE(e.find("bf16-mixed"), std::string::npos) << e;  // lists the allowed values
  e = error_of(contract(), {"model.n_layer=2"});
  EXPECT_NE(e.find("does not apply to model 'mlp'"), std::string::npos) << e;
  e = error_of(contract(), {"data.path=/nonexistent/file"});
  EXPECT_NE(e.find("no such file"), std::string::npos) << e;
  e = error_of("fabric: [1, 2\n");
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  e = error_of(contract(), {"trainer.max_steps"});
  EXPECT_NE(e.find("key.path=value"), std::string::npos) << e;
  EXPECT_THROW(load_train_config((dir_ / "absent.yaml").string()), ConfigError);
}

TEST_F(TrainConfigTest, GptKeysApplyToGpt) {
  const TrainConfig c = parse_train_config(
      "model: {name: gpt, vocab_size: 65, block_size: 64, n_layer: 2, n_head: 4, n_embd: 128, dropout: 0.1, bias: false}\n"
      "data: {kind: text, path: " + data_ + "}\ntrainer: {max_steps: 1}\n",
      "gpt.yaml");
  EXPECT_EQ(c.model.n_embd, 128);
  EXPECT_FALSE(c.model.bias);
  EXPECT_NE(error_of("model: {name: gpt, n_embd: 10, n_head: 4}\ndata: {path: " + data_ + "}\ntrainer: {max_steps: 1}\n")
                .find("multiple of model.n_head"),
            std::string::npos);
}

}  // namespace
}  // namespace fabric
