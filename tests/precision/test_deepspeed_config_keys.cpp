// DeepSpeedConfig on real DeepSpeed configs: the documented keys this runtime acts on are read,
// the documented ones it does not use are accepted and listed in `ignored`, and a key DeepSpeed
// does not document is refused with "did you mean". Also the keys that are honoured in substance:
// the offload devices and DeepSpeed's train_batch_size rule.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "precision/deepspeed_config_keys.h"
#include "precision/deepspeed_precision.h"
#include "tests/common/expect_error.h"

namespace fabric::precision {
namespace {

using Strings = std::vector<std::string>;

TEST(DeepSpeedConfigKeys, DocumentedKeysAreReadOrIgnoredByName) {
  struct Case {
    std::string json;
    Strings ignored;  // sorted, as the parser lists them
  };
  const std::vector<Case> cases = {
      // The ZeRO-2 block of Hugging Face's and LLaMA-Factory's configs.
      {R"({"zero_optimization": {"stage": 2, "allgather_partitions": true, "allgather_bucket_size": 2e8,
           "overlap_comm": true, "reduce_scatter": true, "reduce_bucket_size": 2e8, "contiguous_gradients": true,
           "round_robin_gradients": true}})",
       {"zero_optimization.allgather_bucket_size", "zero_optimization.allgather_partitions",
        "zero_optimization.contiguous_gradients", "zero_optimization.overlap_comm",
        "zero_optimization.reduce_bucket_size", "zero_optimization.reduce_scatter",
        "zero_optimization.round_robin_gradients"}},
      // ZeRO-3's tuning keys, and values other than numbers ("auto") where they are not read.
      {R"({"zero_optimization": {"stage": 3, "sub_group_size": 1e9, "stage3_prefetch_bucket_size": "auto",
           "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 1e9,
           "stage3_max_reuse_distance": 1e9, "stage3_gather_16bit_weights_on_model_save": true}})",
       {"zero_optimization.stage3_gather_16bit_weights_on_model_save",
        "zero_optimization.stage3_max_live_parameters",
        "zero_optimization.stage3_max_reuse_distance",
        "zero_optimization.stage3_param_persistence_threshold",
        "zero_optimization.stage3_prefetch_bucket_size", "zero_optimization.sub_group_size"}},
      // The optimizer and scheduler blocks, whatever is in them; logging and engine keys.
      {R"({"optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.9, 0.999]}},
           "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 10}}, "steps_per_print": 10,
           "wall_clock_breakdown": false, "zero_allow_untested_optimizer": true, "gradient_predivide_factor": 1.0,
           "prescale_gradients": false, "communication_data_type": "fp32"})",
       {"communication_data_type", "gradient_predivide_factor", "optimizer", "prescale_gradients",
        "scheduler", "steps_per_print", "wall_clock_breakdown", "zero_allow_untested_optimizer"}},
      // Every loss-scale key is read; auto_cast is not.
      {R"({"fp16": {"enabled": true, "auto_cast": false, "loss_scale": 0, "initial_scale_power": 16,
           "loss_scale_window": 1000, "hysteresis": 2, "consecutive_hysteresis": false, "min_loss_scale": 1}})",
       {"fp16.auto_cast"}},
      // The offload blocks: device is read, the rest is not.
      {R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "pin_memory": true},
           "offload_param": {"device": "cpu", "pin_memory": true, "buffer_count": 5}}})",
       {"zero_optimization.offload_optimizer.pin_memory",
        "zero_optimization.offload_param.buffer_count",
        "zero_optimization.offload_param.pin_memory"}},
      {R"({"bf16": {"enabled": true}, "train_batch_size": 8, "train_micro_batch_size_per_gpu": 4,
           "gradient_accumulation_steps": 2, "gradient_clipping": 1.0})",
       {}},
  };
  for (const Case& c : cases) {
    const DeepSpeedConfig d = DeepSpeedConfig::from_json_text(c.json);
    EXPECT_EQ(d.ignored, c.ignored) << c.json;
    const std::string warning = d.ignored_warning();
    if (c.ignored.empty()) EXPECT_EQ(warning, "") << c.json;
    for (const std::string& k : c.ignored) EXPECT_CONTAINS(warning, k);
    if (!c.ignored.empty()) EXPECT_CONTAINS(warning, "ignored: ");
    // The honoured keys survive the round trip; the ignored ones are not written back.
    EXPECT_EQ(DeepSpeedConfig::from_json_text(d.to_json_text()).ignored, Strings{}) << c.json;
  }
  const DeepSpeedConfig fp16 = DeepSpeedConfig::from_json_text(cases[3].json);
  ASSERT_TRUE(fp16.fp16);
  EXPECT_EQ(fp16.fp16->initial_scale_power, 16);
  EXPECT_EQ(fp16.fp16->hysteresis, 2);
  EXPECT_EQ(DeepSpeedConfig::from_json_text(cases[5].json).train_batch_size, 8);
}

