// BitsandbytesPrecision: mode parsing, the Linear -> quantized-linear swap, the bnb key layout.
#include "precision/bitsandbytes_precision.h"

#include <algorithm>

#include "nn/linear.h"
#include "nn/lora.h"
#include "precision/linear_4bit.h"
#include "precision/linear_8bit.h"
#include "precision/true_precision.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {

namespace {

const std::vector<std::string> kModes = {"nf4", "nf4-dq", "fp4", "fp4-dq", "int8", "int8-training"};

bool is_int8(const std::string& mode) { return mode.rfind("int8", 0) == 0; }

// (prefix with trailing '.', layer) for the root and every descendant that is a Linear4bit.
std::vector<std::pair<std::string, Linear4bit*>> linear4bit_layers(const nn::Module& module) {
  std::vector<std::pair<std::string, Linear4bit*>> out;
  if (auto* l = dynamic_cast<Linear4bit*>(const_cast<nn::Module*>(&module))) out.emplace_back("", l);
  for (const auto& [path, m] : module.named_modules()) {
    if (auto* l = dynamic_cast<Linear4bit*>(m.get())) out.emplace_back(path + ".", l);
  }
  return out;
}

}  // namespace

BitsandbytesPrecision::BitsandbytesPrecision(std::string mode, std::optional<DType> dtype,
                                             std::vector<std::string> ignore_modules)
    : mode_(std::move(mode)), ignore_modules_(std::move(ignore_modules)) {
  if (std::find(kModes.begin(), kModes.end(), mode_) == kModes.end()) {
    throw ValueError(detail::cat("BitsandbytesPrecision: unknown mode \"", mode_,
                                 "\"; expected one of nf4, nf4-dq, fp4, fp4-dq, int8, int8-training"));
  }
  if (is_int8(mode_)) {
    FABRIC_CHECK(!dtype || *dtype == DType::float16, ValueError, "BitsandbytesPrecision: mode ",
                 mode_, " requires dtype float16, got ", dtype_name(*dtype));
    dtype_ = DType::float16;
    return;
  }
  dtype_ = dtype.value_or(DType::bfloat16);
  FABRIC_CHECK(dtype_ == DType::bfloat16 || dtype_ == DType::float16 || dtype_ == DType::float32,
               ValueError, "BitsandbytesPrecision: the compute dtype must be bfloat16, float16 or "
               "float32, got ", dtype_name(dtype_));
}

void BitsandbytesPrecision::convert_module(nn::Module& module) {
  // Already quantized (e.g. set up twice, or converted by hand before Fabric.setup): keep it.
  bool quantized = !linear4bit_layers(module).empty() || dynamic_cast<Linear8bitLt*>(&module);
  for (const auto& [path, m] : module.named_modules()) quantized |= dynamic_cast<Linear8bitLt*>(m.get()) != nullptr;
  if (quantized) return;
  struct Hit {
    std::string path;
    std::shared_ptr<nn::Module> m;
  };
  std::vector<Hit> hits;
  bool any_linear = dynamic_cast<nn::Linear*>(&module) != nullptr;
  for (const auto& [path, m] : module.named_modules()) {
    if (dynamic_cast<nn::Linear*>(m.get()) == nullptr) continue;
    any_linear = true;
    const size_t dot = path.rfind('.');
    const std::string parent = dot == std::string::npos ? "" : path.substr(0, dot);
    const nn::Module* parent_m = parent.empty() ? &module : module.get_submodule(parent).get();
    if (dynamic_cast<const nn::LoRALinear*>(parent_m) != nullptr &&
        path.substr(dot + 1) != "base_layer") {
      continue;  // a LoRA adapter stays trainable and unquantized
    }
    const bool ignored = std::any_of(ignore_modules_.begin(), ignore_modules_.end(),
                                     [&](const std::string& p) { return path.rfind(p, 0) == 0; });
    if (!ignored) hits.push_back({path, m});
  }
  // A TypeError in the reference: the model's type is what is wrong (a DTypeError here, as the
  // connector's plugin-type errors).
  FABRIC_CHECK(any_linear, DTypeError, "BitsandbytesPrecision(", mode_,
               ").convert_module: this ", module.type_name(),
               " has no Linear layer to quantize (expected at least one nn::Linear)");
  const bool dq = mode_.size() > 3 && mode_.substr(3) == "-dq";
  const std::string qt = mode_.substr(0, 3);
  for (const auto& h : hits) {
    const auto& lin = static_cast<const nn::Linear&>(*h.m);
    std::shared_ptr<nn::Module> q;
    if (is_int8(mode_)) {
      q = Linear8bitLt::from_linear(lin, /*has_fp16_weights=*/mode_ == "int8-training", 6.0);
    } else {
      q = Linear4bit::from_linear(lin, qt, dq, dtype_);
    }
    q->train(h.m->is_training());
    const size_t dot = h.path.rfind('.');
    if (dot == std::string::npos) {
      module.register_module(h.path, q);
    } else {
      module.get_submodule(h.path.substr(0, dot))->register_module(h.path.substr(dot + 1), q);
    }
  }
}

