// TransformerEnginePrecision: layer replacement, the FP8 forward context and the meta updates.
#include "precision/transformer_engine_precision.h"

#include "precision/true_precision.h"

namespace fabric::precision {

TransformerEnginePrecision::TransformerEnginePrecision(DType weights_dtype,
                                                       const DelayedScaling& recipe,
                                                       bool replace_layers,
                                                       std::optional<DType> fallback_compute_dtype,
                                                       DeviceType device)
    : weights_dtype_(weights_dtype),
      recipe_(recipe),
      replace_layers_(replace_layers),
      fallback_dtype_(fallback_compute_dtype.value_or(weights_dtype)),
      device_(device) {
  FABRIC_CHECK(is_floating(weights_dtype) && !is_fp8(weights_dtype), DTypeError,
               "TransformerEnginePrecision: weights_dtype must be float32/float16/bfloat16/float64, got ",
               dtype_name(weights_dtype));
  FABRIC_CHECK(is_floating(fallback_dtype_) && !is_fp8(fallback_dtype_), DTypeError,
               "TransformerEnginePrecision: fallback_compute_dtype must be a non-fp8 floating dtype, got ",
               dtype_name(fallback_dtype_));
  recipe_.validate();
}

std::string TransformerEnginePrecision::name() const {
  switch (weights_dtype_) {
    case DType::bfloat16: return "transformer-engine";
    case DType::float16: return "transformer-engine-float16";
    default: return std::string("transformer-engine-") + std::string(dtype_name(weights_dtype_));
  }
}

void TransformerEnginePrecision::convert_module(nn::Module& module) {
  // As the reference, layers are replaced only while none is an FP8 layer yet: a module converted
  // and then given LoRA adapters before Fabric::setup converts it again keeps its adapters (and
  // the first conversion's warnings); the cast to weights_dtype happens every time.
  bool converted = false;
  for (const auto& [path, m] : module.named_modules()) converted |= dynamic_cast<FP8Linear*>(m.get()) != nullptr;
  layers_.clear();
  if (replace_layers_ && !converted) {
    warnings_.clear();
    FABRIC_CHECK(dynamic_cast<nn::Linear*>(&module) == nullptr, ValueError,
                 "TransformerEnginePrecision.convert_module: the module itself is a Linear, which "
                 "cannot be replaced in place; wrap it in a parent module");
    for (const auto& [path, m] : module.named_modules()) {
      auto lin = std::dynamic_pointer_cast<nn::Linear>(m);
      if (!lin) continue;
      const nn::LinearOptions& o = lin->options();
      if (o.in_features % 8 != 0 || o.out_features % 16 != 0) {
        warnings_.push_back(detail::cat(
            "TransformerEnginePrecision: '", path, "' (in_features=", o.in_features,
            ", out_features=", o.out_features,
            ") is not converted to FP8: FP8 GEMMs need in_features % 8 == 0 and "
            "out_features % 16 == 0; it runs in ",
            dtype_name(fallback_dtype_)));
        continue;
      }
      const size_t dot = path.rfind('.');
      auto fp8 = FP8Linear::from_linear(*lin, recipe_, fallback_dtype_);
      if (dot == std::string::npos) {
        module.register_module(path, fp8);
      } else {
        module.get_submodule(path.substr(0, dot))->register_module(path.substr(dot + 1), fp8);
      }
    }
  }
  for (const auto& [path, m] : module.named_modules()) {
    (void)path;
    if (auto f = std::dynamic_pointer_cast<FP8Linear>(m)) layers_.push_back(f);
  }
  // The metas stay float32: FP8Linear keeps them out of Module::to's conversion.
  module.to(weights_dtype_);
  // A fallback wider than the weights (float32 under bf16 weights) runs with autocast off, and the
  // FP8 layers return it: the Linear layers left unconverted keep their weights in it, as their
  // warning says, so that they take those outputs.
  if (itemsize(fallback_dtype_) > itemsize(weights_dtype_))
    for (const auto& [path, m] : module.named_modules())
      if (auto lin = std::dynamic_pointer_cast<nn::Linear>(m)) lin->to(fallback_dtype_);
}

Tensor TransformerEnginePrecision::convert_input(const Tensor& input) const {
  return cast_floating(input, weights_dtype_);
}

Tensor TransformerEnginePrecision::convert_output(const Tensor& output) const {
  return cast_floating(output, default_float_dtype());
}

ContextGuard TransformerEnginePrecision::forward_context() {
  ContextGuard g = default_dtype_context(weights_dtype_);
  // A float32/float64 fallback is no lower precision to cast to: the region runs with autocast
  // off (the non-FP8 ops in their inputs' dtype), as torch's CPU autocast turns itself off for a
  // dtype it does not take.
  const bool lower = fallback_dtype_ == DType::bfloat16 || fallback_dtype_ == DType::float16;
  g.then(autocast_context(device_, lower ? fallback_dtype_ : DType::bfloat16, /*enabled=*/lower));
  g.then(fp8_autocast(true));
  return g;
}

ContextGuard TransformerEnginePrecision::module_init_context() {
  return default_dtype_context(weights_dtype_);
}

ContextGuard TransformerEnginePrecision::tensor_init_context() {
  return default_dtype_context(weights_dtype_);
}

void TransformerEnginePrecision::backward(const Tensor& loss, nn::Module* module,
                                          const Tensor& gradient,
                                          std::optional<bool> retain_graph, bool create_graph) {
  Precision::backward(loss, module, gradient, retain_graph, create_graph);
  fp8_update_backward_metas();
}

PrecisionState TransformerEnginePrecision::state_dict() const { return recipe_.to_state(); }

void TransformerEnginePrecision::load_state_dict(const PrecisionState& state) {
  const DelayedScaling recipe = DelayedScaling::from_map(state);  // validated
  // Fabric::load restores this before the module, so the layers' histories already have the
  // checkpoint's length when its _extra_state tensors are copied in.
  for (const auto& l : layers_) l->set_recipe(recipe);
  recipe_ = recipe;
}

}  // namespace fabric::precision
