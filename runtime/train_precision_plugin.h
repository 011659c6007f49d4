// The precision plugin a fabric-train config asks for through its plugin blocks (fabric.scaler,
// fabric.transformer_engine, fabric.bitsandbytes): Lightning's way of passing
// `plugins=MixedPrecision(..., scaler=GradScaler(init_scale=...))` instead of a precision string.
#pragma once
#include <memory>

#include "precision/precision.h"
#include "runtime/train_config.h"

namespace fabric {

// The plugin of cfg.fabric.precision (canonical) built with the options of its block, or nullptr
// when that block is at its defaults (the precision string alone then builds the same plugin, with
// the strategy's own choice: FSDPPrecision under fsdp, DeepSpeedPrecision under deepspeed). Under
// an fsdp strategy a 16-mixed scaler builds an FSDPPrecision with a ShardedGradScaler's
// behaviour. `device`: the autocast device type (the accelerator's).
std::shared_ptr<precision::Precision> precision_plugin_for(const TrainConfig& cfg,
                                                           DeviceType device);

// The autocast device type of the config's accelerator (auto: cuda when a GPU is visible).
DeviceType config_device_type(const TrainConfig& cfg);

}  // namespace fabric
