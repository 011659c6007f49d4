// The fabric section's precision-plugin blocks (fabric.scaler, fabric.transformer_engine,
// fabric.bitsandbytes): parsed as nested mappings or dotted --set keys, checked at the key, written
// back nested only under a precision that uses them, and turned into the plugin
// (precision_plugin_for) that fit, validate, sample and export build.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "precision/bitsandbytes_precision.h"
#include "precision/fsdp_precision.h"
#include "precision/grad_scaler.h"
#include "precision/mixed_precision.h"
#include "precision/transformer_engine_precision.h"
#include "runtime/train_config.h"
#include "runtime/train_precision_plugin.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class TrainConfigPlugins : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_config_plugins_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    data_ = (dir_ / "data.safetensors").string();
    std::ofstream(data_) << "x";  // existence is all the config checks
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A config whose fabric section holds `fabric` (YAML block lines, indented by two).
  std::string config(const std::string& fabric) const {
    return "fabric:\n" + fabric + "model: {name: mlp, sizes: [4, 2]}\ndata: {path: " + data_ +
           "}\ntrainer: {max_steps: 1}\n";
  }
  TrainConfig parse(const std::string& yaml, const std::vector<std::string>& sets = {}) const {
    return parse_train_config(yaml, "cfg.yaml", sets);
  }
  std::string error_of(const std::string& yaml, const std::vector<std::string>& sets = {}) const {
    return thrown<ConfigError>([&] { parse(yaml, sets); });
  }
  fs::path dir_;
  std::string data_;
};

TEST_F(TrainConfigPlugins, ScalerBlockParsesNestedAndDotted) {
  const TrainConfig c =
      parse(config("  precision: 16-mixed\n  scaler: {init_scale: 1024, growth_interval: 3}\n"));
  EXPECT_EQ(c.fabric.scaler.init_scale, 1024.0);
  EXPECT_EQ(c.fabric.scaler.growth_interval, 3);
  EXPECT_EQ(c.fabric.scaler.growth_factor, 2.0);  // the GradScaler's default
  // A dotted --set key overrides one key; a --set of the block merges its keys over the file's.
  const TrainConfig d =
      parse(config("  precision: 16-mixed\n  scaler: {init_scale: 1024, growth_interval: 3}\n"),
            {"fabric.scaler.init_scale=8", "fabric.scaler={backoff_factor: 0.25}"});
  EXPECT_EQ(d.fabric.scaler.init_scale, 8.0);
  EXPECT_EQ(d.fabric.scaler.backoff_factor, 0.25);
  EXPECT_EQ(d.fabric.scaler.growth_interval, 3);
  // A null block is its defaults, over what the file gave.
  const TrainConfig e = parse(config("  precision: 16-mixed\n  scaler: {init_scale: 1024}\n"),
                              {"fabric.scaler=null"});
  EXPECT_EQ(e.fabric.scaler.init_scale, 65536.0);
}

// A dotted key in the file is that key (as on a --set), not a block; list entries dump quoted where
// PyYAML would read them as another type.
TEST_F(TrainConfigPlugins, DottedKeysInTheFileAndQuotedListEntries) {
  const TrainConfig c = parse(config("  precision: 16-mixed\n  scaler.init_scale: 8\n"));
  EXPECT_EQ(c.fabric.scaler.init_scale, 8.0);
  const TrainConfig b =
      parse(config("  precision: nf4\n  bitsandbytes: {ignore_modules: ['0', 'true', head]}\n"));
  const std::string dumped = dump_train_config(b);
  EXPECT_NE(dumped.find("ignore_modules: [\"0\", \"true\", head]"), std::string::npos) << dumped;
  EXPECT_EQ(parse(dumped).fabric.bitsandbytes.ignore_modules,
            (std::vector<std::string>{"0", "true", "head"}));
}

