// fabric-train under Lightning's LT_* variables (as `fabric run` sets them), through the binary:
// what runs is what config.yaml, validate and --print-config say, a conflict with the config is a
// config error, and a resume of such a run runs as it was fit.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

class LightningEnvironment : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_lt_env");
    if (IsSkipped()) return;
    // With two GPT blocks, so that the FSDP units show in the shards.
    cfg_ = write_tiny_gpt_config("run");
    std::string text = slurp(cfg_);
    const size_t at = text.find("n_layer: 1");
    ASSERT_NE(at, std::string::npos) << text;
    std::ofstream(cfg_) << text.replace(at, 10, "n_layer: 2");
  }
  // The ranks of the pieces of `tensor` in a sharded checkpoint's meta.json, e.g. "[0]".
  static std::string piece_ranks(const std::string& meta, const std::string& tensor) {
    const size_t at = meta.find("\"" + tensor + "\"");
    if (at == std::string::npos) return "missing";
    const size_t end = meta.find("\"shape\"", at);
    std::string ranks;
    for (size_t r = meta.find("\"rank\":", at); r < end; r = meta.find("\"rank\":", r + 1))
      for (size_t c = r + 7; c < meta.size() && meta[c] != ',' && meta[c] != '}'; ++c)
        if (!std::isspace(static_cast<unsigned char>(meta[c]))) ranks += meta[c];
    return ranks;
  }
  static constexpr const char* kFsdpOverTwo = "env LT_STRATEGY=fsdp LT_DEVICES=2 timeout 60";
};

// LT_STRATEGY=fsdp LT_DEVICES=2 on a config that leaves the fabric section at its defaults: FSDP
// over two processes with the config's fsdp defaults (the GPT's Block units: each block's flat
// parameter is split over both ranks, so block 1 starts on rank 0, where one unit of the whole
// model puts all of it on rank 1), recorded in config.yaml, from which a resume without the
// variables runs the same way.
TEST_F(LightningEnvironment, FsdpFromTheEnvironmentIsTheConfigs) {
  const Result r = run("fit " + cfg_, kFsdpOverTwo);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("fsdp over 2 processes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("fabric-train: from the environment: fabric.strategy=fsdp (LT_STRATEGY), "
                          "fabric.devices=2 (LT_DEVICES)"),
            std::string::npos)
      << r.output;
  const fs::path run_dir = dir_ / "run";
  const std::string config = slurp(run_dir / "config.yaml");
  EXPECT_NE(config.find("strategy: fsdp\n  devices: 2\n"), std::string::npos) << config;
  EXPECT_NE(config.find("auto_wrap_policy: [Block]"), std::string::npos) << config;
  const std::string meta = slurp(run_dir / "checkpoints/last/meta.json");
  ASSERT_TRUE(fs::exists(run_dir / "checkpoints/last/rank-1-of-2.safetensors"));
  EXPECT_EQ(piece_ranks(meta, "transformer.h.1.attn.c_attn.weight"), "0") << meta;
  EXPECT_EQ(piece_ranks(meta, "transformer.h.1.mlp.c_proj.weight"), "1") << meta;

  // Resumed without the variables: config.yaml's fsdp over two processes, on the sharded
  // checkpoint.
  const Result resumed =
      run("resume " + run_dir.string() + " --set trainer.max_steps=3", "timeout 60");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("fsdp over 2 processes (resuming at step 2)"), std::string::npos)
      << resumed.output;
  // With them, they agree with config.yaml; with another strategy they conflict, and the run stays.
  EXPECT_EQ(run("resume " + run_dir.string() + " --set trainer.max_steps=4", kFsdpOverTwo).status,
            0);
  const std::string before = slurp(run_dir / "metrics.csv");
  const Result ddp =
      run("resume " + run_dir.string() + " --set trainer.max_steps=5", "env LT_STRATEGY=ddp");
  EXPECT_EQ(ddp.status, 2) << ddp.output;
  EXPECT_NE(
      ddp.output.find(
          "fabric.strategy: the config has 'fsdp' but it conflicts with the value LT_STRATEGY=ddp"),
      std::string::npos)
      << ddp.output;
  EXPECT_EQ(slurp(run_dir / "metrics.csv"), before);
  // A damaged rank file (rank 0's pieces in rank 1's place): a damaged checkpoint on both
  // processes (exit 1, rank 1 naming the missing piece), not a config error on rank 0, whose load
  // failed only because its peer left.
  fs::copy_file(run_dir / "checkpoints/last/rank-0-of-2.safetensors",
                run_dir / "checkpoints/last/rank-1-of-2.safetensors",
                fs::copy_options::overwrite_existing);
  const Result damaged =
      run("resume " + run_dir.string() + " --set trainer.max_steps=5", "timeout 60");
  EXPECT_EQ(damaged.status, 1) << damaged.output;
  EXPECT_NE(damaged.output.find("rank-1-of-2.safetensors lacks the piece"), std::string::npos)
      << damaged.output;
  EXPECT_EQ(damaged.output.find("config error"), std::string::npos) << damaged.output;
  EXPECT_EQ(slurp(run_dir / "metrics.csv"), before);
}

