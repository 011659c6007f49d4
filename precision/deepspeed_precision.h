// DeepSpeedPrecision (the ZeRO path's precision plugin, fabric-api.md §3, spec §5) and the DeepSpeed
// config block in DeepSpeed's key names, parsed from JSON or YAML.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "precision/dynamic_loss_scaler.h"
#include "precision/precision.h"

namespace YAML {
class Node;
}

namespace fabric::precision {

// The keys this runtime acts on: zero_optimization.{stage, offload_optimizer.device,
// offload_param.device, cpu_offload}, fp16 {enabled, loss_scale, initial_scale_power,
// loss_scale_window, hysteresis, consecutive_hysteresis, min_loss_scale}, bf16 {enabled},
// gradient_clipping, train_batch_size, train_micro_batch_size_per_gpu, gradient_accumulation_steps.
// DeepSpeed's other documented keys (precision/deepspeed_config_keys.h) are accepted and listed
// in `ignored`.
struct DeepSpeedConfig {
  std::optional<int> stage;                  // zero_optimization.stage
  std::optional<DeepSpeedFp16Config> fp16;   // present when the config has an "fp16" block
  std::optional<bool> bf16_enabled;          // present when the config has a "bf16" block
  double gradient_clipping = 0;              // 0: no clipping
  std::optional<int64_t> train_batch_size;
  std::optional<int64_t> train_micro_batch_size_per_gpu;
  std::optional<int64_t> gradient_accumulation_steps;
  // zero_optimization.offload_optimizer.device / offload_param.device: "cpu" or "none" (DeepSpeed's
  // "nvme" is refused: this build has no NVMe offload). cpu_offload: true reads as
  // offload_optimizer.device cpu, as DeepSpeed reads the deprecated key.
  std::optional<std::string> offload_optimizer_device;
  std::optional<std::string> offload_param_device;
  // The documented keys given that this runtime does not use, as dotted paths (sorted).
  std::vector<std::string> ignored;
  // Honoured keys given as "auto" (Hugging Face's configs: its Trainer fills them in from its own
  // arguments). Here the runtime's settings play that part: such a key reads as not given (batch
  // sizes from the trainer, the stage from the strategy name, no DeepSpeed clipping), except
  // fp16.enabled "auto", which follows the precision: the fp16 block's loss-scale keys apply when
  // the run is 16-mixed (fp16_enabled_auto).
  std::vector<std::string> auto_keys;
  bool fp16_enabled_auto = false;

  // A key DeepSpeed does not document (at any level) is a ValueError naming it, with "did you
  // mean" when it is a typo of one; so are values of the wrong kind, fp16 and bf16 both enabled,
  // and negative clipping or non-positive sizes.
  static DeepSpeedConfig from_json_text(const std::string& json);
  // A JSON text (starts with '{') or the path of a .json file, or of a .yaml/.yml file (IOError
  // when unreadable).
  static DeepSpeedConfig from_json_or_path(const std::string& text_or_path);
  static DeepSpeedConfig from_yaml(const YAML::Node& node);
  static DeepSpeedConfig from_yaml_text(const std::string& yaml);

  // The keys that were given, as JSON (from_json_text reads it back to an equal config).
  std::string to_json_text() const;

  // The precision the fp16/bf16 blocks select: "16-mixed", "bf16-mixed", or none (fp32, no block,
  // or "auto").
  std::optional<std::string> precision() const;

  // The fp16 block that applies to a run at `run_precision`: the block when it is enabled, or when
  // its enabled is "auto" and the run is 16-mixed (then marked enabled); none otherwise.
  std::optional<DeepSpeedFp16Config> fp16_for(const std::string& run_precision) const;

  // Whether ZeRO at `stage` keeps state in host memory, when the config says (an offload device
  // given): offload_optimizer.device cpu at any stage, offload_param.device cpu at stage 3
  // (DeepSpeed offloads parameters at stage 3 only). This runtime's offload is one switch: at stage
  // 3 it moves the parameter shards and the optimizer state together.
  std::optional<bool> offload(int stage) const;

  // DeepSpeed's batch rule (its _set_batch_related_parameters and _batch_assertion):
  // train_batch_size = micro batch x accumulation steps x world size; of the three, one that is
  // not given is derived from the others (accumulation 1 when only train_batch_size is given).
  // ValueError naming the values when they disagree or do not divide.
  struct Batch {
    int64_t train_batch_size, micro_batch_size, accumulation_steps;
  };
  Batch batch_sizes(int64_t world_size) const;

