// fabric-train's config: defaults, the contract keys, overrides, and errors that name the file,
// line, column and key (with a suggestion for misspelt keys).
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "runtime/train_config.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

// The text of `section.key` (or section.block.key) in a dumped config, as written (block style).
std::string dumped_value(const std::string& yaml, const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ps(path);
  for (std::string p; std::getline(ps, p, '.');) parts.push_back(p);
  std::stringstream in(yaml);
  size_t depth = 0;
  for (std::string line; std::getline(in, line);) {
    const size_t indent = line.find_first_not_of(' ');
    if (indent == std::string::npos || indent / 2 > depth) continue;
    if (indent / 2 < depth) return "(not found)";
    const std::string head = parts[depth] + ":";
    if (line.compare(indent, head.size(), head) != 0) continue;
    if (++depth == parts.size()) return line.substr(indent + head.size() + 1);
  }
  return "(not found)";
}

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
  // The legacy value resolves with the reference's warning (load_train_config prints it).
  const TrainConfig legacy = parse_train_config(contract(), "c", {"fabric.precision=16"});
  EXPECT_EQ(legacy.fabric.precision, "16-mixed");
  ASSERT_EQ(legacy.warnings.size(), 1u);
  EXPECT_NE(legacy.warnings[0].find("16-mixed"), std::string::npos) << legacy.warnings[0];
  EXPECT_TRUE(parse_train_config(contract(), "c", {"fabric.precision=16-mixed"}).warnings.empty());
}

// trainer.sample_tokens for a run that generates no text (an mlp, a gpt on token ids) is said, not
// silently dropped; a gpt on text takes it.
TEST_F(TrainConfigTest, SampleTokensOutsideAGptOnTextIsWarnedAbout) {
  const TrainConfig c = parse_train_config(contract(), "c", {"trainer.sample_tokens=20"});
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find(
                "trainer.sample_tokens is ignored: a run generates text at its end only for a gpt "
                "on text data (data.kind: text); this one is a mlp on tensors data"),
            std::string::npos)
      << c.warnings[0];
  EXPECT_TRUE(parse_train_config(contract(), "c", {"trainer.sample_tokens=0"}).warnings.empty());
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
  // An explicit null is the default, so it is no value for another model either: the contract's
  // mlp turns into a gpt with its mlp keys nulled.
  EXPECT_EQ(error_of(contract(), {"model.n_layer=null"}), "(no error)");
  const TrainConfig gpt = parse_train_config(
      contract(), "cfg.yaml", {"model.name=gpt", "model.sizes=null", "model.activation=null", "model.vocab_size=10"});
  EXPECT_EQ(gpt.model.name, "gpt");
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

// fabric.strategy and fabric.devices are checked with the config (exit 2 at the key), by the
// connector's own strategy registry and devices parser, not first when Fabric is built.
TEST_F(TrainConfigTest, StrategyAndDevicesAreCheckedAtTheKey) {
  std::string e = error_of(contract(), {"fabric.strategy=dpp"});
  EXPECT_CONTAINS(e, "--set fabric.strategy: 'dpp' is not a strategy name");
  EXPECT_CONTAINS(e, "did you mean 'ddp'");
  EXPECT_CONTAINS(e, "deepspeed_stage_3_offload");  // lists the registry
  EXPECT_CONTAINS(error_of(contract(), {"fabric.strategy=deepspeed_stage_9"}), "did you mean 'deepspeed_stage_1'");
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: fdsp");
  e = error_of(yaml);
  EXPECT_CONTAINS(e, "cfg.yaml:1:");
  EXPECT_CONTAINS(e, "fabric.strategy");
  EXPECT_CONTAINS(e, "did you mean 'fsdp'");
  for (const char* bad : {"fabric.devices=abc", "fabric.devices=0", "fabric.devices=1,x", "fabric.devices=0,0"}) {
    e = error_of(contract(), {bad});
    EXPECT_CONTAINS(e, "--set fabric.devices: devices=");
    EXPECT_CONTAINS(e, "Expected a positive number of devices");
  }
  yaml = contract();
  yaml.replace(yaml.find("devices: 1"), 10, "devices: 0");
  EXPECT_CONTAINS(error_of(yaml), "cfg.yaml:1:" + std::to_string(yaml.find("devices") + 1) +
                                      ": fabric.devices: devices='0' is invalid: zero devices");
  // What the connector takes passes (case-insensitive names, -1 whatever is there, auto); on the
  // cpu devices is a count (Lightning's CPUAccelerator), indices and -1 name GPUs.
  for (const char* good : {"fabric.strategy=DDP", "fabric.devices=auto", "fabric.strategy=deepspeed_stage_3_offload"})
    EXPECT_NO_THROW(parse_train_config(contract(), "cfg.yaml", {good})) << good;
  for (const char* gpu_only : {"fabric.devices=-1", "fabric.devices=0,1"}) {
    EXPECT_NO_THROW(parse_train_config(contract(), "cfg.yaml", {"fabric.accelerator=cuda", gpu_only})) << gpu_only;
    EXPECT_CONTAINS(error_of(contract(), {gpu_only}), "on the cpu accelerator devices is the number of processes");
  }
}

