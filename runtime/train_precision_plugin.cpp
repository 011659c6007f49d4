// fabric-train's precision plugin from the config's plugin blocks (runtime/train_precision_plugin.h).
#include "runtime/train_precision_plugin.h"

#include <algorithm>

#include "precision/bitsandbytes_precision.h"
#include "precision/fsdp_precision.h"
#include "precision/grad_scaler.h"
#include "precision/mixed_precision.h"
#include "precision/registry.h"
#include "precision/transformer_engine_precision.h"
#include "runtime/connector.h"
#include "runtime/train_config_fields.h"

namespace fabric {

DeviceType config_device_type(const TrainConfig& cfg) {
  std::string acc = cfg.fabric.accelerator;
  std::transform(acc.begin(), acc.end(), acc.begin(), ::tolower);
  if (acc == "auto") return cuda_device_count() > 0 ? DeviceType::cuda : DeviceType::cpu;
  return acc == "cuda" || acc == "gpu" ? DeviceType::cuda : DeviceType::cpu;
}

std::shared_ptr<precision::Precision> precision_plugin_for(const TrainConfig& cfg,
                                                           DeviceType device) {
  const TrainConfig defaults;
  const auto& f = cfg.fabric;
  const std::string p = precision::canonical_precision(f.precision);
  // FSDP and DeepSpeed refuse the FP8 and (FSDP) bitsandbytes modes, and DeepSpeed scales the loss
  // itself: those stay with the strategy's own plugin and its errors.
  const bool fsdp = train_config_detail::is_fsdp_strategy(f.strategy);
  const bool deepspeed = train_config_detail::is_deepspeed_strategy(f.strategy);
  if (p == "16-mixed" && f.scaler != defaults.fabric.scaler && !deepspeed) {
    auto scaler = std::make_shared<precision::GradScaler>(
        precision::GradScalerOptions{.init_scale = f.scaler.init_scale,
                                     .growth_factor = f.scaler.growth_factor,
                                     .backoff_factor = f.scaler.backoff_factor,
                                     .growth_interval = f.scaler.growth_interval,
                                     .enabled = f.scaler.enabled,
                                     .allow_fp16_grads = fsdp});
    if (fsdp) return std::make_shared<precision::FSDPPrecision>(p, device, scaler);
    return std::make_shared<precision::MixedPrecision>(p, device, scaler);
  }
  if (p.rfind("transformer-engine", 0) == 0 &&
      f.transformer_engine != defaults.fabric.transformer_engine && !fsdp && !deepspeed) {
    const auto& te = f.transformer_engine;
    precision::DelayedScaling recipe;
    recipe.fp8_format = precision::fp8_format_from_name(te.fp8_format);
    recipe.margin = te.margin;
    recipe.amax_history_len = te.amax_history_len;
    recipe.amax_compute_algo = precision::amax_compute_algo_from_name(te.amax_compute_algo);
    recipe.validate();
    const DType weights = p == "transformer-engine" ? DType::bfloat16 : DType::float16;
    std::optional<DType> fallback;
    if (!te.fallback_compute_dtype.empty()) fallback = dtype_from_name(te.fallback_compute_dtype);
    return std::make_shared<precision::TransformerEnginePrecision>(
        weights, recipe, te.replace_layers, fallback, device);
  }
  const auto& bnb = precision::bitsandbytes_modes();
  if (std::find(bnb.begin(), bnb.end(), p) != bnb.end() &&
      f.bitsandbytes != defaults.fabric.bitsandbytes && !fsdp) {
    std::optional<DType> dtype;
    if (!f.bitsandbytes.dtype.empty()) dtype = dtype_from_name(f.bitsandbytes.dtype);
    return std::make_shared<precision::BitsandbytesPrecision>(p, dtype,
                                                              f.bitsandbytes.ignore_modules);
  }
  return nullptr;
}

}  // namespace fabric
