// export --dequantize's state_dict: each key of the plain float model filled from the converted
// (quantized, FP8, LoRA) model's layers, through the dequantizers those layers compute with.
#include "runtime/dequantized_export.h"

#include <cstring>
#include <map>
#include <tuple>

#include "autograd/grad_mode.h"
#include "nn/linear.h"
#include "nn/lora.h"
#include "precision/fp8_linear.h"
#include "precision/linear_4bit.h"
#include "precision/linear_8bit.h"
#include "precision/quant_4bit.h"
#include "precision/quant_int8.h"
#include "runtime/train_config.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

// The module at dotted `path` of `root` ("" is the root); null when there is none.
const nn::Module* module_at(const nn::Module& root, const std::string& path) {
  if (path.empty()) return &root;
  try {
    return root.get_submodule(path).get();
  } catch (const ValueError&) {
    return nullptr;
  }
}

// The float32 weight a linear-like layer stands for, before its compute dtype rounds it; an
// undefined tensor for a layer that is not linear-like.
Tensor float_weight(const nn::Module& layer) {
  if (const auto* l = dynamic_cast<const precision::Linear4bit*>(&layer))
    return precision::dequantize_4bit(l->weight, l->quant_state(), DType::float32);
  if (const auto* l = dynamic_cast<const precision::Linear8bitLt*>(&layer)) {
    // int8-training trains the fp16 weight itself (re-quantized only inside each GEMM).
    if (l->options().has_fp16_weights) return l->weight.to(DType::float32);
    return precision::int8_vectorwise_dequant(l->weight, l->SCB).to(DType::float32);
  }
  if (const auto* l = dynamic_cast<const precision::FP8Linear*>(&layer))
    return l->weight.to(DType::float32);
  if (const auto* l = dynamic_cast<const nn::Linear*>(&layer)) return l->weight.to(DType::float32);
  return Tensor();
}

Tensor bias_of(const nn::Module& layer) {
  if (const auto* l = dynamic_cast<const precision::Linear4bit*>(&layer)) return l->bias;
  if (const auto* l = dynamic_cast<const precision::Linear8bitLt*>(&layer)) return l->bias;
  if (const auto* l = dynamic_cast<const precision::FP8Linear*>(&layer)) return l->bias;
  if (const auto* l = dynamic_cast<const nn::Linear*>(&layer)) return l->bias;
  return Tensor();
}

// peft's merge: W + (lora_B @ lora_A) · scaling, in float32 (get_delta_weight, then the add).
Tensor merge_lora(const Tensor& base_weight, const nn::LoRALinear& lora) {
  const Tensor delta =
      mul(matmul(lora.lora_B->weight.to(DType::float32), lora.lora_A->weight.to(DType::float32)),
          lora.scaling());
  return add(base_weight, delta);
}

// The float value `converted` holds for the plain model's key `key`; undefined when none.
Tensor converted_value(const nn::Module& converted, const nn::StateDict& converted_state,
                       const std::string& key) {
  const size_t dot = key.rfind('.');
  const std::string path = dot == std::string::npos ? "" : key.substr(0, dot);
  const std::string leaf = dot == std::string::npos ? key : key.substr(dot + 1);
  if (const nn::Module* m = module_at(converted, path)) {
    const auto* lora = dynamic_cast<const nn::LoRALinear*>(m);
    const nn::Module& base = lora ? lora->base_layer() : *m;
    if (leaf == "weight") {
      const Tensor w = float_weight(base);
      if (w.defined()) return lora ? merge_lora(w, *lora) : w;
    }
    if (leaf == "bias" && float_weight(base).defined()) return bias_of(base);
  }
  const Tensor* stored = converted_state.find(key);
  return stored ? *stored : Tensor();
}

bool same_values(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<size_t>(ca.nbytes())) == 0;
}

}  // namespace

nn::StateDict dequantized_state_dict(const nn::Module& converted, const nn::Module& plain,
                                     DType dtype, std::vector<UntiedPair>* untied) {
  NoGradGuard no_grad;
  const nn::StateDict converted_state = converted.state_dict();
  const nn::StateDict plain_state = plain.state_dict();
  nn::StateDict out;
  // The plain model's ties: its names grouped by the memory they view (as complete_tied_names).
  using Where = std::tuple<const void*, DType, Shape, Strides>;
  std::map<Where, std::vector<std::string>> ties;
  for (const auto& [key, want] : plain_state) {
    Tensor v = converted_value(converted, converted_state, key);
    FABRIC_CHECK(v.defined() && v.sizes() == want.sizes(), ValueError,
                 "export --dequantize: the float ", plain.type_name(), "'s '", key, "' ",
                 shape_str(want.sizes()), " has no ",
                 v.defined() ? "value of that shape (got " + shape_str(v.sizes()) + ")" : "value",
                 " in the model the checkpoint's precision built");
    if (v.is_floating_point()) v = v.to(dtype);
    out.insert(key, v.contiguous());
    if (want.numel() > 0)
      ties[{want.data_ptr(), want.dtype(), want.sizes(), want.strides()}].push_back(key);
  }
  if (untied != nullptr) {
    for (const auto& [where, names] : ties)
      for (size_t i = 1; i < names.size(); ++i)
        if (!same_values(out.at(names[0]), out.at(names[i])))
          untied->push_back({names[0], names[i]});
  }
  return out;
}

DType export_dtype_named(const std::string& name, const std::string& option) {
  if (name == "float32") return DType::float32;
  if (name == "bfloat16") return DType::bfloat16;
  if (name == "float16") return DType::float16;
  throw ConfigError(option + ": '" + name +
                    "' is not a dtype export writes; expected float32, bfloat16 or float16");
}

}  // namespace fabric