// Lightning's accelerator names mps and tpu pass the field's choices but no machine here has them:
// refused at load, at the key (file:line:col), so that validate refuses them as fit does — before,
// validate printed the config with exit 0 and only fit's Fabric refused it, with no location.
TEST_F(TrainConfigTest, AcceleratorsThisRuntimeNeverHasAreRefusedAtTheKey) {
  for (const std::string acc : {"tpu", "mps"}) {
    std::string yaml = contract();
    yaml.replace(yaml.find("accelerator: cpu"), 16, "accelerator: " + acc);
    EXPECT_CONTAINS(error_of(yaml),
                    "cfg.yaml:1:" + std::to_string(yaml.find("accelerator") + 1) +
                        ": fabric.accelerator: `accelerator='" + acc +
                        "'` is not available: this runtime supports 'cpu' and 'cuda'");
  }
  EXPECT_CONTAINS(error_of(contract(), {"fabric.accelerator=mps"}),
                  "--set fabric.accelerator: `accelerator='mps'`");
  for (const char* ok :
       {"fabric.accelerator=cuda", "fabric.accelerator=gpu", "fabric.accelerator=auto"})
    EXPECT_NO_THROW(parse_train_config(contract(), "cfg.yaml", {ok})) << ok;
}

// A list of device indices, as FabricOptions' Devices takes it, in the file or on --set; it dumps
// as a list and reads back.
TEST_F(TrainConfigTest, DevicesAsAListOfIndices) {
  const std::string cuda = "fabric.accelerator=cuda";  // indices name GPUs (on the cpu: a count)
  EXPECT_EQ(parse_train_config(contract(), "cfg.yaml", {cuda, "fabric.devices=[0]"}).fabric.devices, "0,");
  std::string yaml = contract();
  yaml.replace(yaml.find("accelerator: cpu"), 16, "accelerator: cuda");
  yaml.replace(yaml.find("devices: 1"), 10, "devices: [0, 1]");
  const TrainConfig c = parse_train_config(yaml, "cfg.yaml");
  EXPECT_EQ(c.fabric.devices, "0,1");
  const std::string dumped = dump_train_config(c);
  EXPECT_CONTAINS(dumped, "devices: [0, 1]");
  EXPECT_EQ(parse_train_config(dumped, "dumped.yaml").fabric.devices, "0,1");
  EXPECT_EQ(parse_train_config(dump_train_config(parse_train_config(contract(), "c", {cuda, "fabric.devices=[2]"})), "d")
                .fabric.devices,
            "2,")
      << "a one-element list stays device 2, not a count of 2";
  EXPECT_CONTAINS(error_of(contract(), {cuda, "fabric.devices=[-1]"}), "not a device index");
  EXPECT_CONTAINS(error_of(contract(), {cuda, "fabric.devices=[]"}), "the list of device indices is empty");
  EXPECT_CONTAINS(error_of(contract(), {cuda, "fabric.devices=[0, 0]"}), "repeated");
  EXPECT_CONTAINS(error_of(contract(), {"fabric.devices={a: 1}"}), "fabric.devices: expected integer, list of integers or string");
}

