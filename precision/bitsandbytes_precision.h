// BitsandbytesPrecision (fabric-api.md §3): replaces a model's Linear layers with 4-bit
// (nf4, nf4-dq, fp4, fp4-dq; bf16 compute by default) or LLM.int8 (int8, int8-training; fp16)
// quantized linears; plus the checkpoint helpers that give them bitsandbytes' dotted key layout.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "nn/module.h"
#include "precision/precision.h"

namespace fabric::precision {

class BitsandbytesPrecision : public Precision {
 public:
  // mode: nf4 | nf4-dq | fp4 | fp4-dq | int8 | int8-training (ValueError otherwise). dtype: the
  // compute dtype; int8 modes require float16 (ValueError otherwise), 4-bit modes default to
  // bfloat16. Linear layers whose dotted name starts with an ignore_modules entry stay as they are.
  explicit BitsandbytesPrecision(std::string mode, std::optional<DType> dtype = std::nullopt,
                                 std::vector<std::string> ignore_modules = {});

  std::string name() const override { return mode_; }
  const std::string& mode() const { return mode_; }
  DType dtype() const { return dtype_; }

  // Replaces every nn::Linear descendant (not the root itself, not ignored ones, not the
  // adapters of a LoRALinear) with its quantized counterpart; the weight is cast to float16
  // before 4-bit quantization. Does nothing when quantized layers are already present (a model
  // converted, then given LoRA adapters, before Fabric::setup converts it again).
  // DTypeError (the reference's TypeError) when the model holds no nn::Linear at all.
  void convert_module(nn::Module& module) override;
  // Floating inputs to the compute dtype; outputs back to float32.
  Tensor convert_input(const Tensor& input) const override;
  Tensor convert_output(const Tensor& output) const override;
  // The default-dtype context of the compute dtype.
  ContextGuard forward_context() override;
  ContextGuard tensor_init_context() override;
  // tensor_init_context(); fabric::Error (the reference's RuntimeError) when ignore_modules is set.
  ContextGuard module_init_context() override;

 private:
  std::string mode_;
  DType dtype_;
  std::vector<std::string> ignore_modules_;
};

// module.state_dict() with the quantized layers' entries under bitsandbytes' keys
// (`p.weight.absmax`, `p.weight.quant_map`, `p.weight.nested_absmax`, `p.weight.nested_quant_map`,
// `p.weight.quant_state.bitsandbytes__nf4`), interchangeable in layout with Linear4bit's.
nn::StateDict bnb_state_dict(const nn::Module& module);
// The inverse: loads a bnb-layout state dict (ours or bitsandbytes' own, whose quant_state JSON is
// unpadded; module.load_state_dict takes both too) and re-reads each quantized layer's quant state
// at once, so that a malformed one fails here rather than at the next forward. The quant states
// are checked before anything is copied: a failed load leaves the module as it was.
nn::LoadResult load_bnb_state_dict(nn::Module& module, const nn::StateDict& state, bool strict = true);

// Bytes held by the quantized weights of `module` (packed codes + statistics) and the number of
// weights they stand for.
struct QuantizedFootprint {
  int64_t bytes = 0;
  int64_t weights = 0;
  double bits_per_weight() const { return weights ? 8.0 * double(bytes) / double(weights) : 0.0; }
};
QuantizedFootprint quantized_footprint(const nn::Module& module);

}  // namespace fabric::precision