TEST_F(TrainConfigPlugins, BadValuesAreErrorsAtTheKey) {
  const std::string base = config("  precision: 16-mixed\n");
  struct Case {
    std::string set, message;
  };
  const std::vector<Case> cases = {
      {"fabric.scaler.init_scale=0", "--set fabric.scaler.init_scale: must be > 0"},
      {"fabric.scaler.init_scale=-1",
       "--set fabric.scaler.init_scale: must be > 0 and within float32's range"},
      {"fabric.scaler.init_scale=1e39",
       "--set fabric.scaler.init_scale: must be > 0 and within float32's range"},
      {"fabric.scaler.init_scale=1e-50",
       "--set fabric.scaler.init_scale: must be > 0 and within float32's range"},
      {"fabric.transformer_engine.amax_history_len=100000000000", "must be between 1 and 1000000"},
      {"fabric.scaler.growth_factor=1", "--set fabric.scaler.growth_factor: must be > 1"},
      {"fabric.scaler.backoff_factor=1", "--set fabric.scaler.backoff_factor: must be in (0, 1)"},
      {"fabric.scaler.growth_interval=0",
       "--set fabric.scaler.growth_interval: must be >= 1, got 0"},
      {"fabric.scaler.enabled=maybe", "--set fabric.scaler.enabled: expected bool"},
      {"fabric.scaler.init_scal=2", "unknown key; did you mean 'scaler.init_scale'?"},
      {"fabric.scaler=5",
       "--set fabric.scaler: expected a mapping of the plugin's options (init_scale, "
       "growth_factor"},
      {"fabric.transformer_engine.margin=127", "must be between -126 and 126, got 127"},
      {"fabric.transformer_engine.fp8_format=E5M2", "'E5M2' is not one of: HYBRID, E4M3"},
      {"fabric.transformer_engine.amax_history_len=0", "must be between 1 and 1000000, got 0"},
      {"fabric.transformer_engine.amax_compute_algo=mean",
       "'mean' is not one of: max, most_recent"},
      {"fabric.bitsandbytes.dtype=int8", "'int8' is not one of: float32, bfloat16, float16"},
      {"fabric.bitsandbytes.ignore_modules=lm_head", "expected list of strings, got 'lm_head'"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.set);
    EXPECT_NE(error_of(base, {k.set}).find(k.message), std::string::npos)
        << error_of(base, {k.set});
  }
  // In the file: file:line:col of the key.
  const std::string e =
      error_of(config("  precision: 16-mixed\n  scaler:\n    growth_factor: 0.5\n"));
  EXPECT_NE(e.find("cfg.yaml:4:5: fabric.scaler.growth_factor: must be > 1 (the scale grows by "
                   "it), got 0.5"),
            std::string::npos)
      << e;
  // int8 computes in float16 only.
  const std::string i = error_of(config("  precision: int8\n  bitsandbytes: {dtype: bfloat16}\n"));
  EXPECT_NE(i.find("fabric.bitsandbytes.dtype: int8 computes in float16 only"), std::string::npos)
      << i;
}

// A block the precision's plugin does not read is said and dropped (a resume under another
// precision still reads its run's config); under DeepSpeed the scaler is DeepSpeed's own.
TEST_F(TrainConfigPlugins, ABlockOfAnotherPrecisionIsSaidAndDropped) {
  const TrainConfig c = parse(config("  precision: bf16-mixed\n  scaler: {init_scale: 1024}\n"));
  EXPECT_EQ(c.fabric.scaler.init_scale, 65536.0);
  ASSERT_FALSE(c.warnings.empty());
  EXPECT_NE(c.warnings.back().find(
                "cfg.yaml:3:3: fabric.scaler is not used: it configures MixedPrecision's "
                "GradScaler (fabric.precision 16-mixed), and fabric.precision is bf16-mixed"),
            std::string::npos)
      << c.warnings.back();
  EXPECT_EQ(dump_train_config(c).find("scaler"), std::string::npos);
  const std::string e = error_of(
      config("  precision: 16-mixed\n  strategy: deepspeed\n  scaler: {init_scale: 1024}\n"));
  EXPECT_NE(e.find("cfg.yaml:4:3: fabric.scaler: under fabric.strategy deepspeed the loss scaler "
                   "is DeepSpeed's: "
                   "set deepspeed.fp16.initial_scale_power"),
            std::string::npos)
      << e;
}

// The dump writes the block of the precision in use, nested and with its defaults, and reads back
// to the same config.
TEST_F(TrainConfigPlugins, DumpNestsTheBlockOfThePrecisionAndReadsBack) {
  const TrainConfig c =
      parse(config("  precision: transformer-engine\n  transformer_engine: {margin: 2, "
                   "fp8_format: E4M3, replace_layers: false}\n"));
  const std::string dumped = dump_train_config(c);
  EXPECT_NE(
      dumped.find(
          "  precision: transformer-engine\n  transformer_engine:\n    fp8_format: E4M3\n    "
          "margin: 2\n"
          "    amax_history_len: 1024\n    amax_compute_algo: max\n    replace_layers: false\n"),
      std::string::npos)
      << dumped;
  EXPECT_EQ(dumped.find("fallback_compute_dtype"),
            std::string::npos);  // not given: the weights' dtype
  EXPECT_EQ(dumped.find("scaler"), std::string::npos);
  EXPECT_EQ(dumped.find("bitsandbytes"), std::string::npos);
  const TrainConfig back = parse(dumped);
  EXPECT_EQ(back.fabric.transformer_engine, c.fabric.transformer_engine);
  const TrainConfig b =
      parse(config("  precision: nf4\n  bitsandbytes: {ignore_modules: [lm_head, head]}\n"));
  EXPECT_NE(dump_train_config(b).find("  bitsandbytes:\n    ignore_modules: [lm_head, head]\n"),
            std::string::npos)
      << dump_train_config(b);
  EXPECT_EQ(parse(dump_train_config(b)).fabric.bitsandbytes, b.fabric.bitsandbytes);
  // The schema documents every key of the blocks.
  const std::string schema = train_config_schema();
  for (const char* key :
       {"fabric.scaler.init_scale", "fabric.scaler.enabled", "fabric.transformer_engine.margin",
        "fabric.transformer_engine.fallback_compute_dtype", "fabric.bitsandbytes.ignore_modules"})
    EXPECT_NE(schema.find(std::string("| `") + key + "` |"), std::string::npos) << key;
}