// YAML allows a list or a mapping as a key; no config key is one. yaml-cpp's conversion threw (exit
// 1 from fabric-train): now a config error at the key, naming the mapping it is in.
TEST_F(TrainConfigTest, KeysThatAreListsOrMappingsAreErrorsAtTheKey) {
  EXPECT_CONTAINS(error_of("{a: 1}: x\n"), "cfg.yaml:1:1: a key must be a name, got a mapping");
  EXPECT_CONTAINS(error_of("? [a, b]\n: 1\n"), "cfg.yaml:1:3: a key must be a name, got a list");
  EXPECT_CONTAINS(error_of("trainer:\n  max_steps: 1\n  ? [a, b]\n  : 1\n"),
                  "cfg.yaml:3:5: trainer: a key must be a name, got a list");
  EXPECT_CONTAINS(error_of("model: {name: mlp, {a: 1}: 2}\n"), "cfg.yaml:1:20: model: a key must be a name, got a mapping");
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: deepspeed");
  EXPECT_CONTAINS(error_of(yaml + "deepspeed:\n  ? [x]\n  : 1\n"), "cfg.yaml:10:5: deepspeed: a key must be a name, got a list");
  EXPECT_CONTAINS(error_of(yaml + "deepspeed:\n  fp16:\n    {a: 1}: 2\n"),
                  "cfg.yaml:11:5: deepspeed.fp16: a key must be a name, got a mapping");
  EXPECT_CONTAINS(error_of(yaml, {"deepspeed.fp16={[a]: 1}"}),
                  "--set deepspeed.fp16: a key must be a name, got a list");
  // Inside a value DeepSpeed's config reads as JSON too.
  EXPECT_CONTAINS(error_of(yaml + "deepspeed:\n  fp16: {enabled: true, loss_scale: {? [a]: 1}}\n"),
                  "cfg.yaml:10:40: deepspeed.fp16.loss_scale: a key must be a name, got a list");
  EXPECT_CONTAINS(error_of(yaml + "deepspeed:\n  gradient_clipping: [1, {{a: 1}: 2}]\n"),
                  "cfg.yaml:10:27: deepspeed.gradient_clipping: a key must be a name, got a mapping");
  EXPECT_CONTAINS(error_of(yaml, {"deepspeed.gradient_clipping={x: {[a]: 1}}"}),
                  "--set deepspeed.gradient_clipping: deepspeed.gradient_clipping.x: a key must be a name, got a list");
}

// A device or node count far past any machine is refused at the key (a huge count allocated a
// list of ids, 10^12 of them did not fit in memory; num_nodes wrapped when narrowed to int).
TEST_F(TrainConfigTest, HugeDeviceAndNodeCountsAreRefusedAtTheKey) {
  for (const char* bad : {"fabric.devices=1000000000000", "fabric.devices=4294967297", "fabric.devices=65537"})
    EXPECT_CONTAINS(error_of(contract(), {bad}), "--set fabric.devices: devices='") << bad;
  EXPECT_CONTAINS(error_of(contract(), {"fabric.devices=1000000000000"}), "too many devices");
  EXPECT_CONTAINS(error_of(contract(), {"fabric.accelerator=cuda", "fabric.devices=0,4294967296"}), "index 4294967296 is too large");
  EXPECT_CONTAINS(error_of(contract(), {"fabric.accelerator=cuda", "fabric.devices=[0, 65536]"}), "index 65536 is too large");
  EXPECT_CONTAINS(error_of(contract(), {"fabric.accelerator=cuda", "fabric.devices=[4294967296]"}), "'4294967296' is not a device index");
  EXPECT_CONTAINS(error_of(contract(), {"fabric.num_nodes=4294967297"}),
                  "--set fabric.num_nodes: must be between 1 and 1048576, got 4294967297");
  EXPECT_EQ(parse_train_config(contract(), "cfg.yaml", {"fabric.num_nodes=1048576"}).fabric.num_nodes, 1048576);
  EXPECT_NO_THROW(parse_train_config(contract(), "cfg.yaml", {"fabric.accelerator=cuda", "fabric.devices=[0, 65535]"}));
}

// A config file that is not a regular file: a FIFO blocked the read, /dev/zero read forever, a
// directory read as an empty config. Refused before it is opened, as a missing file is.
TEST_F(TrainConfigTest, AConfigFileMustBeARegularFile) {
  EXPECT_CONTAINS(thrown<ConfigError>([&] { (void)load_train_config(dir_.string()); }),
                  dir_.string() + ": cannot read the config file: it is a directory, expected a regular file");
  EXPECT_CONTAINS(thrown<ConfigError>([] { (void)load_train_config("/dev/null"); }),
                  "/dev/null: cannot read the config file: it is a character device, expected a regular file");
  // A data file likewise (a directory only for images, a directory of IDX files).
  EXPECT_CONTAINS(error_of(contract(), {"data.path=" + dir_.string()}),
                  "--set data.path: '" + dir_.string() + "' is a directory, expected a regular file");
  EXPECT_CONTAINS(error_of(contract(), {"data.path=/dev/null"}), "data.path: '/dev/null' is a character device");
  EXPECT_CONTAINS(error_of(contract(), {"model.init=/dev/null"}), "model.init: '/dev/null' is a character device");
  EXPECT_NO_THROW(parse_train_config("model: {name: mlp, sizes: [784, 10]}\ndata: {kind: images, path: " + dir_.string() +
                                         "}\ntrainer: {max_steps: 1}\n",
                                     "cfg.yaml"));
}

