// The table of DeepSpeed's documented config keys and what this runtime does with each.
#include "precision/deepspeed_config_keys.h"

#include <algorithm>
#include <utility>

namespace fabric::precision {
namespace {

using Use = DeepSpeedKeyUse;

// Every documented key this runtime recognises, as a path. A block's children are listed under
// it; an ignored key's contents are not (anything may be under it).
const std::vector<std::pair<std::string, Use>>& table() {
  static const std::vector<std::pair<std::string, Use>> rows = [] {
    std::vector<std::pair<std::string, Use>> r = {
        // Acted on (DeepSpeedConfig's fields).
        {"train_batch_size", Use::honoured},
        {"train_micro_batch_size_per_gpu", Use::honoured},
        {"gradient_accumulation_steps", Use::honoured},
        {"gradient_clipping", Use::honoured},
        {"fp16", Use::block},
        {"fp16.enabled", Use::honoured},
        {"fp16.loss_scale", Use::honoured},
        {"fp16.initial_scale_power", Use::honoured},
        {"fp16.loss_scale_window", Use::honoured},
        {"fp16.hysteresis", Use::honoured},
        {"fp16.consecutive_hysteresis", Use::honoured},
        {"fp16.min_loss_scale", Use::honoured},
        {"bf16", Use::block},
        {"bf16.enabled", Use::honoured},
        {"zero_optimization", Use::block},
        {"zero_optimization.stage", Use::honoured},
        {"zero_optimization.offload_optimizer", Use::block},
        {"zero_optimization.offload_optimizer.device", Use::honoured},
        {"zero_optimization.offload_param", Use::block},
        {"zero_optimization.offload_param.device", Use::honoured},
        // Deprecated: offload_optimizer.device cpu.
        {"zero_optimization.cpu_offload", Use::honoured},
    };
    // Documented, not used here: the client's optimizer and schedule decide (fabric-train's
    // optimizer and scheduler sections; the C++ API's own objects), and the rest tunes DeepSpeed's
    // engine, logging or features this runtime does not have. Their values are not checked.
    // The lists are packed, as tables read best.
    // clang-format off
    for (const char* k :
         {"optimizer", "scheduler", "communication_data_type", "prescale_gradients", "gradient_predivide_factor",
          "sparse_gradients", "amp", "zero_allow_untested_optimizer", "zero_force_ds_cpu_optimizer", "aio",
          "steps_per_print", "wall_clock_breakdown", "dump_state", "memory_breakdown", "flops_profiler",
          "activation_checkpointing", "sparse_attention", "data_efficiency", "curriculum_learning", "tensorboard",
          "wandb", "csv_monitor", "comet", "comms_logger", "elasticity", "compression_training", "checkpoint",
          "data_types", "autotuning", "dataloader_drop_last", "disable_allgather", "timers", "fp16.auto_cast"})
      r.emplace_back(k, Use::ignored);
    for (const char* k : {"allgather_partitions", "allgather_bucket_size", "overlap_comm", "reduce_scatter",
                          "reduce_bucket_size", "contiguous_gradients", "load_from_fp32_weights", "grad_hooks",
                          "round_robin_gradients", "stage3_max_live_parameters", "stage3_max_reuse_distance",
                          "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold",
                          "stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save",
                          "sub_group_size", "elastic_checkpoint", "ignore_unused_parameters", "legacy_stage1",
                          "cpu_offload_param", "cpu_offload_use_pin_memory", "zero_hpz_partition_size",
                          "zero_quantized_weights", "zero_quantized_gradients", "mics_shard_size",
                          "mics_hierarchical_params_gather", "memory_efficient_linear",
                          "pipeline_loading_checkpoint", "override_module_apply", "log_trace_cache_warnings"})
      r.emplace_back(std::string("zero_optimization.") + k, Use::ignored);
    for (const char* k : {"nvme_path", "pin_memory", "ratio", "buffer_count", "fast_init"})
      r.emplace_back(std::string("zero_optimization.offload_optimizer.") + k, Use::ignored);
    for (const char* k : {"nvme_path", "pin_memory", "buffer_count", "buffer_size", "max_in_cpu"})
      r.emplace_back(std::string("zero_optimization.offload_param.") + k, Use::ignored);
    // clang-format on
    return r;
  }();
  return rows;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

DeepSpeedKeyUse deepspeed_key_use(const std::string& path) {
  for (const auto& [key, use] : table()) {
    if (key == path) return use;
    if (use == Use::ignored && path.size() > key.size() && path.compare(0, key.size(), key) == 0 &&
        path[key.size()] == '.')
      return Use::ignored;
  }
  return Use::unknown;
}

std::vector<std::string> deepspeed_documented_children(const std::string& prefix) {
  std::vector<std::string> out;
  const std::string start = prefix.empty() ? "" : prefix + ".";
  for (const auto& [key, use] : table()) {
    if (key.compare(0, start.size(), start) != 0) continue;
    const std::string rest = key.substr(start.size());
    if (!rest.empty() && rest.find('.') == std::string::npos) out.push_back(rest);
  }
  return out;
}

std::string deepspeed_did_you_mean(const std::string& key, const std::string& prefix) {
  std::string best;
  size_t best_d = 0;
  for (const std::string& c : deepspeed_documented_children(prefix)) {
    const size_t d = edit_distance(key, c);
    if (best.empty() || d < best_d) best = c, best_d = d;
  }
  if (best.empty() || best_d > std::max<size_t>(2, key.size() / 3)) return "";
  return "; did you mean '" + best + "'?";
}

}  // namespace fabric::precision