TEST(DeepSpeedConfigKeys, KeysDeepSpeedDoesNotDocumentAreErrorsWithDidYouMean) {
  const std::vector<std::pair<std::string, Strings>> cases = {
      {R"({"zero_optimization": {"stage": 2, "overlap_com": true}})",
       {"'zero_optimization.overlap_com'", "did you mean 'overlap_comm'"}},
      {R"({"zero_optimisation": {"stage": 2}})",
       {"'zero_optimisation'", "did you mean 'zero_optimization'"}},
      {R"({"fp16": {"enabled": true, "initial_scale_pow": 16}})",
       {"'fp16.initial_scale_pow'", "did you mean 'initial_scale_power'"}},
      {R"({"steps_per_prnt": 10})", {"'steps_per_prnt'", "did you mean 'steps_per_print'"}},
      {R"({"zero_optimization": {"offload_optimizer": {"devise": "cpu"}}})",
       {"'zero_optimization.offload_optimizer.devise'", "did you mean 'device'"}},
      {R"({"bf16": {"enabled": true, "something_else": 1}})",
       {"'bf16.something_else'", "config-json"}},
      {R"({"fp16": [1]})", {"'fp16' must be a mapping"}},
      {R"({"zero_optimization": {"offload_optimizer": {"device": "nvme"}}})",
       {"offload_optimizer.device", "NVMe"}},
      {R"({"zero_optimization": {"offload_param": {"device": "gpu"}}})",
       {"offload_param.device", "\"cpu\" or \"none\""}},
      {R"({"train_batch_size": 0})", {"train_batch_size must be >= 1"}},
  };
  for (const auto& [json, messages] : cases) {
    const std::string e = thrown<ValueError>([&] { DeepSpeedConfig::from_json_text(json); });
    for (const std::string& m : messages) EXPECT_CONTAINS(e, m) << json;
  }
}

TEST(DeepSpeedConfigKeys, OffloadDevicesDecideTheOffloadAtAStage) {
  struct Case {
    std::string json;
    int stage;
    std::optional<bool> offload;
  };
  const std::vector<Case> cases = {
      {R"({})", 2, std::nullopt},
      {R"({"zero_optimization": {"offload_optimizer": {"device": "cpu"}}})", 2, true},
      {R"({"zero_optimization": {"offload_optimizer": {"device": "none"}}})", 2, false},
      {R"({"zero_optimization": {"offload_optimizer": {"pin_memory": true}}})", 2, std::nullopt},
      {R"({"zero_optimization": {"cpu_offload": true}})", 1, true},
      // Parameters are offloaded at stage 3 only, as DeepSpeed does.
      {R"({"zero_optimization": {"offload_param": {"device": "cpu"}}})", 2, std::nullopt},
      {R"({"zero_optimization": {"offload_param": {"device": "cpu"}}})", 3, true},
      {R"({"zero_optimization": {"offload_param": {"device": "none"}, "offload_optimizer": {"device": "none"}}})",
       3, false},
  };
  for (const Case& c : cases) {
    const DeepSpeedConfig d = DeepSpeedConfig::from_json_text(c.json);
    EXPECT_EQ(d.offload(c.stage), c.offload) << c.json << " at stage " << c.stage;
    EXPECT_EQ(DeepSpeedConfig::from_json_text(d.to_json_text()).offload(c.stage), c.offload)
        << c.json;
  }
}

TEST(DeepSpeedConfigKeys, TrainBatchSizeFollowsDeepSpeedsRule) {
  struct Case {
    std::optional<int64_t> train, micro, accumulation;
    int64_t world;
    std::optional<DeepSpeedConfig::Batch> expected;  // nullopt: a ValueError
  };
  const std::vector<Case> cases = {
      {32, 4, 2, 4, DeepSpeedConfig::Batch{32, 4, 2}},
      {32, 4, 2, 2, std::nullopt},  // 4 x 2 x 2 = 16
      {32, 4, std::nullopt, 2, DeepSpeedConfig::Batch{32, 4, 4}},
      {32, std::nullopt, 2, 2, DeepSpeedConfig::Batch{32, 8, 2}},
      {32, std::nullopt, std::nullopt, 4, DeepSpeedConfig::Batch{32, 8, 1}},
      {30, 4, std::nullopt, 2, std::nullopt},  // does not divide
      {2, 4, std::nullopt, 1, std::nullopt},   // a micro batch larger than the batch
      {std::nullopt, 4, 2, 2, DeepSpeedConfig::Batch{16, 4, 2}},
  };
  for (const Case& c : cases) {
    DeepSpeedConfig d;
    d.train_batch_size = c.train;
    d.train_micro_batch_size_per_gpu = c.micro;
    d.gradient_accumulation_steps = c.accumulation;
    const std::string name = d.to_json_text() + " world " + std::to_string(c.world);
    if (!c.expected) {
      EXPECT_CONTAINS(thrown<ValueError>([&] { (void)d.batch_sizes(c.world); }), "train_batch_size")
          << name;
      continue;
    }
    const DeepSpeedConfig::Batch b = d.batch_sizes(c.world);
    EXPECT_EQ(b.train_batch_size, c.expected->train_batch_size) << name;
    EXPECT_EQ(b.micro_batch_size, c.expected->micro_batch_size) << name;
    EXPECT_EQ(b.accumulation_steps, c.expected->accumulation_steps) << name;
  }
}