// Every unknown key gets "did you mean" with a real key: a typo's correction, the key that
// contains it, the PyTorch spelling's counterpart, the same key in another section, or the nearest
// one followed by the list.
TEST_F(TrainConfigTest, UnknownKeysAlwaysSuggestARealKey) {
  const std::string schema = train_config_schema();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"trainer.max_step=3", "'max_steps'"},       {"trainer.epochs=3", "'max_epochs'"},
      {"optimizer.learning_rate=1", "'lr'"},       {"data.file=x", "'path'"},
      {"trainer.lr=1", "'optimizer.lr'"},          {"trainer.grad_clip=1", "'clip_grad_"},
      {"trainer.foo=1", "(keys of trainer: max_steps, "},
      {"foo.bar=1", "unknown section 'foo'"},      {"trainer2.max_steps=1", "'trainer'"}};
  for (const auto& [override_, expected] : cases) {
    const std::string e = error_of(contract(), {override_});
    EXPECT_CONTAINS(e, expected);
    const size_t at = e.find("did you mean '");
    ASSERT_NE(at, std::string::npos) << e;
    const size_t from = at + 14;
    const std::string named = e.substr(from, e.find('\'', from) - from);
    const std::string section = override_.substr(0, override_.find('.'));
    const bool is_key = schema.find("`" + named + "`") != std::string::npos ||
                        schema.find("`" + section + "." + named + "`") != std::string::npos;
    const bool is_section = schema.find("`" + named + ".") != std::string::npos;
    EXPECT_TRUE(is_key || is_section) << "'" << named << "' is not a real key: " << e;
  }
  // The same in the file, at the key.
  std::string yaml = contract();
  yaml.replace(yaml.find("max_steps: 5"), 12, "epochs: 5");
  const std::string e = error_of(yaml);
  EXPECT_CONTAINS(e, "cfg.yaml:7:");
  EXPECT_CONTAINS(e, "trainer.epochs: unknown key; did you mean 'max_epochs'?");
}

// An explicit null is the key's default, in the file and on --set; an unknown key stays an error.
TEST_F(TrainConfigTest, NullMeansTheDefault) {
  const TrainConfig c = parse_train_config(
      "model: {name: mlp, sizes: [4, 2], init: null}\ndata: {path: " + data_ +
          "}\nloss: ~\ntrainer: {max_steps: 3, max_epochs: null, seed: ~}\nfsdp:\nlogger:\n",
      "cfg.yaml", {"fabric.strategy=fsdp"});
  const TrainConfig defaults;
  EXPECT_EQ(c.model.init, "");
  EXPECT_EQ(c.loss, defaults.loss);
  EXPECT_EQ(c.trainer.max_epochs, -1);
  EXPECT_EQ(c.trainer.seed, defaults.trainer.seed);
  const TrainConfig o = parse_train_config(contract(), "cfg.yaml",
                                           {"trainer.max_steps=null", "trainer.max_epochs=2", "optimizer.momentum=~"});
  EXPECT_EQ(o.trainer.max_steps, -1) << "null puts back the default over the file's 5";
  EXPECT_EQ(o.optimizer.momentum, defaults.optimizer.momentum);
  EXPECT_CONTAINS(error_of(contract(), {"trainer.foo=null"}), "trainer.foo: unknown key");
  EXPECT_CONTAINS(error_of("model: {name: mlp, nonsense: null}\n"), "model.nonsense: unknown key");
  // Neither limit set: Lightning's 1000 epochs (test_fabric_train_cli_edges.cpp runs it).
  EXPECT_EQ(
      parse_train_config(contract(), "cfg.yaml", {"trainer.max_steps=null"}).trainer.max_epochs,
      1000);
}

