// TransformerEnginePrecision (spec §8, fabric-api.md §3): FP8 training with delayed scaling in the
// style of NVIDIA Transformer Engine. Eligible Linear layers become FP8Linear, the rest of the
// model runs in the weights dtype under autocast to the fallback compute dtype.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "precision/fp8_linear.h"
#include "precision/fp8_recipe.h"
#include "precision/precision.h"

namespace fabric::precision {

class TransformerEnginePrecision : public Precision {
 public:
  // weights_dtype: a floating dtype (bf16 -> "transformer-engine", fp16 ->
  // "transformer-engine-float16"). recipe: validated (pure E5M2 is a ValueError).
  // fallback_compute_dtype: the autocast dtype of the non-FP8 ops; nullopt = weights_dtype;
  // float32/float64: autocast off in the region (the ops run in their inputs' dtype).
  // device: the autocast device type of the fallback region.
  explicit TransformerEnginePrecision(DType weights_dtype = DType::bfloat16,
                                      const DelayedScaling& recipe = {}, bool replace_layers = true,
                                      std::optional<DType> fallback_compute_dtype = std::nullopt,
                                      DeviceType device = DeviceType::cpu);

  std::string name() const override;
  DType weights_dtype() const { return weights_dtype_; }
  DType fallback_compute_dtype() const { return fallback_dtype_; }
  const DelayedScaling& recipe() const { return recipe_; }
  bool replace_layers() const { return replace_layers_; }

  // With replace_layers: every Linear descendant with in_features % 8 == 0 and
  // out_features % 16 == 0 is replaced in its parent by an FP8Linear holding the same parameter
  // tensors; the others stay (one warning each, see warnings()). LayerNorm stays. Then floating
  // parameters and buffers become weights_dtype (the FP8 metas stay float32). A module that holds
  // FP8Linear layers already is only cast (converting again leaves e.g. LoRA adapters alone).
  void convert_module(nn::Module& module) override;
  // Why layers were left out of FP8 by the last convert_module.
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The FP8Linear layers found or created by convert_module, in module order.
  const std::vector<std::shared_ptr<FP8Linear>>& fp8_layers() const { return layers_; }

  Tensor convert_input(const Tensor& input) const override;   // floating -> weights_dtype
  Tensor convert_output(const Tensor& output) const override;  // floating -> default dtype
  // default dtype = weights_dtype, autocast(device, fallback dtype), fp8_autocast(recipe).
  ContextGuard forward_context() override;
  ContextGuard module_init_context() override;
  ContextGuard tensor_init_context() override;

  // Backward, then the delayed-scaling update of the backward metas (spec §8).
  void backward(const Tensor& loss, nn::Module* module, const Tensor& gradient = Tensor(),
                std::optional<bool> retain_graph = std::nullopt, bool create_graph = false) override;
  bool requires_fabric_backward() const override { return true; }

  // The recipe fields (margin, fp8_format, amax_history_len, amax_compute_algo, reduce_amax).
  // The per-layer scales and histories are in the module's state_dict (_extra_state buffers).
  PrecisionState state_dict() const override;
  // Restores the recipe and hands it to the converted layers (FP8Linear::set_recipe: scales
  // kept, histories cut or zero-padded to its amax_history_len). ValueError for an invalid recipe.
  void load_state_dict(const PrecisionState& state) override;

 private:
  DType weights_dtype_;
  DelayedScaling recipe_;
  bool replace_layers_;
  DType fallback_dtype_;
  DeviceType device_;
  std::vector<std::string> warnings_;
  std::vector<std::shared_ptr<FP8Linear>> layers_;
};

}  // namespace fabric::precision