// A config (or --set) value that disagrees with a variable is a config error naming the key, both
// values and the variable, and writes nothing; an agreeing one (in another spelling: bf16 is
// bf16-mixed) is fine, also under LT_CLI_USED=1, where the connector compares the config's value
// with the variable's as they are written. validate and --print-config show the folded values.
TEST_F(LightningEnvironment, ConflictsAgreementAndWhatValidateShows) {
  const Result conflict =
      run("fit " + cfg_ + " --set fabric.strategy=ddp fabric.devices=2", kFsdpOverTwo);
  EXPECT_EQ(conflict.status, 2) << conflict.output;
  EXPECT_NE(conflict.output.find(
                "--set fabric.strategy: the config has 'ddp' but it conflicts "
                "with the value LT_STRATEGY=fsdp set in the environment"),
            std::string::npos)
      << conflict.output;
  EXPECT_FALSE(fs::exists(dir_ / "run"));

  const Result agree =
      run("validate " + cfg_ + " --set fabric.precision=bf16-mixed fabric.devices=2",
          "env LT_CLI_USED=1 LT_PRECISION=bf16 LT_DEVICES=2 LT_STRATEGY=fsdp");
  ASSERT_EQ(agree.status, 0) << agree.output;
  EXPECT_NE(agree.output.find(
                "  strategy: fsdp\n  devices: 2\n  num_nodes: 1\n  precision: bf16-mixed\n"),
            std::string::npos)
      << agree.output;
  EXPECT_NE(agree.output.find("from the environment: fabric.strategy=fsdp (LT_STRATEGY)\n"),
            std::string::npos)
      << agree.output;

  const Result printed =
      run("fit " + cfg_ + " --print-config --set fsdp.state_dict_type=full", kFsdpOverTwo);
  ASSERT_EQ(printed.status, 0) << printed.output;
  EXPECT_NE(printed.output.find("strategy: fsdp\n  devices: 2\n"), std::string::npos)
      << printed.output;
  EXPECT_NE(printed.output.find("state_dict_type: full"), std::string::npos) << printed.output;
  EXPECT_FALSE(fs::exists(dir_ / "run"));

  // A run under LT_CLI_USED=1 with the legacy bf16: the config's bf16-mixed is what the connector
  // then sees in LT_PRECISION too, not a conflict with the variable as it was written.
  const Result cli =
      run("fit " + cfg_ + " --set trainer.max_steps=1", "env LT_CLI_USED=1 LT_PRECISION=bf16");
  ASSERT_EQ(cli.status, 0) << cli.output;
  EXPECT_NE(cli.output.find("precision bf16-mixed"), std::string::npos) << cli.output;
  EXPECT_NE(slurp(dir_ / "run/config.yaml").find("precision: bf16-mixed"), std::string::npos);
}

}  // namespace
}  // namespace fabric