// Numbers dump as YAML 1.1 floats (PyYAML reads 1e-08 as a string) in the shortest text that
// reads back to the same double, through our reader too.
TEST_F(TrainConfigTest, NumbersDumpAsFloatsThatReadBackExactly) {
  const std::regex yaml11_float(R"(^[-+]?([0-9][0-9_]*)?\.[0-9.]*([eE][-+][0-9]+)?$)");
  const std::regex yaml11_int(R"(^[-+]?(0|[1-9][0-9_]*)$)");
  const std::vector<std::pair<std::string, double>> numbers = {
      {"optimizer.lr", 0.1},          {"optimizer.eps", 1e-8},
      {"optimizer.weight_decay", 3e-4}, {"optimizer.momentum", 0.30000000000000004},
      {"scheduler.min_lr", 5e-324},   {"trainer.clip_grad_norm", 123456789.125},
      {"lora.alpha", 1e22},           {"scheduler.gamma", 2.0},
      {"lora.dropout", 0.0}};
  std::vector<std::string> overrides = {"optimizer.betas=[0.9, 0.999]"};
  for (const auto& [key, x] : numbers) {
    char text[64];
    std::snprintf(text, sizeof text, "%.17g", x);
    overrides.push_back(key + "=" + text);
  }
  const std::string dumped = dump_train_config(parse_train_config(contract(), "cfg.yaml", overrides));
  const TrainConfig back = parse_train_config(dumped, "dumped.yaml");
  const std::map<std::string, double> read_back = {
      {"optimizer.lr", back.optimizer.lr},          {"optimizer.eps", back.optimizer.eps.value()},
      {"optimizer.weight_decay", back.optimizer.weight_decay}, {"optimizer.momentum", back.optimizer.momentum},
      {"scheduler.min_lr", back.scheduler.min_lr},  {"trainer.clip_grad_norm", back.trainer.clip_grad_norm},
      {"lora.alpha", back.lora.alpha},              {"scheduler.gamma", back.scheduler.gamma},
      {"lora.dropout", back.lora.dropout}};
  for (const auto& [key, x] : numbers) {
    const std::string text = dumped_value(dumped, key);
    EXPECT_TRUE(std::regex_match(text, yaml11_float)) << key << ": " << text;
    EXPECT_EQ(std::bit_cast<uint64_t>(read_back.at(key)), std::bit_cast<uint64_t>(x)) << key << ": " << text;
  }
  EXPECT_EQ(dumped_value(dumped, "optimizer.eps"), "1.0e-08");
  EXPECT_EQ(dumped_value(dumped, "optimizer.lr"), "0.1");
  EXPECT_EQ(dumped_value(dumped, "optimizer.betas"), "[0.9, 0.999]");
  EXPECT_EQ(back.optimizer.betas, (std::vector<double>{0.9, 0.999}));
  for (const char* key : {"max_steps", "max_epochs", "batch_size"})
    EXPECT_TRUE(std::regex_match(dumped_value(dumped, std::string("trainer.") + key), yaml11_int)) << key;
  // The deepspeed section's numbers too.
  const std::string ds = dump_train_config(parse_train_config(
      contract(), "cfg.yaml",
      {"fabric.strategy=deepspeed", "fabric.precision=null", "deepspeed.fp16.enabled=true",
       "deepspeed.fp16.min_loss_scale=1e-5", "deepspeed.gradient_clipping=0.5"}));
  EXPECT_EQ(dumped_value(ds, "deepspeed.fp16.min_loss_scale"), "1.0e-05") << ds;
  EXPECT_EQ(dumped_value(ds, "deepspeed.gradient_clipping"), "0.5") << ds;
  EXPECT_EQ(dump_train_config(parse_train_config(ds, "dumped.yaml")), ds);
}

// --set deepspeed.<key>=value merges into the section before it is parsed, with the file's checks,
// and names the --set in errors.
// String values a YAML 1.1 reader (PyYAML) would take for a bool, null or number are written
// quoted, so that config.yaml reads back as strings there too; ours reads them back unchanged.
TEST_F(TrainConfigTest, StringsThatLookLikeOtherTypesDumpQuoted) {
  const std::string dumped = dump_train_config(parse_train_config(
      contract(), "cfg.yaml", {"trainer.run_dir='123'", "trainer.sample_prompt='Yes'"}));
  EXPECT_EQ(dumped_value(dumped, "trainer.run_dir"), "\"123\"");
  EXPECT_EQ(dumped_value(dumped, "trainer.sample_prompt"), "\"Yes\"");
  EXPECT_EQ(dumped_value(dumped, "fabric.precision"), "32-true");  // plain strings stay plain
  const TrainConfig back = parse_train_config(dumped, "dumped.yaml");
  EXPECT_EQ(back.trainer.run_dir, "123");
  const std::string off = dump_train_config(parse_train_config(contract(), "cfg.yaml", {"trainer.run_dir='off'"}));
  EXPECT_EQ(dumped_value(off, "trainer.run_dir"), "\"off\"");
  EXPECT_EQ(parse_train_config(off, "dumped.yaml").trainer.run_dir, "off");
  EXPECT_EQ(back.trainer.sample_prompt, "Yes");
}

