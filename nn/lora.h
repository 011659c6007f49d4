// LoRA adapters (PEFT's lora.Linear): a frozen base linear plus a trainable low-rank update,
// and apply_lora(), which wraps the named layers of a model and freezes everything else (QLoRA).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace fabric::nn {

struct LoRALinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
};

// y = base(x) + lora_B(lora_A(dropout(x))) · (alpha / rank). lora_A (rank, in) ~
// kaiming_uniform(a = sqrt(5)) and lora_B (out, rank) = 0, as PEFT initialises them, so the
// wrapped layer starts out computing exactly what the base did. Keys: base_layer.<base keys>,
// lora_A.weight, lora_B.weight. The base is any Module with forward(x) mapping
// (..., in_features) -> (..., out_features): nn::Linear, a quantized linear, an FP8 linear.
class LoRALinear : public Module {
 public:
  LoRALinear(std::shared_ptr<Module> base, const LoRALinearOptions& options);
  // (..., in_features) -> (..., out_features), in the base output's dtype.
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LoRALinear"; }
  std::string extra_repr() const override;
  const LoRALinearOptions& options() const { return options_; }
  double scaling() const { return options_.alpha / static_cast<double>(options_.rank); }
  // The registered base (it may itself have been replaced, e.g. quantized, after wrapping).
  Module& base_layer() const { return child("base_layer"); }

  std::shared_ptr<Linear> lora_A;  // (rank, in_features), no bias
  std::shared_ptr<Linear> lora_B;  // (out_features, rank), no bias

 private:
  LoRALinearOptions options_;
};

struct LoRAOptions {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  // Names of the layers to wrap (the last component of their dotted path), e.g. c_attn, c_proj.
  std::vector<std::string> target;
};

// (in_features, out_features) of a linear-like layer: nn::Linear's options, otherwise the
// `in_features=..., out_features=...` every linear layer of fabric prints in extra_repr (so a
// quantized or FP8 linear from a later layer is understood without nn/ knowing its type).
// ValueError naming the layer type when neither gives them.
std::pair<int64_t, int64_t> linear_features(const Module& layer);

// PEFT's target rule: whether one of `targets` names the layer at dotted `path`, by the whole path
// or a dotted tail of it ("c_attn", "attn.c_attn", "transformer.h.0.attn.c_attn"; "layers.0").
bool lora_targets(const std::string& path, const std::vector<std::string>& targets);

// Freezes every parameter of `model` but adapters' (PEFT: those without "lora_" in their name),
// then replaces each descendant that a target names (PEFT's rule: its whole dotted path, or a
// dotted tail of it, so "c_attn" names every block's and "h.0.attn.c_attn" one) with a LoRALinear
// wrapping it (its own A/B trainable); layers already wrapped, and their adapters, are left alone.
// Returns the dotted paths wrapped. ValueError when options are invalid (rank < 1, dropout outside
// [0, 1), empty target), no layer matches a target or a target is not linear-like; the model is
// then left as it was.
std::vector<std::string> apply_lora(Module& model, const LoRAOptions& options);

}  // namespace fabric::nn