TEST(DeepSpeedConfigKeys, APathMayNameAJsonOrAYamlFile) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ds_keys_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "ds.json") << "{\n\t\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": "
                                    "true},\n\t\"bf16\": {\"enabled\": true}\n}\n";
  std::ofstream(dir / "ds.yaml")
      << "zero_optimization:\n  stage: 3\n  overlap_comm: true\nbf16:\n  enabled: true\n";
  for (const char* name : {"ds.json", "ds.yaml"}) {
    const DeepSpeedConfig d = DeepSpeedConfig::from_json_or_path((dir / name).string());
    EXPECT_EQ(d.stage, 3) << name;
    EXPECT_EQ(d.precision(), "bf16-mixed") << name;
    EXPECT_EQ(d.ignored, Strings{"zero_optimization.overlap_comm"}) << name;
  }
  std::filesystem::remove_all(dir);
}

// Hugging Face's configs give "auto" for what its Trainer fills in; here an "auto" honoured key
// reads as not given, and fp16.enabled "auto" follows the run's precision. Any other string is
// still a type error.
TEST(DeepSpeedConfigKeys, AutoValuesReadAsNotGivenAndFp16FollowsThePrecision) {
  const DeepSpeedConfig d = DeepSpeedConfig::from_json_text(
      R"({"fp16": {"enabled": "auto", "loss_scale": 0, "initial_scale_power": 12, "loss_scale_window": 500,
           "hysteresis": 2, "min_loss_scale": 1},
          "bf16": {"enabled": "auto"},
          "optimizer": {"type": "AdamW", "params": {"lr": "auto", "weight_decay": "auto"}},
          "zero_optimization": {"stage": "auto", "offload_optimizer": {"device": "auto"},
                                "reduce_bucket_size": "auto"},
          "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "train_batch_size": "auto",
          "train_micro_batch_size_per_gpu": "auto"})");
  Strings autos = d.auto_keys;
  std::sort(autos.begin(), autos.end());
  EXPECT_EQ(autos, (Strings{"bf16.enabled", "fp16.enabled", "gradient_accumulation_steps", "gradient_clipping",
                            "train_batch_size", "train_micro_batch_size_per_gpu",
                            "zero_optimization.offload_optimizer.device", "zero_optimization.stage"}));
  EXPECT_EQ(d.ignored, (Strings{"optimizer", "zero_optimization.reduce_bucket_size"}));
  EXPECT_FALSE(d.stage || d.train_batch_size || d.train_micro_batch_size_per_gpu ||
               d.gradient_accumulation_steps || d.offload_optimizer_device || d.bf16_enabled.value_or(false));
  EXPECT_EQ(d.gradient_clipping, 0.0);
  EXPECT_TRUE(d.fp16_enabled_auto);
  EXPECT_EQ(d.precision(), std::nullopt) << "auto selects no precision";
  const std::optional<DeepSpeedFp16Config> fp16 = d.fp16_for("16-mixed");
  ASSERT_TRUE(fp16);
  EXPECT_TRUE(fp16->enabled);
  EXPECT_EQ(fp16->initial_scale_power, 12);
  EXPECT_EQ(fp16->loss_scale_window, 500);
  EXPECT_FALSE(d.fp16_for("bf16-mixed") || d.fp16_for("32-true"));
  // The round trip keeps the auto of fp16.enabled.
  const DeepSpeedConfig back = DeepSpeedConfig::from_json_text(d.to_json_text());
  EXPECT_TRUE(back.fp16_enabled_auto);
  EXPECT_EQ(back.fp16_for("16-mixed")->initial_scale_power, 12);
  // A plain enabled block applies whatever the run's precision (the connector checks the pair).
  EXPECT_TRUE(DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": true}})").fp16_for("32-true"));
  for (const char* bad : {R"({"train_batch_size": "Auto"})", R"({"fp16": {"enabled": "yes"}})",
                          R"({"gradient_clipping": "automatic"})"})
    EXPECT_THROW(DeepSpeedConfig::from_json_text(bad), ValueError) << bad;
  // Bad loss-scale values under an auto block still fail at parse time.
  EXPECT_THROW(DeepSpeedConfig::from_json_text(R"({"fp16": {"enabled": "auto", "hysteresis": 0}})"), ValueError);
}

}  // namespace
}  // namespace fabric::precision