// min_loss_scale 0 is DeepSpeed's "no floor" (real configs use it); values the scaler cannot take
// are refused naming their key and the --set that gave it, not the section's first --set.
TEST_F(TrainConfigTest, DeepSpeedLossScaleKeysAreCheckedByName) {
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: deepspeed");
  yaml.replace(yaml.find(", precision: 32-true"), 20, "");
  const TrainConfig c =
      parse_train_config(yaml, "cfg.yaml",
                         {"deepspeed.fp16.enabled=true", "deepspeed.fp16.loss_scale=0",
                          "deepspeed.fp16.min_loss_scale=0"});
  EXPECT_CONTAINS(c.deepspeed, "\"min_loss_scale\":0");
  for (const auto& [set, message] :
       {std::pair<std::string, std::string>{"deepspeed.fp16.hysteresis=0",
                                            "fp16.hysteresis must be >= 1, got 0"},
        {"deepspeed.fp16.loss_scale_window=0", "fp16.loss_scale_window must be >= 1, got 0"},
        {"deepspeed.fp16.min_loss_scale=-1", "fp16.min_loss_scale must be finite and >= 0"}}) {
    const std::string msg = thrown<ConfigError>([&] {
      parse_train_config(yaml, "cfg.yaml",
                         {"deepspeed.gradient_clipping=1.0", "deepspeed.fp16.enabled=true", set});
    });
    EXPECT_CONTAINS(msg, "--set " + set.substr(0, set.find('=')) + ":");
    EXPECT_CONTAINS(msg, message);
  }
}

TEST_F(TrainConfigTest, DeepSpeedKeysCanBeOverridden) {
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: deepspeed");
  yaml.replace(yaml.find(", precision: 32-true"), 20, "");
  const TrainConfig c = parse_train_config(yaml, "cfg.yaml",
                                           {"deepspeed.zero_optimization.stage=2", "deepspeed.bf16.enabled=true",
                                            "deepspeed.train_micro_batch_size_per_gpu=8", "trainer.batch_size=null"});
  EXPECT_CONTAINS(c.deepspeed, "\"stage\":2");
  EXPECT_EQ(c.fabric.precision, "bf16-mixed");
  EXPECT_EQ(c.trainer.batch_size, 8);
  // Over the file's section: the key is replaced, the rest kept; null removes a key or block.
  const std::string with_section = yaml + "deepspeed:\n  zero_optimization: {stage: 1}\n  fp16: {enabled: true}\n  gradient_clipping: 0.5\n";
  const TrainConfig o = parse_train_config(with_section, "cfg.yaml", {"deepspeed.zero_optimization.stage=3", "deepspeed.fp16=null"});
  EXPECT_CONTAINS(o.deepspeed, "\"stage\":3");
  EXPECT_CONTAINS(o.deepspeed, "gradient_clipping");
  EXPECT_EQ(o.deepspeed.find("fp16"), std::string::npos) << o.deepspeed;
  EXPECT_EQ(o.fabric.precision, "32-true");
  EXPECT_CONTAINS(parse_train_config(with_section, "cfg.yaml", {"deepspeed.fp16={enabled: true, initial_scale_power: 8}"}).deepspeed,
                  "\"initial_scale_power\":8");
  // Errors name the --set and the key.
  std::string e = error_of(yaml, {"deepspeed.fp16.enabled=maybe"});
  EXPECT_CONTAINS(e, "--set deepspeed.fp16.enabled: DeepSpeed config: ");
  EXPECT_CONTAINS(e, "must be true or false");
  e = error_of(yaml, {"deepspeed.zero_optimization.stag=2"});
  EXPECT_CONTAINS(e, "deepspeed.zero_optimization.stag: unknown key; did you mean 'stage'?");
  EXPECT_CONTAINS(error_of(yaml, {"deepspeed.fp17.enabled=true"}), "deepspeed.fp17: unknown key; did you mean 'fp16'?");
  EXPECT_CONTAINS(error_of(contract(), {"deepspeed.bf16.enabled=true"}), "a deepspeed section needs fabric.strategy deepspeed");
  EXPECT_CONTAINS(error_of(with_section, {"deepspeed.bf16.enabled=true"}), "fp16 and bf16 are both enabled");
  // A bad value in the file is reported at its place.
  e = error_of(yaml + "deepspeed:\n  fp16: {enabled: true, hysteresis: x}\n");
  EXPECT_CONTAINS(e, "cfg.yaml:10:");
  EXPECT_CONTAINS(e, "deepspeed.fp16.hysteresis:");
}