TEST_F(TrainConfigPlugins, ThePluginCarriesTheOptions) {
  // Defaults: no plugin of its own (the precision string builds it, with the strategy's choice).
  EXPECT_EQ(precision_plugin_for(parse(config("  precision: 16-mixed\n")), DeviceType::cpu),
            nullptr);
  EXPECT_EQ(precision_plugin_for(parse(config("  precision: nf4\n")), DeviceType::cpu), nullptr);

  const TrainConfig s =
      parse(config("  precision: 16-mixed\n  scaler: {init_scale: 256, growth_factor: 4, "
                   "backoff_factor: 0.25, growth_interval: 7}\n"));
  auto plugin = precision_plugin_for(s, DeviceType::cpu);
  auto* mixed = dynamic_cast<precision::MixedPrecision*>(plugin.get());
  ASSERT_NE(mixed, nullptr);
  ASSERT_NE(mixed->scaler(), nullptr);
  EXPECT_EQ(mixed->scaler()->get_scale(), 256.0);
  EXPECT_EQ(mixed->scaler()->growth_factor(), 4.0);
  EXPECT_EQ(mixed->scaler()->backoff_factor(), 0.25);
  EXPECT_EQ(mixed->scaler()->growth_interval(), 7);
  EXPECT_FALSE(mixed->scaler()->allow_fp16_grads());
  // enabled: false, float16 autocast without loss scaling.
  auto off = precision_plugin_for(
      parse(config("  precision: 16-mixed\n  scaler: {enabled: false}\n")), DeviceType::cpu);
  EXPECT_FALSE(dynamic_cast<precision::MixedPrecision&>(*off).scaler()->is_enabled());
  // Under FSDP: FSDPPrecision with a scaler that takes float16 gradients (ShardedGradScaler's).
  TrainConfig f = s;
  f.fabric.strategy = "fsdp";
  auto fsdp = precision_plugin_for(f, DeviceType::cpu);
  auto* fp = dynamic_cast<precision::FSDPPrecision*>(fsdp.get());
  ASSERT_NE(fp, nullptr);
  EXPECT_EQ(fp->scaler()->get_scale(), 256.0);
  EXPECT_TRUE(fp->scaler()->allow_fp16_grads());

  const TrainConfig t =
      parse(config("  precision: transformer-engine-float16\n  transformer_engine: {fp8_format: "
                   "E4M3, margin: 1, amax_history_len: 16, amax_compute_algo: most_recent, "
                   "replace_layers: false, fallback_compute_dtype: float32}\n"));
  auto te = precision_plugin_for(t, DeviceType::cpu);
  auto* tp = dynamic_cast<precision::TransformerEnginePrecision*>(te.get());
  ASSERT_NE(tp, nullptr);
  EXPECT_EQ(tp->weights_dtype(), DType::float16);
  EXPECT_EQ(tp->fallback_compute_dtype(), DType::float32);
  EXPECT_FALSE(tp->replace_layers());
  EXPECT_EQ(tp->recipe().str(),
            "margin=1, format=E4M3, amax_history_len=16, amax_compute_algo=most_recent, "
            "reduce_amax=True");

  const TrainConfig b = parse(
      config("  precision: nf4-dq\n  bitsandbytes: {dtype: float32, ignore_modules: [head]}\n"));
  auto bnb = precision_plugin_for(b, DeviceType::cpu);
  auto* bp = dynamic_cast<precision::BitsandbytesPrecision*>(bnb.get());
  ASSERT_NE(bp, nullptr);
  EXPECT_EQ(bp->mode(), "nf4-dq");
  EXPECT_EQ(bp->dtype(), DType::float32);
}

}  // namespace
}  // namespace fabric