  // One line naming the `ignored` keys ("" when there are none).
  std::string ignored_warning() const;
};

// The fp16 block Lightning writes at setup (every loss-scale key, so DeepSpeed's config defaults
// apply: 2^16, window 1000, hysteresis 2, min 1) from DeepSpeedStrategy's loss-scale options.
DeepSpeedFp16Config lightning_fp16_block(double loss_scale = 0, int64_t initial_scale_power = 16,
                                         int64_t loss_scale_window = 1000, int64_t hysteresis = 2,
                                         double min_loss_scale = 1);

// The 5 modes. 16-mixed scales the loss with ZeRO's DynamicLossScaler (not a GradScaler): backward
// runs on loss * cur_scale; at the step, an inf/NaN in the optimizer's (shard) gradients, reduced
// with MAX across ranks, skips the step (gradients zeroed) and updates the scale; otherwise the
// gradients are unscaled and clipped by one factor (spec §5 step 3), the optimizer steps and the
// scale is updated. bf16-mixed and 32-true use a static scale of 1 (clipping still applies).
// Mixed modes leave the module to ZeroStrategy and autocast the forward; the *-true modes cast the
// module. Either way Fabric gives ZeroStrategy this plugin's dtype, and it holds what DeepSpeed's
// engine holds: half parameters (views of its flat buffers) with float32 master partitions, which
// the optimizer steps. Their gradients stay half until the step; the strategy makes them float32
// before this plugin reads them (FabricOptimizer.step calls prepare_optimizer_gradients before
// optimizer_step, Fabric.clip_gradients before unscale_gradients). Inputs are cast to the compute
// dtype in every mode, as the reference.
class DeepSpeedPrecision : public Precision {
 public:
  // precision: one of the 5 modes (ValueError otherwise). fp16: the config's fp16 block (used by
  // 16-mixed only; nullopt: Lightning's block with every key). gradient_clipping: 0 = none.
  DeepSpeedPrecision(const std::string& precision, DeviceType device,
                     std::optional<DeepSpeedFp16Config> fp16 = std::nullopt, double gradient_clipping = 0);

  std::string name() const override { return precision_; }
  DType dtype() const { return dtype_; }
  double gradient_clipping() const { return clip_; }
  const DynamicLossScaler& loss_scaler() const { return scaler_; }

  void convert_module(nn::Module& module) override;
  Tensor convert_input(const Tensor& input) const override;
  Tensor convert_output(const Tensor& output) const override;
  ContextGuard forward_context() override;
  ContextGuard tensor_init_context() override;

  void backward(const Tensor& loss, nn::Module* module, const Tensor& gradient = Tensor(),
                std::optional<bool> retain_graph = std::nullopt, bool create_graph = false) override;
  bool requires_fabric_backward() const override { return fp16_; }
  bool optimizer_step(optim::Optimizer& optimizer, nn::Module* module,
                      const std::function<Tensor()>& closure = nullptr) override;
  // Divides the optimizer's gradients by the scale once per step (Fabric.clip_gradients); the
  // step then only clips.
  void unscale_gradients(optim::Optimizer& optimizer) override;
  // The scaler's portable fields (spec §5).
  PrecisionState state_dict() const override;
  void load_state_dict(const PrecisionState& state) override;

  // Fabric installs these over several ranks. overflow: a float32 scalar of 0/1 to reduce (MAX)
  // in place. grad_norm: the 2-norm of the optimizer's gradients over every rank's shard
  // (default: the local norm of the optimizer's gradients).
  void set_overflow_reducer(std::function<void(Tensor&)> fn) { overflow_reducer_ = std::move(fn); }
  void set_grad_norm_fn(std::function<double(optim::Optimizer&)> fn) { grad_norm_fn_ = std::move(fn); }

 private:
  std::string precision_;
  DType dtype_;
  DeviceType device_;
  bool fp16_ = false, mixed_ = false;
  double clip_;
  DynamicLossScaler scaler_;
  std::shared_ptr<Precision> true_;  // the *-true modes' HalfPrecision
  const optim::Optimizer* unscaled_ = nullptr;  // unscale_gradients ran for it this step
  std::function<void(Tensor&)> overflow_reducer_;
  std::function<double(optim::Optimizer&)> grad_norm_fn_;
};

}  // namespace fabric::precision