// DeepSpeed's stage 0 (no sharding) has no strategy here (ZeroStrategy runs 1 and 2, FSDPStrategy
// 3): refused with the config, not when the strategy is built.
TEST_F(TrainConfigTest, DeepSpeedStageZeroIsRefusedAtTheKey) {
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: deepspeed");
  std::string e = error_of(yaml + "deepspeed:\n  zero_optimization: {stage: 0}\n");
  EXPECT_CONTAINS(e, "cfg.yaml:10:23: deepspeed.zero_optimization.stage: stage 0");
  EXPECT_CONTAINS(e, "1 (optimizer state), 2 (and gradients) or 3");
  EXPECT_CONTAINS(error_of(yaml, {"deepspeed.zero_optimization.stage=0"}), "--set deepspeed.zero_optimization.stage");
  for (const char* stage : {"1", "2", "3"})
    EXPECT_NO_THROW(parse_train_config(yaml, "cfg.yaml", {std::string("deepspeed.zero_optimization.stage=") + stage}));
}

// An fp16 block that is not enabled under a float16 precision: its loss-scale keys would be
// dropped (the run took the default dynamic scaler), so giving them is refused at the block's
// enabled; enabled true or "auto" uses them, and a block without them is fine.
TEST_F(TrainConfigTest, DeepSpeedLossScaleKeysOfABlockNotEnabledAreRefused) {
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: deepspeed");
  yaml.replace(yaml.find("precision: 32-true"), 18, "precision: 16-mixed");
  for (const char* block : {"fp16: {loss_scale: 128}", "fp16: {enabled: false, hysteresis: 3}"}) {
    const std::string e = error_of(yaml + "deepspeed:\n  " + block + "\n");
    EXPECT_CONTAINS(
        e,
        "deepspeed.fp16.enabled: the fp16 block's loss-scale keys apply only when it is enabled");
    EXPECT_CONTAINS(e, "while fabric.precision is 16-mixed");
  }
  EXPECT_CONTAINS(error_of(yaml, {"deepspeed.fp16.loss_scale=128"}),
                  "deepspeed.fp16.enabled: the fp16 block's");
  for (const char* block : {"fp16: {enabled: true, loss_scale: 128}",
                            "fp16: {enabled: auto, loss_scale: 128}", "fp16: {enabled: false}"})
    EXPECT_NO_THROW(parse_train_config(yaml + "deepspeed:\n  " + block + "\n", "cfg.yaml"))
        << block;
  std::string fp32 = yaml;
  fp32.replace(fp32.find("precision: 16-mixed"), 19, "precision: 32-true");
  EXPECT_NO_THROW(parse_train_config(
      fp32 + "deepspeed:\n  fp16: {enabled: false, loss_scale: 128}\n", "cfg.yaml"));
}

// deepspeed.gradient_clipping clips in the optimizer step: a trainer clip as well would clip the
// same gradients twice, so giving both is refused at the trainer key.
TEST_F(TrainConfigTest, DeepSpeedGradientClippingAndATrainerClipAreOneTooMany) {
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: deepspeed");
  yaml += "deepspeed:\n  gradient_clipping: 1.0\n";
  for (const char* key : {"trainer.clip_grad_norm", "trainer.clip_grad_val"})
    EXPECT_CONTAINS(error_of(yaml, {std::string(key) + "=0.5"}),
                    "--set " + std::string(key) +
                        ": deepspeed.gradient_clipping (1.0) clips these gradients already");
  EXPECT_NO_THROW(parse_train_config(yaml, "cfg.yaml"));
}

// A deepspeed section in the file with fabric.strategy changed on the command line (resuming a
// ZeRO run under ddp): the section is dropped with a warning, not refused.
TEST_F(TrainConfigTest, CommandLineStrategyDropsTheFilesDeepSpeedSection) {
  std::string yaml = contract();
  yaml.replace(yaml.find("strategy: auto"), 14, "strategy: deepspeed");
  yaml += "deepspeed:\n  zero_optimization: {stage: 2}\n";
  const TrainConfig c = parse_train_config(yaml, "cfg.yaml", {"fabric.strategy=ddp"});
  EXPECT_TRUE(c.deepspeed.empty());
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_CONTAINS(c.warnings[0], "cfg.yaml:9:1: the deepspeed section is ignored: fabric.strategy 'ddp'");
  EXPECT_EQ(dump_train_config(c).find("deepspeed:"), std::string::npos);
  // Written in the same file, or set on the command line too: still a contradiction.
  std::string ddp = yaml;
  ddp.replace(ddp.find("strategy: deepspeed"), 19, "strategy: ddp");
  EXPECT_CONTAINS(error_of(ddp), "a deepspeed section needs fabric.strategy deepspeed");
  EXPECT_CONTAINS(error_of(yaml, {"fabric.strategy=ddp", "deepspeed.bf16.enabled=true"}),
                  "a deepspeed section needs fabric.strategy deepspeed");
  EXPECT_TRUE(parse_train_config(yaml, "cfg.yaml").warnings.empty());
}