Tensor BitsandbytesPrecision::convert_input(const Tensor& input) const { return cast_floating(input, dtype_); }
Tensor BitsandbytesPrecision::convert_output(const Tensor& output) const {
  return cast_floating(output, DType::float32);
}
ContextGuard BitsandbytesPrecision::forward_context() { return default_dtype_context(dtype_); }
ContextGuard BitsandbytesPrecision::tensor_init_context() { return default_dtype_context(dtype_); }

ContextGuard BitsandbytesPrecision::module_init_context() {
  // The reference's context replaces the Linear class, which cannot leave some layers out: it
  // refuses ignore_modules (a RuntimeError there; fabric::Error, as Fabric's other RuntimeErrors).
  if (!ignore_modules_.empty()) {
    std::string names;
    for (const auto& m : ignore_modules_) names += (names.empty() ? "'" : ", '") + m + "'";
    throw Error(detail::cat(
        "Instantiating your model under the `init_module` context manager is not supported when used with "
        "`BitsandbytesPrecision(..., ignore_modules={",
        names,
        "})` as this may initialize the layers on-device, defeating the purpose of quantization. You can remove "
        "`ignore_modules` or remove the `init_module` context manager."));
  }
  return tensor_init_context();
}

nn::StateDict bnb_state_dict(const nn::Module& module) {
  // Linear4bit registers its quant state under bitsandbytes' keys (Module::set_state_key).
  return module.state_dict();
}

nn::LoadResult load_bnb_state_dict(nn::Module& module, const nn::StateDict& state, bool strict) {
  // A plain load takes a quant_state blob of any length (bitsandbytes' own is unpadded) and checks
  // each layer's quant state before it copies anything (Linear4bit's prepare_loaded_state), so a
  // malformed or mismatched one fails here and changes nothing; the layers then re-read it now
  // (checked again, naming the layer's keys) rather than at their next forward.
  nn::LoadResult r = module.load_state_dict(state, strict);
  for (const auto& [prefix, l] : linear4bit_layers(module)) l->sync_quant_state(prefix);
  return r;
}

QuantizedFootprint quantized_footprint(const nn::Module& module) {
  QuantizedFootprint f;
  for (const auto& [prefix, l] : linear4bit_layers(module)) {
    f.bytes += l->quantized_weight_bytes();
    f.weights += l->options().in_features * l->options().out_features;
  }
  for (const auto& [path, m] : module.named_modules()) {
    if (const auto* l = dynamic_cast<const Linear8bitLt*>(m.get())) {
      f.bytes += l->quantized_weight_bytes();
      f.weights += l->options().in_features * l->options().out_features;
    }
  }
  return f;
}

}  // namespace fabric::precision