// README's key table is `fabric-train schema`'s, row for row.
// model.activation takes every name nn::make_activation knows (torch's lower-case ones too).
TEST_F(TrainConfigTest, ModelActivationTakesEveryActivationName) {
  for (const char* name :
       {"relu", "gelu", "gelu_tanh", "tanh", "silu", "sigmoid", "leaky_relu", "elu", "selu", "celu",
        "softplus", "hardtanh", "relu6", "mish", "hardswish", "hardsigmoid"}) {
    const TrainConfig c =
        parse_train_config(contract(), "cfg.yaml", {std::string("model.activation=") + name});
    EXPECT_EQ(c.model.activation, name);
  }
  EXPECT_NE(error_of(contract(), {"model.activation=swish"}).find("model.activation"),
            std::string::npos);
}

// A key several optimizers or schedulers share takes, when not given, the named one's PyTorch
// default (its own when the two agree), writes it to config.yaml, and a given value wins.
TEST_F(TrainConfigTest, SharedKeysNotGivenTakeTheNamedOnesDefault) {
  const struct {
    std::vector<std::string> name;  // the overrides naming the optimizer or scheduler
    const char* key;
    std::string not_given, given;  // config.yaml's value: the default, and a given one's
  } cases[] = {
      {{"optimizer.name=rmsprop"}, "optimizer.alpha", "0.99", "0.5"},
      {{"optimizer.name=asgd"}, "optimizer.alpha", "0.75", "0.5"},
      {{"scheduler.name=exponential"}, "scheduler.gamma", "0.1", "0.5"},
      {{"scheduler.name=cyclic", "scheduler.max_lr=1"}, "scheduler.gamma", "1.0", "0.5"},
      {{"scheduler.name=onecycle"}, "scheduler.base_momentum", "0.85", "0.5"},
      {{"scheduler.name=cyclic", "scheduler.max_lr=1"}, "scheduler.base_momentum", "0.8", "0.5"},
      {{"scheduler.name=onecycle"}, "scheduler.max_momentum", "0.95", "0.5"},
      {{"scheduler.name=cyclic", "scheduler.max_lr=1"}, "scheduler.max_momentum", "0.9", "0.5"},
      {{"scheduler.name=constant"}, "scheduler.mode", "min", "max"},
      {{"scheduler.name=cyclic", "scheduler.max_lr=1"},
       "scheduler.mode",
       "triangular",
       "exp_range"},
  };
  for (const auto& c : cases) {
    const std::string what = c.name[0] + " " + c.key;
    EXPECT_EQ(
        dumped_value(dump_train_config(parse_train_config(contract(), "cfg.yaml", c.name)), c.key),
        c.not_given)
        << what;
    std::vector<std::string> with = c.name;
    with.push_back(std::string(c.key) + "=" + c.given);
    EXPECT_EQ(
        dumped_value(dump_train_config(parse_train_config(contract(), "cfg.yaml", with)), c.key),
        c.given)
        << what;
    // The dumped config reads back to itself.
    const std::string dumped =
        dump_train_config(parse_train_config(contract(), "cfg.yaml", c.name));
    EXPECT_EQ(dump_train_config(parse_train_config(dumped, "config.yaml")), dumped) << what;
  }
}

TEST_F(TrainConfigTest, ReadmeKeyTableIsTheSchema) {
  std::ifstream in(std::string(FABRIC_TEST_DATA_DIR) + "/../../../README.md");
  ASSERT_TRUE(in) << "README.md not found from " << FABRIC_TEST_DATA_DIR;
  std::string table, line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == "| key | type | default | meaning |") inside = true;
    if (inside && line.empty()) break;
    if (inside) table += line + "\n";
  }
  EXPECT_EQ(table, train_config_schema());
}

}  // namespace
}  // namespace fabric
